//! Events end to end: publishing in every CloudEvents mode, fan-out and filters, delivery
//! through real Node functions with retries, partial batch failure, dead letters and redrive,
//! failures no retry can fix dead-lettered at once,
//! deduplication, maximum age, visibility, back-pressure, asynchronous invocation, bad input,
//! and no loss across a `kill -9` of `gust up`.
//!
//! Functions record what they receive by appending JSON lines to a file next to their code;
//! tests read that file and poll (never fixed sleeps for correctness).

use crate::support::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const BATCH: &str = "application/cloudevents-batch+json";
const STRUCTURED: &str = "application/cloudevents+json";

/// Records every record it gets into `$TAG.jsonl` (default `out.jsonl`) and succeeds.
const RECORDER: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, (process.env.TAG || 'out') + '.jsonl');
exports.handler = async (event) => {
  const lines = event.Records.map((r) => JSON.stringify({ batch: event.Records.length, record: r }));
  fs.appendFileSync(OUT, lines.join('\n') + '\n');
  return {};
};
"#;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls an asynchronous `check` until it holds or `timeout` passes.
async fn until<F, Fut>(what: &str, timeout: Duration, mut check: F)
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The complete JSON lines of `file` in `dir` (a line still being written is left out).
fn lines_in(dir: &Path, file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
    complete.lines().filter(|l| !l.trim().is_empty()).map(json).collect()
}

fn lines(app: &TestApp, file: &str) -> Vec<Value> {
    lines_in(app.dir.path(), file)
}

/// The SQS records a RECORDER function received.
fn records(app: &TestApp, file: &str) -> Vec<Value> {
    lines(app, file).into_iter().map(|l| l["record"].clone()).collect()
}

fn attr(record: &Value, name: &str) -> String {
    record["messageAttributes"][name]["stringValue"]
        .as_str()
        .unwrap_or_else(|| panic!("no message attribute {name} in {record}"))
        .to_string()
}

fn ce_ids(records: &[Value]) -> BTreeSet<String> {
    records.iter().map(|r| attr(r, "ce-id")).collect()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { json(&text) };
    (status, body)
}

async fn publish_to(
    app: &TestApp,
    url: String,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = app.client.post(url.clone()).body(body);
    // On the admin address, publishing is an operator action (`gust publish`).
    if url.starts_with(&app.admin("/")) {
        req = req.bearer_auth(app.operator_token());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req).await
}

