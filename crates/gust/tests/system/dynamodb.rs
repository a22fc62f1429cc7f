//! DynamoDB served by Gust on the admin address, driven by clients no one here wrote: boto3
//! (the low-level client and the `Table` resource) and the AWS CLI, signed (SigV4, service
//! `dynamodb`) with an access key from `POST /gust/v1/access-keys`.

use crate::aws_sdk::run_boto3;
use crate::support::*;
use std::path::PathBuf;
use std::sync::OnceLock;

async fn start() -> TestApp {
    TestApp::start(&[
        (
            "gust.toml",
            "[app]\nname = \"tables\"\n[functions.noop]\nruntime = \"nodejs20.x\"\nhandler = \"f.handler\"\n",
        ),
        ("f.js", "exports.handler = async () => ({});"),
    ])
    .await
}

/// The data plane through boto3's client: tables with a GSI, conditional writes, updates,
/// queries with pagination, a transaction that fails whole, batches.
const DATA_PLANE: &str = r##"
import json, sys, boto3, botocore
from botocore.config import Config
c = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="eu-west-1",
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3],
                 config=Config(retries={"max_attempts": 1}))
out = {}
r = c.create_table(
    TableName="orders", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                          {"AttributeName": "n", "AttributeType": "N"},
                          {"AttributeName": "status", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
    GlobalSecondaryIndexes=[{"IndexName": "by-status",
        "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"}}])
out["arn"] = r["TableDescription"]["TableArn"]
c.get_waiter("table_exists").wait(TableName="orders", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
c.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
try:
    c.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    out["again"] = "no error"
except c.exceptions.ResourceInUseException:
    out["again"] = "ResourceInUseException"
out["tables"] = c.list_tables()["TableNames"]

# put / get
c.put_item(TableName="orders", Item={"customer": {"S": "ada"}, "n": {"N": "1"}, "total": {"N": "10"},
                                      "tags": {"L": [{"S": "a"}]}, "status": {"S": "open"}})
out["get"] = c.get_item(TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}})["Item"]
out["get_missing"] = "Item" in c.get_item(TableName="orders", Key={"customer": {"S": "nobody"}, "n": {"N": "1"}})

# a conditional put that must fail
try:
    c.put_item(TableName="orders", Item={"customer": {"S": "ada"}, "n": {"N": "1"}},
               ConditionExpression="attribute_not_exists(customer)")
    out["cond"] = "no error"
except c.exceptions.ConditionalCheckFailedException as e:
    out["cond"] = {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"],
                   "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
out["after_cond"] = c.get_item(TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}})["Item"]["total"]

# updates
r = c.update_item(TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}},
    UpdateExpression="SET total = total + :d, visits = if_not_exists(visits, :zero) + :one, tags = list_append(tags, :more) REMOVE #s ADD labels :l",
    ExpressionAttributeNames={"#s": "status"},
    ExpressionAttributeValues={":d": {"N": "2.5"}, ":zero": {"N": "0"}, ":one": {"N": "1"},
                               ":more": {"L": [{"S": "b"}]}, ":l": {"SS": ["vip"]}},
    ReturnValues="ALL_NEW")
out["all_new"] = r["Attributes"]
r = c.update_item(TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}},
    UpdateExpression="SET total = total - :d", ExpressionAttributeValues={":d": {"N": "0.5"}},
    ReturnValues="UPDATED_OLD")
out["updated_old"] = r["Attributes"]
try:
    c.update_item(TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}},
        UpdateExpression="SET total = :v", ConditionExpression="total > :big",
        ExpressionAttributeValues={":v": {"N": "0"}, ":big": {"N": "1000"}})
    out["cond_update"] = "no error"
except c.exceptions.ConditionalCheckFailedException:
    out["cond_update"] = "ConditionalCheckFailedException"
try:
    c.update_item(TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}},
        UpdateExpression="SET total = total + :v", ExpressionAttributeValues={":v": {"S": "x"}})
    out["bad_update"] = "no error"
