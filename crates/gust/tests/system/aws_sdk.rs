//! The AWS SDK (boto3) pointed at Gust with `endpoint_url` invokes functions as it would on
//! Lambda: RequestResponse, Event (asynchronous), function errors, unknown functions; signed
//! (SigV4) with an access key from `POST /gust/v1/access-keys`.

use crate::support::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where boto3 is for `PYTHONPATH`: the machine's own if `python3` has it, else
/// `target/pydeps`, installed from PyPI on first use (a few seconds).
pub fn pydeps() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| python_module_dir("pydeps", "boto3>=1.34", "boto3"))
        .clone()
}

const SCRIPT: &str = r#"
import json, sys, boto3, botocore
from botocore.config import Config
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3],
                 config=Config(retries={"max_attempts": 1}))
out = {}
r = c.invoke(FunctionName="greet", Payload=json.dumps({"name": "sdk"}))
out["ok"] = {"status": r["StatusCode"], "payload": json.loads(r["Payload"].read()), "error": r.get("FunctionError")}
r = c.invoke(FunctionName="greet", Payload=json.dumps({"fail": True}))
out["fail"] = {"status": r["StatusCode"], "payload": json.loads(r["Payload"].read()), "error": r.get("FunctionError")}
r = c.invoke(FunctionName="greet", InvocationType="Event", Payload=json.dumps({"name": "later"}))
out["event"] = {"status": r["StatusCode"]}
r = c.invoke(FunctionName="greet", InvocationType="DryRun")
out["dry"] = {"status": r["StatusCode"]}
try:
    c.invoke(FunctionName="nope", Payload="{}")
    out["missing"] = "no error"
except c.exceptions.ResourceNotFoundException as e:
    out["missing"] = "ResourceNotFoundException"
print(json.dumps(out))
"#;

#[tokio::test]
async fn boto3_invokes_functions_through_the_lambda_api() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            "[app]\nname = \"sdk\"\n[functions.greet]\nruntime = \"nodejs20.x\"\nhandler = \"g.handler\"\n",
        ),
        (
            "g.js",
            "const fs = require('fs');\nexports.handler = async (e) => { if (e.fail) throw new RangeError('no greeting'); fs.appendFileSync('greeted.log', e.name + '\\n'); return { hello: e.name }; };",
        ),
    ])
    .await;
    let v = run_boto3(&app, SCRIPT).await;
    assert_eq!(v["ok"]["status"], 200);
    assert_eq!(v["ok"]["payload"]["hello"], "sdk");
    assert_eq!(v["ok"]["error"], serde_json::Value::Null);
    assert_eq!(v["fail"]["error"], "Unhandled");
    assert_eq!(v["fail"]["payload"]["errorType"], "RangeError");
    assert_eq!(v["event"]["status"], 202);
    assert_eq!(v["dry"]["status"], 204);
    assert_eq!(v["missing"], "ResourceNotFoundException");
    let log = app.dir.path().join("greeted.log");
    wait_for(
        "the asynchronous invocation to run",
        std::time::Duration::from_secs(10),
        || lines(&log).iter().any(|l| l == "later"),
    )
    .await;
    app.stop().await;
}

/// Runs `script` with boto3 (installed by `pydeps`) as `python3 -c SCRIPT ADMIN KEY_ID SECRET`,
/// with an access key created for it, and parses the JSON it prints.
pub async fn run_boto3(app: &TestApp, script: &'static str) -> serde_json::Value {
    let deps = pydeps();
    let admin = app.admin("");
    let key = app
        .op(reqwest::Method::POST, "/gust/v1/access-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 201);
    let key = json(&key.text().await.unwrap());
    let (id, secret) = (
        key["access_key_id"].as_str().unwrap().to_string(),
        key["secret_access_key"].as_str().unwrap().to_string(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script, &admin, &id, &secret])
            .env("PYTHONPATH", deps)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json(String::from_utf8_lossy(&out.stdout).trim())
}
