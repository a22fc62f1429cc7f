//! Lambda's conventions that tools rely on: the platform's `START`/`END`/`REPORT` lines and a
//! line for every timeout, crash and out-of-memory kill in the function's log; the Lambda API
//! through boto3 (`LogType=Tail`, a client context, `ListFunctions`, `GetFunction`,
//! `GetFunctionConfiguration`, `GetAccountSettings`, an unsupported operation); the gateway's
//! payload 1.0 header case, HEAD, an out-of-range `statusCode` and a failed init as public
//! clients see them; `gust schedules run` by function name.

use crate::aws_sdk::run_boto3;
use crate::support::*;
use std::time::Duration;

const MANIFEST: &str = r#"
[app]
name = "conv"

[functions.hello]
runtime = "nodejs20.x"
handler = "hello.handler"

[functions.slow]
runtime = "nodejs20.x"
handler = "hello.slow"
timeout = 1

[functions.crash]
runtime = "nodejs20.x"
handler = "hello.crash"

[functions.hog]
runtime = "python3.11"
handler = "hog.main"
memory = 128
timeout = 10

[functions.broken]
runtime = "nodejs20.x"
handler = "broken.handler"

[[routes]]
route = "ANY /v1/{proxy+}"
function = "hello"
payload = "1.0"

[[routes]]
route = "GET /items/{id}"
function = "hello"

[[routes]]
route = "GET /broken"
function = "broken"

[[schedules]]
name = "hello-hourly"
function = "hello"
expression = "rate(1 hour)"

[[schedules]]
name = "crash-a"
function = "crash"
expression = "rate(1 hour)"

[[schedules]]
name = "crash-b"
function = "crash"
expression = "rate(2 hours)"
"#;

const HELLO: &str = r#"
const fs = require("fs");
exports.handler = async (event, context) => {
  console.log("hello from the handler");
  if (event.resources) fs.appendFileSync("scheduled.log", event.resources[0] + "\n");
  if (event.httpMethod || event.requestContext) {
    const id = (event.pathParameters || {}).id;
    if (id === "odd") return { statusCode: 700, body: "?" };
    if (id === "fixed") return { statusCode: 200, headers: { "x-from": "get" }, body: "the same for GET and HEAD" };
    return {
      statusCode: 200,
      headers: { "content-type": "application/json", "x-from": "get" },
      body: JSON.stringify({ method: event.httpMethod || event.requestContext.http.method, headers: event.headers }),
    };
  }
  return { clientContext: context.clientContext || null };
};
exports.slow = async () => { await new Promise(() => {}); };
exports.crash = async () => { process.exit(3); };
"#;

fn app_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("gust.toml", MANIFEST),
        ("hello.js", HELLO),
        (
            "hog.py",
            "def main(event, context):\n    data = bytearray(400 * 1024 * 1024)\n    return len(data)\n",
        ),
        (
            "broken.js",
            "throw new Error('cannot reach db.internal:5432 with password hunter2');\nexports.handler = async () => 1;",
        ),
    ]
}

