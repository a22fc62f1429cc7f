//! DynamoDB Streams into functions: a serverless.yml `stream` event on a table the manifest
//! declares (NEW_AND_OLD_IMAGES) delivers its change records in Lambda's DynamoDB event shape,
//! in order per key; a failing handler is retried, then dead-lettered into Gust's DLQ. The
//! writes come from the real boto3, signed with an operator access key.

use crate::aws_sdk::run_boto3;
use crate::sources::{dead_letters, jsonl, until, wait_state, FLAKY, RECORDER, WAIT};
use crate::support::*;
use std::time::Duration;

const MANIFEST: &str = r#"
service: shop
provider:
  name: aws
  runtime: nodejs20.x
  region: us-east-1
functions:
  audit:
    handler: audit.handler
    events:
      - stream:
          type: dynamodb
          arn: !GetAtt OrdersTable.StreamArn
          batchSize: 10
          startingPosition: TRIM_HORIZON
  flaky:
    handler: flaky.handler
    events:
      - stream: { type: dynamodb, arn: !GetAtt OrdersTable.StreamArn, maximumRetryAttempts: 1, startingPosition: LATEST }
resources:
  Resources:
    OrdersTable:
      Type: AWS::DynamoDB::Table
      Properties:
        TableName: orders
        BillingMode: PAY_PER_REQUEST
        AttributeDefinitions: [{ AttributeName: id, AttributeType: S }]
        KeySchema: [{ AttributeName: id, KeyType: HASH }]
        StreamSpecification: { StreamViewType: NEW_AND_OLD_IMAGES }
"#;

/// Puts an order, then marks it paid.
const WRITES: &str = r##"
import json, sys, boto3
from botocore.config import Config
c = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[2],
                 aws_secret_access_key=sys.argv[3], config=Config(retries={"max_attempts": 1}))
c.put_item(TableName="orders", Item={"id": {"S": "o1"}, "status": {"S": "new"}})
c.update_item(TableName="orders", Key={"id": {"S": "o1"}}, UpdateExpression="SET #s = :s",
              ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "paid"}})
print(json.dumps("ok"))
"##;

#[tokio::test]
async fn table_changes_reach_functions_in_order_and_failures_are_dead_lettered() {
    let dir = write_app(&[
        ("serverless.yml", MANIFEST),
        ("audit.js", RECORDER),
        ("flaky.js", FLAKY),
    ]);
    let app = TestApp::start_dir(dir).await;
    // LATEST is fixed when the source first connects: the writes must come after that.
    wait_state(&app, "flaky.orders-stream", "connected").await;
    wait_state(&app, "audit.orders-stream", "connected").await;
    assert_eq!(run_boto3(&app, WRITES).await, "ok");

    let root = app.dir.path().to_path_buf();
    until("both changes to reach the recorder", WAIT, || async {
        jsonl(&root, "out.jsonl").len() >= 2
    })
    .await;
    let got: Vec<serde_json::Value> = jsonl(&root, "out.jsonl")
        .into_iter()
        .map(|l| l["record"].clone())
        .collect();
    assert_eq!(got.len(), 2, "each change once: {got:?}");
    let (insert, modify) = (&got[0], &got[1]);
    assert_eq!(insert["eventName"], "INSERT", "{insert}");
    assert_eq!(modify["eventName"], "MODIFY", "{modify}");
    for r in &got {
        assert_eq!(r["eventSource"], "aws:dynamodb", "{r}");
        assert!(
            r["eventSourceARN"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/"),
            "{r}"
        );
        assert_eq!(r["dynamodb"]["Keys"], serde_json::json!({"id": {"S": "o1"}}), "{r}");
        assert_eq!(r["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES", "{r}");
    }
    assert_eq!(insert["dynamodb"]["NewImage"]["status"]["S"], "new", "{insert}");
    assert!(insert["dynamodb"].get("OldImage").is_none(), "{insert}");
    assert_eq!(modify["dynamodb"]["OldImage"]["status"]["S"], "new", "{modify}");
    assert_eq!(modify["dynamodb"]["NewImage"]["status"]["S"], "paid", "{modify}");
    let (a, b) = (
        insert["dynamodb"]["SequenceNumber"].as_str().unwrap(),
        modify["dynamodb"]["SequenceNumber"].as_str().unwrap(),
    );
    assert!(a < b, "in order: {a} then {b}");

    // maximumRetryAttempts: 1 -> two attempts per record, then Gust's DLQ.
    until("both records to be dead-lettered", WAIT, || async {
        dead_letters(&app, "flaky.orders-stream").await.len() == 2
    })
    .await;
    for dl in dead_letters(&app, "flaky.orders-stream").await {
        assert_eq!(dl["reason"], "MaxAttemptsExceeded", "{dl}");
        assert_eq!(dl["attempts"], 2, "{dl}");
    }
    let seen = jsonl(&root, "seen.jsonl");
    let names: Vec<&str> = seen.iter().map(|r| r["eventName"].as_str().unwrap()).collect();
    // One batch or two, the key's order holds: the INSERT is first tried and last tried
    // before the MODIFY is.
    let first = |n: &str| names.iter().position(|x| *x == n).unwrap();
    let last = |n: &str| names.iter().rposition(|x| *x == n).unwrap();
    assert_eq!(names.iter().filter(|n| **n == "INSERT").count(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "MODIFY").count(), 2, "{names:?}");
    assert!(
        first("INSERT") < first("MODIFY") && last("INSERT") < last("MODIFY"),
        "{names:?}"
    );
    // Settled (dead-lettered) records move the checkpoint on: nothing is left behind.
    let sub = wait_state(&app, "flaky.orders-stream", "connected").await;
    until("the flaky subscription's lag to drop to zero", WAIT, || async {
        crate::sources::subscription(&app, "flaky.orders-stream").await["source"]["lag"] == 0
    })
    .await;
    assert_eq!(sub["source"]["type"], "dynamodb-stream", "{sub}");

    // Fixed and redriven: the dead letters come back in the same DynamoDB event shape.
    std::fs::write(root.join("fixed"), "").unwrap();
    let out = gust_cli(
        vec![
            "dlq".into(),
            "redrive".into(),
            "flaky.orders-stream".into(),
            "--app".into(),
            root.display().to_string(),
        ],
        vec![],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout))["redriven"], 2);
    until("the redriven records to succeed", WAIT, || async {
        jsonl(&root, "ok.jsonl").len() == 2
    })
    .await;
    let mut ok: Vec<String> = jsonl(&root, "ok.jsonl")
        .iter()
        .map(|r| {
            assert_eq!(r["eventSource"], "aws:dynamodb", "{r}");
            assert_eq!(r["dynamodb"]["Keys"]["id"]["S"], "o1", "{r}");
            r["eventName"].as_str().unwrap().to_string()
        })
        .collect();
    ok.sort();
    assert_eq!(ok, ["INSERT", "MODIFY"]);
    until("the DLQ to be empty", WAIT, || async {
        dead_letters(&app, "flaky.orders-stream").await.is_empty()
    })
    .await;
    app.stop().await;
}

