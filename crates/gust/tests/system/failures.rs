//! A function that hangs, crashes, fails to start, overruns its memory or answers too much:
//! the caller gets the right status, the instance is replaced, and Gust stays up.

use crate::support::*;
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"
[app]
name = "failures"

[functions.flaky]
runtime = "nodejs20.x"
handler = "flaky.handler"
timeout = 0.5

[functions.broken]
runtime = "nodejs20.x"
handler = "broken.handler"

[functions.missing]
runtime = "python3.11"
handler = "nope.main"

[functions.hog]
runtime = "python3.11"
handler = "hog.main"
memory = 128
timeout = 10

[[routes]]
route = "POST /flaky"
function = "flaky"

[[routes]]
route = "GET /broken"
function = "broken"

[[routes]]
route = "GET /hog"
function = "hog"
"#;

const FLAKY: &str = r#"
const { spawn } = require("child_process");
const fs = require("fs");
exports.handler = async (event) => {
  const input = JSON.parse(event.body || "{}");
  if (input.hang) {
    // Leave a grandchild behind to prove the whole process group is killed.
    const child = spawn("sleep", ["300"], { stdio: "ignore" });
    fs.writeFileSync(input.hang, String(child.pid));
    await new Promise(() => {});
  }
  if (input.crash) process.exit(3);
  if (input.big) return { statusCode: 200, body: "x".repeat(7 * 1024 * 1024) };
  return { statusCode: 200, body: JSON.stringify({ pid: process.pid }) };
};
"#;

async fn pid_of(app: &TestApp) -> i32 {
    let r = app.post("/flaky", "{}").await;
    assert_eq!(r.status(), 200);
    json(&r.text().await.unwrap())["pid"].as_i64().unwrap() as i32
}

/// Without prewarmed runtimes, so every start here is a process spawn (the prewarmed path is
/// covered by the runtimes tests).
async fn app() -> TestApp {
    TestApp::start_dir_with(write_app(&[
        ("gust.toml", MANIFEST),
        ("flaky.js", FLAKY),
        ("broken.js", "throw new Error('cannot connect to the database');\nexports.handler = async () => 1;"),
        ("hog.py", "import time\n\ndef main(event, context):\n    data = bytearray(400 * 1024 * 1024)\n    time.sleep(5)\n    return len(data)\n"),
    ]), 0)
    .await
}

#[tokio::test]
async fn timeout_answers_504_and_kills_the_process_group() {
    let app = app().await;
    let first = pid_of(&app).await;
    let marker = app.dir.path().join("grandchild.pid");
    let started = Instant::now();
    let r = app
        .post("/flaky", &serde_json::json!({ "hang": marker }).to_string())
        .await;
    let took = started.elapsed();
    assert_eq!(r.status(), 504);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["error"]["code"], "FunctionTimeout");
    assert!(v["error"]["request_id"].is_string());
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    wait_for("the timed-out process to die", Duration::from_secs(5), || {
        !pid_alive(first)
    })
    .await;
    let grandchild: i32 = std::fs::read_to_string(&marker).unwrap().parse().unwrap();
    wait_for("the function's own child to die", Duration::from_secs(5), || {
        !pid_alive(grandchild)
    })
    .await;
    // The next call gets a fresh instance.
    let second = pid_of(&app).await;
    assert_ne!(first, second);
    app.stop().await;
}

#[tokio::test]
async fn crash_answers_502_and_the_next_call_succeeds() {
    let app = app().await;
    let first = pid_of(&app).await;
    let r = app.post("/flaky", r#"{"crash":true}"#).await;
    assert_eq!(r.status(), 502);
    assert_eq!(json(&r.text().await.unwrap())["error"]["code"], "FunctionCrashed");
    let second = pid_of(&app).await;
    assert_ne!(first, second, "a crashed instance is replaced");
    // The Invoke API reports the same crash the Lambda way.
    let (status, fe, body) = app.invoke("flaky", r#"{"body":"{\"crash\":true}"}"#).await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")));
    assert_eq!(json(&body)["errorType"], "Runtime.ExitError");
    app.stop().await;
}

#[tokio::test]
async fn init_errors_answer_502_without_details_and_the_invoke_api_keeps_them() {
    let app = app().await;
    let r = app.get("/broken").await;
    assert_eq!(r.status(), 502);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["error"]["code"], "FunctionInitError");
    // Public callers get no details (they are in the function's log: `conventions.rs`).
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("cannot connect to the database"), "{msg}");
    assert!(v["error"]["request_id"].is_string(), "{v}");

    let (status, fe, body) = app.invoke("missing", "{}").await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")), "{body}");
    let v = json(&body);
    assert_eq!(v["errorType"], "Runtime.ImportModuleError", "{body}");
    assert!(v["errorMessage"].as_str().unwrap().contains("nope"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn memory_limit_is_enforced() {
    let app = app().await;
    let r = app.get("/hog").await;
    assert_eq!(r.status(), 502);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["error"]["code"], "FunctionOutOfMemory", "{v}");
    app.stop().await;
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let app = app().await;
    let r = app.post("/flaky", r#"{"big":true}"#).await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        json(&r.text().await.unwrap())["error"]["code"],
        "FunctionResponseTooLarge"
    );
    // Gust and the function's pool are fine afterwards.
    pid_of(&app).await;
    app.stop().await;
}