except botocore.exceptions.ClientError as e:
    out["bad_update"] = [e.response["Error"]["Code"], e.response["Error"]["Message"]]

# query: a numeric sort key, pages of 3 until LastEvaluatedKey is absent
for n in [5, -2, 40, 3.5, 100, 7, 12, 0, 1000, 9, 8]:
    c.put_item(TableName="orders", Item={"customer": {"S": "bob"}, "n": {"N": str(n)},
                                          "status": {"S": "open" if n % 2 == 0 else "done"}})
seen, pages, start = [], 0, None
while True:
    kw = {"ExclusiveStartKey": start} if start else {}
    r = c.query(TableName="orders", KeyConditionExpression="customer = :c",
                ExpressionAttributeValues={":c": {"S": "bob"}}, Limit=3, **kw)
    pages += 1
    seen += [i["n"]["N"] for i in r["Items"]]
    start = r.get("LastEvaluatedKey")
    if not start:
        break
out["pages"] = {"seen": seen, "pages": pages}
r = c.query(TableName="orders", KeyConditionExpression="customer = :c AND n BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":c": {"S": "bob"}, ":lo": {"N": "3.5"}, ":hi": {"N": "40"}},
            ScanIndexForward=False)
out["between_desc"] = [i["n"]["N"] for i in r["Items"]]
r = c.query(TableName="orders", KeyConditionExpression="customer = :c AND n > :v",
            FilterExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":c": {"S": "bob"}, ":v": {"N": "0"}, ":s": {"S": "open"}})
out["filtered"] = {"items": [i["n"]["N"] for i in r["Items"]], "count": r["Count"], "scanned": r["ScannedCount"]}
r = c.query(TableName="orders", IndexName="by-status", KeyConditionExpression="#s = :s AND n < :v",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "done"}, ":v": {"N": "10"}})
out["gsi"] = [[i["customer"]["S"], i["n"]["N"]] for i in r["Items"]]
r = c.query(TableName="orders", Select="COUNT", KeyConditionExpression="customer = :c",
            ExpressionAttributeValues={":c": {"S": "bob"}})
out["count"] = [r["Count"], "Items" in r]
for sk in ["2026-01-03#b", "2026-01-01#a", "2025-12-31#z", "2026-02-01#c"]:
    c.put_item(TableName="events", Item={"pk": {"S": "log"}, "sk": {"S": sk}})
r = c.query(TableName="events", KeyConditionExpression="pk = :p AND begins_with(sk, :m)",
            ExpressionAttributeValues={":p": {"S": "log"}, ":m": {"S": "2026-01"}})
out["begins_with"] = [i["sk"]["S"] for i in r["Items"]]
try:
    c.query(TableName="orders", KeyConditionExpression="n = :v", ExpressionAttributeValues={":v": {"N": "1"}})
except botocore.exceptions.ClientError as e:
    out["bad_query"] = [e.response["Error"]["Code"], e.response["Error"]["Message"]]
try:
    c.get_item(TableName="nope", Key={"a": {"S": "b"}})
except c.exceptions.ResourceNotFoundException as e:
    out["missing_table"] = "ResourceNotFoundException"

# a transaction that must fail whole
try:
    c.transact_write_items(TransactItems=[
        {"Put": {"TableName": "orders", "Item": {"customer": {"S": "tx"}, "n": {"N": "1"}}}},
        {"Update": {"TableName": "orders", "Key": {"customer": {"S": "ada"}, "n": {"N": "1"}},
                    "UpdateExpression": "SET total = :z", "ConditionExpression": "total = :wrong",
                    "ExpressionAttributeValues": {":z": {"N": "0"}, ":wrong": {"N": "-1"}}}}])
    out["tx"] = "no error"
except c.exceptions.TransactionCanceledException as e:
    out["tx"] = {"reasons": [r["Code"] for r in e.response["CancellationReasons"]], "message": e.response["Error"]["Message"]}
