//! RabbitMQ (AMQP 0-9-1) queues as event sources, end to end against the shared RabbitMQ on
//! 127.0.0.1:5672 (guest/guest) with queue and exchange names unique to each run (deleted
//! after). Messages are published by a plain AMQP client (`lapin` in the test, not Gust).
//!
//! Covered: Lambda's RabbitMQ event shape (deserialised into `aws_lambda_events`' type); acks
//! only after success; a failing handler retried, dead-lettered into Gust's DLQ, redriven
//! after the fix; the broker's own dead-letter exchange instead; `kill -9` of Gust mid-run
//! loses nothing; a connection cut by a TCP proxy the test owns (the shared server is never
//! touched) and a broker unreachable at start; a serverless.yml `rabbitmq` event.

use crate::sources::{
    dead_letters, delivered_ids, free_port, jsonl, kill_9_loses_nothing, redrive, source_app, subscription, unique,
    until, wait_state, WAIT,
};
use crate::support::*;
use aws_lambda_events::event::rabbitmq::RabbitMqEvent;
use base64::Engine;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AMQP: &str = "amqp://127.0.0.1:5672/%2f";

/// Writes every event it gets into `out.jsonl` (with its pid) and succeeds.
const RMQ_RECORDER: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  fs.appendFileSync(path.join(__dirname, 'out.jsonl'), JSON.stringify({ pid: process.pid, event }) + '\n');
  return {};
};
"#;

/// Writes each message it sees into `seen.jsonl`; fails until the file `fixed` exists, then
/// writes into `ok.jsonl` and succeeds.
const RMQ_FLAKY: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  const msgs = Object.values(event.rmqMessagesByQueue).flat();
  const lines = msgs.map((m) => JSON.stringify(m)).join('\n') + '\n';
  fs.appendFileSync(path.join(__dirname, 'seen.jsonl'), lines);
  if (!fs.existsSync(path.join(__dirname, 'fixed'))) throw new Error('the rates are not loaded yet');
  fs.appendFileSync(path.join(__dirname, 'ok.jsonl'), lines);
  return {};
};
"#;

/// Appends the `n` of every message's (base64 JSON) data to `ids.txt`, taking a little time
/// per batch so that a kill or a cut lands mid-run.
const RMQ_ID_WRITER: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  await new Promise((r) => setTimeout(r, 40));
  const msgs = Object.values(event.rmqMessagesByQueue).flat();
  const ids = msgs.map((m) => JSON.parse(Buffer.from(m.data, 'base64').toString()).n);
  fs.appendFileSync(path.join(__dirname, 'ids.txt'), ids.join('\n') + '\n');
  return {};
};
"#;

async fn amqp() -> (Connection, Channel) {
    let conn = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("the shared RabbitMQ on 127.0.0.1:5672 (bash scripts/services.sh starts it)");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    (conn, ch)
}

async fn declare(ch: &Channel, queue: &str, args: FieldTable) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
}