/// `POST /events/{topic}` on the gateway.
async fn publish(app: &TestApp, topic: &str, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> (u16, Value) {
    publish_to(app, app.url(&format!("/events/{topic}")), headers, body).await
}

/// A structured CloudEvent.
fn ce(id: &str, event_type: &str, data: Value) -> Value {
    json!({ "specversion": "1.0", "id": id, "source": "/tests", "type": event_type, "data": data })
}

async fn publish_batch(app: &TestApp, topic: &str, events: &[Value]) -> (u16, Value) {
    publish(
        app,
        topic,
        &[("content-type", BATCH)],
        Value::Array(events.to_vec()).to_string(),
    )
    .await
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let (status, body) = send(app.op(reqwest::Method::GET, path)).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The entry of `GET /gust/v1/subscriptions` for `name`.
async fn subscription(app: &TestApp, name: &str) -> Value {
    let all = admin_get(app, "/gust/v1/subscriptions").await;
    all["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no subscription {name} in {all}"))
        .clone()
}

async fn backlog(app: &TestApp, name: &str) -> u64 {
    subscription(app, name).await["backlog"].as_u64().unwrap()
}

async fn wait_backlog_empty(app: &TestApp, name: &str) {
    until(&format!("{name}'s backlog to empty"), WAIT, || async move {
        backlog(app, name).await == 0
    })
    .await;
}

async fn dead_letters(app: &TestApp, sub: &str) -> Vec<Value> {
    admin_get(app, &format!("/gust/v1/dlq?subscription={sub}")).await["dead_letters"]
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_dead_letters(app: &TestApp, sub: &str, n: usize) -> Vec<Value> {
    until(&format!("{n} dead letters in {sub}"), WAIT, || async move {
        dead_letters(app, sub).await.len() >= n
    })
    .await;
    let list = dead_letters(app, sub).await;
    assert_eq!(list.len(), n, "{list:?}");
    list
}

/// Counts how many times each value of `key` occurs in `lines`.
fn count_by(lines: &[Value], key: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in lines {
        let k = l[key]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| l[key].to_string());
        *out.entry(k).or_default() += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1. publish -> deliver -> ack
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn published_events_are_delivered_in_sqs_shape_and_acknowledged() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-basic"
[functions.sink]
runtime = "nodejs20.x"
handler = "recorder.handler"
[topics.orders]
public = true
[[subscriptions]]
name = "sink-orders"
topic = "orders"
function = "sink"
"#,
        ),
        ("recorder.js", RECORDER),
    ])
    .await;

    // Plain JSON on the gateway: Gust fills in the attributes.
    let (status, v) = publish(
        &app,
        "orders",
        &[
            ("content-type", "application/json"),
            ("x-event-type", "order.created"),
            ("idempotency-key", "ord-1"),
        ],
        r#"{"order":1,"total":9.5}"#,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        v,
        json!({"topic": "orders", "events": [{"id": "ord-1", "duplicate": false, "deliveries": 1}]})
    );
    let dir = app.dir.path().to_path_buf();
    wait_for("the first delivery", WAIT, || !lines_in(&dir, "out.jsonl").is_empty()).await;
    let r = records(&app, "out.jsonl").remove(0);
    assert_eq!(r["body"], r#"{"order":1,"total":9.5}"#, "{r}");
    assert_eq!(r["eventSource"], "aws:sqs");
    assert!(r["eventSourceARN"].as_str().unwrap().ends_with(":orders"), "{r}");
    assert!(r["messageId"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(attr(&r, "ce-type"), "order.created");
    assert_eq!(attr(&r, "ce-id"), "ord-1");
    assert_eq!(attr(&r, "ce-source"), "/gust/http");
    assert_eq!(attr(&r, "ce-specversion"), "1.0");

    // Binary mode on the admin API, with an extension attribute.
    let (status, v) = publish_to(
        &app,
        app.admin("/gust/v1/events/orders"),
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "ord-2"),
            ("ce-source", "/shop/orders"),
            ("ce-type", "order.paid"),
            ("ce-region", "eu"),
            ("content-type", "application/json"),
        ],
        r#"{"order":2}"#,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["events"][0]["id"], "ord-2");
    assert_eq!(v["events"][0]["deliveries"], 1);
    wait_for("the second delivery", WAIT, || lines_in(&dir, "out.jsonl").len() >= 2).await;
    let r = records(&app, "out.jsonl").remove(1);
    assert_eq!(r["body"], r#"{"order":2}"#);
    assert_eq!(attr(&r, "ce-type"), "order.paid");
    assert_eq!(attr(&r, "ce-id"), "ord-2");
    assert_eq!(attr(&r, "ce-source"), "/shop/orders");
    assert_eq!(attr(&r, "ce-region"), "eu");
    assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");

    wait_backlog_empty(&app, "sink-orders").await;
    let s = subscription(&app, "sink-orders").await;
    assert_eq!(s["dead_letters"], 0, "{s}");
    assert_eq!(s["topic"], "orders");
    assert_eq!(s["function"], "sink");
    assert_eq!(records(&app, "out.jsonl").len(), 2, "each event once");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. fan-out
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_subscription_of_a_topic_gets_every_event() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-fanout"
[functions.billing]
runtime = "nodejs20.x"
handler = "recorder.handler"
environment = { TAG = "billing" }
[functions.shipping]
runtime = "nodejs20.x"
handler = "recorder.handler"
environment = { TAG = "shipping" }
[topics.orders]
public = true
[[subscriptions]]
name = "billing"
topic = "orders"
function = "billing"
[[subscriptions]]
name = "shipping"
topic = "orders"
function = "shipping"
"#,
        ),
        ("recorder.js", RECORDER),
    ])
    .await;
    let events: Vec<Value> = (0..5)
        .map(|i| ce(&format!("o-{i}"), "order.created", json!({ "n": i })))
        .collect();
    let (status, v) = publish_batch(&app, "orders", &events).await;
    assert_eq!(status, 202, "{v}");
    for e in v["events"].as_array().unwrap() {
        assert_eq!(e["deliveries"], 2, "{v}");
        assert_eq!(e["duplicate"], false, "{v}");
    }
    let want: BTreeSet<String> = (0..5).map(|i| format!("o-{i}")).collect();
    for tag in ["billing", "shipping"] {
        let file = format!("{tag}.jsonl");
        let dir = app.dir.path().to_path_buf();
        wait_for(&format!("{tag} to get every event"), WAIT, || {
            lines_in(&dir, &file).len() >= 5
        })
        .await;
        wait_backlog_empty(&app, tag).await;
        let got = records(&app, &file);
        assert_eq!(got.len(), 5, "{tag}: each event exactly once");
        assert_eq!(ce_ids(&got), want, "{tag}");
        for r in &got {
            let n = attr(r, "ce-id")[2..].parse::<i64>().unwrap();
            assert_eq!(json(r["body"].as_str().unwrap()), json!({ "n": n }));
        }
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. filters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn type_and_attribute_filters_select_events() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-filters"
[functions.created]
runtime = "nodejs20.x"
handler = "recorder.handler"
environment = { TAG = "created" }
[functions.europe]
runtime = "nodejs20.x"
handler = "recorder.handler"
environment = { TAG = "europe" }
[functions.eu-created]
runtime = "nodejs20.x"
handler = "recorder.handler"
environment = { TAG = "eu-created" }
[topics.orders]
public = true
[[subscriptions]]
name = "created"
topic = "orders"
function = "created"
types = ["order.created"]
[[subscriptions]]
name = "europe"
topic = "orders"
function = "europe"
attributes = { region = ["eu", "uk"] }
[[subscriptions]]
name = "eu-created"
topic = "orders"
function = "eu-created"
types = ["order.created"]
attributes = { region = ["eu"] }
"#,
        ),
        ("recorder.js", RECORDER),
    ])
    .await;
    // (id, type, region, deliveries expected)
    let cases: [(&str, &str, Option<&str>, u64); 5] = [
        ("e1", "order.created", Some("eu"), 3),
        ("e2", "order.created", Some("us"), 1),
        ("e3", "order.paid", Some("eu"), 1),
        ("e4", "order.paid", None, 0),
        ("e5", "order.created", Some("uk"), 2),
    ];
    for (id, ty, region, deliveries) in cases {
        let mut headers = vec![
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", "/tests"),
            ("ce-type", ty),
            ("content-type", "application/json"),
        ];
        if let Some(r) = region {
            headers.push(("ce-region", r));
        }
        let (status, v) = publish(&app, "orders", &headers, format!(r#"{{"id":"{id}"}}"#)).await;
        assert_eq!(status, 202, "{v}");
        assert_eq!(v["events"][0]["deliveries"], deliveries, "{id}: {v}");
    }
    let expect: [(&str, &[&str]); 3] = [
        ("created", &["e1", "e2", "e5"]),
        ("europe", &["e1", "e3", "e5"]),
        ("eu-created", &["e1"]),
    ];
    for (tag, ids) in expect {
        let file = format!("{tag}.jsonl");
        let dir = app.dir.path().to_path_buf();
        wait_for(&format!("{tag}'s deliveries"), WAIT, || {
            lines_in(&dir, &file).len() >= ids.len()
        })
        .await;
        wait_backlog_empty(&app, tag).await;
        let got = records(&app, &file);
        assert_eq!(got.len(), ids.len(), "{tag}: {got:?}");
        let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        assert_eq!(ce_ids(&got), want, "{tag}");
        if tag != "created" {
            for r in &got {
                assert!(["eu", "uk"].contains(&attr(r, "ce-region").as_str()));
            }
        }
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. retry then success
// ---------------------------------------------------------------------------------------------

/// Fails the first attempt of each message (remembered in a file of its own), then succeeds.
const FLAKY: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, 'out.jsonl');
exports.handler = async (event) => {
  for (const r of event.Records) {
    const mark = path.join(__dirname, 'seen-' + r.messageId);
    const first = !fs.existsSync(mark);
    fs.appendFileSync(OUT, JSON.stringify({
      id: r.messageId, body: r.body, count: r.attributes.ApproximateReceiveCount, first,
    }) + '\n');
    if (first) {
      fs.writeFileSync(mark, '1');
      throw new Error('first attempt fails');
    }
  }
  return {};
};
"#;

#[tokio::test]
async fn a_failed_delivery_is_retried_and_then_succeeds() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-retry"
[functions.flaky]
runtime = "nodejs20.x"
handler = "flaky.handler"
[topics.jobs]
public = true
[[subscriptions]]
name = "flaky"
topic = "jobs"
function = "flaky"
batch_size = 1
retry_delay = 0.2
"#,
        ),
        ("flaky.js", FLAKY),
    ])
    .await;
    let (status, v) = publish(&app, "jobs", &[("content-type", "application/json")], r#"{"job":42}"#).await;
    assert_eq!(status, 202, "{v}");
    let dir = app.dir.path().to_path_buf();
    wait_for("the retry", WAIT, || lines_in(&dir, "out.jsonl").len() >= 2).await;
    wait_backlog_empty(&app, "flaky").await;
    let got = lines(&app, "out.jsonl");
    assert_eq!(got.len(), 2, "one failure and one success: {got:?}");
    assert_eq!(got[0]["id"], got[1]["id"], "the same message");
    assert_eq!(
        (got[0]["first"].clone(), got[0]["count"].clone()),
        (json!(true), json!("1"))
    );
    assert_eq!(
        (got[1]["first"].clone(), got[1]["count"].clone()),
        (json!(false), json!("2"))
    );
    assert_eq!(got[1]["body"], r#"{"job":42}"#);
    assert!(dead_letters(&app, "flaky").await.is_empty());
    assert_eq!(subscription(&app, "flaky").await["dead_letters"], 0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. dead letters, redrive and purge
// ---------------------------------------------------------------------------------------------

/// Fails until a `fixed` file exists next to it.
const NEEDS_FIX: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, 'out.jsonl');
exports.handler = async (event) => {
  for (const r of event.Records) {
    const fixed = fs.existsSync(path.join(__dirname, 'fixed'));
    fs.appendFileSync(OUT, JSON.stringify({
      id: r.messageId, ceid: r.messageAttributes['ce-id'].stringValue,
      count: r.attributes.ApproximateReceiveCount, fixed,
    }) + '\n');
    if (!fixed) throw new Error('downstream unavailable');
  }
  return {};
};
"#;

#[tokio::test]
async fn exhausted_retries_dead_letter_then_redrive_delivers_and_purge_drops() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-dlq"
[functions.fragile]
runtime = "nodejs20.x"
handler = "fragile.handler"
[topics.jobs]
public = true
[[subscriptions]]
name = "fragile"
topic = "jobs"
function = "fragile"
batch_size = 1
max_attempts = 2
retry_delay = 0.2
"#,
        ),
        ("fragile.js", NEEDS_FIX),
    ])
    .await;
    for id in ["job-a", "job-b"] {
        let (status, v) = publish_batch(&app, "jobs", &[ce(id, "job.requested", json!({ "job": id }))]).await;
        assert_eq!(status, 202, "{v}");
    }
    let dl = wait_dead_letters(&app, "fragile", 2).await;
    for d in &dl {
        assert_eq!(d["subscription"], "fragile");
        assert_eq!(d["reason"], "MaxAttemptsExceeded", "{d}");
        assert_eq!(d["attempts"], 2, "{d}");
        let err = d["last_error"].as_str().unwrap();
        assert!(err.contains("downstream unavailable"), "{d}");
        assert!(d["failed_at"].is_string(), "{d}");
        assert_eq!(d["event"]["type"], "job.requested");
        assert_eq!(d["event"]["source"], "/tests");
        assert!(d["seq"].is_i64(), "{d}");
    }
    let by_id: HashMap<String, Value> = dl
        .iter()
        .map(|d| (d["event"]["id"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    let a = &by_id["job-a"];
    let b = &by_id["job-b"];
    assert_eq!(json(a["event"]["data"].as_str().unwrap()), json!({"job": "job-a"}));
    // Exactly max_attempts invocations each, none after dead-lettering.
    let tries = count_by(&lines(&app, "out.jsonl"), "ceid");
    assert_eq!(tries.get("job-a"), Some(&2), "{tries:?}");
    assert_eq!(tries.get("job-b"), Some(&2), "{tries:?}");
    let s = subscription(&app, "fragile").await;
    assert_eq!((s["backlog"].clone(), s["dead_letters"].clone()), (json!(0), json!(2)));
    let one = admin_get(&app, &format!("/gust/v1/dlq/fragile/{}", a["seq"])).await;
    assert_eq!(one["message_id"], a["message_id"]);

    // Fix the cause, redrive one dead letter: it is delivered (as a fresh first receive).
    std::fs::write(app.dir.path().join("fixed"), "").unwrap();
    let (status, v) = send(app.op(
        reqwest::Method::POST,
        &format!("/gust/v1/dlq/fragile/redrive?seq={}", a["seq"]),
    ))
    .await;
    assert_eq!((status, v), (200, json!({"redriven": 1})));
    let dir = app.dir.path().to_path_buf();
    wait_for("the redriven delivery", WAIT, || {
        lines_in(&dir, "out.jsonl")
            .iter()
            .any(|l| l["ceid"] == "job-a" && l["fixed"] == true)
    })
    .await;
    wait_backlog_empty(&app, "fragile").await;
    let ok: Vec<Value> = lines(&app, "out.jsonl")
        .into_iter()
        .filter(|l| l["fixed"] == true)
        .collect();
    assert_eq!(ok.len(), 1, "only the redriven one: {ok:?}");
    assert_eq!(ok[0]["id"], a["message_id"]);
    assert_eq!(ok[0]["count"], "1");
    let left = dead_letters(&app, "fragile").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["seq"], b["seq"]);

    // Purge the other one: gone, and never delivered.
    let (status, v) = send(app.op(reqwest::Method::DELETE, "/gust/v1/dlq/fragile")).await;
    assert_eq!((status, v), (200, json!({"purged": 1})));
    assert!(dead_letters(&app, "fragile").await.is_empty());
    let s = subscription(&app, "fragile").await;
    assert_eq!((s["backlog"].clone(), s["dead_letters"].clone()), (json!(0), json!(0)));
    let (status, v) = send(app.op(reqwest::Method::POST, "/gust/v1/dlq/fragile/redrive")).await;
    assert_eq!((status, v), (200, json!({"redriven": 0})));
    let (status, _) = send(app.op(reqwest::Method::POST, "/gust/v1/dlq/nope/redrive")).await;
    assert_eq!(status, 404);
    assert_eq!(count_by(&lines(&app, "out.jsonl"), "ceid").get("job-b"), Some(&2));
    app.stop().await;
}

/// Records each attempt, then answers with more than Lambda's 6 MB response limit.
const TOO_LARGE: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  fs.appendFileSync(path.join(__dirname, 'huge.jsonl'), JSON.stringify({ count: event.Records[0].attributes.ApproximateReceiveCount }) + '\n');
  return { big: 'x'.repeat(7 * 1024 * 1024) };
};
"#;