out["tx_written"] = "Item" in c.get_item(TableName="orders", Key={"customer": {"S": "tx"}, "n": {"N": "1"}})
out["tx_total"] = c.get_item(TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}})["Item"]["total"]["N"]
c.transact_write_items(TransactItems=[
    {"Put": {"TableName": "orders", "Item": {"customer": {"S": "tx"}, "n": {"N": "1"}}}},
    {"ConditionCheck": {"TableName": "orders", "Key": {"customer": {"S": "ada"}, "n": {"N": "1"}},
                        "ConditionExpression": "attribute_exists(total)"}}])
out["tx_ok_written"] = "Item" in c.get_item(TableName="orders", Key={"customer": {"S": "tx"}, "n": {"N": "1"}})

# batches
r = c.batch_write_item(RequestItems={"events": [{"PutRequest": {"Item": {"pk": {"S": "batch"}, "sk": {"S": str(i)}}}} for i in range(25)]})
out["batch_unprocessed"] = r["UnprocessedItems"]
r = c.batch_get_item(RequestItems={"events": {"Keys": [{"pk": {"S": "batch"}, "sk": {"S": str(i)}} for i in range(0, 25, 5)]},
                                   "orders": {"Keys": [{"customer": {"S": "ada"}, "n": {"N": "1"}}], "ProjectionExpression": "total"}})
out["batch_get"] = {"events": sorted(i["sk"]["S"] for i in r["Responses"]["events"]), "orders": r["Responses"]["orders"]}
c.batch_write_item(RequestItems={"events": [{"DeleteRequest": {"Key": {"pk": {"S": "batch"}, "sk": {"S": str(i)}}}} for i in range(20)]})
r = c.scan(TableName="events", FilterExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "batch"}})
out["after_delete"] = r["Count"]

# the resource layer: Python types, Decimal numbers, Key conditions
from boto3.dynamodb.conditions import Key, Attr
from decimal import Decimal
t = boto3.resource("dynamodb", endpoint_url=sys.argv[1], region_name="eu-west-1",
                   aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]).Table("orders")
t.put_item(Item={"customer": "res", "n": 1, "price": Decimal("19.99"), "meta": {"tags": {"x", "y"}, "ok": True, "none": None}})
item = t.get_item(Key={"customer": "res", "n": 1})["Item"]
out["resource"] = {"price": str(item["price"]), "tags": sorted(item["meta"]["tags"]), "ok": item["meta"]["ok"], "none": item["meta"]["none"]}
r = t.query(KeyConditionExpression=Key("customer").eq("bob") & Key("n").between(5, 12), FilterExpression=Attr("status").eq("done"))
out["resource_query"] = [str(i["n"]) for i in r["Items"]]
print(json.dumps(out))
"##;