/// Invokes `function` through the Lambda API (operator token); the request id and body.
async fn invoke(app: &TestApp, function: &str) -> (String, String) {
    let r = app
        .op(
            reqwest::Method::POST,
            &format!("/2015-03-31/functions/{function}/invocations"),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-amzn-requestid"].to_str().unwrap().to_string();
    (id, r.text().await.unwrap())
}

/// The stored log lines of one invocation, once one of them contains `last`.
async fn log_of(app: &TestApp, request_id: &str, last: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = json(&app.admin_text(&format!("/gust/v1/logs?request={request_id}")).await);
        let lines: Vec<String> = v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap().to_string())
            .collect();
        if lines.iter().any(|l| l.contains(last)) {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{last}` in the log of {request_id}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t
/// Max Memory Used: 40 MB\t[Init Duration: 5.67 ms\t]`: its fields, checked for shape.
fn report_fields(line: &str, request_id: &str) -> Vec<(String, String)> {
    let rest = line
        .strip_prefix(&format!("REPORT RequestId: {request_id}\t"))
        .unwrap_or_else(|| panic!("not a REPORT of {request_id}: {line:?}"));
    assert!(rest.ends_with('\t'), "{line:?}");
    rest.trim_end_matches('\t')
        .split('\t')
        .map(|f| {
            let (k, v) = f.split_once(": ").unwrap_or_else(|| panic!("field {f:?} of {line:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[tokio::test]
async fn platform_lines_start_end_report_and_failures() {
    let app = TestApp::start_dir_with(write_app(&app_files()), 0).await;

    // A cold start, then a warm one.
    let (cold, _) = invoke(&app, "hello").await;
    let lines = log_of(&app, &cold, "REPORT").await;
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {lines:#?}"))
    };
    assert_eq!(lines[at("START")], format!("START RequestId: {cold} Version: $LATEST"));
    assert_eq!(lines[at("END")], format!("END RequestId: {cold}"));
    let printed = lines.iter().position(|l| l.contains("hello from the handler")).unwrap();
    assert!(
        at("START") < printed && printed < at("END") && at("END") < at("REPORT"),
        "{lines:#?}"
    );
    let fields = report_fields(&lines[at("REPORT")], &cold);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "Duration",
            "Billed Duration",
            "Memory Size",
            "Max Memory Used",
            "Init Duration"
        ]
    );
    let value = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
    for k in ["Duration", "Init Duration"] {
        let v = value(k);
        let n = v.strip_suffix(" ms").unwrap();
        assert_eq!(n.split_once('.').map(|(_, d)| d.len()), Some(2), "{k}: {v}");
    }
    let billed: u64 = value("Billed Duration").strip_suffix(" ms").unwrap().parse().unwrap();
    let took: f64 = value("Duration").strip_suffix(" ms").unwrap().parse().unwrap();
    assert!(billed as f64 >= took && (billed as f64) < took + 1.0, "{fields:?}");
    assert_eq!(value("Memory Size"), "128 MB");
    let used: u64 = value("Max Memory Used").strip_suffix(" MB").unwrap().parse().unwrap();
    assert!((5..=128).contains(&used), "a Node function uses some memory: {used}");

    let (warm, _) = invoke(&app, "hello").await;
    let lines = log_of(&app, &warm, "REPORT").await;
    let report = lines.iter().find(|l| l.starts_with("REPORT")).unwrap();
    assert!(!report.contains("Init Duration"), "a warm start has none: {report}");

    // A timeout, a crash and an out-of-memory kill each leave their line.
    let (slow, body) = invoke(&app, "slow").await;
    assert!(body.contains("Sandbox.Timedout"), "{body}");
    let lines = log_of(&app, &slow, "REPORT").await;
    let line = lines.iter().find(|l| l.contains("Task timed out")).unwrap();
    assert!(
        line.ends_with(&format!(" {slow} Task timed out after 1.00 seconds")),
        "{line}"
    );
    assert!(
        line.as_bytes()[..4].iter().all(u8::is_ascii_digit),
        "starts with the time: {line}"
    );

    let (crash, body) = invoke(&app, "crash").await;
    assert!(body.contains("Runtime.ExitError"), "{body}");
    let lines = log_of(&app, &crash, "REPORT").await;
    let i = lines
        .iter()
        .position(|l| l.starts_with(&format!("RequestId: {crash} Error: Runtime exited with error: ")))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(lines[i].contains("3"), "the exit status: {}", lines[i]);
    assert_eq!(lines[i + 1], "Runtime.ExitError");

    let (hog, body) = invoke(&app, "hog").await;
    assert!(body.contains("Runtime.OutOfMemory"), "{body}");
    let lines = log_of(&app, &hog, "REPORT").await;
    let i = lines
        .iter()
        .position(|l| l == &format!("RequestId: {hog} Error: Runtime exited with error: signal: killed"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(lines[i + 1], "Runtime.OutOfMemory");
    let report = lines.iter().find(|l| l.starts_with("REPORT")).unwrap();
    assert!(report.contains("Max Memory Used: 128 MB"), "{report}");

    // A failed init: its error is in the log, under the request id the caller got.
    let (broken, body) = invoke(&app, "broken").await;
    assert!(body.contains("failed to initialise"), "{body}");
    let lines = log_of(&app, &broken, "REPORT").await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("INIT_REPORT Init Duration: ") && l.contains("Status: error")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("cannot reach db.internal")),
        "{lines:#?}"
    );
    app.stop().await;
}

const BOTO3: &str = r#"
import base64, json, sys, boto3, botocore
from botocore.config import Config
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3],
                 config=Config(retries={"max_attempts": 1}))
out = {}
ctx = base64.b64encode(json.dumps({"custom": {"tenant": "t-1"}, "client": {"app_title": "cli"}}).encode()).decode()
r = c.invoke(FunctionName="hello", Payload=b"{}", LogType="Tail", ClientContext=ctx)
out["tail"] = {"payload": json.loads(r["Payload"].read()), "log": base64.b64decode(r.get("LogResult", "")).decode()}
r = c.invoke(FunctionName="slow", Payload=b"{}", LogType="Tail")
out["tail_timeout"] = {"error": r.get("FunctionError"), "log": base64.b64decode(r.get("LogResult", "")).decode()}
try:
    c.invoke(FunctionName="hello", Payload=b"{}", ClientContext="not base64 json!")
    out["bad_context"] = "no error"
except botocore.exceptions.ClientError as e:
    out["bad_context"] = {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"],
                          "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
out["list"] = c.list_functions()["Functions"]
f = c.get_function(FunctionName="hello")
out["get"] = {"configuration": f["Configuration"], "code": f["Code"]}
out["config"] = c.get_function_configuration(FunctionName="arn:aws:lambda:us-east-1:000000000000:function:hog")
a = c.get_account_settings()
out["account"] = {"limit": a["AccountLimit"], "usage": a["AccountUsage"]}
try:
    c.get_function(FunctionName="nope")
    out["missing"] = "no error"
except c.exceptions.ResourceNotFoundException:
    out["missing"] = "ResourceNotFoundException"
try:
    c.delete_function(FunctionName="hello")
    out["unsupported"] = "no error"
except botocore.exceptions.ClientError as e:
    out["unsupported"] = {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}
print(json.dumps(out))
"#;

#[tokio::test]
async fn boto3_reads_functions_tails_logs_and_passes_a_client_context() {
    let app = TestApp::start(&app_files()).await;
    let v = run_boto3(&app, BOTO3).await;

    // LogType=Tail: the invocation's own log, platform lines included; the client context
    // reached the function decoded.
    let tail = v["tail"]["log"].as_str().unwrap();
    for want in [
        "START RequestId: ",
        "hello from the handler",
        "END RequestId: ",
        "REPORT RequestId: ",
    ] {
        assert!(tail.contains(want), "{want} in {tail}");
    }
    assert!(tail.len() <= 4096);
    assert_eq!(v["tail"]["payload"]["clientContext"]["custom"]["tenant"], "t-1", "{v}");
    assert_eq!(v["tail_timeout"]["error"], "Unhandled");
    assert!(
        v["tail_timeout"]["log"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds"),
        "{v}"
    );
    assert_eq!(v["bad_context"]["code"], "InvalidRequestContentException", "{v}");
    assert_eq!(v["bad_context"]["status"], 400);
    assert!(v["bad_context"]["message"].as_str().unwrap().contains("Client context"));

    let names: Vec<&str> = v["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["FunctionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "crash", "hello", "hog", "slow"]);
    let hello = &v["get"]["configuration"];
    assert_eq!(hello["FunctionName"], "hello");
    assert_eq!(hello["Runtime"], "nodejs20.x");
    assert_eq!(hello["Handler"], "hello.handler");
    assert_eq!(hello["MemorySize"], 128);
    assert_eq!(hello["Timeout"], 3);
    assert_eq!(hello["Version"], "$LATEST");
    assert_eq!(hello["State"], "Active");
    assert!(hello["CodeSize"].as_u64().unwrap() > 0);
    assert_eq!(
        hello["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:hello"
    );
    assert!(v["get"]["code"]["Location"].as_str().unwrap().starts_with("file://"));
    assert_eq!(v["config"]["FunctionName"], "hog");
    assert_eq!(v["config"]["Runtime"], "python3.11");
    assert_eq!(v["config"]["Timeout"], 10);
    assert_eq!(v["account"]["usage"]["FunctionCount"], 5);
    assert!(v["account"]["limit"]["ConcurrentExecutions"].as_u64().unwrap() >= 5);
    assert_eq!(v["missing"], "ResourceNotFoundException");
    assert_eq!(v["unsupported"]["code"], "UnknownOperationException", "{v}");
    assert!(
        v["unsupported"]["message"].as_str().unwrap().contains("DeleteFunction"),
        "{v}"
    );
    app.stop().await;
}

/// One HTTP/1.1 exchange on a raw socket: the request exactly as written; the response head
/// (status line and headers) and body.
async fn raw(app: &TestApp, request: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.platform().gateway_addr)
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all))
        .await
        .expect("the gateway answered and closed")
        .unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    (String::from_utf8_lossy(&all[..end]).into_owned(), all[end..].to_vec())
}

#[tokio::test]
async fn gateway_keeps_header_case_answers_head_and_hides_init_errors() {
    let app = TestApp::start(&app_files()).await;

    // Payload 1.0: header names as the client wrote them.
    let (head, body) = raw(
        &app,
        "POST /v1/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Request-ID: abc\r\nx-lower: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v = json(std::str::from_utf8(&body).unwrap());
    let headers = v["headers"].as_object().unwrap();
    assert_eq!(headers["Content-Type"], "application/json", "{v}");
    assert_eq!(headers["X-Request-ID"], "abc", "{v}");
    assert_eq!(headers["x-lower"], "1", "{v}");
    assert!(!headers.contains_key("content-type"), "{v}");

    // HEAD on a GET route: GET's status and headers, no body.
    let get = app.get("/items/fixed").await;
    assert_eq!(get.status(), 200);
    let get_len = get.bytes().await.unwrap().len();
    let (head, body) = raw(
        &app,
        "HEAD /items/fixed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-from: get"), "{head}");
    assert!(lower.contains(&format!("content-length: {get_len}")), "{head}");
    assert!(body.is_empty(), "{body:?}");

    // A statusCode outside 100-599.
    let r = app.get("/items/odd").await;
    assert_eq!(r.status(), 502);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["error"]["code"], "BadFunctionResponse", "{v}");

    // A failed init: a generic 502 with the request id; the details only in the log.
    let r = app.get("/broken").await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(!text.contains("db.internal") && !text.contains("hunter2"), "{text}");
    let v = json(&text);
    assert_eq!(v["error"]["code"], "FunctionInitError");
    let id = v["error"]["request_id"].as_str().unwrap().to_string();
    let lines = log_of(&app, &id, "cannot reach db.internal").await;
    assert!(lines.iter().any(|l| l.starts_with("START RequestId: ")), "{lines:#?}");
    app.stop().await;
}

#[tokio::test]
async fn schedules_run_by_function_name() {
    let app = TestApp::start(&app_files()).await;
    let dir = app.dir.path().display().to_string();
    let run = |name: &str| {
        gust_cli(
            vec![
                "schedules".into(),
                "run".into(),
                name.into(),
                "--app".into(),
                dir.clone(),
            ],
            vec![],
        )
    };
    let out = run("hello").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = app.dir.path().join("scheduled.log");
    wait_for("the run of hello's one schedule", Duration::from_secs(15), || {
        lines(&log).iter().any(|l| l.ends_with("/hello-hourly"))
    })
    .await;
    let out = run("crash").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("crash-a") && err.contains("crash-b"), "{err}");
    let r = app
        .op(reqwest::Method::POST, "/gust/v1/schedules/crash/run")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(json(&r.text().await.unwrap())["error"]["code"], "ScheduleAmbiguous");
    app.stop().await;
}

