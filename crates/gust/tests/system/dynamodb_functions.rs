//! Lambda code that uses the AWS SDK for DynamoDB runs on Gust unmodified: the functions get
//! `AWS_ENDPOINT_URL` and a session key of their own from Gust, the tables come from the
//! manifest's `resources`, and each function may do only what its IAM statements grant. The
//! SDKs are the real ones (`@aws-sdk/client-dynamodb` + `lib-dynamodb` from npm, boto3 from
//! PyPI or the machine), called with no endpoint or credentials in the code.

use crate::aws_sdk::pydeps;
use crate::dynamodb::node_aws_sdk;
use crate::support::*;

/// The users service: a table declared under `resources:` (name from variables, a GSI), its
/// name given to functions with `Ref`, statements that allow writes and reads but not deletes
/// or scans.
fn users_service(pythonpath: &str, extra_env: &str) -> String {
    format!(
        r#"
service: users
provider:
  name: aws
  runtime: nodejs20.x
  region: eu-west-1
  environment:
    USERS_TABLE: {{ Ref: UsersTable }}
  iam:
    role:
      statements:
        - Effect: Allow
          Action: [dynamodb:PutItem, dynamodb:GetItem, dynamodb:Query]
          Resource:
            - !GetAtt UsersTable.Arn
            - !Join ['/', [!GetAtt UsersTable.Arn, index, '*']]
        - Effect: Deny
          Action: dynamodb:DeleteItem
          Resource: "arn:aws:dynamodb:${{aws:region}}:${{aws:accountId}}:table/*"
functions:
  node:
    handler: node.handler
    environment:
      EXTRA: "{extra_env}"
  py:
    handler: py.handler
    runtime: python3.12
    environment:
      PYTHONPATH: {pythonpath}
  creds:
    handler: creds.handler
resources:
  Resources:
    UsersTable:
      Type: AWS::DynamoDB::Table
      Properties:
        TableName: ${{self:service}}-${{sls:stage}}
        BillingMode: PAY_PER_REQUEST
        AttributeDefinitions:
          - {{ AttributeName: id, AttributeType: S }}
          - {{ AttributeName: email, AttributeType: S }}
        KeySchema:
          - {{ AttributeName: id, KeyType: HASH }}
        GlobalSecondaryIndexes:
          - IndexName: byEmail
            KeySchema: [{{ AttributeName: email, KeyType: HASH }}]
            Projection: {{ ProjectionType: ALL }}
"#
    )
}

/// What the Lambda code looks like: clients built with no endpoint and no credentials.
const NODE: &str = r#"
const { DynamoDBClient } = require("@aws-sdk/client-dynamodb");
const { DynamoDBDocumentClient, PutCommand, GetCommand, QueryCommand, DeleteCommand, ScanCommand } = require("@aws-sdk/lib-dynamodb");
const db = DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 1 }));
const TableName = process.env.USERS_TABLE;
exports.handler = async (event) => {
  await db.send(new PutCommand({ TableName, Item: { id: event.id, email: event.email, name: "from node" } }));
  const got = await db.send(new GetCommand({ TableName, Key: { id: event.id } }));
  const byEmail = await db.send(new QueryCommand({ TableName, IndexName: "byEmail",
    KeyConditionExpression: "email = :e", ExpressionAttributeValues: { ":e": event.email } }));
  const refused = async (cmd) => { try { await db.send(cmd); return "no error"; } catch (e) { return { name: e.name, message: e.message, status: e.$metadata.httpStatusCode }; } };
  return {
    table: TableName,
    got: got.Item,
    byEmail: byEmail.Items.map((i) => i.id),
    deleted: await refused(new DeleteCommand({ TableName, Key: { id: event.id } })),
    scanned: await refused(new ScanCommand({ TableName })),
  };
};
"#;

const PY: &str = r#"
import os, boto3, botocore
from boto3.dynamodb.conditions import Key
table = boto3.resource("dynamodb").Table(os.environ["USERS_TABLE"])