/// Records each attempt, then throws.
const THROWS: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  fs.appendFileSync(path.join(__dirname, 'throws.jsonl'), JSON.stringify({ count: event.Records[0].attributes.ApproximateReceiveCount }) + '\n');
  throw new Error('downstream unavailable');
};
"#;

#[tokio::test]
async fn a_failure_no_retry_can_fix_is_dead_lettered_at_once_and_a_thrown_error_is_retried() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-nonretryable"
[functions.huge]
runtime = "nodejs20.x"
handler = "huge.handler"
[functions.throws]
runtime = "nodejs20.x"
handler = "throws.handler"
[topics.jobs]
public = true
[[subscriptions]]
name = "huge"
topic = "jobs"
function = "huge"
batch_size = 1
max_attempts = 5
retry_delay = 0.1
[[subscriptions]]
name = "throws"
topic = "jobs"
function = "throws"
batch_size = 1
max_attempts = 3
retry_delay = 0.1
"#,
        ),
        ("huge.js", TOO_LARGE),
        ("throws.js", THROWS),
    ])
    .await;
    let (status, v) = publish_batch(&app, "jobs", &[ce("job-1", "job.requested", json!({ "job": 1 }))]).await;
    assert_eq!(status, 202, "{v}");

    // The thrown error is retried up to max_attempts, as before.
    let thrown = wait_dead_letters(&app, "throws", 1).await;
    assert_eq!(thrown[0]["reason"], "MaxAttemptsExceeded", "{}", thrown[0]);
    assert_eq!(thrown[0]["attempts"], 3, "{}", thrown[0]);
    assert_eq!(lines(&app, "throws.jsonl").len(), 3);

    // The response over 6 MB went to the DLQ on its first attempt, though 5 were allowed:
    // by now (three attempts of the other subscription later) a retry would have run.
    let huge = wait_dead_letters(&app, "huge", 1).await;
    let d = &huge[0];
    assert_eq!(d["reason"], "NonRetryable: FunctionResponseTooLarge", "{d}");
    assert_eq!(d["attempts"], 1, "{d}");
    let err = d["last_error"].as_str().unwrap();
    assert!(err.starts_with("FunctionResponseTooLarge: "), "{d}");
    assert_eq!(d["event"]["id"], "job-1", "{d}");
    let tries = lines(&app, "huge.jsonl");
    assert_eq!(tries, vec![json!({ "count": "1" })], "exactly one attempt");
    let s = subscription(&app, "huge").await;
    assert_eq!((s["backlog"].clone(), s["dead_letters"].clone()), (json!(0), json!(1)));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. partial batch failure