#[tokio::test]
async fn gust_publish_sets_cloudevents_extension_attributes() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            "[app]\nname = \"ext\"\n[functions.rec]\nruntime = \"nodejs20.x\"\nhandler = \"rec.handler\"\n[topics.jobs]\n[[subscriptions]]\nname = \"rec-jobs\"\ntopic = \"jobs\"\nfunction = \"rec\"\n",
        ),
        (
            "rec.js",
            "const fs = require('fs');\nexports.handler = async (e) => { for (const r of e.Records) fs.appendFileSync('got.log', JSON.stringify(r.messageAttributes) + '\\n'); return {}; };",
        ),
    ])
    .await;
    let dir = app.dir.path().display().to_string();
    let publish = |extra: &[&str]| {
        let mut args: Vec<String> = ["publish", "jobs", "--data", r#"{"n":1}"#, "--app", &dir]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        gust_cli(args, vec![])
    };
    let out = publish(&["--ext", "tenant=acme", "--ext", "priority=high", "--type", "job.made"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = app.dir.path().join("got.log");
    wait_for("the event with its extensions", Duration::from_secs(15), || {
        !lines(&log).is_empty()
    })
    .await;
    let attrs = json(&lines(&log)[0]);
    assert_eq!(attrs["ce-tenant"]["stringValue"], "acme", "{attrs}");
    assert_eq!(attrs["ce-priority"]["stringValue"], "high", "{attrs}");
    assert_eq!(attrs["ce-type"]["stringValue"], "job.made", "{attrs}");
    assert_eq!(attrs["ce-source"]["stringValue"], "/gust/cli", "{attrs}");

    // Names CloudEvents does not allow, and context attributes, are refused before sending.
    for bad in ["Tenant=x", "no-dash=x", "id=x", "novalue"] {
        let out = publish(&["--ext", bad]).await;
        assert!(!out.status.success(), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--ext"), "{bad}");
    }
    app.stop().await;
}
