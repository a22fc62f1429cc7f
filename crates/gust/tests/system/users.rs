//! The example shop's users service through the real `gust up` binary, the `gust invoke`
//! CLI, and graceful shutdown with an invocation in flight.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn shop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop")
}

#[tokio::test]
async fn users_service_end_to_end_through_gust_up() {
    let state = tempfile::tempdir().unwrap();
    let gust = GustUp::start(&shop_dir(), state.path()).await;
    let c = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", gust.gateway);

    let email = format!("ann-{}@example.com", std::process::id());
    let r = c
        .post(url("/users"))
        .json(&serde_json::json!({"email": email, "name": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user = json(&r.text().await.unwrap());
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["name"], "Ann");

    let r = c
        .post(url("/users"))
        .json(&serde_json::json!({"name": "No Email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(&r.text().await.unwrap())["message"], "Email is required");

    let r = c
        .post(url("/users"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "malformed JSON is the handler's to refuse");

    let r = c
        .post(url("/users"))
        .json(&serde_json::json!({"email": email, "name": "Again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    let r = c.get(url(&format!("/users/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(&r.text().await.unwrap())["email"], email.as_str());

    // `gust invoke` against the running platform, through the Lambda Invoke API.
    let event = serde_json::json!({"version": "2.0", "pathParameters": {"id": id}, "requestContext": {"http": {"method": "GET"}}});
    let out = Command::new(env!("CARGO_BIN_EXE_gust"))
        .args([
            "invoke",
            "get-user",
            "--admin",
            &gust.admin,
            "--token",
            &gust.token,
            "--data",
            &event.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(v["statusCode"], 200);
    assert_eq!(json(v["body"].as_str().unwrap())["id"], id.as_str());

    let r = c.delete(url(&format!("/users/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = c.get(url(&format!("/users/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.delete(url(&format!("/users/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // The email is free again once the user is deleted.
    let r = c
        .post(url("/users"))
        .json(&serde_json::json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_work_and_leaves_no_process() {
    let app = write_app(&[
        (
            "gust.toml",
            "[app]\nname = \"grace\"\n[functions.slow]\nruntime = \"nodejs20.x\"\nhandler = \"slow.handler\"\ntimeout = 10\n[[routes]]\nroute = \"GET /slow\"\nfunction = \"slow\"\n",
        ),
        ("slow.js", "exports.handler = async () => { await new Promise(r => setTimeout(r, 1500)); return { statusCode: 200, body: 'done' }; };"),
    ]);
    let state = tempfile::tempdir().unwrap();
    let mut gust = GustUp::start(app.path(), state.path()).await;
    let url = format!("{}/slow", gust.gateway);
    let in_flight = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    let gust_pid = gust.child.id();
    wait_for("the function process to start", Duration::from_secs(10), || {
        !children_of(gust_pid).is_empty()
    })
    .await;
    let functions = children_of(gust_pid);
    tokio::time::sleep(Duration::from_millis(200)).await;
    gust.terminate();
    let status = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(status, 200);
    let exit = gust.wait_exit(Duration::from_secs(15)).await;
    assert!(exit.success(), "{exit}");
    for pid in functions {
        wait_for("function processes to be gone", Duration::from_secs(5), || {
            !pid_alive(pid)
        })
        .await;
    }
    assert!(
        !state.path().join("gust.json").exists(),
        "the runtime info file is removed"
    );
}

#[tokio::test]
async fn a_killed_gust_takes_its_function_process_groups_with_it() {
    // The function starts a process of its own (same process group) and leaves it running.
    let app = write_app(&[
        (
            "gust.toml",
            "[app]\nname = \"orphans\"\n[functions.forker]\nruntime = \"nodejs20.x\"\nhandler = \"forker.handler\"\n[[routes]]\nroute = \"GET /fork\"\nfunction = \"forker\"\n",
        ),
        (
            "forker.js",
            "const { spawn } = require('node:child_process');\nlet child;\nexports.handler = async () => { child = spawn('sleep', ['120'], { stdio: 'ignore' }); return { statusCode: 200, body: String(child.pid) }; };",
        ),
    ]);
    let state = tempfile::tempdir().unwrap();
    let mut gust = GustUp::start(app.path(), state.path()).await;
    let r = reqwest::get(format!("{}/fork", gust.gateway)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let grandchild: i32 = r.text().await.unwrap().trim().parse().unwrap();
    assert!(pid_alive(grandchild));
    let watchdog = watchdog_of(gust.child.id()).expect("gust up runs an orphan watchdog");

    gust.kill_9().await; // waits for the function processes and the watchdog to be gone
    assert!(!pid_alive(watchdog));
    // Not a child of Gust: only a kill of the whole group reaches it.
    wait_for(
        "the function's own child process to die",
        Duration::from_secs(10),
        || !pid_alive(grandchild),
    )
    .await;
}
