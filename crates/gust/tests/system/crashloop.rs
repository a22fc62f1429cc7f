//! A function whose init keeps failing: after the second failure in a row it is in crash-loop
//! back-off (invocations fail at once without starting a process, logged once, recorded with
//! their own error type) until a start succeeds; warm instances keep serving meanwhile. And a
//! function's own `init_timeout` bounds its init.

use crate::support::*;
use gust_runtime::{CrashLoopPolicy, BACKOFF_ERROR_TYPE};
use std::path::Path;
use std::time::{Duration, Instant};

/// Node code whose init appends a line to `$STARTS_FILE` (one line per process that ran the
/// function's init) and then throws while `$BROKEN_FILE` exists. A `{"hold":true}` invocation
/// writes `$HOLDING_FILE` and waits until `$RELEASE_FILE` exists.
const HANDLER: &str = r#"
const fs = require("fs");
fs.appendFileSync(process.env.STARTS_FILE, `${process.pid}\n`);
if (fs.existsSync(process.env.BROKEN_FILE)) throw new Error("cannot reach the config service");
exports.handler = async (event) => {
  const input = JSON.parse(event.body || "{}");
  if (input.hold) {
    fs.writeFileSync(process.env.HOLDING_FILE, "1");
    while (!fs.existsSync(process.env.RELEASE_FILE)) await new Promise((r) => setTimeout(r, 20));
  }
  return { statusCode: 200, body: JSON.stringify({ pid: process.pid }) };
};
"#;

/// An app with the function `boot` (routes `GET /boot`, `POST /boot`); `broken` decides
/// whether its init throws from the start.
async fn app(broken: bool, policy: CrashLoopPolicy) -> TestApp {
    let dir = write_app(&[("boot.js", HANDLER)]);
    let at = |name: &str| dir.path().join(name).display().to_string();
    let manifest = format!(
        r#"
[app]
name = "crashloop"

[functions.boot]
runtime = "nodejs20.x"
handler = "boot.handler"
timeout = 30
environment = {{ STARTS_FILE = "{}", BROKEN_FILE = "{}", HOLDING_FILE = "{}", RELEASE_FILE = "{}" }}

[[routes]]
route = "ANY /boot"
function = "boot"
"#,
        at("starts.txt"),
        at("broken"),
        at("holding"),
        at("release"),
    );
    std::fs::write(dir.path().join("gust.toml"), manifest).unwrap();
    if broken {
        std::fs::write(dir.path().join("broken"), "").unwrap();
    }
    TestApp::start_configured(dir, move |c| c.crash_loop = policy).await
}