#[tokio::test]
async fn boto3_uses_dynamodb_tables() {
    let app = start().await;
    let v = run_boto3(&app, DATA_PLANE).await;
    assert_eq!(v["arn"], "arn:aws:dynamodb:eu-west-1:000000000000:table/orders");
    assert_eq!(v["again"], "ResourceInUseException");
    assert_eq!(v["tables"], serde_json::json!(["events", "orders"]));
    assert_eq!(v["get"]["total"], serde_json::json!({"N": "10"}));
    assert_eq!(v["get_missing"], false);
    assert_eq!(v["cond"]["code"], "ConditionalCheckFailedException");
    assert_eq!(v["cond"]["message"], "The conditional request failed");
    assert_eq!(v["cond"]["status"], 400);
    assert_eq!(
        v["after_cond"],
        serde_json::json!({"N": "10"}),
        "a failed condition writes nothing"
    );
    let all_new = &v["all_new"];
    assert_eq!(all_new["total"], serde_json::json!({"N": "12.5"}));
    assert_eq!(all_new["visits"], serde_json::json!({"N": "1"}));
    assert_eq!(all_new["tags"], serde_json::json!({"L": [{"S": "a"}, {"S": "b"}]}));
    assert_eq!(all_new["labels"], serde_json::json!({"SS": ["vip"]}));
    assert!(all_new.get("status").is_none(), "REMOVE took it away: {all_new}");
    assert_eq!(v["updated_old"], serde_json::json!({"total": {"N": "12.5"}}));
    assert_eq!(v["cond_update"], "ConditionalCheckFailedException");
    assert_eq!(
        v["bad_update"],
        serde_json::json!([
            "ValidationException",
            "An operand in the update expression has an incorrect data type"
        ])
    );
    // Numeric order, not string order; every item once; 11 items in pages of 3.
    assert_eq!(
        v["pages"]["seen"],
        serde_json::json!(["-2", "0", "3.5", "5", "7", "8", "9", "12", "40", "100", "1000"])
    );
    assert_eq!(v["pages"]["pages"], 4);
    assert_eq!(
        v["between_desc"],
        serde_json::json!(["40", "12", "9", "8", "7", "5", "3.5"])
    );
    assert_eq!(
        v["filtered"]["items"],
        serde_json::json!(["8", "12", "40", "100", "1000"])
    );
    assert_eq!(v["filtered"]["scanned"], 9);
    // ada's status was removed, so the index no longer holds her order.
    assert_eq!(
        v["gsi"],
        serde_json::json!([["bob", "3.5"], ["bob", "5"], ["bob", "7"], ["bob", "9"]])
    );
    assert_eq!(v["count"], serde_json::json!([11, false]));
    assert_eq!(v["begins_with"], serde_json::json!(["2026-01-01#a", "2026-01-03#b"]));
    assert_eq!(
        v["bad_query"],
        serde_json::json!([
            "ValidationException",
            "Query condition missed key schema element: customer"
        ])
    );
    assert_eq!(v["missing_table"], "ResourceNotFoundException");
    assert_eq!(
        v["tx"]["reasons"],
        serde_json::json!(["None", "ConditionalCheckFailed"])
    );
    assert!(
        v["tx"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Transaction cancelled"),
        "{}",
        v["tx"]
    );
    assert_eq!(v["tx_written"], false, "nothing of a cancelled transaction is written");
    assert_eq!(v["tx_total"], "12");
    assert_eq!(v["tx_ok_written"], true);
    assert_eq!(v["batch_unprocessed"], serde_json::json!({}));
    assert_eq!(
        v["batch_get"]["events"],
        serde_json::json!(["0", "10", "15", "20", "5"])
    );
    assert_eq!(v["batch_get"]["orders"], serde_json::json!([{"total": {"N": "12"}}]));
    assert_eq!(v["after_delete"], 5);
    assert_eq!(
        v["resource"],
        serde_json::json!({"price": "19.99", "tags": ["x", "y"], "ok": true, "none": null})
    );
    assert_eq!(v["resource_query"], serde_json::json!(["5", "7", "9"]));
    // The tables are in the state directory's own database.
    assert!(app.dir.path().join(".gust").join("aws.db").is_file());
    app.stop().await;
}

/// Refused credentials, in DynamoDB's shape: a wrong secret, an unknown key, no signature.
const REFUSALS: &str = r##"
import json, sys, boto3, botocore, urllib.request
from botocore.config import Config
def client(key, secret):
    return boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))
out = {}
for name, c in [("bad_secret", client(sys.argv[2], "x" * 40)), ("unknown_key", client("AKIANOTAGUSTKEY00000", sys.argv[3]))]:
    try:
        c.list_tables()
        out[name] = "no error"
    except botocore.exceptions.ClientError as e:
        out[name] = [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]
req = urllib.request.Request(sys.argv[1] + "/", data=b"{}", method="POST",
    headers={"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"})
try:
    urllib.request.urlopen(req)
    out["unsigned"] = "no error"
except urllib.error.HTTPError as e:
    out["unsigned"] = [e.code, json.loads(e.read())["__type"]]