/// The same source written in gust.toml: `source = { type = "dynamodb-stream", table = ... }`
/// on a `[dynamodb.tables]` table with a stream.
const GUST_TOML: &str = r#"
[app]
name = "shop"
[functions.audit]
runtime = "nodejs20.x"
handler = "audit.handler"
[dynamodb.tables.orders]
hash_key = "id"
stream = "NEW_AND_OLD_IMAGES"
[[subscriptions]]
name = "audit-orders"
function = "audit"
source = { type = "dynamodb-stream", table = "orders", start = "earliest" }
"#;

#[tokio::test]
async fn a_gust_toml_stream_source_delivers_a_tables_changes() {
    let dir = write_app(&[("gust.toml", GUST_TOML), ("audit.js", RECORDER)]);
    let app = TestApp::start_dir(dir).await;
    wait_state(&app, "audit-orders", "connected").await;
    assert_eq!(run_boto3(&app, WRITES).await, "ok");
    let root = app.dir.path().to_path_buf();
    until("both changes to reach the recorder", WAIT, || async {
        jsonl(&root, "out.jsonl").len() >= 2
    })
    .await;
    let got: Vec<serde_json::Value> = jsonl(&root, "out.jsonl")
        .into_iter()
        .map(|l| l["record"].clone())
        .collect();
    let names: Vec<&str> = got.iter().map(|r| r["eventName"].as_str().unwrap()).collect();
    assert_eq!(names, ["INSERT", "MODIFY"], "{got:?}");
    for r in &got {
        assert_eq!(r["eventSource"], "aws:dynamodb", "{r}");
        assert!(
            r["eventSourceARN"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/"),
            "{r}"
        );
        assert_eq!(r["dynamodb"]["Keys"], serde_json::json!({"id": {"S": "o1"}}), "{r}");
    }
}

/// `n` puts, one per item `i0`..: each is one INSERT record.
const PUTS: &str = r##"
import json, sys, boto3
from botocore.config import Config
c = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[2],
                 aws_secret_access_key=sys.argv[3], config=Config(retries={"max_attempts": 1}))
for i in range(int(sys.argv[4])):
    c.put_item(TableName="numbers", Item={"id": {"S": f"i{i}"}, "n": {"N": str(i)}})
print(json.dumps("ok"))
"##;

/// Appends each record's `n` after a pause, so that a kill lands mid-run.
const N_WRITER: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  await new Promise((r) => setTimeout(r, 150));
  const ns = event.Records.map((r) => r.dynamodb.NewImage.n.N);
  fs.appendFileSync(path.join(__dirname, 'ids.txt'), ns.join('\n') + '\n');
  return {};
};
"#;