/// Publishes to `queue` through the default exchange and waits for the broker's confirm.
async fn publish(ch: &Channel, queue: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        props.with_delivery_mode(2),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// Ready (not delivered, or requeued) messages in `queue`.
async fn ready(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

async fn delete_queue(queue: &str) {
    let (_c, ch) = amqp().await;
    let _ = ch.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
}

fn rmq_source(url: &str, queue: &str, extra: &str) -> String {
    format!(r#"{{ type = "rabbitmq", url = "{url}", queue = "{queue}"{extra} }}"#)
}

/// The messages of every event in `out.jsonl` under `key`, with the events.
fn rmq_events(dir: &Path) -> Vec<Value> {
    jsonl(dir, "out.jsonl")
        .into_iter()
        .map(|l| l["event"].clone())
        .collect()
}

fn data_of(m: &Value) -> String {
    let b = base64::engine::general_purpose::STANDARD
        .decode(m["data"].as_str().unwrap())
        .unwrap();
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn rabbitmq_messages_reach_a_function_in_lambdas_rabbitmq_event_shape() {
    let queue = unique("orders");
    let (_conn, ch) = amqp().await;
    declare(&ch, &queue, FieldTable::default()).await;
    let app = TestApp::start_dir(source_app(
        "src-rmq",
        RMQ_RECORDER,
        "batch_size = 10",
        &rmq_source(AMQP, &queue, ""),
    ))
    .await;
    wait_state(&app, "sub", "connected").await;
    let mut headers = FieldTable::default();
    headers.insert("tenant".into(), AMQPValue::LongString("acme".into()));
    headers.insert("numberInHeader".into(), AMQPValue::LongInt(10));
    headers.insert("cloudEvents:region".into(), AMQPValue::LongString("eu".into()));
    publish(
        &ch,
        &queue,
        br#"{"order":1}"#,
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id("order-1".into())
            .with_type("order.created".into())
            .with_correlation_id("c-1".into())
            .with_timestamp(1_700_000_000)
            .with_headers(headers),
    )
    .await;
    publish(&ch, &queue, &[0xff, 0x00, 0x01], BasicProperties::default()).await;
    let dir = app.dir.path().to_path_buf();
    wait_for("both messages to be delivered", WAIT, || {
        rmq_events(&dir)
            .iter()
            .map(|e| {
                e["rmqMessagesByQueue"][format!("{queue}::/")]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .sum::<usize>()
            == 2
    })
    .await;
    let events = rmq_events(&dir);
    let mut messages = Vec::new();
    for e in &events {
        // The shape Lambda sends, as the Rust ecosystem's event type reads it.
        let typed: RabbitMqEvent = serde_json::from_value(e.clone()).unwrap_or_else(|err| panic!("{err}: {e}"));
        assert_eq!(typed.event_source.as_deref(), Some("aws:rmq"));
        assert!(
            typed
                .event_source_arn
                .as_deref()
                .unwrap()
                .ends_with(&format!(":{queue}")),
            "{e}"
        );
        assert_eq!(typed.messages_by_queue.len(), 1, "{e}");
        messages.extend(typed.messages_by_queue[&format!("{queue}::/")].clone());
    }
    assert_eq!(messages.len(), 2);
    let first = &messages[0];
    let data = |m: &aws_lambda_events::event::rabbitmq::RabbitMqMessage| {
        base64::engine::general_purpose::STANDARD
            .decode(m.data.as_deref().unwrap())
            .unwrap()
    };
    assert_eq!(data(first), br#"{"order":1}"#);
    assert!(!first.redelivered);
    let p = &first.basic_properties;
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.message_id.as_deref(), Some("order-1"));
    assert_eq!(p.type_.as_deref(), Some("order.created"));
    assert_eq!(p.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(p.delivery_mode, 2);
    assert_eq!(p.body_size, 11);
    assert_eq!(p.timestamp.as_deref(), Some("Nov 14, 2023, 10:13:20 PM"));
    // String headers as Lambda's Java client shows them (bytes), numbers as numbers.
    assert_eq!(p.headers["tenant"], json!({ "bytes": b"acme" }));
    assert_eq!(p.headers["numberInHeader"], json!(10));
    assert_eq!(data(&messages[1]), [0xff, 0x00, 0x01], "binary data survives (base64)");

    // Acknowledged after success: nothing is requeued when Gust stops; the operator sees it.
    let s = wait_state(&app, "sub", "connected").await;
    assert_eq!(s["source"]["type"], "rabbitmq", "{s}");
    assert_eq!(s["source"]["guarantee"], "at-least-once");
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
        metrics.contains(r#"gust_source_up{subscription="sub",type="rabbitmq"} 1"#),
        "{metrics}"
    );
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
    let row = text
        .lines()
        .find(|l| l.starts_with("sub "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("rabbitmq") && row.contains("connected"), "{text}");
    app.stop().await;
    assert_eq!(ready(&ch, &queue).await, 0, "acked messages are not requeued");
    delete_queue(&queue).await;
}

#[tokio::test]
async fn rabbitmq_failures_are_held_retried_dead_lettered_into_gusts_dlq_then_redriven() {
    let queue = unique("rates");
    let (_conn, ch) = amqp().await;
    declare(&ch, &queue, FieldTable::default()).await;
    let app = TestApp::start_dir(source_app(
        "src-rmq-dlq",
        RMQ_FLAKY,
        "max_attempts = 2\nretry_delay = 0.2",
        &rmq_source(AMQP, &queue, ""),
    ))
    .await;
    wait_state(&app, "sub", "connected").await;
    publish(
        &ch,
        &queue,
        br#"{"currency":"USD"}"#,
        BasicProperties::default()
            .with_message_id("rate-1".into())
            .with_content_type("application/json".into()),
    )
    .await;
    until("the message to be dead-lettered", WAIT, || async {
        dead_letters(&app, "sub").await.len() == 1
    })
    .await;
    let dl = dead_letters(&app, "sub").await.remove(0);
    assert_eq!(dl["reason"], "MaxAttemptsExceeded", "{dl}");
    assert_eq!(dl["attempts"], 2, "{dl}");
    assert_eq!(dl["message_id"], "rate-1");
    assert!(
        dl["last_error"].as_str().unwrap().contains("rates are not loaded"),
        "{dl}"
    );
    let dir = app.dir.path().to_path_buf();
    let seen = jsonl(&dir, "seen.jsonl");
    let redelivered: Vec<bool> = seen.iter().map(|m| m["redelivered"].as_bool().unwrap()).collect();
    assert_eq!(redelivered, [false, true], "one delivery per attempt: {seen:?}");
    assert!(seen.iter().all(|m| data_of(m) == r#"{"currency":"USD"}"#));

    std::fs::write(dir.join("fixed"), "").unwrap();
    redrive(&dir, "sub").await;
    wait_for("the redriven message to succeed", WAIT, || {
        jsonl(&dir, "ok.jsonl").len() == 1
    })
    .await;
    let ok = &jsonl(&dir, "ok.jsonl")[0];
    assert_eq!(data_of(ok), r#"{"currency":"USD"}"#, "{ok}");
    assert_eq!(ok["basicProperties"]["messageId"], "rate-1", "{ok}");
    assert_eq!(ok["basicProperties"]["contentType"], "application/json", "{ok}");
    until("the DLQ to be empty", WAIT, || async {
        dead_letters(&app, "sub").await.is_empty()
    })
    .await;
    app.stop().await;
    // Dead-lettered into Gust's DLQ, then acked: the broker does not hand it out again.
    assert_eq!(ready(&ch, &queue).await, 0);
    delete_queue(&queue).await;
}

#[tokio::test]
async fn rabbitmq_dead_letter_exchange_takes_failures_instead_of_gusts_dlq() {
    let queue = unique("payments");
    let dlx = unique("payments-dlx");
    let parked = unique("payments-parked");
    let (_conn, ch) = amqp().await;
    ch.exchange_declare(
        dlx.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(&ch, &parked, FieldTable::default()).await;
    ch.queue_bind(
        parked.as_str().into(),
        dlx.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.as_str().into()),
    );
    declare(&ch, &queue, args).await;
    let app = TestApp::start_dir(source_app(
        "src-rmq-dlx",
        RMQ_FLAKY,
        "max_attempts = 2\nretry_delay = 0.2",
        &rmq_source(AMQP, &queue, &format!(r#", dead_letter_exchange = "{dlx}""#)),
    ))
    .await;
    wait_state(&app, "sub", "connected").await;
    publish(&ch, &queue, b"card declined", BasicProperties::default()).await;
    let dir = app.dir.path().to_path_buf();
    until(
        "the message to reach the dead-letter exchange's queue",
        WAIT,
        || async { ready(&ch, &parked).await == 1 },
    )
    .await;
    assert_eq!(jsonl(&dir, "seen.jsonl").len(), 2, "max_attempts deliveries first");
    let got = ch
        .basic_get(parked.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the dead letter");
    assert_eq!(got.delivery.data, b"card declined");
    let death = got
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death").cloned());
    assert!(
        death.is_some(),
        "RabbitMQ records the dead-lettering: {:?}",
        got.delivery.properties
    );
    assert!(dead_letters(&app, "sub").await.is_empty(), "not in Gust's DLQ");
    app.stop().await;
    assert_eq!(ready(&ch, &queue).await, 0);
    delete_queue(&queue).await;
    delete_queue(&parked).await;
    let _ = ch
        .exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
        .await;
}

#[tokio::test]
async fn rabbitmq_a_missing_dead_letter_exchange_is_reported_not_used() {
    let queue = unique("nodlx");
    let app = TestApp::start_dir(source_app(
        "src-rmq-nodlx",
        RMQ_RECORDER,
        "",
        &rmq_source(AMQP, &queue, r#", dead_letter_exchange = "no-such-exchange-here""#),
    ))
    .await;
    let s = wait_state(&app, "sub", "reconnecting").await;
    let err = s["source"]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("no-such-exchange-here") && err.contains("does not exist"),
        "{s}"
    );
    app.stop().await;
    delete_queue(&queue).await;
}

#[tokio::test]
async fn rabbitmq_kill_9_of_gust_mid_run_loses_nothing() {
    const N: u32 = 400;
    let queue = unique("numbers");
    let (_conn, ch) = amqp().await;
    declare(&ch, &queue, FieldTable::default()).await;
    for n in 0..N {
        publish(
            &ch,
            &queue,
            json!({ "n": n }).to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    let app = source_app(
        "src-rmq-kill",
        RMQ_ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2",
        &rmq_source(AMQP, &queue, ""),
    );
    let (report, gust, _state) = kill_9_loses_nothing(app.path(), N).await;
    eprintln!("rabbitmq crash safety: {report}");
    until("the queue to be drained", WAIT, || async {
        ready(&ch, &queue).await == 0
    })
    .await;
    drop(gust);
    delete_queue(&queue).await;
}

/// A TCP proxy in front of the shared RabbitMQ that the test can cut (closing every proxied
/// connection and refusing new ones) and restore, on the same port.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    fn new() -> Self {
        Self {
            port: free_port(),
            tasks: Arc::default(),
        }
    }

    fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}/%2f", self.port)
    }

    fn open(&self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], self.port).into()).unwrap();
        let listener = socket.listen(64).unwrap();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5672").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Every proxied connection is dropped (both sockets close) and the port refuses.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

#[tokio::test]
async fn rabbitmq_reconnects_after_its_connection_is_cut_and_starts_while_unreachable() {
    let queue = unique("cut");
    let (_conn, ch) = amqp().await;
    declare(&ch, &queue, FieldTable::default()).await;
    let proxy = Proxy::new();
    // Gust starts with its broker unreachable: it serves and reports the source.
    let app = TestApp::start_dir(source_app(
        "src-rmq-cut",
        RMQ_ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2",
        &rmq_source(&proxy.url(), &queue, ""),
    ))
    .await;
    let s = wait_state(&app, "sub", "reconnecting").await;
    assert!(s["source"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
    assert_eq!(
        app.get("/nothing-here").await.status(),
        404,
        "the gateway serves meanwhile"
    );
    proxy.open();
    wait_state(&app, "sub", "connected").await;

    let dir = app.dir.path().to_path_buf();
    for n in 0..150u32 {
        publish(
            &ch,
            &queue,
            json!({ "n": n }).to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    wait_for("deliveries to be under way", WAIT, || delivered_ids(&dir).len() >= 20).await;
    proxy.cut();
    let before = delivered_ids(&dir).len();
    assert!(
        before < 150,
        "the cut came after every delivery; the test proved nothing"
    );
    wait_state(&app, "sub", "reconnecting").await;
    proxy.open();
    wait_state(&app, "sub", "connected").await;
    for n in 150..300u32 {
        publish(
            &ch,
            &queue,
            json!({ "n": n }).to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    wait_for("every message to be delivered", Duration::from_secs(90), || {
        delivered_ids(&dir).len() == 300
    })
    .await;
    let ids = delivered_ids(&dir);
    assert!((0..300).all(|n| ids.contains_key(&n)));
    let extra: usize = ids.values().map(|c| c - 1).sum();
    eprintln!("rabbitmq connection cut: 300 messages, {before} delivered before the cut; {extra} duplicate deliveries");
    until("the queue to be drained", WAIT, || async {
        ready(&ch, &queue).await == 0
    })
    .await;
    app.stop().await;
    assert_eq!(ready(&ch, &queue).await, 0, "everything was acked");
    delete_queue(&queue).await;
}

#[tokio::test]
async fn serverless_yml_rabbitmq_events_consume_the_queue() {
    let queue = unique("sls-orders");
    let (_conn, ch) = amqp().await;
    declare(&ch, &queue, FieldTable::default()).await;
    let yml = format!(
        r#"
service: sls-rmq
provider:
  name: aws
  runtime: nodejs20.x
custom:
  gust:
    rabbitmq:
      url: amqp://127.0.0.1:5672
functions:
  compute:
    handler: handler.handler
    events:
      - rabbitmq:
          arn: arn:aws:mq:us-east-1:0000:broker:ExampleMQBroker:b-xxx-xxx
          queue: {queue}
          batchSize: 5
      - rabbitmq:
          arn: arn:aws:mq:us-east-1:0000:broker:ExampleMQBroker:b-xxx-xxx
          queue: {queue}-paused
          enabled: false
"#
    );
    let app = TestApp::start(&[("serverless.yml", &yml), ("handler.js", RMQ_RECORDER)]).await;
    let sub = format!("compute.{queue}");
    wait_state(&app, &sub, "connected").await;
    publish(&ch, &queue, b"hello from the order service", BasicProperties::default()).await;
    let dir = app.dir.path().to_path_buf();
    wait_for("the message to be delivered", WAIT, || !rmq_events(&dir).is_empty()).await;
    let e = &rmq_events(&dir)[0];
    let typed: RabbitMqEvent = serde_json::from_value(e.clone()).unwrap();
    assert_eq!(
        typed.event_source_arn.as_deref(),
        Some("arn:aws:mq:us-east-1:0000:broker:ExampleMQBroker:b-xxx-xxx"),
        "the broker ARN the event named"
    );
    let m = &typed.messages_by_queue[&format!("{queue}::/")][0];
    assert_eq!(
        data_of(&serde_json::to_value(m).unwrap()),
        "hello from the order service"
    );
    let v = json(&app.admin_text("/gust/v1/subscriptions").await);
    let names: Vec<&str> = v["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with("-paused")),
        "`enabled: false` consumes nothing: {names:?}"
    );
    app.stop().await;
    delete_queue(&queue).await;
}