/// Processes that ran the function's init so far.
fn starts(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("starts.txt"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// (status, error code, error message) of a `GET /boot`.
/// `GET /boot`: the status and code the client got, and the message: the client's own on
/// success, else the init error as the function's log has it (public callers get a generic one).
async fn call(app: &TestApp) -> (u16, String, String) {
    let r = app.get("/boot").await;
    let status = r.status().as_u16();
    let v = json(&r.text().await.unwrap());
    let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
    let message = match code.as_str() {
        "FunctionInitError" => init_error_in_log(app, &v),
        _ => v["error"]["message"].as_str().unwrap_or_default().to_string(),
    };
    (status, code, message)
}

/// A gateway `FunctionInitError` answer says nothing of the error; the function's log has it
/// under the answer's request id (written before the answer was sent).
fn init_error_in_log(app: &TestApp, answer: &serde_json::Value) -> String {
    let public = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(public.starts_with("the function could not start"), "{answer}");
    let id = answer["error"]["request_id"].as_str().expect("a request id");
    let prefix = format!("RequestId: {id} Error: ");
    let lines = app.logs.lines.lock().unwrap();
    lines
        .iter()
        .filter(|l| l.request_id.as_deref() == Some(id))
        .find_map(|l| l.line.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("no init error in the log of {id}"))
}

async fn records(app: &TestApp) -> Vec<serde_json::Value> {
    let v = json(&app.admin_text("/gust/v1/invocations?function=boot&limit=1000").await);
    v["invocations"].as_array().cloned().unwrap_or_default()
}

fn has_line(app: &TestApp, needle: &str) -> bool {
    app.logs.find(needle).is_some()
}

#[tokio::test]
async fn repeated_init_failures_back_off_refuse_without_starting_and_recover() {
    let policy = CrashLoopPolicy {
        threshold: 2,
        first_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(4),
    };
    let app = app(true, policy).await;
    let dir = app.dir.path().to_path_buf();

    // The first failure is not delayed: the second call starts a process again.
    for n in 1..=2 {
        let (status, code, message) = call(&app).await;
        assert_eq!(
            (status, code.as_str()),
            (502, "FunctionInitError"),
            "call {n}: {message}"
        );
        assert!(message.contains("cannot reach the config service"), "{message}");
        assert!(!message.contains("back-off"), "call {n}: {message}");
        assert_eq!(starts(&dir), n, "call {n} started a process");
    }
    wait_for("the back-off warning", Duration::from_secs(5), || {
        has_line(
            &app,
            "[gust] crash-loop back-off: 2 inits failed in a row, no new start for 2s",
        )
    })
    .await;
    let warning = app.logs.find("[gust] crash-loop back-off").unwrap();
    assert_eq!(warning.stream, gust_runtime::Stream::Stderr);
    assert!(
        warning.line.contains("Error: cannot reach the config service"),
        "{}",
        warning.line
    );

    // In back-off: calls fail at once with the last init error and start nothing.
    let mut refused = 0;
    for _ in 0..5 {
        let before = starts(&dir);
        let took = Instant::now();
        let (status, code, message) = call(&app).await;
        assert_eq!((status, code.as_str()), (502, "FunctionInitError"), "{message}");
        if !message.contains("crash-loop back-off") {
            break; // the 2 s delay ran out on a very busy machine
        }
        assert!(
            message.contains("in crash-loop back-off after 2 failed inits in a row; the next start is in"),
            "{message}"
        );
        assert!(message.contains("cannot reach the config service"), "{message}");
        assert_eq!(starts(&dir), before, "a refused call started a process");
        assert!(
            took.elapsed() < Duration::from_secs(1),
            "refused in {:?}",
            took.elapsed()
        );
        refused += 1;
    }
    assert!(refused >= 3, "only {refused} calls were refused by the back-off");
    assert_eq!(starts(&dir), 2);

    // After the delay one start is tried; it fails again and the delay doubles.
    wait_for_async("the next start after the delay", Duration::from_secs(15), || async {
        call(&app).await;
        starts(&dir) >= 3
    })
    .await;
    wait_for("the extended back-off warning", Duration::from_secs(5), || {
        has_line(
            &app,
            "[gust] crash-loop back-off: 3 inits failed in a row, no new start for 4s",
        )
    })
    .await;
    assert_eq!(starts(&dir), 3, "one start at the end of the delay");
    let backoff_lines = app
        .logs
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.line.starts_with("[gust] crash-loop"))
        .count();
    assert_eq!(backoff_lines, 2, "one line per back-off, none per refused call");

    // Invocation records: real init failures are cold starts with the function's error type;
    // refused calls have the back-off's, and started nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let list = records(&app).await;
        let backoff = list.iter().filter(|r| r["error_type"] == BACKOFF_ERROR_TYPE).count();
        let inits = list.iter().filter(|r| r["cold_start"] == true).count();
        if backoff >= refused && inits >= 3 {
            break list;
        }
        assert!(Instant::now() < deadline, "records: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(list.iter().all(|r| r["outcome"] == "init_error"), "{list:?}");
    for r in &list {
        if r["error_type"] == BACKOFF_ERROR_TYPE {
            assert_eq!(r["cold_start"], false, "{r}");
        } else {
            assert_eq!(r["cold_start"], true, "{r}");
            assert!(r["init_ms"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    assert_eq!(list.iter().filter(|r| r["cold_start"] == true).count(), 3, "{list:?}");

    // Fixed code serves once the delay is over, and the recovery is logged.
    std::fs::remove_file(dir.join("broken")).unwrap();
    let started = Instant::now();
    wait_for_async("the fixed function to serve", Duration::from_secs(20), || async {
        call(&app).await.0 == 200
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(starts(&dir), 4, "one start served");
    wait_for("the recovery line", Duration::from_secs(5), || {
        has_line(
            &app,
            "[gust] crash-loop back-off over: an instance started after 3 failed inits in a row",
        )
    })
    .await;
    // The back-off is reset: the warm instance serves, and nothing more is refused.
    for _ in 0..3 {
        assert_eq!(call(&app).await.0, 200);
    }
    assert_eq!(starts(&dir), 4);
    app.stop().await;
}

#[tokio::test]
async fn warm_instances_keep_serving_while_new_starts_back_off() {
    let policy = CrashLoopPolicy {
        threshold: 2,
        first_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(60),
    };
    let app = app(false, policy).await;
    let dir = app.dir.path().to_path_buf();
    let r = app.get("/boot").await;
    assert_eq!(r.status(), 200);
    let warm = json(&r.text().await.unwrap())["pid"].as_i64().unwrap();

    // From now on every new start fails; the warm instance is held busy meanwhile.
    std::fs::write(dir.join("broken"), "").unwrap();
    let (client, url) = (app.client.clone(), app.url("/boot"));
    let held = tokio::spawn(async move { client.post(url).body(r#"{"hold":true}"#).send().await.unwrap() });
    wait_for("the warm instance to be busy", Duration::from_secs(10), || {
        dir.join("holding").exists()
    })
    .await;
    for n in 2..=3 {
        let (status, code, message) = call(&app).await;
        assert_eq!((status, code.as_str()), (502, "FunctionInitError"), "{message}");
        assert!(!message.contains("back-off"), "{message}");
        assert_eq!(starts(&dir), n);
    }
    let (_, code, message) = call(&app).await;
    assert_eq!(code, "FunctionInitError");
    assert!(
        message.contains("crash-loop back-off after 2 failed inits"),
        "{message}"
    );
    assert_eq!(starts(&dir), 3);

    // The healthy instance, once free, serves as before: back-off only gates new starts.
    std::fs::write(dir.join("release"), "").unwrap();
    assert_eq!(held.await.unwrap().status(), 200);
    for _ in 0..3 {
        let r = app.get("/boot").await;
        assert_eq!(r.status(), 200);
        assert_eq!(json(&r.text().await.unwrap())["pid"].as_i64().unwrap(), warm);
    }
    assert_eq!(starts(&dir), 3);
    app.stop().await;
}

#[tokio::test]
async fn init_timeout_is_the_functions_own() {
    let dir = write_app(&[
        (
            "gust.toml",
            r#"
[app]
name = "slowinit"

[functions.slow]
runtime = "python3.11"
handler = "slow.main"
init_timeout = 1

[[routes]]
route = "GET /slow"
function = "slow"
"#,
        ),
        (
            "slow.py",
            "import time\ntime.sleep(5)\n\ndef main(event, context):\n    return 'late'\n",
        ),
    ]);
    // A long back-off, so that the third call below is surely refused by it.
    let app = TestApp::start_configured(dir, |c| {
        c.prewarm_per_runtime = 1;
        c.crash_loop.first_delay = Duration::from_secs(60);
    })
    .await;
    // The first start specialises a prewarmed spare, the second one too or spawns: both are
    // bounded by the function's init_timeout.
    wait_for("a prewarmed Python runtime", Duration::from_secs(10), || {
        app.platform().invoker.prewarmed_ready() > 0
    })
    .await;
    for n in 1..=2 {
        let started = Instant::now();
        let r = app.get("/slow").await;
        let took = started.elapsed();
        assert_eq!(r.status(), 502, "call {n}");
        let v = json(&r.text().await.unwrap());
        assert_eq!(v["error"]["code"], "FunctionInitError", "{v}");
        let message = init_error_in_log(&app, &v);
        assert!(
            message.contains("init did not finish within the function's init_timeout of 1s"),
            "{message}"
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "call {n} took {took:?}"
        );
    }
    // The Lambda Invoke API reports it as Lambda does; by now the function is in back-off.
    let (status, fe, body) = app.invoke("slow", "{}").await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")), "{body}");
    let v = json(&body);
    assert_eq!(v["errorType"], BACKOFF_ERROR_TYPE, "{body}");
    assert!(
        v["errorMessage"].as_str().unwrap().contains("init_timeout of 1s"),
        "{body}"
    );
    app.stop().await;
}

/// Polls an async `check` until it returns true or `timeout` passes.
async fn wait_for_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