out["good"] = client(sys.argv[2], sys.argv[3]).list_tables()["TableNames"]
print(json.dumps(out))
"##;

#[tokio::test]
async fn dynamodb_refuses_bad_signatures_in_its_own_shape() {
    let app = start().await;
    let v = run_boto3(&app, REFUSALS).await;
    assert_eq!(v["bad_secret"], serde_json::json!([400, "InvalidSignatureException"]));
    assert_eq!(
        v["unknown_key"],
        serde_json::json!([400, "UnrecognizedClientException"])
    );
    assert_eq!(
        v["unsigned"],
        serde_json::json!([400, "com.amazon.coral.service#MissingAuthenticationTokenException"])
    );
    assert_eq!(v["good"], serde_json::json!([]));
    app.stop().await;
}

/// `python3 -m awscli` with awscli importable: the machine's own, or installed from PyPI into
/// `target/pydeps-awscli` on first use.
fn awscli_path() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| python_module_dir("pydeps-awscli", "awscli>=1.32", "awscli"))
        .clone()
}

#[tokio::test]
async fn the_aws_cli_creates_writes_and_scans_a_table() {
    let app = start().await;
    let key = app
        .op(reqwest::Method::POST, "/gust/v1/access-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 201);
    let key = json(&key.text().await.unwrap());
    let env = [
        ("AWS_ACCESS_KEY_ID", key["access_key_id"].as_str().unwrap().to_string()),
        (
            "AWS_SECRET_ACCESS_KEY",
            key["secret_access_key"].as_str().unwrap().to_string(),
        ),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_CONFIG_FILE", "/dev/null".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
    ];
    let endpoint = app.admin("");
    let path = awscli_path();
    let aws = move |args: Vec<&'static str>| {
        let env = env.clone();
        let endpoint = endpoint.clone();
        let path = path.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut cmd = std::process::Command::new("python3");
                cmd.args(["-m", "awscli", "dynamodb"])
                    .args(&args)
                    .args(["--endpoint-url", &endpoint, "--output", "json"])
                    .env("PYTHONPATH", path);
                for (k, v) in &env {
                    cmd.env(k, v);
                }
                cmd.output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = aws(vec![
        "create-table",
        "--table-name",
        "users",
        "--attribute-definitions",
        "AttributeName=id,AttributeType=S",
        "--key-schema",
        "AttributeName=id,KeyType=HASH",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for item in [
        r#"{"id": {"S": "u1"}, "name": {"S": "Ada"}}"#,
        r#"{"id": {"S": "u2"}, "name": {"S": "Grace"}}"#,
    ] {
        let out = aws(vec!["put-item", "--table-name", "users", "--item", item]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = aws(vec!["scan", "--table-name", "users"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["Count"], 2);
    let mut names: Vec<&str> = v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"]["S"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Ada", "Grace"]);
    let out = aws(vec![
        "put-item",
        "--table-name",
        "users",
        "--item",
        r#"{"id": {"S": "u1"}}"#,
        "--condition-expression",
        "attribute_not_exists(id)",
    ])
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ConditionalCheckFailedException"), "{stderr}");
    app.stop().await;
}

/// `node_modules` with the AWS SDK for JavaScript v3's DynamoDB client and document client and
/// the v2 SDK (`aws-sdk`, which many projects still use), installed from npm into
/// `target/node-aws-sdk` on first use (about 20 s).
pub(crate) fn node_aws_sdk() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("..").join("node-aws-sdk");
        let modules = dir.join("node_modules");
        if !modules.join("@aws-sdk").join("lib-dynamodb").is_dir() || !modules.join("aws-sdk").is_dir() {
            std::fs::create_dir_all(&dir).unwrap();
            let status = std::process::Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--silent",
                    "@aws-sdk/client-dynamodb@3",
                    "@aws-sdk/lib-dynamodb@3",
                    "aws-sdk@2",
                ])
                .current_dir(&dir)
                .status()
                .expect("npm runs");
            assert!(status.success(), "npm install of the AWS SDK failed");
        }
        modules
    })
    .clone()
}