// ---------------------------------------------------------------------------------------------

/// Reports records whose body has `"fail": true` as failed on their first receive.
const PARTIAL: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, 'out.jsonl');
exports.handler = async (event) => {
  const failures = [];
  for (const r of event.Records) {
    const body = JSON.parse(r.body);
    const count = r.attributes.ApproximateReceiveCount;
    fs.appendFileSync(OUT, JSON.stringify({ id: r.messageId, n: body.n, count, batch: event.Records.length }) + '\n');
    if (body.fail && count === '1') failures.push({ itemIdentifier: r.messageId });
  }
  return { batchItemFailures: failures };
};
"#;

#[tokio::test]
async fn only_the_records_reported_as_failed_are_redelivered() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-partial"
[functions.partial]
runtime = "nodejs20.x"
handler = "partial.handler"
[topics.items]
public = true
[[subscriptions]]
name = "partial"
topic = "items"
function = "partial"
batch_size = 10
report_batch_item_failures = true
retry_delay = 0.2
"#,
        ),
        ("partial.js", PARTIAL),
    ])
    .await;
    let failing: BTreeSet<i64> = [0, 3, 7].into();
    let events: Vec<Value> = (0..10)
        .map(|n| {
            ce(
                &format!("i-{n}"),
                "item",
                json!({ "n": n, "fail": failing.contains(&n) }),
            )
        })
        .collect();
    let (status, v) = publish_batch(&app, "items", &events).await;
    assert_eq!(status, 202, "{v}");
    let dir = app.dir.path().to_path_buf();
    wait_for("the failed records' redelivery", WAIT, || {
        lines_in(&dir, "out.jsonl").len() >= 10 + failing.len()
    })
    .await;
    wait_backlog_empty(&app, "partial").await;
    let got = lines(&app, "out.jsonl");
    let first: Vec<&Value> = got.iter().filter(|l| l["count"] == "1").collect();
    assert_eq!(first.len(), 10, "{got:?}");
    assert!(
        first.iter().all(|l| l["batch"] == 10),
        "one publish of ten is one batch of ten: {got:?}"
    );
    let per_id = count_by(&got, "id");
    assert_eq!(per_id.len(), 10);
    for l in &got {
        let n = l["n"].as_i64().unwrap();
        let want = if failing.contains(&n) { 2 } else { 1 };
        assert_eq!(per_id[l["id"].as_str().unwrap()], want, "record {n}: {got:?}");
        if l["count"] != "1" {
            assert_eq!(l["count"], "2");
            assert!(failing.contains(&n), "only failed records come back: {got:?}");
        }
    }
    assert!(dead_letters(&app, "partial").await.is_empty());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. deduplication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn repeated_idempotency_keys_and_event_ids_are_delivered_once() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-dedup"