def handler(event, context):
    table.put_item(Item={"id": event["id"], "email": event["email"], "name": "from python"})
    items = table.query(KeyConditionExpression=Key("id").eq(event["id"]))["Items"]
    try:
        table.scan()
        scanned = "no error"
    except botocore.exceptions.ClientError as e:
        scanned = {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}
    return {"items": items, "scanned": scanned, "boto3": boto3.__version__}
"#;

/// Hands its environment's AWS settings back, so the test can try them from outside.
const CREDS: &str = r#"
exports.handler = async () => ({
  endpoint: process.env.AWS_ENDPOINT_URL, dynamodb: process.env.AWS_ENDPOINT_URL_DYNAMODB,
  region: process.env.AWS_REGION, id: process.env.AWS_ACCESS_KEY_ID,
  secret: process.env.AWS_SECRET_ACCESS_KEY, token: process.env.AWS_SESSION_TOKEN,
});
"#;

async fn start_users(extra_env: &str) -> TestApp {
    let py = pydeps();
    let dir = write_app(&[
        ("serverless.yml", &users_service(&py.display().to_string(), extra_env)),
        ("node.js", NODE),
        ("py.py", PY),
        ("creds.js", CREDS),
    ]);
    std::os::unix::fs::symlink(node_aws_sdk(), dir.path().join("node_modules")).unwrap();
    TestApp::start_dir(dir).await
}

fn ok_json(r: (u16, Option<String>, String)) -> serde_json::Value {
    assert_eq!((r.0, r.1.as_deref()), (200, None), "{}", r.2);
    json(&r.2)
}

