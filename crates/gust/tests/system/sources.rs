//! Broker event sources end to end: Redis Streams and NATS (JetStream and core) feeding real
//! Node functions. Messages are published by plain clients of each broker (the `redis` and
//! `async-nats` crates, not Gust), against the shared servers on their standard ports with
//! stream, group and subject names unique to each run. Fault tests start PRIVATE servers on
//! free ports with their own data directories and kill only those.
//!
//! Covered for Redis Streams and JetStream each: the shape a function sees; a failing handler
//! retried, dead-lettered into Gust's DLQ (and acked at the broker only then), redriven with
//! `gust dlq redrive` after the fix; `kill -9` of Gust mid-run loses nothing; a broker restart
//! mid-run loses nothing (and Gust starts while its broker is down). Redis: per-key order under
//! concurrency. Core NATS: a message reaches a function (at-most-once, reported as such).

use crate::support::*;
use async_nats::jetstream;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const WAIT: Duration = Duration::from_secs(30);
const REDIS: &str = "redis://127.0.0.1:6379";
const NATS: &str = "nats://127.0.0.1:4222";

/// Records every record it gets into `out.jsonl` (with its pid) and succeeds.
pub(crate) const RECORDER: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  const lines = event.Records.map((r) => JSON.stringify({ pid: process.pid, batch: event.Records.length, record: r }));
  fs.appendFileSync(path.join(__dirname, 'out.jsonl'), lines.join('\n') + '\n');
  return {};
};
"#;

/// Records what it sees into `seen.jsonl`; fails until the file `fixed` exists, then records
/// into `ok.jsonl` and succeeds.
pub(crate) const FLAKY: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  const lines = event.Records.map((r) => JSON.stringify(r)).join('\n') + '\n';
  fs.appendFileSync(path.join(__dirname, 'seen.jsonl'), lines);
  if (!fs.existsSync(path.join(__dirname, 'fixed'))) throw new Error('the rates are not loaded yet');
  fs.appendFileSync(path.join(__dirname, 'ok.jsonl'), lines);
  return {};
};
"#;

/// Appends the `n` of every record's body to `ids.txt`, taking a little time per batch so
/// that a kill lands mid-run.
pub(crate) const ID_WRITER: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  await new Promise((r) => setTimeout(r, 40));
  const ids = event.Records.map((r) => JSON.parse(r.body).n);
  fs.appendFileSync(path.join(__dirname, 'ids.txt'), ids.join('\n') + '\n');
  return {};
};
"#;

/// Appends `key seq pid` per record, after a random pause (to shake the timing).
const ORDERED: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 25)));
  const lines = event.Records.map((r) => { const b = JSON.parse(r.body); return `${b.key} ${b.seq} ${process.pid}`; });
  fs.appendFileSync(path.join(__dirname, 'order.txt'), lines.join('\n') + '\n');
  return {};
};
"#;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

pub(crate) async fn until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The complete JSON lines of `file` in `dir`.
pub(crate) fn jsonl(dir: &Path, file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
    complete.lines().filter(|l| !l.trim().is_empty()).map(json).collect()
}

/// How many times each id appears in `ids.txt` (complete lines only).
pub(crate) fn delivered_ids(dir: &Path) -> HashMap<u32, usize> {
    let text = std::fs::read_to_string(dir.join("ids.txt")).unwrap_or_default();
    let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
    let mut out = HashMap::new();
    for l in complete.lines().filter(|l| !l.trim().is_empty()) {
        *out.entry(l.trim().parse::<u32>().unwrap()).or_default() += 1;
    }
    out
}