[functions.sink]
runtime = "nodejs20.x"
handler = "recorder.handler"
[topics.payments]
public = true
[[subscriptions]]
name = "sink"
topic = "payments"
function = "sink"
"#,
        ),
        ("recorder.js", RECORDER),
    ])
    .await;
    let plain = [("content-type", "application/json"), ("idempotency-key", "pay-1")];
    let (s1, v1) = publish(&app, "payments", &plain, r#"{"amount":10}"#).await;
    let (s2, v2) = publish(&app, "payments", &plain, r#"{"amount":10}"#).await;
    assert_eq!((s1, s2), (202, 202), "{v1} {v2}");
    assert_eq!(
        v1["events"][0],
        json!({"id": "pay-1", "duplicate": false, "deliveries": 1})
    );
    assert_eq!(
        v2["events"][0],
        json!({"id": "pay-1", "duplicate": true, "deliveries": 0})
    );

    let event = ce("pay-2", "payment.made", json!({"amount": 20})).to_string();
    let (s1, v1) = publish(&app, "payments", &[("content-type", STRUCTURED)], event.clone()).await;
    let (s2, v2) = publish(&app, "payments", &[("content-type", STRUCTURED)], event).await;
    assert_eq!((s1, s2), (202, 202), "{v1} {v2}");
    assert_eq!(v1["events"][0]["duplicate"], false);
    assert_eq!(
        v2["events"][0],
        json!({"id": "pay-2", "duplicate": true, "deliveries": 0})
    );

    // The same id twice in one batch: the second is the duplicate.
    let (s, v) = publish_batch(
        &app,
        "payments",
        &[
            ce("pay-3", "payment.made", json!({"amount": 30})),
            ce("pay-3", "payment.made", json!({"amount": 30})),
        ],
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["events"][0]["duplicate"], false, "{v}");
    assert_eq!(v["events"][1]["duplicate"], true, "{v}");

    let dir = app.dir.path().to_path_buf();
    wait_for("three deliveries", WAIT, || lines_in(&dir, "out.jsonl").len() >= 3).await;
    wait_backlog_empty(&app, "sink").await;
    let got = records(&app, "out.jsonl");
    let per_id = count_by(
        &got.iter()
            .map(|r| json!({ "id": attr(r, "ce-id") }))
            .collect::<Vec<_>>(),
        "id",
    );
    assert_eq!(
        per_id,
        BTreeMap::from([
            ("pay-1".to_string(), 1),
            ("pay-2".to_string(), 1),
            ("pay-3".to_string(), 1)
        ]),
        "{got:?}"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 8. maximum event age
// ---------------------------------------------------------------------------------------------

const ALWAYS_FAILS: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, 'out.jsonl');
exports.handler = async (event, context) => {
  fs.appendFileSync(OUT, JSON.stringify({ t: Date.now(), request: context.awsRequestId, event }) + '\n');
  throw new Error('always fails');
};
"#;

/// Publishes one event to a subscriber that always fails, with `max_event_age` 1 s; returns the
/// app, its dead letter and how many times the function ran.
async fn expired_dead_letter() -> (TestApp, Value, usize) {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-age"
[functions.broken]
runtime = "nodejs20.x"
handler = "broken.handler"
[topics.jobs]
public = true
[[subscriptions]]
name = "broken"
topic = "jobs"
function = "broken"
batch_size = 1
max_attempts = 50
max_event_age = 1
retry_delay = 1
"#,
        ),
        ("broken.js", ALWAYS_FAILS),
    ])
    .await;
    let (status, v) = publish(
        &app,
        "jobs",
        &[("content-type", "application/json")],
        r#"{"job":"old"}"#,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let d = wait_dead_letters(&app, "broken", 1).await.remove(0);
    let tries = lines(&app, "out.jsonl").len();
    (app, d, tries)
}