const JS_SDK: &str = r##"
const { DynamoDBClient, CreateTableCommand, paginateQuery } = require("@aws-sdk/client-dynamodb");
const { DynamoDBDocumentClient, PutCommand, GetCommand, UpdateCommand, QueryCommand, TransactWriteCommand } = require("@aws-sdk/lib-dynamodb");
(async () => {
  const { ENDPOINT: endpoint, KEY_ID: accessKeyId, SECRET: secretAccessKey } = process.env;
  const client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
  const doc = DynamoDBDocumentClient.from(client);
  const out = {};
  await client.send(new CreateTableCommand({
    TableName: "Users", BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [{ AttributeName: "org", AttributeType: "S" }, { AttributeName: "id", AttributeType: "N" }],
    KeySchema: [{ AttributeName: "org", KeyType: "HASH" }, { AttributeName: "id", KeyType: "RANGE" }],
  }));
  for (let id = 1; id <= 7; id++) {
    await doc.send(new PutCommand({ TableName: "Users", Item: { org: "acme", id, name: `user${id}`, roles: new Set(["a"]) } }));
  }
  const got = await doc.send(new GetCommand({ TableName: "Users", Key: { org: "acme", id: 3 } }));
  out.get = { name: got.Item.name, roles: [...got.Item.roles] };
  try {
    await doc.send(new PutCommand({ TableName: "Users", Item: { org: "acme", id: 3 }, ConditionExpression: "attribute_not_exists(id)" }));
    out.cond = "no error";
  } catch (e) {
    out.cond = e.name;
  }
  const upd = await doc.send(new UpdateCommand({
    TableName: "Users", Key: { org: "acme", id: 3 },
    UpdateExpression: "SET logins = if_not_exists(logins, :z) + :one", ExpressionAttributeValues: { ":z": 0, ":one": 1 },
    ReturnValues: "ALL_NEW",
  }));
  out.logins = upd.Attributes.logins;
  const ids = [];
  for await (const page of paginateQuery({ client, pageSize: 2 }, {
    TableName: "Users", KeyConditionExpression: "org = :o", ExpressionAttributeValues: { ":o": { S: "acme" } },
  })) {
    ids.push(...page.Items.map((i) => Number(i.id.N)));
  }
  out.paged = ids;
  const desc = await doc.send(new QueryCommand({
    TableName: "Users", KeyConditionExpression: "org = :o AND id BETWEEN :a AND :b",
    ExpressionAttributeValues: { ":o": "acme", ":a": 2, ":b": 4 }, ScanIndexForward: false,
  }));
  out.desc = desc.Items.map((i) => i.id);
  try {
    await doc.send(new TransactWriteCommand({ TransactItems: [
      { Put: { TableName: "Users", Item: { org: "acme", id: 99 } } },
      { ConditionCheck: { TableName: "Users", Key: { org: "acme", id: 1 }, ConditionExpression: "attribute_not_exists(id)" } },
    ] }));
    out.tx = "no error";
  } catch (e) {
    out.tx = { name: e.name, reasons: e.CancellationReasons.map((r) => r.Code) };
  }
  out.tx_written = (await doc.send(new GetCommand({ TableName: "Users", Key: { org: "acme", id: 99 } }))).Item !== undefined;
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"##;

/// Runs `script` with Node and the AWS SDKs (`node_aws_sdk`), with `ENDPOINT`, `KEY_ID` and
/// `SECRET` (a new access key) in its environment, and parses the JSON it prints.
async fn run_node(app: &TestApp, script: &'static str) -> serde_json::Value {
    let modules = node_aws_sdk();
    let key = app
        .op(reqwest::Method::POST, "/gust/v1/access-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 201);
    let key = json(&key.text().await.unwrap());
    let args = [
        app.admin(""),
        key["access_key_id"].as_str().unwrap().to_string(),
        key["secret_access_key"].as_str().unwrap().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(["-e", script])
            .envs([("ENDPOINT", &args[0]), ("KEY_ID", &args[1]), ("SECRET", &args[2])])
            .env("NODE_PATH", modules)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json(String::from_utf8_lossy(&out.stdout).trim())
}

#[tokio::test]
async fn the_javascript_sdk_v3_uses_dynamodb_tables() {
    let app = start().await;
    let v = run_node(&app, JS_SDK).await;
    assert_eq!(v["get"], serde_json::json!({"name": "user3", "roles": ["a"]}));
    assert_eq!(v["cond"], "ConditionalCheckFailedException");
    assert_eq!(v["logins"], 1);
    assert_eq!(v["paged"], serde_json::json!([1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(v["desc"], serde_json::json!([4, 3, 2]));
    assert_eq!(
        v["tx"],
        serde_json::json!({"name": "TransactionCanceledException", "reasons": ["None", "ConditionalCheckFailed"]})
    );
    assert_eq!(v["tx_written"], false);
    app.stop().await;
}

/// One DynamoDB call on the wire, with the operator token (what `curl` would send).
pub(crate) async fn dynamo_call(
    admin: &str,
    token: &str,
    op: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{admin}/"))
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header("content-type", "application/x-amz-json-1.0")
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-amz-json-1.0")
    );
    (status, json(&r.text().await.unwrap()))
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = write_app(&[
        (
            "gust.toml",
            "[app]\nname = \"tables\"\n[functions.noop]\nruntime = \"nodejs20.x\"\nhandler = \"f.handler\"\n",
        ),
        ("f.js", "exports.handler = async () => ({});"),
    ]);
    let state = dir.path().join(".state");
    let mut gust = GustUp::start(dir.path(), &state).await;
    let (status, _) = dynamo_call(
        &gust.admin,
        &gust.token,
        "CreateTable",
        serde_json::json!({
            "TableName": "kept", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]
        }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = dynamo_call(
        &gust.admin,
        &gust.token,
        "PutItem",
        serde_json::json!({"TableName": "kept", "Item": {"id": {"S": "a"}, "v": {"N": "1"}}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = dynamo_call(&gust.admin, &gust.token, "Nope", serde_json::json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "com.amazon.coral.service#UnknownOperationException");
    gust.kill_9().await;
    let gust = GustUp::start(dir.path(), &state).await;
    let (status, body) = dynamo_call(
        &gust.admin,
        &gust.token,
        "GetItem",
        serde_json::json!({"TableName": "kept", "Key": {"id": {"S": "a"}}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["Item"]["v"], serde_json::json!({"N": "1"}));
    assert!(state.join("aws.db").is_file());
}

/// A table's stream read with boto3's `dynamodbstreams` client, as a consumer on AWS would.
const STREAMS: &str = r##"
import json, sys, boto3
from botocore.config import Config
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[2],
          aws_secret_access_key=sys.argv[3], config=Config(retries={"max_attempts": 1}))
c = boto3.client("dynamodb", **kw)
s = boto3.client("dynamodbstreams", **kw)
r = c.create_table(TableName="users", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
arn = r["TableDescription"]["LatestStreamArn"]
c.put_item(TableName="users", Item={"id": {"S": "u1"}, "name": {"S": "Ada"}})
c.update_item(TableName="users", Key={"id": {"S": "u1"}}, UpdateExpression="SET #n = :n",
              ExpressionAttributeNames={"#n": "name"}, ExpressionAttributeValues={":n": {"S": "Ada L."}})
c.delete_item(TableName="users", Key={"id": {"S": "u1"}})
out = {"listed": [x["StreamArn"] for x in s.list_streams(TableName="users")["Streams"]] == [arn]}
d = s.describe_stream(StreamArn=arn)["StreamDescription"]
out["status"] = d["StreamStatus"]
it = s.get_shard_iterator(StreamArn=arn, ShardId=d["Shards"][0]["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
recs = s.get_records(ShardIterator=it)["Records"]
out["events"] = [r["eventName"] for r in recs]
out["modify"] = {"old": recs[1]["dynamodb"]["OldImage"]["name"], "new": recs[1]["dynamodb"]["NewImage"]["name"]}
print(json.dumps(out))
"##;

#[tokio::test]
async fn boto3_reads_a_tables_stream() {
    let app = start().await;
    let v = run_boto3(&app, STREAMS).await;
    assert_eq!(v["listed"], true);
    assert_eq!(v["status"], "ENABLED");
    assert_eq!(v["events"], serde_json::json!(["INSERT", "MODIFY", "REMOVE"]));
    assert_eq!(
        v["modify"],
        serde_json::json!({"old": {"S": "Ada"}, "new": {"S": "Ada L."}})
    );
    app.stop().await;
}

const JS_SDK_V2: &str = r##"
const AWS = require("aws-sdk");
(async () => {
  const { ENDPOINT: endpoint, KEY_ID: accessKeyId, SECRET: secretAccessKey } = process.env;
  const opts = { endpoint, region: "us-east-1", accessKeyId, secretAccessKey, maxRetries: 0 };
  const db = new AWS.DynamoDB(opts);
  const doc = new AWS.DynamoDB.DocumentClient(opts);
  const out = {};
  await db.createTable({
    TableName: "Users", BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }, { AttributeName: "sk", AttributeType: "S" }],
    KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }, { AttributeName: "sk", KeyType: "RANGE" }],
  }).promise();
  await doc.batchWrite({ RequestItems: { Users: ["a", "b", "c", "d", "e"].map((sk) => ({ PutRequest: { Item: { pk: "p", sk, n: 1 } } })) } }).promise();
  const seen = [];
  let ExclusiveStartKey;
  do {
    const r = await doc.query({ TableName: "Users", KeyConditionExpression: "pk = :p", ExpressionAttributeValues: { ":p": "p" }, Limit: 2, ExclusiveStartKey }).promise();
    seen.push(...r.Items.map((i) => i.sk));
    ExclusiveStartKey = r.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  out.seen = seen;
  try {
    await doc.put({ TableName: "Users", Item: { pk: "p", sk: "a" }, ConditionExpression: "attribute_not_exists(pk)" }).promise();
    out.cond = "no error";
  } catch (e) {
    out.cond = [e.code, e.statusCode];
  }
  const u = await doc.update({ TableName: "Users", Key: { pk: "p", sk: "a" }, UpdateExpression: "ADD n :one", ExpressionAttributeValues: { ":one": 41 }, ReturnValues: "UPDATED_NEW" }).promise();
  out.n = u.Attributes.n;
  try {
    await doc.transactWrite({ TransactItems: [
      { Delete: { TableName: "Users", Key: { pk: "p", sk: "b" } } },
      { ConditionCheck: { TableName: "Users", Key: { pk: "p", sk: "zz" }, ConditionExpression: "attribute_exists(pk)" } },
    ] }).promise();
    out.tx = "no error";
  } catch (e) {
    out.tx = e.code;
  }
  out.b_kept = (await doc.get({ TableName: "Users", Key: { pk: "p", sk: "b" } }).promise()).Item !== undefined;
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"##;

#[tokio::test]
async fn the_javascript_sdk_v2_uses_dynamodb_tables() {
    let app = start().await;
    let v = run_node(&app, JS_SDK_V2).await;
    assert_eq!(v["seen"], serde_json::json!(["a", "b", "c", "d", "e"]));
    assert_eq!(v["cond"], serde_json::json!(["ConditionalCheckFailedException", 400]));
    assert_eq!(v["n"], 42);
    assert_eq!(v["tx"], "TransactionCanceledException");
    assert_eq!(v["b_kept"], true, "the cancelled transaction deleted nothing");
    app.stop().await;
}
