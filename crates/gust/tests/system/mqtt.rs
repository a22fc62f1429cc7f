//! MQTT topics as event sources, end to end against the shared Mosquitto on 127.0.0.1:1883
//! with topics and client ids unique to each run. Messages are published by a plain MQTT
//! client (`rumqttc` in the test, not Gust). The broker restart uses a PRIVATE `mosquitto`
//! on a free port with its own persistence directory.
//!
//! Covered: the SQS-like CloudEvents records a function sees; acks only after success (the
//! broker resends nothing to Gust's session afterwards); a failing handler held and retried,
//! dead-lettered into Gust's DLQ, redriven after the fix; `kill -9` of Gust mid-run loses
//! nothing (the persistent session); a shared subscription splits messages between two
//! consumers; a broker restart mid-run loses nothing.

use crate::sources::{
    attr, dead_letters, delivered_ids, free_port, jsonl, redrive, source_app, subscription, subscription_at, until,
    wait_state, FLAKY, ID_WRITER, RECORDER, WAIT,
};
use crate::support::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::watch;

const PORT: u16 = 1883;

fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A plain MQTT client with its event loop polled in a task; counts PUBACKs and keeps the
/// publishes it receives.
struct Plain {
    client: AsyncClient,
    acks: watch::Receiver<usize>,
    received: watch::Receiver<Vec<(String, Vec<u8>)>>,
    connected: watch::Receiver<Option<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Plain {
    async fn connect(port: u16, client_id: &str, clean: bool) -> Self {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(10)).set_clean_session(clean);
        let (client, mut el) = AsyncClient::new(o, 1000);
        let (acks_tx, acks) = watch::channel(0usize);
        let (rx_tx, received) = watch::channel(Vec::new());
        let (conn_tx, mut connected) = watch::channel(None);
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => {
                        let _ = conn_tx.send(Some(a.session_present));
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => acks_tx.send_modify(|n| *n += 1),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        rx_tx.send_modify(|v| v.push((p.topic.clone(), p.payload.to_vec())))
                    }
                    // `close` sent DISCONNECT: done.
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, connected.wait_for(|c| c.is_some()))
            .await
            .expect("the MQTT broker answers")
            .unwrap();
        Self {
            client,
            acks,
            received,
            connected,
            task,
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACKs.
    async fn publish(&mut self, topic: &str, payloads: Vec<Vec<u8>>) {
        let want = *self.acks.borrow() + payloads.len();
        for p in payloads {
            self.client.publish(topic, QoS::AtLeastOnce, false, p).await.unwrap();
        }
        tokio::time::timeout(WAIT, self.acks.wait_for(|n| *n >= want))
            .await
            .expect("the broker acknowledges every publish")
            .unwrap();
    }

    fn session_present(&self) -> bool {
        self.connected.borrow().unwrap_or(false)
    }

    async fn close(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while !self.task.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        self.task.abort();
    }
}

/// Checks the broker holds nothing unacknowledged for `client_id`'s session (connecting as
/// it, which ends the session: call after Gust stopped): a marker published to `topic` after
/// connecting arrives first only if nothing was resent before it (MQTT keeps order per
/// session).
async fn nothing_left_for(port: u16, client_id: &str, subscribe: &str, topic: &str) {
    let c = Plain::connect(port, client_id, false).await;
    assert!(c.session_present(), "Gust's session is kept by the broker");
    let marker = unique_id("marker");
    let mut publisher = Plain::connect(port, &unique_id("pub"), true).await;
    publisher.publish(topic, vec![marker.clone().into_bytes()]).await;
    let mut rx = c.received.clone();
    let got = tokio::time::timeout(WAIT, rx.wait_for(|v| !v.is_empty()))
        .await
        .expect("the marker")
        .unwrap()
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&got[0].1),
        marker,
        "the broker resent unacknowledged messages first: {got:?} (subscribed {subscribe})"
    );
    c.close().await;
    // Remove the session.
    Plain::connect(port, client_id, true).await.close().await;
    publisher.close().await;
}

fn mqtt_source(port: u16, topic: &str, client_id: &str, extra: &str) -> String {
    format!(
        r#"{{ type = "mqtt", url = "mqtt://127.0.0.1:{port}", topic = "{topic}", client_id = "{client_id}"{extra} }}"#
    )
}

async fn end_session(port: u16, client_id: &str) {
    Plain::connect(port, client_id, true).await.close().await;
}