#[tokio::test]
async fn records_older_than_max_event_age_are_dead_lettered() {
    let (app, d, tries) = expired_dead_letter().await;
    assert_eq!(d["reason"], "MaxEventAgeExceeded", "{d}");
    assert!(d["last_error"].as_str().unwrap().contains("max_event_age"), "{d}");
    assert_eq!(d["event"]["data"], r#"{"job":"old"}"#);
    assert!(
        (1..50).contains(&tries),
        "it failed at least once and stopped long before max_attempts: {tries}"
    );
    assert_eq!(backlog(&app, "broken").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_dead_letter_reports_the_attempts_actually_made() {
    let (app, d, tries) = expired_dead_letter().await;
    assert_eq!(d["reason"], "MaxEventAgeExceeded", "{d}");
    assert_eq!(
        d["attempts"], tries,
        "the function ran {tries} times; the dead letter says {}",
        d["attempts"]
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 9. visibility: no message is processed twice at once
// ---------------------------------------------------------------------------------------------

const SLOW: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, 'out.jsonl');
const MS = Number(process.env.SLEEP_MS || 1000);
exports.handler = async (event) => {
  for (const r of event.Records) {
    const count = r.attributes.ApproximateReceiveCount;
    fs.appendFileSync(OUT, JSON.stringify({ id: r.messageId, ev: 'start', t: Date.now(), count, pid: process.pid }) + '\n');
    await new Promise((res) => setTimeout(res, MS));
    fs.appendFileSync(OUT, JSON.stringify({ id: r.messageId, ev: 'end', t: Date.now(), count, pid: process.pid }) + '\n');
  }
  return {};
};
"#;

/// (message id, start ms, end ms) for every handled record; panics on a start without an end.
fn intervals(lines: &[Value]) -> Vec<(String, i64, i64)> {
    let mut open: HashMap<(String, i64), i64> = HashMap::new();
    let mut out = Vec::new();
    for l in lines {
        let key = (l["id"].as_str().unwrap().to_string(), l["pid"].as_i64().unwrap());
        let t = l["t"].as_i64().unwrap();
        if l["ev"] == "start" {
            assert!(open.insert(key, t).is_none(), "{lines:?}");
        } else {
            let start = open.remove(&key).expect("an end has a start");
            out.push((key.0, start, t));
        }
    }
    assert!(open.is_empty(), "unfinished invocations: {open:?}");
    out
}

/// The largest number of intervals open at the same time.
fn max_overlap(intervals: &[(String, i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (_, s, e) in intervals {
        edges.push((*s, 1));
        edges.push((*e, -1));
    }
    // Ends sort before starts at the same millisecond.
    edges.sort();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

#[tokio::test]
async fn a_slow_handler_never_processes_a_message_twice_at_once() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-visibility"
[functions.slow]
runtime = "nodejs20.x"
handler = "slow.handler"
timeout = 2
[topics.work]
public = true
[[subscriptions]]
name = "slow"
topic = "work"
function = "slow"
batch_size = 1
max_concurrency = 2
visibility_timeout = 2.5
"#,
        ),
        ("slow.js", SLOW),
    ])
    .await;
    let events: Vec<Value> = (0..6)
        .map(|n| ce(&format!("w-{n}"), "work", json!({ "n": n })))
        .collect();
    let (status, v) = publish_batch(&app, "work", &events).await;
    assert_eq!(status, 202, "{v}");
    let dir = app.dir.path().to_path_buf();
    wait_for("every message to be handled", WAIT, || {
        let l = lines_in(&dir, "out.jsonl");
        count_by(
            &l.iter().filter(|x| x["ev"] == "end").cloned().collect::<Vec<_>>(),
            "id",
        )
        .len()
            >= 6
    })
    .await;
    wait_backlog_empty(&app, "slow").await;
    let got = lines(&app, "out.jsonl");
    let spans = intervals(&got);
    let mut by_id: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (id, s, e) in &spans {
        by_id.entry(id).or_default().push((*s, *e));
    }
    for (id, list) in &by_id {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                assert!(
                    a.1 <= b.0 || b.1 <= a.0,
                    "message {id} was processed by two invocations at once: {list:?}"
                );
            }
        }
        assert_eq!(list.len(), 1, "message {id} delivered more than once: {got:?}");
    }
    assert_eq!(by_id.len(), 6);
    assert!(max_overlap(&spans) <= 2, "max_concurrency 2 was exceeded: {spans:?}");
    assert!(got.iter().all(|l| l["count"] == "1"), "{got:?}");
    assert!(dead_letters(&app, "slow").await.is_empty());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 10. back-pressure
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_function_at_its_limit_slows_delivery_without_failing_it() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-backpressure"
[functions.narrow]
runtime = "nodejs20.x"
handler = "slow.handler"
timeout = 5
environment = { SLEEP_MS = "200" }
scaling = { max_instances = 1, max_queue = 0 }
[topics.work]
public = true
[[subscriptions]]
name = "narrow"
topic = "work"
function = "narrow"
batch_size = 1
max_concurrency = 4
max_attempts = 2
"#,
        ),
        ("slow.js", SLOW),
    ])
    .await;
    let events: Vec<Value> = (0..8)
        .map(|n| ce(&format!("w-{n}"), "work", json!({ "n": n })))
        .collect();
    let (status, v) = publish_batch(&app, "work", &events).await;
    assert_eq!(status, 202, "{v}");
    let dir = app.dir.path().to_path_buf();
    let mut most_instances = 0;
    let invoker = app.platform().invoker.clone();
    wait_for("every message to be handled", WAIT, || {
        most_instances = most_instances.max(invoker.pool_stats("narrow").unwrap().total);
        lines_in(&dir, "out.jsonl").iter().filter(|x| x["ev"] == "end").count() >= 8
    })
    .await;
    wait_backlog_empty(&app, "narrow").await;
    assert!(most_instances <= 1, "max_instances 1: {most_instances}");
    let got = lines(&app, "out.jsonl");
    let spans = intervals(&got);
    assert_eq!(spans.len(), 8, "each message exactly once: {got:?}");
    assert_eq!(spans.iter().map(|s| &s.0).collect::<BTreeSet<_>>().len(), 8);
    assert_eq!(max_overlap(&spans), 1, "one instance: {spans:?}");
    assert!(got.iter().all(|l| l["count"] == "1"), "429s are not attempts: {got:?}");
    assert!(dead_letters(&app, "narrow").await.is_empty());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 11. asynchronous invocation
// ---------------------------------------------------------------------------------------------

const ASYNC_JOB: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, 'job.jsonl');
exports.handler = async (event, context) => {
  await new Promise((res) => setTimeout(res, 1000));
  fs.appendFileSync(OUT, JSON.stringify({ t: Date.now(), request: context.awsRequestId, event }) + '\n');
  return { ok: true };
};
"#;

