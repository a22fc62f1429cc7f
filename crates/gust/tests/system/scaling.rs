//! Pools: reuse, the concurrency limit with its bounded queue (429 + Retry-After), scale to
//! zero after the idle timeout, and min_instances kept warm.

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