#[tokio::test]
async fn mqtt_messages_reach_a_function_as_cloudevents_records() {
    let base = unique_id("sensors");
    let client_id = unique_id("gust-test");
    let app = TestApp::start_dir(source_app(
        "src-mqtt",
        RECORDER,
        "batch_size = 10",
        &mqtt_source(PORT, &format!("{base}/+/temp"), &client_id, ""),
    ))
    .await;
    wait_state(&app, "sub", "connected").await;
    let mut p = Plain::connect(PORT, &unique_id("pub"), true).await;
    p.publish(&format!("{base}/kitchen/temp"), vec![b"21.5".to_vec()]).await;
    p.publish(
        &format!("{base}/cellar/temp"),
        vec![json!({ "specversion": "1.0", "id": "r-2", "type": "reading.taken", "source": "/cellar", "region": "eu", "data": { "c": 12 } })
            .to_string()
            .into_bytes()],
    )
    .await;
    let dir = app.dir.path().to_path_buf();
    wait_for("both messages to be delivered", WAIT, || {
        jsonl(&dir, "out.jsonl").len() == 2
    })
    .await;
    let records: Vec<Value> = jsonl(&dir, "out.jsonl")
        .into_iter()
        .map(|l| l["record"].clone())
        .collect();
    let plain = records.iter().find(|r| r["body"] == "21.5").expect("the plain reading");
    assert_eq!(plain["eventSource"], "gust:mqtt", "{plain}");
    assert!(plain["eventSourceARN"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{base}/+/temp")));
    assert_eq!(plain["attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(attr(plain, "ce-type"), "gust.mqtt.message");
    assert_eq!(attr(plain, "ce-subject"), format!("{base}/kitchen/temp"));
    assert_eq!(attr(plain, "ce-source"), format!("/mqtt/{base}/+/temp"));
    assert_eq!(attr(plain, "ce-id"), plain["messageId"].as_str().unwrap());
    let ce = records
        .iter()
        .find(|r| r["messageId"] == "r-2")
        .expect("the structured CloudEvent");
    assert_eq!(json(ce["body"].as_str().unwrap()), json!({ "c": 12 }));
    assert_eq!(attr(ce, "ce-type"), "reading.taken");
    assert_eq!(attr(ce, "ce-region"), "eu");
    assert_eq!(attr(ce, "ce-subject"), format!("{base}/cellar/temp"));

    let s = wait_state(&app, "sub", "connected").await;
    assert_eq!(s["source"]["type"], "mqtt", "{s}");
    assert_eq!(s["source"]["guarantee"], "at-least-once");
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
        metrics.contains(r#"gust_source_up{subscription="sub",type="mqtt"} 1"#),
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
    assert!(row.contains("mqtt") && row.contains("connected"), "{text}");
    app.stop().await;
    // Acked after success: the broker resends nothing to Gust's session.
    nothing_left_for(
        PORT,
        &client_id,
        &format!("{base}/+/temp"),
        &format!("{base}/kitchen/temp"),
    )
    .await;
    p.close().await;
}

#[tokio::test]
async fn mqtt_failures_are_held_retried_dead_lettered_into_gusts_dlq_then_redriven() {
    let topic = unique_id("rates");
    let client_id = unique_id("gust-test");
    let app = TestApp::start_dir(source_app(
        "src-mqtt-dlq",
        FLAKY,
        "max_attempts = 2\nretry_delay = 0.2",
        &mqtt_source(PORT, &topic, &client_id, ""),
    ))
    .await;
    wait_state(&app, "sub", "connected").await;
    let mut p = Plain::connect(PORT, &unique_id("pub"), true).await;
    p.publish(&topic, vec![br#"{"currency":"USD"}"#.to_vec()]).await;
    until("the message to be dead-lettered", WAIT, || async {
        dead_letters(&app, "sub").await.len() == 1
    })
    .await;
    let dl = dead_letters(&app, "sub").await.remove(0);
    assert_eq!(dl["reason"], "MaxAttemptsExceeded", "{dl}");
    assert_eq!(dl["attempts"], 2, "{dl}");
    assert!(
        dl["last_error"].as_str().unwrap().contains("rates are not loaded"),
        "{dl}"
    );
    let dir = app.dir.path().to_path_buf();
    let counts: Vec<String> = jsonl(&dir, "seen.jsonl")
        .iter()
        .map(|r| r["attributes"]["ApproximateReceiveCount"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(counts, ["1", "2"], "held and delivered again once");

    std::fs::write(dir.join("fixed"), "").unwrap();
    redrive(&dir, "sub").await;
    wait_for("the redriven message to succeed", WAIT, || {
        jsonl(&dir, "ok.jsonl").len() == 1
    })
    .await;
    let ok = &jsonl(&dir, "ok.jsonl")[0];
    assert_eq!(ok["body"], r#"{"currency":"USD"}"#, "{ok}");
    assert_eq!(ok["messageId"], dl["message_id"], "{ok}");
    until("the DLQ to be empty", WAIT, || async {
        dead_letters(&app, "sub").await.is_empty()
    })
    .await;
    app.stop().await;
    // Dead-lettered into Gust's DLQ, then acked at the broker.
    nothing_left_for(PORT, &client_id, &topic, &topic).await;
    p.close().await;
}

#[tokio::test]
async fn mqtt_kill_9_of_gust_mid_run_loses_nothing() {
    const N: u32 = 300;
    const LATER: u32 = 100;
    let topic = unique_id("numbers");
    let client_id = unique_id("gust-test");
    let app = source_app(
        "src-mqtt-kill",
        ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2",
        &mqtt_source(PORT, &topic, &client_id, ""),
    );
    let dir = app.path();
    let state = tempfile::tempdir().unwrap();
    let mut gust = GustUp::start(dir, state.path()).await;
    until("the source to be connected", WAIT, || async {
        subscription_at(&gust.admin, &gust.token, "sub").await["source"]["state"] == "connected"
    })
    .await;
    let mut p = Plain::connect(PORT, &unique_id("pub"), true).await;
    p.publish(
        &topic,
        (0..N).map(|n| json!({ "n": n }).to_string().into_bytes()).collect(),
    )
    .await;
    wait_for("deliveries to be under way", Duration::from_secs(60), || {
        delivered_ids(dir).len() as u32 >= N / 10
    })
    .await;
    gust.kill_9().await;
    let before = delivered_ids(dir).len() as u32;
    assert!(
        before < N,
        "the kill came after every delivery ({before} of {N}); the test proved nothing"
    );
    // Published while Gust is dead: the broker queues them for its session.
    p.publish(
        &topic,
        (N..N + LATER)
            .map(|n| json!({ "n": n }).to_string().into_bytes())
            .collect(),
    )
    .await;
    let gust = GustUp::start(dir, state.path()).await;
    wait_for(
        "every message to be delivered after the restart",
        Duration::from_secs(90),
        || delivered_ids(dir).len() as u32 == N + LATER,
    )
    .await;
    let ids = delivered_ids(dir);
    let missing: Vec<u32> = (0..N + LATER).filter(|i| !ids.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let extra: usize = ids.values().map(|c| c - 1).sum();
    eprintln!(
        "mqtt crash safety: {} messages, {before} delivered before kill -9; {extra} duplicate deliveries",
        N + LATER
    );
    let s = subscription_at(&gust.admin, &gust.token, "sub").await;
    assert_eq!(s["dead_letters"], 0, "{s}");
    drop(gust);
    p.close().await;
    end_session(PORT, &client_id).await;
}

/// Appends `<n> <function>` per record to `shared.txt`.
const SHARED_WRITER: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  await new Promise((r) => setTimeout(r, 5));
  const lines = event.Records.map((r) => `${JSON.parse(r.body).n} ${process.env.AWS_LAMBDA_FUNCTION_NAME}`);
  fs.appendFileSync(path.join(__dirname, 'shared.txt'), lines.join('\n') + '\n');
  return {};
};
"#;

#[tokio::test]
async fn mqtt_shared_subscription_splits_messages_between_two_consumers() {
    const N: usize = 60;
    let topic = unique_id("jobs");
    let (id_a, id_b) = (unique_id("gust-a"), unique_id("gust-b"));
    let group = unique_id("workers");
    let toml = format!(
        r#"
[app]
name = "src-mqtt-shared"
[functions.fa]
runtime = "nodejs20.x"
handler = "w.handler"
[functions.fb]
runtime = "nodejs20.x"
handler = "w.handler"
[[subscriptions]]
name = "a"
function = "fa"
batch_size = 1
source = {}
[[subscriptions]]
name = "b"
function = "fb"
batch_size = 1
source = {}
"#,
        mqtt_source(PORT, &topic, &id_a, &format!(r#", shared_group = "{group}""#)),
        mqtt_source(PORT, &topic, &id_b, &format!(r#", shared_group = "{group}""#)),
    );
    let app = TestApp::start_dir(write_app(&[("gust.toml", &toml), ("w.js", SHARED_WRITER)])).await;
    wait_state(&app, "a", "connected").await;
    wait_state(&app, "b", "connected").await;
    let s = subscription(&app, "a").await;
    assert!(
        s["source"]["address"]
            .as_str()
            .unwrap()
            .contains(&format!("$share/{group}/{topic}")),
        "{s}"
    );
    let mut p = Plain::connect(PORT, &unique_id("pub"), true).await;
    p.publish(
        &topic,
        (0..N).map(|n| json!({ "n": n }).to_string().into_bytes()).collect(),
    )
    .await;
    let dir = app.dir.path().to_path_buf();
    let read = |dir: &Path| -> Vec<(u32, String)> {
        let text = std::fs::read_to_string(dir.join("shared.txt")).unwrap_or_default();
        let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (n, f) = l.split_once(' ').unwrap();
                (n.parse().unwrap(), f.to_string())
            })
            .collect()
    };
    wait_for("every message to be delivered once", WAIT, || read(&dir).len() >= N).await;
    let got = read(&dir);
    let mut ns: Vec<u32> = got.iter().map(|(n, _)| *n).collect();
    ns.sort_unstable();
    ns.dedup();
    assert_eq!(ns.len(), N, "every message delivered: {got:?}");
    let to_a = got.iter().filter(|(_, f)| f == "fa").count();
    let to_b = got.iter().filter(|(_, f)| f == "fb").count();
    assert_eq!(
        to_a + to_b,
        N,
        "each message to one consumer of the group, not both: {got:?}"
    );
    assert!(
        to_a > 0 && to_b > 0,
        "the group shares the messages: a {to_a}, b {to_b}"
    );
    eprintln!("mqtt shared subscription: {N} messages, {to_a} to one consumer, {to_b} to the other");
    app.stop().await;
    p.close().await;
    end_session(PORT, &id_a).await;
    end_session(PORT, &id_b).await;
}

/// A private mosquitto on a free port, persisting into its own directory; stopped on drop.
struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    fn new() -> Self {
        Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn start(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser root\n",
                self.port,
                self.dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed");
        self.child = Some(child);
        let port = self.port;
        until(&format!("mosquitto on port {port}"), WAIT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
    }

    /// A clean stop (SIGTERM): mosquitto writes its persistence file on the way out.
    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            wait_for("mosquitto to exit", WAIT, || c.try_wait().unwrap().is_some()).await;
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn mqtt_broker_restart_mid_run_loses_nothing_and_gust_starts_while_it_is_down() {
    let mut broker = Mosquitto::new();
    let topic = unique_id("restart");
    let client_id = unique_id("gust-test");
    let app = TestApp::start_dir(source_app(
        "src-mqtt-restart",
        ID_WRITER,
        "batch_size = 5\nmax_concurrency = 2",
        &mqtt_source(broker.port, &topic, &client_id, ""),
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
    let mut p = Plain::connect(broker.port, &unique_id("pub"), true).await;
    p.publish(
        &topic,
        (0..150u32)
            .map(|n| json!({ "n": n }).to_string().into_bytes())
            .collect(),
    )
    .await;
    p.close().await;
    wait_for("deliveries to be under way", WAIT, || delivered_ids(&dir).len() >= 20).await;
    let stopping = std::time::Instant::now();
    broker.stop().await;
    let before = delivered_ids(&dir).len();
    assert!(
        before < 150,
        "the broker stopped after every delivery (stopping took {:?}); the test proved nothing",
        stopping.elapsed()
    );
    wait_state(&app, "sub", "reconnecting").await;
    broker.start().await;
    wait_state(&app, "sub", "connected").await;
    let mut p = Plain::connect(broker.port, &unique_id("pub"), true).await;
    p.publish(
        &topic,
        (150..300u32)
            .map(|n| json!({ "n": n }).to_string().into_bytes())
            .collect(),
    )
    .await;
    wait_for("every message to be delivered", Duration::from_secs(90), || {
        delivered_ids(&dir).len() == 300
    })
    .await;
    let ids = delivered_ids(&dir);
    let missing: Vec<u32> = (0..300).filter(|n| !ids.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let extra: usize = ids.values().map(|c| c - 1).sum();
    eprintln!(
        "mqtt broker restart: 300 messages, {before} delivered before the broker stopped; {extra} duplicate deliveries"
    );
    app.stop().await;
    p.close().await;
}