pub(crate) fn attr(record: &Value, name: &str) -> String {
    record["messageAttributes"][name]["stringValue"]
        .as_str()
        .unwrap_or_else(|| panic!("no message attribute {name} in {record}"))
        .to_string()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /gust/v1/subscriptions` entry for `name`, through `admin` with `token`.
pub(crate) async fn subscription_at(admin: &str, token: &str, name: &str) -> Value {
    let v: Value = reqwest::Client::new()
        .get(format!("{admin}/gust/v1/subscriptions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no subscription {name} in {v}"))
        .clone()
}

pub(crate) async fn subscription(app: &TestApp, name: &str) -> Value {
    subscription_at(&app.admin(""), &app.operator_token(), name).await
}

pub(crate) async fn dead_letters(app: &TestApp, sub: &str) -> Vec<Value> {
    let v = json(&app.admin_text(&format!("/gust/v1/dlq?subscription={sub}")).await);
    v["dead_letters"].as_array().unwrap().clone()
}

pub(crate) async fn wait_state(app: &TestApp, sub: &str, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let s = subscription(app, sub).await;
        if s["source"]["state"] == state {
            return s;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for source {sub} to be {state}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `XADD stream * field value ...` by a plain Redis client.
async fn xadd(conn: &mut redis::aio::MultiplexedConnection, stream: &str, fields: &[(&str, &str)]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(conn).await.unwrap()
}

/// Entries of `group` read and not yet acknowledged (`XPENDING` summary count).
async fn redis_pending(conn: &mut redis::aio::MultiplexedConnection, stream: &str, group: &str) -> u64 {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(conn)
        .await
        .unwrap();
    match v {
        redis::Value::Array(parts) => match parts.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

async fn redis_cleanup(url: &str, stream: &str) {
    let mut c = redis_conn(url).await;
    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(stream).query_async(&mut c).await;
}

/// A source subscription app: one function `f` (code `f.js`) and one subscription `sub`.
pub(crate) fn source_app(name: &str, code: &str, sub_extra: &str, source: &str) -> tempfile::TempDir {
    let toml = format!(
        r#"
[app]
name = "{name}"
[functions.f]
runtime = "nodejs20.x"
handler = "f.handler"
timeout = 3
scaling = {{ max_instances = 4 }}
[[subscriptions]]
name = "sub"
function = "f"
{sub_extra}
source = {source}
"#
    );
    write_app(&[("gust.toml", &toml), ("f.js", code)])
}

/// A private server process (redis-server, nats-server) on a free port, killed on drop.
struct Private {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    program: &'static str,
}

impl Private {
    fn args(&self) -> Vec<String> {
        let port = self.port.to_string();
        let dir = self.dir.path().display().to_string();
        match self.program {
            "redis-server" => vec![
                "--port".into(),
                port,
                "--bind".into(),
                "127.0.0.1".into(),
                "--dir".into(),
                dir,
                "--appendonly".into(),
                "yes".into(),
                "--appendfsync".into(),
                "always".into(),
                "--save".into(),
                "".into(),
            ],
            _ => vec![
                "-js".into(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port,
                "-sd".into(),
                dir,
            ],
        }
    }

    fn new(program: &'static str) -> Self {
        Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            program,
        }
    }

    async fn start(&mut self) {
        let child = Command::new(self.program)
            .args(self.args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} cannot start: {e}", self.program));
        self.child = Some(child);
        let port = self.port;
        until(&format!("{} on port {port}", self.program), WAIT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        if self.program == "nats-server" {
            // Listening comes before JetStream is ready: wait until it answers.
            let url = self.url();
            until("JetStream to be ready", WAIT, || {
                let url = url.clone();
                async move {
                    let Ok(c) = async_nats::connect(url).await else {
                        return false;
                    };
                    match c.request("$JS.API.INFO", "".into()).await {
                        Ok(m) => !String::from_utf8_lossy(&m.payload).contains("\"error\""),
                        Err(_) => false,
                    }
                }
            })
            .await;
        }
    }

    /// `kill -9` of this server only.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        match self.program {
            "redis-server" => format!("redis://127.0.0.1:{}", self.port),
            _ => format!("nats://127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn js_stream(url: &str, stream: &str, subjects: &str) -> jetstream::Context {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    js.get_or_create_stream(jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![subjects.to_string()],
        ..Default::default()
    })
    .await
    .unwrap();
    js
}

async fn js_publish(js: &jetstream::Context, subject: &str, body: String) {
    js.publish(subject.to_string(), body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Unacknowledged plus undelivered messages of a durable consumer.
async fn js_unfinished(js: &jetstream::Context, stream: &str, durable: &str) -> u64 {
    let mut c: jetstream::consumer::PullConsumer = js
        .get_stream(stream)
        .await
        .unwrap()
        .get_consumer(durable)
        .await
        .unwrap();
    let info = c.info().await.unwrap();
    info.num_pending + info.num_ack_pending as u64
}

/// `gust dlq redrive SUB` against the app's running Gust.
pub(crate) async fn redrive(dir: &Path, sub: &str) {
    let out = gust_cli(
        vec![
            "dlq".into(),
            "redrive".into(),
            sub.into(),
            "--app".into(),
            dir.display().to_string(),
        ],
        vec![],
    )
    .await;
    assert!(
        out.status.success(),
        "gust dlq redrive failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["redriven"], 1, "{v}");
}

/// Publishes `n` numbered messages with `publish`, kills Gust (a `gust up` child) mid-run,
/// restarts it, and checks every message was delivered at least once; returns the report and
/// the running Gust (kept running while the caller checks the broker: acks follow the
/// functions' writes).
pub(crate) async fn kill_9_loses_nothing(dir: &Path, n: u32) -> (String, GustUp, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut gust = GustUp::start(dir, state.path()).await;
    wait_for("deliveries to be under way", Duration::from_secs(60), || {
        let d = delivered_ids(dir).len() as u32;
        d >= n / 10
    })
    .await;
    gust.kill_9().await;
    let before = delivered_ids(dir).len() as u32;
    assert!(
        before < n,
        "the kill came after every delivery ({before} of {n}); the test proved nothing"
    );
    let gust = GustUp::start(dir, state.path()).await;
    let started = Instant::now();
    wait_for(
        "every message to be delivered after the restart",
        Duration::from_secs(90),
        || delivered_ids(dir).len() as u32 == n,
    )
    .await;
    let ids = delivered_ids(dir);
    let missing: Vec<u32> = (0..n).filter(|i| !ids.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let extra: usize = ids.values().map(|c| c - 1).sum();
    let s = subscription_at(&gust.admin, &gust.token, "sub").await;
    assert_eq!(s["dead_letters"], 0, "{s}");
    let report = format!(
        "{n} messages, {before} delivered before kill -9; all delivered {:?} after the restart; {extra} duplicate deliveries",
        started.elapsed()
    );
    (report, gust, state)
}

// ---------------------------------------------------------------------------------------------
// Redis Streams
// ---------------------------------------------------------------------------------------------

fn redis_source(url: &str, stream: &str, extra: &str) -> String {
    format!(
        r#"{{ type = "redis-streams", url = "{url}", stream = "{stream}", group = "gust-tests", start = "earliest"{extra} }}"#
    )
}

#[tokio::test]
async fn redis_stream_entries_reach_a_function_as_cloudevents_records() {
    let stream = unique("orders");
    let app = TestApp::start_dir(source_app(
        "src-redis",
        RECORDER,
        "batch_size = 10",
        &redis_source(REDIS, &stream, ""),
    ))
    .await;
    let mut r = redis_conn(REDIS).await;
    let id1 = xadd(
        &mut r,
        &stream,
        &[
            ("ce-type", "order.created"),
            ("ce-region", "eu"),
            ("data", r#"{"order":1}"#),
        ],
    )
    .await;
    let id2 = xadd(&mut r, &stream, &[("order", "2"), ("total", "9.50")]).await;
    let dir = app.dir.path().to_path_buf();
    wait_for("both entries to be delivered", WAIT, || {
        jsonl(&dir, "out.jsonl").len() == 2
    })
    .await;
    let records: Vec<Value> = jsonl(&dir, "out.jsonl")
        .into_iter()
        .map(|l| l["record"].clone())
        .collect();
    let by_id: BTreeMap<String, &Value> = records
        .iter()
        .map(|r| (r["messageId"].as_str().unwrap().to_string(), r))
        .collect();
    let first = by_id[&id1];
    assert_eq!(first["body"], r#"{"order":1}"#, "{first}");
    assert_eq!(first["eventSource"], "gust:redis-streams");
    assert!(
        first["eventSourceARN"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{stream}")),
        "{first}"
    );
    assert_eq!(first["attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(attr(first, "ce-id"), id1);
    assert_eq!(attr(first, "ce-type"), "order.created");
    assert_eq!(attr(first, "ce-region"), "eu");
    assert_eq!(attr(first, "ce-source"), format!("/redis-streams/{stream}"));
    assert_eq!(attr(first, "ce-subject"), stream);
    assert!(attr(first, "ce-time").starts_with("20"), "{first}");
    // Without a lone `data` field the body is the entry's fields as a JSON object.
    let second = by_id[&id2];
    assert_eq!(
        json(second["body"].as_str().unwrap()),
        json!({ "order": "2", "total": "9.50" })
    );
    assert_eq!(attr(second, "ce-type"), "gust.redis-streams.entry");

    // Acknowledged at the broker after success; the operator sees the source and its lag.
    until("the entries to be acked", WAIT, || async {
        let mut r = redis_conn(REDIS).await;
        redis_pending(&mut r, &stream, "gust-tests").await == 0
    })
    .await;
    let s = wait_state(&app, "sub", "connected").await;
    assert_eq!(s["source"]["type"], "redis-streams", "{s}");
    assert_eq!(s["source"]["guarantee"], "at-least-once");
    assert_eq!(s["topic"], "sub");
    until("the lag to be reported as 0", WAIT, || async {
        subscription(&app, "sub").await["source"]["lag"] == 0
    })
    .await;
    let metrics = app
        .client
        .get(app.admin("/metrics"))
        .bearer_auth(app.operator_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"gust_source_up{subscription="sub",type="redis-streams"} 1"#),
        "{metrics}"
    );
    // `gust subscriptions` shows the source with its state.
    let out = gust_cli(
        vec![
            "subscriptions".into(),
            "--app".into(),
            app.dir.path().display().to_string(),
        ],
        vec![],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("sub "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("redis-streams") && row.contains("connected"), "{text}");
    app.stop().await;
    redis_cleanup(REDIS, &stream).await;
}

#[tokio::test]
async fn redis_failures_are_retried_dead_lettered_into_gusts_dlq_then_redriven() {
    let stream = unique("rates");
    let app = TestApp::start_dir(source_app(
        "src-redis-dlq",
        FLAKY,
        "max_attempts = 2\nretry_delay = 0.2",
        &redis_source(REDIS, &stream, ""),
    ))
    .await;
    let mut r = redis_conn(REDIS).await;
    let id = xadd(
        &mut r,
        &stream,
        &[("ce-type", "order.created"), ("data", r#"{"currency":"USD"}"#)],
    )
    .await;
    until("the entry to be dead-lettered", WAIT, || async {
        dead_letters(&app, "sub").await.len() == 1
    })
    .await;
    let dl = dead_letters(&app, "sub").await.remove(0);
    assert_eq!(dl["reason"], "MaxAttemptsExceeded", "{dl}");
    assert_eq!(dl["attempts"], 2, "{dl}");
    assert_eq!(dl["message_id"], id.as_str());
    assert!(
        dl["last_error"].as_str().unwrap().contains("rates are not loaded"),
        "{dl}"
    );
    let dir = app.dir.path().to_path_buf();
    let seen = jsonl(&dir, "seen.jsonl");
    let counts: Vec<&str> = seen
        .iter()
        .map(|r| r["attributes"]["ApproximateReceiveCount"].as_str().unwrap())
        .collect();
    assert_eq!(counts, ["1", "2"], "one delivery per attempt, counted by the broker");
    // Dead-lettered into Gust's DLQ first, then acked at the broker.
    assert_eq!(redis_pending(&mut r, &stream, "gust-tests").await, 0);

    std::fs::write(dir.join("fixed"), "").unwrap();
    redrive(&dir, "sub").await;
    wait_for("the redriven entry to succeed", WAIT, || {
        jsonl(&dir, "ok.jsonl").len() == 1
    })
    .await;
    let ok = &jsonl(&dir, "ok.jsonl")[0];
    assert_eq!(ok["body"], r#"{"currency":"USD"}"#, "{ok}");
    assert_eq!(attr(ok, "ce-id"), id);
    assert_eq!(
        ok["eventSource"], "gust:redis-streams",
        "the same shape as from the broker"
    );
    until("the DLQ to be empty", WAIT, || async {
        dead_letters(&app, "sub").await.is_empty()
    })
    .await;
    app.stop().await;
    redis_cleanup(REDIS, &stream).await;
}

#[tokio::test]
async fn redis_kill_9_of_gust_mid_run_loses_nothing() {
    const N: u32 = 600;
    let stream = unique("numbers");
    let app = source_app(
        "src-redis-kill",
        ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2",
        &redis_source(REDIS, &stream, ""),
    );
    let mut r = redis_conn(REDIS).await;
    let mut pipe = redis::pipe();
    for n in 0..N {
        pipe.cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("data")
            .arg(json!({ "n": n }).to_string())
            .ignore();
    }
    let _: () = pipe.query_async(&mut r).await.unwrap();
    let (report, gust, _state) = kill_9_loses_nothing(app.path(), N).await;
    eprintln!("redis streams crash safety: {report}");
    until("the group to have nothing pending", WAIT, || async {
        let mut r = redis_conn(REDIS).await;
        redis_pending(&mut r, &stream, "gust-tests").await == 0
    })
    .await;
    drop(gust);
    redis_cleanup(REDIS, &stream).await;
}

#[tokio::test]
async fn redis_restart_mid_run_loses_nothing_and_gust_starts_while_it_is_down() {
    let mut broker = Private::new("redis-server");
    let stream = unique("restart");
    // Gust starts with its broker down: it serves, and reports the source as reconnecting.
    let app = TestApp::start_dir(source_app(
        "src-redis-restart",
        ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2",
        &redis_source(&broker.url(), &stream, ""),
    ))
    .await;
    let s = wait_state(&app, "sub", "reconnecting").await;
    assert!(s["source"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
    assert_eq!(
        app.get("/nothing-here").await.status(),
        404,
        "the gateway serves meanwhile"
    );
    broker.start().await;
    wait_state(&app, "sub", "connected").await;

    let dir = app.dir.path().to_path_buf();
    let mut r = redis_conn(&broker.url()).await;
    for n in 0..200u32 {
        xadd(&mut r, &stream, &[("data", &json!({ "n": n }).to_string())]).await;
    }
    wait_for("deliveries to be under way", WAIT, || delivered_ids(&dir).len() >= 30).await;
    broker.kill();
    let before = delivered_ids(&dir).len();
    assert!(
        before < 200,
        "the broker died after every delivery; the test proved nothing"
    );
    wait_state(&app, "sub", "reconnecting").await;
    broker.start().await;
    wait_state(&app, "sub", "connected").await;
    let mut r = redis_conn(&broker.url()).await;
    for n in 200..400u32 {
        xadd(&mut r, &stream, &[("data", &json!({ "n": n }).to_string())]).await;
    }
    wait_for("every entry to be delivered", Duration::from_secs(90), || {
        delivered_ids(&dir).len() == 400
    })
    .await;
    let ids = delivered_ids(&dir);
    assert!((0..400).all(|n| ids.contains_key(&n)));
    let extra: usize = ids.values().map(|c| c - 1).sum();
    eprintln!(
        "redis restart: 400 entries, {before} delivered before the broker was killed; {extra} duplicate deliveries"
    );
    until("nothing pending after the restart", WAIT, || async {
        let mut r = redis_conn(&broker.url()).await;
        redis_pending(&mut r, &stream, "gust-tests").await == 0
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn redis_ordering_key_keeps_order_per_key_under_concurrency() {
    const KEYS: u32 = 4;
    const PER_KEY: u32 = 30;
    let stream = unique("ordered");
    let mut r = redis_conn(REDIS).await;
    let mut pipe = redis::pipe();
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            // Two fields: the body is `{"key": ..., "seq": ...}`, and `key` orders.
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("key")
                .arg(format!("k{k}"))
                .arg("seq")
                .arg(seq)
                .ignore();
        }
    }
    let _: () = pipe.query_async(&mut r).await.unwrap();
    let app = TestApp::start_dir(source_app(
        "src-redis-order",
        ORDERED,
        "batch_size = 3\nmax_concurrency = 4",
        &redis_source(REDIS, &stream, r#", ordering_key = "key""#),
    ))
    .await;
    let dir = app.dir.path().to_path_buf();
    let read = || -> Vec<(String, u32, String)> {
        lines(&dir.join("order.txt"))
            .iter()
            .filter(|l| l.split(' ').count() == 3)
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                (p[0].to_string(), p[1].parse().unwrap(), p[2].to_string())
            })
            .collect()
    };
    wait_for("every entry to be delivered", Duration::from_secs(60), || {
        read().len() as u32 >= KEYS * PER_KEY
    })
    .await;
    let got = read();
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (k, seq, _) in &got {
        per_key.entry(k.clone()).or_default().push(*seq);
    }
    for (k, seqs) in &per_key {
        assert_eq!(seqs, &(0..PER_KEY).collect::<Vec<_>>(), "key {k} out of order");
    }
    let pids: HashSet<&String> = got.iter().map(|(_, _, p)| p).collect();
    assert!(
        pids.len() > 1,
        "keys were not delivered concurrently (one instance did all)"
    );
    app.stop().await;
    redis_cleanup(REDIS, &stream).await;
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream
// ---------------------------------------------------------------------------------------------

fn js_source(url: &str, stream: &str, subject: &str) -> String {
    format!(
        r#"{{ type = "nats-jetstream", url = "{url}", stream = "{stream}", subject = "{subject}", durable = "gust-tests", start = "earliest" }}"#
    )
}

fn js_names() -> (String, String) {
    let s = unique("ORDERS").replace('-', "_");
    let subject = s.to_lowercase();
    (s, subject)
}

async fn js_cleanup(url: &str, stream: &str) {
    if let Ok(c) = async_nats::connect(url).await {
        let _ = jetstream::new(c).delete_stream(stream).await;
    }
}

#[tokio::test]
async fn jetstream_messages_reach_a_function_as_cloudevents_records() {
    let (stream, subj) = js_names();
    let js = js_stream(NATS, &stream, &format!("{subj}.>")).await;
    let app = TestApp::start_dir(source_app(
        "src-js",
        RECORDER,
        "batch_size = 10",
        &js_source(NATS, &stream, &format!("{subj}.>")),
    ))
    .await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "order-7");
    headers.insert("ce-type", "order.created");
    headers.insert("ce-tenant", "acme");
    js.publish_with_headers(format!("{subj}.created"), headers, r#"{"order":7}"#.into())
        .await
        .unwrap()
        .await
        .unwrap();
    js_publish(&js, &format!("{subj}.cancelled"), "plain text".into()).await;
    let dir = app.dir.path().to_path_buf();
    wait_for("both messages to be delivered", WAIT, || {
        jsonl(&dir, "out.jsonl").len() == 2
    })
    .await;
    let records: Vec<Value> = jsonl(&dir, "out.jsonl")
        .into_iter()
        .map(|l| l["record"].clone())
        .collect();
    let first = records
        .iter()
        .find(|r| r["messageId"] == format!("{stream}:1"))
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(first["body"], r#"{"order":7}"#);
    assert_eq!(first["eventSource"], "gust:nats-jetstream");
    assert_eq!(first["attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(attr(first, "ce-id"), "order-7");
    assert_eq!(attr(first, "ce-type"), "order.created");
    assert_eq!(attr(first, "ce-tenant"), "acme");
    assert_eq!(attr(first, "ce-subject"), format!("{subj}.created"));
    assert_eq!(attr(first, "ce-source"), format!("/nats-jetstream/{stream}"));
    let second = records
        .iter()
        .find(|r| r["messageId"] == format!("{stream}:2"))
        .unwrap();
    assert_eq!(second["body"], "plain text");
    assert_eq!(attr(second, "ce-type"), "gust.nats-jetstream.message");
    until("both to be acked", WAIT, || async {
        js_unfinished(&js, &stream, "gust-tests").await == 0
    })
    .await;
    let s = wait_state(&app, "sub", "connected").await;
    assert_eq!(s["source"]["type"], "nats-jetstream", "{s}");
    app.stop().await;
    js_cleanup(NATS, &stream).await;
}

#[tokio::test]
async fn jetstream_failures_are_retried_dead_lettered_into_gusts_dlq_then_redriven() {
    let (stream, subj) = js_names();
    let js = js_stream(NATS, &stream, &format!("{subj}.>")).await;
    let app = TestApp::start_dir(source_app(
        "src-js-dlq",
        FLAKY,
        "max_attempts = 2\nretry_delay = 0.2",
        &js_source(NATS, &stream, &format!("{subj}.>")),
    ))
    .await;
    js_publish(&js, &format!("{subj}.created"), r#"{"currency":"USD"}"#.into()).await;
    until("the message to be dead-lettered", WAIT, || async {
        dead_letters(&app, "sub").await.len() == 1
    })
    .await;
    let dl = dead_letters(&app, "sub").await.remove(0);
    assert_eq!(
        (dl["reason"].as_str(), dl["attempts"].as_u64()),
        (Some("MaxAttemptsExceeded"), Some(2)),
        "{dl}"
    );
    let dir = app.dir.path().to_path_buf();
    let counts: Vec<String> = jsonl(&dir, "seen.jsonl")
        .iter()
        .map(|r| r["attributes"]["ApproximateReceiveCount"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(counts, ["1", "2"], "nak with delay, then the broker's redelivery");
    until("the message to be acked after the DLQ write", WAIT, || async {
        js_unfinished(&js, &stream, "gust-tests").await == 0
    })
    .await;
    std::fs::write(dir.join("fixed"), "").unwrap();
    redrive(&dir, "sub").await;
    wait_for("the redriven message to succeed", WAIT, || {
        jsonl(&dir, "ok.jsonl").len() == 1
    })
    .await;
    let ok = &jsonl(&dir, "ok.jsonl")[0];
    assert_eq!(ok["body"], r#"{"currency":"USD"}"#);
    assert_eq!(ok["messageId"], format!("{stream}:1"));
    app.stop().await;
    js_cleanup(NATS, &stream).await;
}

#[tokio::test]
async fn jetstream_kill_9_of_gust_mid_run_loses_nothing() {
    const N: u32 = 400;
    let (stream, subj) = js_names();
    let js = js_stream(NATS, &stream, &format!("{subj}.>")).await;
    for n in 0..N {
        js_publish(&js, &format!("{subj}.n"), json!({ "n": n }).to_string()).await;
    }
    // A short AckWait (the visibility timeout): what the killed Gust held is redelivered soon.
    let app = source_app(
        "src-js-kill",
        ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2\nvisibility_timeout = 6",
        &js_source(NATS, &stream, &format!("{subj}.>")),
    );
    let (report, gust, _state) = kill_9_loses_nothing(app.path(), N).await;
    eprintln!("jetstream crash safety: {report}");
    until("the consumer to have nothing unfinished", WAIT, || async {
        js_unfinished(&js, &stream, "gust-tests").await == 0
    })
    .await;
    drop(gust);
    js_cleanup(NATS, &stream).await;
}

#[tokio::test]
async fn jetstream_restart_mid_run_loses_nothing_and_gust_starts_while_it_is_down() {
    let mut broker = Private::new("nats-server");
    let (stream, subj) = js_names();
    let app = TestApp::start_dir(source_app(
        "src-js-restart",
        ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2\nvisibility_timeout = 6",
        &js_source(&broker.url(), &stream, &format!("{subj}.>")),
    ))
    .await;
    let s = wait_state(&app, "sub", "reconnecting").await;
    assert!(s["source"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
    broker.start().await;
    wait_state(&app, "sub", "connected").await;
    let dir = app.dir.path().to_path_buf();
    let js = js_stream(&broker.url(), &stream, &format!("{subj}.>")).await;
    for n in 0..200u32 {
        js_publish(&js, &format!("{subj}.n"), json!({ "n": n }).to_string()).await;
    }
    wait_for("deliveries to be under way", WAIT, || delivered_ids(&dir).len() >= 30).await;
    broker.kill();
    let before = delivered_ids(&dir).len();
    assert!(
        before < 200,
        "the broker died after every delivery; the test proved nothing"
    );
    wait_state(&app, "sub", "reconnecting").await;
    broker.start().await;
    wait_state(&app, "sub", "connected").await;
    let js = js_stream(&broker.url(), &stream, &format!("{subj}.>")).await;
    for n in 200..400u32 {
        js_publish(&js, &format!("{subj}.n"), json!({ "n": n }).to_string()).await;
    }
    wait_for("every message to be delivered", Duration::from_secs(90), || {
        delivered_ids(&dir).len() == 400
    })
    .await;
    let ids = delivered_ids(&dir);
    let extra: usize = ids.values().map(|c| c - 1).sum();
    eprintln!("jetstream restart: 400 messages, {before} delivered before the broker was killed; {extra} duplicate deliveries");
    until("nothing unfinished after the restart", WAIT, || async {
        js_unfinished(&js, &stream, "gust-tests").await == 0
    })
    .await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Core NATS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn core_nats_messages_reach_a_function_at_most_once() {
    let subject = unique("orders").replace('-', "_") + ".created";
    let app = TestApp::start_dir(source_app(
        "src-nats",
        RECORDER,
        "batch_size = 10",
        &format!(r#"{{ type = "nats", url = "{NATS}", subject = "{subject}", queue_group = "invoices" }}"#),
    ))
    .await;
    let s = wait_state(&app, "sub", "connected").await;
    assert_eq!(s["source"]["guarantee"], "at-most-once", "{s}");
    let c = async_nats::connect(NATS).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("ce-type", "order.created");
    c.publish_with_headers(subject.clone(), headers, r#"{"order":3}"#.into())
        .await
        .unwrap();
    c.flush().await.unwrap();
    let dir: PathBuf = app.dir.path().to_path_buf();
    wait_for("the message to be delivered", WAIT, || {
        jsonl(&dir, "out.jsonl").len() == 1
    })
    .await;
    let r = &jsonl(&dir, "out.jsonl")[0]["record"];
    assert_eq!(r["body"], r#"{"order":3}"#);
    assert_eq!(r["eventSource"], "gust:nats");
    assert_eq!(attr(r, "ce-type"), "order.created");
    assert_eq!(attr(r, "ce-subject"), subject);
    app.stop().await;
}