const KILL_TOML: &str = r#"
[app]
name = "numbers"
[functions.count]
runtime = "nodejs20.x"
handler = "count.handler"
[dynamodb.tables.numbers]
hash_key = "id"
stream = "NEW_IMAGE"
[[subscriptions]]
name = "sub"
function = "count"
batch_size = 5
source = { type = "dynamodb-stream", table = "numbers", start = "earliest" }
"#;

/// `kill -9` of Gust mid-run: the checkpoint in `aws.db` only moved over settled records, so
/// after a restart every change is delivered (at least once), and the redelivered ones are at
/// most what was in flight, not the stream from its start.
#[tokio::test]
async fn kill_9_mid_stream_loses_no_change_and_resumes_from_the_checkpoint() {
    const N: u32 = 300;
    let dir = write_app(&[("gust.toml", KILL_TOML), ("count.js", N_WRITER)]);
    let state = tempfile::tempdir().unwrap();
    let mut gust = GustUp::start(dir.path(), state.path()).await;
    // The writes go in before the subscription delivers much (it starts at the oldest record).
    let client = reqwest::Client::new();
    let key = client
        .post(format!("{}/gust/v1/access-keys", gust.admin))
        .bearer_auth(&gust.token)
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 201);
    let key = json(&key.text().await.unwrap());
    let (admin, id, secret) = (
        gust.admin.clone(),
        key["access_key_id"].as_str().unwrap().to_string(),
        key["secret_access_key"].as_str().unwrap().to_string(),
    );
    let deps = crate::aws_sdk::pydeps();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", PUTS, &admin, &id, &secret, &N.to_string()])
            .env("PYTHONPATH", deps)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let delivered = || crate::sources::delivered_ids(dir.path());
    wait_for("deliveries to be under way", Duration::from_secs(60), || {
        delivered().len() as u32 >= N / 10
    })
    .await;
    gust.kill_9().await;
    let before: usize = delivered().values().sum();
    assert!(
        (before as u32) < N,
        "the kill came after every delivery ({before} of {N}); the test proved nothing"
    );
    let gust = GustUp::start(dir.path(), state.path()).await;
    wait_for(
        "every change to be delivered after the restart",
        Duration::from_secs(120),
        || delivered().len() as u32 == N,
    )
    .await;
    let ids = delivered();
    let missing: Vec<u32> = (0..N).filter(|i| !ids.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let again: usize = ids.values().map(|c| c - 1).sum();
    // In flight at the kill: at most a few batches (batch 5, the subscription's concurrency),
    // far from a replay of the `before` records already settled.
    assert!(
        again < before.max(1) && again <= 100,
        "{again} records delivered again after {before} before the kill: the checkpoint did not hold"
    );
    eprintln!("dynamodb stream crash safety: {N} changes, {before} delivered before kill -9, {again} delivered twice");
    let s = crate::sources::subscription_at(&gust.admin, &gust.token, "sub").await;
    assert_eq!(s["dead_letters"], 0, "{s}");
}

/// Lambda's event filtering on a stream: only the records a pattern accepts reach the
/// function; the others are settled (the checkpoint moves past them) without an invocation.
#[tokio::test]
async fn filter_patterns_let_only_matching_changes_through() {
    let manifest = GUST_TOML.replace(
        "source = { type = \"dynamodb-stream\", table = \"orders\", start = \"earliest\" }",
        "source = { type = \"dynamodb-stream\", table = \"orders\", start = \"earliest\" }\n\
         filter_patterns = [{ eventName = [\"MODIFY\"], dynamodb = { NewImage = { status = { S = [\"paid\"] } } } }]",
    );
    assert_ne!(manifest, GUST_TOML);
    let dir = write_app(&[("gust.toml", &manifest), ("audit.js", RECORDER)]);
    let app = TestApp::start_dir(dir).await;
    wait_state(&app, "audit-orders", "connected").await;
    assert_eq!(run_boto3(&app, WRITES).await, "ok");
    let root = app.dir.path().to_path_buf();
    until("the MODIFY to reach the recorder", WAIT, || async {
        !jsonl(&root, "out.jsonl").is_empty()
    })
    .await;
    // Settled either way: nothing is left after the checkpoint.
    until("the subscription's lag to drop to zero", WAIT, || async {
        crate::sources::subscription(&app, "audit-orders").await["source"]["lag"] == 0
    })
    .await;
    let names: Vec<String> = jsonl(&root, "out.jsonl")
        .iter()
        .map(|l| l["record"]["eventName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["MODIFY"], "only the paid MODIFY passes the pattern");
    let invocations = app
        .op(reqwest::Method::GET, "/gust/v1/invocations?function=audit")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        json(&invocations)["invocations"].as_array().unwrap().len(),
        1,
        "the filtered-out INSERT cost no invocation: {invocations}"
    );
}