async fn invoke_async(app: &TestApp, function: &str, payload: &str) -> reqwest::Response {
    app.op(
        reqwest::Method::POST,
        &format!("/2015-03-31/functions/{function}/invocations"),
    )
    .header("x-amz-invocation-type", "Event")
    .body(payload.to_string())
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn asynchronous_invocation_answers_at_once_and_dead_letters_after_three_attempts() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-async"
[functions.job]
runtime = "nodejs20.x"
handler = "job.handler"
[functions.broken]
runtime = "nodejs20.x"
handler = "broken.handler"
"#,
        ),
        ("job.js", ASYNC_JOB),
        ("broken.js", ALWAYS_FAILS),
    ])
    .await;
    let started = Instant::now();
    let r = invoke_async(&app, "job", r#"{"n":1}"#).await;
    let answered = started.elapsed();
    assert_eq!(r.status(), 202);
    let request_id = r.headers()["x-amzn-requestid"].to_str().unwrap().to_string();
    assert!(
        answered < Duration::from_millis(900),
        "202 before the 1 s handler ends: {answered:?}"
    );
    assert!(
        lines(&app, "job.jsonl").is_empty(),
        "the 202 came before the function ran to completion"
    );
    let dir = app.dir.path().to_path_buf();
    wait_for("the asynchronous run", WAIT, || !lines_in(&dir, "job.jsonl").is_empty()).await;
    let got = lines(&app, "job.jsonl");
    assert_eq!(got[0]["event"], json!({"n": 1}), "the payload as sent");
    assert_eq!(got[0]["request"], request_id.as_str());
    wait_backlog_empty(&app, "gust.async.job").await;
    assert_eq!(lines(&app, "job.jsonl").len(), 1);

    // A failing function: three attempts, then its asynchronous DLQ.
    let r = invoke_async(&app, "broken", r#"{"n":2}"#).await;
    assert_eq!(r.status(), 202);
    let dl = wait_dead_letters(&app, "gust.async.broken", 1).await;
    assert_eq!(dl[0]["reason"], "MaxAttemptsExceeded", "{}", dl[0]);
    assert_eq!(dl[0]["attempts"], 3, "{}", dl[0]);
    assert!(
        dl[0]["last_error"].as_str().unwrap().contains("always fails"),
        "{}",
        dl[0]
    );
    assert_eq!(json(dl[0]["event"]["data"].as_str().unwrap()), json!({"n": 2}));
    let tries = lines(&app, "out.jsonl");
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert!(tries.iter().all(|t| t["event"] == json!({"n": 2})));

    // Unknown functions are refused; the internal queues cannot be published to.
    let r = invoke_async(&app, "nope", "{}").await;
    assert_eq!(r.status(), 404);
    let (status, v) = publish(&app, "gust.async.job", &[("content-type", "application/json")], "{}").await;
    assert_eq!(status, 404, "{v}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 12. bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_events_are_refused_whole_and_nothing_is_stored() {
    // The subscriber always fails with a long retry delay: anything stored stays in the
    // backlog, so an empty backlog proves nothing was.
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-bad"
[functions.broken]
runtime = "nodejs20.x"
handler = "broken.handler"
[topics.orders]
public = true
[[subscriptions]]
name = "probe"
topic = "orders"
function = "broken"
retry_delay = 300
"#,
        ),
        ("broken.js", ALWAYS_FAILS),
    ])
    .await;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    let message = |v: &Value| v["error"]["message"].as_str().unwrap_or("").to_string();

    let (s, v) = publish(&app, "orders", &[("content-type", "application/json")], "{bad").await;
    assert_eq!((s, code(&v)), (400, "InvalidEvent".into()), "{v}");

    let missing_id = json!({"specversion": "1.0", "source": "/s", "type": "t", "data": {}});
    let (s, v) = publish(&app, "orders", &[("content-type", STRUCTURED)], missing_id.to_string()).await;
    assert_eq!((s, code(&v)), (400, "InvalidEvent".into()), "{v}");
    assert!(message(&v).contains("`id`"), "names the attribute: {v}");

    let (s, v) = publish(
        &app,
        "orders",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "x"),
            ("ce-type", "t"),
            ("content-type", "application/json"),
        ],
        "{}",
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidEvent".into()), "{v}");
    assert!(message(&v).contains("`source`"), "{v}");

    // One bad event refuses the whole batch.
    let (s, v) = publish_batch(&app, "orders", &[ce("ok-1", "t", json!({})), missing_id.clone()]).await;
    assert_eq!((s, code(&v)), (400, "InvalidEvent".into()), "{v}");

    let (s, v) = publish(&app, "nope", &[("content-type", "application/json")], "{}").await;
    assert_eq!((s, code(&v)), (404, "TopicNotFound".into()), "{v}");
    let (s, v) = publish_to(
        &app,
        app.admin("/gust/v1/events/nope"),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!((s, code(&v)), (404, "TopicNotFound".into()), "{v}");

    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(1024 * 1024));
    let (s, v) = publish(&app, "orders", &[("content-type", "application/json")], big.clone()).await;
    assert_eq!((s, code(&v)), (413, "EventTooLarge".into()), "{v}");
    let (s, v) = publish_to(
        &app,
        app.admin("/gust/v1/events/orders"),
        &[("content-type", "application/json")],
        big,
    )
    .await;
    assert_eq!((s, code(&v)), (413, "EventTooLarge".into()), "{v}");

    let s = subscription(&app, "probe").await;
    assert_eq!(s["backlog"], 0, "nothing was stored: {s}");
    assert_eq!(s["dead_letters"], 0, "{s}");

    // The probe works: a good event stays in the backlog.
    let (status, v) = publish(&app, "orders", &[("content-type", "application/json")], "{}").await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(backlog(&app, "probe").await, 1);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 13. crash safety through `gust up`
// ---------------------------------------------------------------------------------------------

const ID_WRITER: &str = r#"
const fs = require('fs');
const path = require('path');
const OUT = path.join(__dirname, 'ids.txt');
exports.handler = async (event) => {
  const ids = event.Records.map((r) => JSON.parse(r.body).n);
  fs.appendFileSync(OUT, ids.join('\n') + '\n');
  return {};
};
"#;