#[tokio::test]
async fn functions_use_a_declared_table_through_the_sdks_within_their_grants() {
    let app = start_users("one").await;
    let v = ok_json(app.invoke("node", r#"{"id": "u1", "email": "ada@example.com"}"#).await);
    assert_eq!(v["table"], "users-dev", "Ref resolved to the table's name: {v}");
    assert_eq!(v["got"]["name"], "from node", "{v}");
    assert_eq!(v["byEmail"], serde_json::json!(["u1"]), "the GSI is queryable: {v}");
    // An explicit Deny and a missing Allow both reach the SDK as AccessDeniedException.
    assert_eq!(v["deleted"]["name"], "AccessDeniedException", "{v}");
    assert_eq!(v["deleted"]["status"], 400, "{v}");
    assert_eq!(
        v["deleted"]["message"],
        "User: arn:aws:sts::000000000000:assumed-role/users-node-role/node is not authorized to perform: dynamodb:DeleteItem on resource: arn:aws:dynamodb:eu-west-1:000000000000:table/users-dev with an explicit deny in an identity-based policy"
    );
    assert_eq!(v["scanned"]["name"], "AccessDeniedException", "{v}");
    assert!(
        v["scanned"]["message"]
            .as_str()
            .unwrap()
            .ends_with("because no identity-based policy allows the dynamodb:Scan action"),
        "{v}"
    );

    let v = ok_json(app.invoke("py", r#"{"id": "u2", "email": "grace@example.com"}"#).await);
    assert_eq!(v["items"][0]["name"], "from python", "{v}");
    assert_eq!(v["scanned"]["code"], "AccessDeniedException", "{v}");
    assert!(
        v["scanned"]["message"]
            .as_str()
            .unwrap()
            .starts_with("User: arn:aws:sts::000000000000:assumed-role/users-py-role/py is not authorized to perform: dynamodb:Scan on resource: arn:aws:dynamodb:eu-west-1:000000000000:table/users-dev"),
        "{v}"
    );

    // Both functions wrote to the same table, which the operator sees whole.
    let (status, body) = crate::dynamodb::dynamo_call(
        &app.admin(""),
        &app.operator_token(),
        "Scan",
        serde_json::json!({ "TableName": "users-dev" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Count"], 2, "{body}");
    app.stop().await;
}

/// Uses credentials (`id`, `secret`, `token`; an empty token sends none) from outside, as a
/// function would: a GetItem on the users table. Prints the outcome as JSON.
const TRY_CREDS: &str = r#"
import json, sys, boto3, botocore
from botocore.config import Config
endpoint, key_id, secret, token = sys.argv[1:5]
c = boto3.client("dynamodb", endpoint_url=endpoint, region_name="eu-west-1",
                 aws_access_key_id=key_id, aws_secret_access_key=secret,
                 aws_session_token=token or None, config=Config(retries={"max_attempts": 1}))
try:
    c.get_item(TableName="users-dev", Key={"id": {"S": "nobody"}})
    print(json.dumps("ok"))
except botocore.exceptions.ClientError as e:
    print(json.dumps(e.response["Error"]["Code"]))
"#;

async fn try_creds(creds: &serde_json::Value, token: Option<&str>) -> String {
    let args: Vec<String> = vec![
        creds["endpoint"].as_str().unwrap().into(),
        creds["id"].as_str().unwrap().into(),
        creds["secret"].as_str().unwrap().into(),
        token.unwrap_or_else(|| creds["token"].as_str().unwrap()).into(),
    ];
    let deps = pydeps();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(TRY_CREDS)
            .args(&args)
            .env("PYTHONPATH", deps)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json(String::from_utf8_lossy(&out.stdout).trim())
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn each_deployment_of_a_function_gets_its_own_credentials_and_old_ones_stop_working() {
    let app = start_users("one").await;
    let before = ok_json(app.invoke("creds", "{}").await);
    assert_eq!(before["endpoint"], app.admin("").trim_end_matches('/'), "{before}");
    assert_eq!(before["dynamodb"], before["endpoint"]);
    assert_eq!(before["region"], "eu-west-1");
    assert!(before["id"].as_str().unwrap().starts_with("ASIA"), "{before}");
    assert_eq!(try_creds(&before, None).await, "ok");
    // The key needs its session token, as an AWS session key does.
    assert_eq!(try_creds(&before, Some("")).await, "UnrecognizedClientException");
    assert_eq!(
        try_creds(&before, Some("gst_not-the-token")).await,
        "UnrecognizedClientException"
    );

    // A redeploy that changes every function (the provider's environment) issues new keys;
    // the old ones are refused at once.
    let manifest = app.dir.path().join("serverless.yml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "region: eu-west-1\n  environment:\n",
            "region: eu-west-1\n  environment:\n    VERSION: two\n",
        ),
    )
    .unwrap();
    let report = app.platform().redeploy().await.unwrap();
    assert!(report.functions.replaced.contains(&"creds".to_string()), "{report:?}");
    let after = ok_json(app.invoke("creds", "{}").await);
    assert_ne!(after["id"], before["id"]);
    assert_eq!(try_creds(&after, None).await, "ok");
    assert_eq!(try_creds(&before, None).await, "UnrecognizedClientException");
    app.stop().await;
}

#[tokio::test]
async fn a_changed_key_schema_refuses_the_redeploy_and_keeps_the_table() {
    let app = start_users("one").await;
    ok_json(app.invoke("node", r#"{"id": "u1", "email": "ada@example.com"}"#).await);
    let manifest = app.dir.path().join("serverless.yml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "          - { AttributeName: id, KeyType: HASH }\n",
            "          - { AttributeName: email, KeyType: HASH }\n",
        ),
    )
    .unwrap();
    let e = app.platform().redeploy().await.unwrap_err().to_string();
    assert!(
        e.contains(
            "table `users-dev` exists with the key schema id (HASH, S) but the manifest declares email (HASH, S)"
        ),
        "{e}"
    );
    // The running version and its data are untouched.
    let v = ok_json(app.invoke("node", r#"{"id": "u2", "email": "b@example.com"}"#).await);
    assert_eq!(v["got"]["name"], "from node");
    app.stop().await;
}
