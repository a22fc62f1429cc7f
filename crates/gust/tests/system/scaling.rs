//! Pools: reuse, the concurrency limit with its bounded queue (429 + Retry-After), scale to
//! zero after the idle timeout, min_instances kept warm (and refilled when one dies), and an
//! idle platform that takes no wake-ups (nothing polls).

use crate::support::*;
use std::time::Duration;

const MANIFEST: &str = r#"
[app]
name = "scaling"

[functions.slow]
runtime = "nodejs20.x"
handler = "slow.handler"
timeout = 5
scaling = { max_instances = 1, max_queue = 1 }

[functions.idle]
runtime = "nodejs20.x"
handler = "slow.handler"
scaling = { idle_timeout = 0.3 }

[functions.warm]
runtime = "nodejs20.x"
handler = "slow.handler"
scaling = { min_instances = 2, idle_timeout = 0.2 }

[[routes]]
route = "POST /slow"
function = "slow"
"#;

const SLOW: &str = r#"
exports.handler = async (event) => {
  const ms = (event.body && JSON.parse(event.body).ms) || event.ms || 0;
  await new Promise((r) => setTimeout(r, ms));
  return { statusCode: 200, body: JSON.stringify({ pid: process.pid }) };
};
"#;

async fn app() -> TestApp {
    TestApp::start(&[("gust.toml", MANIFEST), ("slow.js", SLOW)]).await
}

#[tokio::test]
async fn full_pool_and_queue_answer_429_with_retry_after() {
    let app = app().await;
    // Warm the single instance so the timing below is not a cold start.
    assert_eq!(app.post("/slow", "{}").await.status(), 200);
    let busy = {
        let c = app.client.clone();
        let url = app.url("/slow");
        tokio::spawn(async move { c.post(url).body(r#"{"ms":1500}"#).send().await.unwrap().status() })
    };
    let stats = || app.platform().invoker.pool_stats("slow").unwrap();
    // Wait until the instance is busy (not idle), then fill the one queue place.
    wait_for("the instance to be busy", Duration::from_secs(5), || stats().idle == 0).await;
    let queued = {
        let c = app.client.clone();
        let url = app.url("/slow");
        tokio::spawn(async move { c.post(url).body(r#"{"ms":0}"#).send().await.unwrap().status() })
    };
    wait_for("a queued invocation", Duration::from_secs(5), || stats().waiting == 1).await;
    let r = app.post("/slow", r#"{"ms":0}"#).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(json(&r.text().await.unwrap())["error"]["code"], "TooManyRequests");
    // Nothing was lost: the busy and the queued invocation both complete.
    assert_eq!(busy.await.unwrap(), 200);
    assert_eq!(queued.await.unwrap(), 200);
    assert_eq!(stats().total, 1, "never more than max_instances");
    app.stop().await;
}

#[tokio::test]
async fn instances_are_reused_then_scale_to_zero_and_cold_start_again() {
    let app = app().await;
    let (_, _, a) = app.invoke("idle", "{}").await;
    let (_, _, b) = app.invoke("idle", "{}").await;
    let pid = |s: &str| json(json(s)["body"].as_str().unwrap())["pid"].as_i64().unwrap();
    assert_eq!(pid(&a), pid(&b), "a warm instance is reused");
    let stats = || app.platform().invoker.pool_stats("idle").unwrap();
    assert_eq!(stats().total, 1);
    wait_for("scale to zero", Duration::from_secs(5), || stats().total == 0).await;
    wait_for("the idle process to exit", Duration::from_secs(5), || {
        !pid_alive(pid(&a) as i32)
    })
    .await;
    let (_, _, c) = app.invoke("idle", "{}").await;
    assert_ne!(pid(&c), pid(&a), "after scale to zero the next call cold-starts");
    app.stop().await;
}

#[tokio::test]
async fn min_instances_are_kept_warm() {
    let app = app().await;
    let stats = || app.platform().invoker.pool_stats("warm").unwrap();
    wait_for("two warm instances", Duration::from_secs(10), || {
        stats().total == 2 && stats().idle == 2
    })
    .await;
    // Longer than the idle timeout: they stay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats().total, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_warm_instance_that_dies_is_replaced_at_once() {
    let app = app().await;
    let pool = app.platform().invoker.pool("warm").unwrap();
    wait_for("two warm instances", Duration::from_secs(10), || pool.stats().idle == 2).await;
    let before = pool.idle_pids();
    gust_runtime::kill_process_group(before[0], false);
    // Nothing is invoked: the pool learns of the exit from the process itself.
    wait_for("the dead instance to be replaced", Duration::from_secs(10), || {
        let now = pool.idle_pids();
        now.len() == 2 && !now.contains(&before[0])
    })
    .await;
    assert!(pool.idle_pids().contains(&before[1]), "the live instance was kept");
    assert_eq!(pool.stats().total, 2);
    app.stop().await;
}

/// Voluntary context switches of every thread of `pid`: each one is a sleep after a wake-up.
fn wake_ups(pid: u32) -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        n += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    n
}

#[tokio::test]
async fn an_idle_gust_takes_no_wake_ups() {
    // Functions deployed (one scaled to zero after use), no schedules, no subscriptions.
    let dir = write_app(&[("gust.toml", MANIFEST), ("slow.js", SLOW)]);
    let state = tempfile::tempdir().unwrap();
    let gust = GustUp::start(dir.path(), state.path()).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/slow", gust.gateway))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Let the start-up and that invocation's after-work (telemetry flush, prewarming) end.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = wake_ups(gust.child.id());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let woke = wake_ups(gust.child.id()) - before;
    // A poll at 10 Hz would be about 60 here (it was: the reconciler used to tick).
    assert!(woke <= 6, "an idle Gust woke up {woke} times in 3 s");
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_leak_the_instance() {
    use tokio::io::AsyncWriteExt;
    let app = app().await;
    // Send a request to the single-instance function and drop the connection mid-invocation.
    let mut s = tokio::net::TcpStream::connect(app.platform().gateway_addr)
        .await
        .unwrap();
    let body = r#"{"ms":600}"#;
    s.write_all(
        format!(
            "POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let stats = || app.platform().invoker.pool_stats("slow").unwrap();
    wait_for("the invocation to start", Duration::from_secs(10), || {
        stats().total == 1 && stats().idle == 0
    })
    .await;
    drop(s);
    // The invocation completes on its own and the instance goes back to the pool.
    wait_for("the instance to be idle again", Duration::from_secs(10), || {
        stats().idle == 1
    })
    .await;
    assert_eq!(stats().total, 1);
    assert_eq!(
        app.post("/slow", "{}").await.status(),
        200,
        "the function still answers"
    );
    app.stop().await;
}