/// How many times each id appears in `ids.txt` (only complete lines).
fn delivered_ids(dir: &Path) -> HashMap<u32, usize> {
    let text = std::fs::read_to_string(dir.join("ids.txt")).unwrap_or_default();
    let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
    let mut out = HashMap::new();
    for l in complete.lines() {
        let n: u32 = l
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a line that is not an id: {l:?}"));
        *out.entry(n).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn no_accepted_event_is_lost_when_gust_is_killed_mid_delivery() {
    const EVENTS: u32 = 10_000;
    const PER_BATCH: u32 = 200;
    const BATCHES: u32 = EVENTS / PER_BATCH;
    let app = write_app(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-crash"
[functions.writer]
runtime = "nodejs20.x"
handler = "writer.handler"
timeout = 5
scaling = { max_instances = 4 }
[topics.numbers]
public = true
[[subscriptions]]
name = "writer"
topic = "numbers"
function = "writer"
batch_size = 10
"#,
        ),
        ("writer.js", ID_WRITER),
    ]);
    let state = tempfile::tempdir().unwrap();
    let dir = app.path().to_path_buf();
    let body = |b: u32| {
        let events: Vec<Value> = (b * PER_BATCH..(b + 1) * PER_BATCH)
            .map(|n| ce(&format!("n-{n}"), "number", json!({ "n": n })))
            .collect();
        Value::Array(events).to_string()
    };
    let client = reqwest::Client::new();

    let mut gust = GustUp::start(&dir, state.path()).await;
    // Publish batches one after another while deliveries run; a batch counts as accepted only
    // once it was answered 202 (the kill may land in the middle of a publish).
    let accepted = Arc::new(AtomicU32::new(0));
    let publisher = {
        let client = client.clone();
        let url = format!("{}/events/numbers", gust.gateway);
        let bodies: Vec<String> = (0..BATCHES).map(body).collect();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            for b in bodies {
                let Ok(r) = client.post(&url).header("content-type", BATCH).body(b).send().await else {
                    break; // killed: not accepted
                };
                let status = r.status().as_u16();
                let Ok(t) = r.text().await else {
                    break; // killed mid-answer: not accepted
                };
                assert_eq!(status, 202, "{t}");
                let v = json(&t);
                let events = v["events"].as_array().unwrap();
                assert_eq!(events.len(), PER_BATCH as usize);
                assert!(
                    events.iter().all(|e| e["deliveries"] == 1 && e["duplicate"] == false),
                    "{v}"
                );
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Kill once deliveries are under way and a backlog is still waiting.
    wait_for("deliveries to be under way", Duration::from_secs(60), || {
        let delivered = delivered_ids(&dir).len() as u32;
        delivered >= 200 && accepted.load(Ordering::SeqCst) * PER_BATCH >= delivered + 400
    })
    .await;
    gust.kill_9().await;
    publisher.await.unwrap();
    let accepted_before = accepted.load(Ordering::SeqCst);
    let delivered_before = delivered_ids(&dir).len();
    assert!(
        (delivered_before as u32) < accepted_before * PER_BATCH,
        "the kill came after every delivery ({delivered_before} of {}); the test proved nothing",
        accepted_before * PER_BATCH
    );

    let gust = GustUp::start(&dir, state.path()).await;
    // Publish what was not answered before the kill; a batch that was committed but not
    // answered is deduplicated by its event ids and still counts as published once.
    let mut duplicates_at_republish = 0;
    for b in accepted_before..BATCHES {
        let (status, v) = {
            let r = client
                .post(format!("{}/events/numbers", gust.gateway))
                .header("content-type", BATCH)
                .body(body(b))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), json(&r.text().await.unwrap()))
        };
        assert_eq!(status, 202, "{v}");
        duplicates_at_republish += v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["duplicate"] == true)
            .count();
    }

    let started = Instant::now();
    wait_for("every accepted event to be delivered", Duration::from_secs(60), || {
        delivered_ids(&dir).len() == EVENTS as usize
    })
    .await;
    let ids = delivered_ids(&dir);
    let missing: Vec<u32> = (0..EVENTS).filter(|n| !ids.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost events: {missing:?}");
    assert!(ids.keys().all(|n| *n < EVENTS));
    let duplicated = ids.values().filter(|c| **c > 1).count();
    let extra: usize = ids.values().map(|c| c - 1).sum();
    eprintln!(
        "crash safety: {EVENTS} events, {} batches accepted before kill -9, {delivered_before} \
         delivered before it; after restart all delivered in {:?}; {duplicated} ids delivered \
         more than once ({extra} extra deliveries, at-least-once); {duplicates_at_republish} \
         events of re-published batches were already stored",
        accepted_before,
        started.elapsed()
    );

    // Settled: nothing waits and nothing was dead-lettered.
    let c = client.clone();
    let admin = gust.admin.clone();
    let token = gust.token.clone();
    until("the backlog to empty after restart", WAIT, || {
        let c = c.clone();
        let url = format!("{admin}/gust/v1/subscriptions");
        let token = token.clone();
        async move {
            let v = json(
                &c.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
            let s = v["subscriptions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "writer")
                .unwrap()
                .clone();
            assert_eq!(s["dead_letters"], 0, "{s}");
            s["backlog"] == 0
        }
    })
    .await;
    drop(gust);
}

/// When batches wait for an instance (the subscription allows more batches in flight than the
/// function has instances, or HTTP traffic keeps them busy), the wait must not eat into the
/// visibility timeout: the record must not be claimed again while its first invocation runs.
#[tokio::test]
async fn waiting_for_an_instance_does_not_let_a_message_be_processed_twice_at_once() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "ev-visibility-wait"
[functions.slow]
runtime = "nodejs20.x"
handler = "slow.handler"
timeout = 3
environment = { SLEEP_MS = "2000" }
scaling = { max_instances = 2 }
[topics.work]
public = true
[[subscriptions]]
name = "slow"
topic = "work"
function = "slow"
batch_size = 1
max_concurrency = 3
visibility_timeout = 3.5
"#,
        ),
        ("slow.js", SLOW),
    ])
    .await;
    // Three batches, two instances: the third waits ~2 s for one, then runs 2 s; its record
    // becomes visible again 3.5 s after the claim, while that invocation is still running.
    let events: Vec<Value> = (0..3)
        .map(|n| ce(&format!("w-{n}"), "work", json!({ "n": n })))
        .collect();
    let (status, v) = publish_batch(&app, "work", &events).await;
    assert_eq!(status, 202, "{v}");
    wait_backlog_empty(&app, "slow").await;
    let dir = app.dir.path().to_path_buf();
    let invoker = app.platform().invoker.clone();
    wait_for("every invocation to end", WAIT, || {
        let l = lines_in(&dir, "out.jsonl");
        let starts = l.iter().filter(|x| x["ev"] == "start").count();
        let s = invoker.pool_stats("slow").unwrap();
        starts >= 3 && starts == l.len() - starts && s.idle == s.total && s.waiting == 0
    })
    .await;
    let got = lines(&app, "out.jsonl");
    let spans = intervals(&got);
    let mut by_id: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (id, s, e) in &spans {
        by_id.entry(id).or_default().push((*s, *e));
    }
    for (id, list) in &by_id {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                assert!(
                    a.1 <= b.0 || b.1 <= a.0,
                    "message {id} was processed by two invocations at once: {list:?}"
                );
            }
        }
        assert_eq!(
            list.len(),
            1,
            "message {id} delivered more than once without failing: {got:?}"
        );
    }
    assert_eq!(by_id.len(), 3);
    app.stop().await;
}
