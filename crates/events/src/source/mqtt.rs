//! MQTT 3.1.1 as a source: a QoS 1 subscription on a persistent session, with manual acks.
//!
//! One client per subscription (`rumqttc`, plain TCP), its client id stable (default
//! `gust-<host name>-<subscription>`) and `clean_session = false`, so the broker keeps the
//! subscription and every QoS 1 message not yet acknowledged while Gust is away. A task polls
//! the client's event loop (which must run for keep-alives and acks), reconnects with capped
//! backoff, subscribes when the broker has no session for the client (the first time, or
//! after the broker lost it), and forwards publishes to [`Source::fetch`].
//!
//! What MQTT cannot do, and what Gust does instead:
//! - **No negative acknowledgement.** A PUBACK is the only answer, and it means done. A
//!   failed message is not acked: Gust holds it in memory and delivers it to the handler
//!   again after its backoff (`retry_delay` doubling), up to `max_attempts`, then into Gust's
//!   DLQ and acked. A held message keeps a slot of the broker's in-flight window for the
//!   client (Mosquitto's `max_inflight_messages`), so a run of failures slows delivery down
//!   rather than piling up.
//! - **No delivery count.** The DUP flag says the broker sent it before: attempts start at 2
//!   for such a message, else 1, and Gust counts from there while it runs.
//! - **No message id, no headers** (3.1.1): a record's id is generated; CloudEvents
//!   attributes come from a structured-mode CloudEvent payload (the CloudEvents MQTT binding
//!   for 3.1.1), else defaults.
//! - **No broker-side dead letters**: only Gust's DLQ.
//! - **Redelivery needs the session.** When Gust dies or the connection breaks, the broker
//!   sends the unacknowledged messages again when the same client id reconnects (DUP set),
//!   and queues what was published meanwhile. With `clean_session = true`, or QoS 0, a
//!   message in flight is lost: such a source is reported as at-most-once.
//!
//! Packet ids belong to one connection: a new connection bumps a generation, and handles of
//! an older one neither ack (the id may now name another message) nor keep their message held
//! when the broker resumed the session (it sends them again itself); when the session was not
//! resumed, a held message is still delivered, and its ack is a no-op.

use super::{AckHandle, Source, SourceError, SourceMessage};
use crate::cloudevent::CloudEvent;
use crate::delivery::Record;
use async_trait::async_trait;
use base64::Engine;
use gust_model::{MqttSource as MqttSpec, SubscriptionSpec};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, Publish, QoS};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const RECONNECT_FIRST: Duration = Duration::from_millis(200);
/// The largest MQTT packet read (see [`MqttSource::new`]).
const MAX_INCOMING: usize = 16 * 1024 * 1024;
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The event loop's view of the connection.
#[derive(Debug, Clone, PartialEq)]
struct Link {
    connected: bool,
    /// Bumped at every CONNACK.
    generation: u64,
    /// Whether the broker had kept the session at the last CONNACK.
    resumed: bool,
    last_error: Option<String>,
}

struct Held {
    due_ms: i64,
    record: Record,
    publish: Publish,
    generation: u64,
}

type HeldList = Arc<Mutex<Vec<Held>>>;

pub struct MqttSource {
    cfg: MqttSpec,
    options: MqttOptions,
    qos: QoS,
    client: Option<AsyncClient>,
    link: Option<watch::Receiver<Link>>,
    incoming: Option<mpsc::UnboundedReceiver<(Publish, u64)>>,
    poller: Option<tokio::task::JoinHandle<()>>,
    held: HeldList,
}

impl Drop for MqttSource {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.abort();
        }
    }
}

/// `mqtt://host[:port]` -> (host, port).
fn host_port(url: &str) -> Result<(String, u16), SourceError> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| SourceError::Config(format!("source url `{url}`: `{p}` is not a port")))?,
        ),
        None => (authority, 1883),
    };
    if host.is_empty() {
        return Err(SourceError::Config(format!("source url `{url}` names no host")));
    }
    Ok((host.to_string(), port))
}

impl MqttSource {
    pub fn new(cfg: MqttSpec, sub: &SubscriptionSpec, password: Option<String>) -> Result<Self, SourceError> {
        let (host, port) = host_port(&cfg.url)?;
        let client_id = cfg
            .client_id
            .clone()
            .unwrap_or_else(|| format!("gust-{}-{}", super::redis::host_name(), sub.name));
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_clean_session(cfg.clean_session)
            .set_manual_acks(true)
            // Generous: a packet over the limit breaks the connection, and the broker would
            // send the same message again on every reconnect.
            .set_max_packet_size(MAX_INCOMING, 64 * 1024);
        match (&cfg.username, &password) {
            (Some(u), p) => {
                options.set_credentials(u.clone(), p.clone().unwrap_or_default());
            }
            (None, Some(p)) => {
                options.set_credentials("", p.clone());
            }
            (None, None) => {}
        }
        let qos = if cfg.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        Ok(Self {
            cfg,
            options,
            qos,
            client: None,
            link: None,
            incoming: None,
            poller: None,
            held: Arc::default(),
        })
    }

    /// Starts the client and the task that polls its event loop.
    fn start(&mut self) {
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), 64);
        let (link_tx, link_rx) = watch::channel(Link {
            connected: false,
            generation: 0,
            resumed: false,
            last_error: None,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let filter = self.cfg.filter();
        let qos = self.qos;
        let sub_client = client.clone();
        let poller = tokio::spawn(async move {
            let mut delay = RECONNECT_FIRST;
            let mut generation = 0u64;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if ack.code != ConnectReturnCode::Success {
                            link_tx.send_modify(|l| {
                                l.connected = false;
                                l.last_error = Some(format!("the broker refused the connection: {:?}", ack.code));
                            });
                            continue;
                        }
                        delay = RECONNECT_FIRST;
                        generation += 1;
                        if !ack.session_present {
                            // A new session has no subscription (and a resumed one keeps it:
                            // subscribing again would resend retained messages).
                            if let Err(e) = sub_client.try_subscribe(filter.clone(), qos) {
                                tracing::warn!(topic = %filter, error = %e, "could not queue the subscription");
                            }
                        }
                        link_tx.send_modify(|l| {
                            l.connected = true;
                            l.generation = generation;
                            l.resumed = ack.session_present;
                        });
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                        if refused {
                            link_tx.send_modify(|l| {
                                l.last_error = Some(format!("the broker refused the subscription to `{filter}`"));
                            });
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p, generation)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        link_tx.send_modify(|l| {
                            l.connected = false;
                            l.last_error = Some(e.to_string());
                        });
                        // The next poll reconnects: wait first (capped backoff).
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RECONNECT_MAX);
                    }
                }
            }
        });
        self.client = Some(client);
        self.link = Some(link_rx);
        self.incoming = Some(rx);
        self.poller = Some(poller);
    }

    fn link(&self) -> Link {
        self.link.as_ref().map(|l| l.borrow().clone()).unwrap_or(Link {
            connected: false,
            generation: 0,
            resumed: false,
            last_error: None,
        })
    }

    fn wrap(&self, record: Record, publish: Publish, generation: u64) -> SourceMessage {
        let link = self.link.clone().expect("started");
        SourceMessage {
            delivery_count: record.attempts,
            record: record.clone(),
            ordering_key: None,
            handle: Box::new(MqttAck {
                client: self.client.clone().expect("started"),
                publish,
                record,
                generation,
                link,
                held: self.held.clone(),
            }),
        }
    }

    fn message(&self, p: Publish, generation: u64) -> SourceMessage {
        let now = crate::log::now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let event = publish_event(&self.cfg.topic, &p, id.clone(), now);
        let attempts = if p.dup { 2 } else { 1 };
        let record = Record {
            message_id: event.id.clone(),
            receipt: format!("{}:{}", generation, p.pkid),
            attempts,
            first_ms: now,
            published_ms: now,
            event,
            native: None,
        };
        self.wrap(record, p, generation)
    }
}

#[async_trait]
impl Source for MqttSource {
    async fn connect(&mut self) -> Result<(), SourceError> {
        if self.poller.as_ref().is_none_or(|p| p.is_finished()) {
            self.start();
        }
        let mut link = self.link.clone().expect("started");
        let connected = tokio::time::timeout(Duration::from_secs(5), link.wait_for(|l| l.connected)).await;
        match connected {
            Ok(Ok(_)) => Ok(()),
            _ => Err(SourceError::Connect(format!(
                "{}: {}",
                self.cfg.url,
                self.link().last_error.unwrap_or_else(|| "not connected yet".into())
            ))),
        }
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceMessage>, SourceError> {
        let link = self.link();
        if !link.connected {
            return Err(SourceError::Connect(format!(
                "{}: disconnected, reconnecting ({})",
                self.cfg.url,
                link.last_error.unwrap_or_default()
            )));
        }
        let now = crate::log::now_ms();
        let mut out = Vec::new();
        let (due, wait) = {
            let mut held = self.held.lock().expect("held lock");
            // The broker sends the unacknowledged messages of a resumed session again itself.
            held.retain(|h| h.generation == link.generation || !link.resumed);
            super::take_due(&mut held, now, max, wait, |h| h.due_ms)
        };
        for h in due {
            let mut record = h.record;
            record.attempts += 1;
            out.push(self.wrap(record, h.publish, h.generation));
        }
        let mut received = Vec::new();
        {
            let rx = self
                .incoming
                .as_mut()
                .ok_or_else(|| SourceError::Connect("not connected".into()))?;
            if out.is_empty() {
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(p)) => received.push(p),
                    Ok(None) => return Err(SourceError::Connect("the MQTT client stopped".into())),
                    Err(_) => {}
                }
            }
            while out.len() + received.len() < max {
                match rx.try_recv() {
                    Ok(p) => received.push(p),
                    Err(_) => break,
                }
            }
        }
        for (p, generation) in received {
            if generation != link.generation && link.resumed {
                // Received on a closed connection and not handed out yet: the broker resumed
                // the session and sends it again (handing out both would be a duplicate).
                continue;
            }
            out.push(self.message(p, generation));
        }
        Ok(out)
    }

    async fn lag(&mut self) -> Option<u64> {
        // MQTT has no way to ask the broker; what Gust holds for a retry is known.
        Some(self.held.lock().expect("held lock").len() as u64)
    }
}

struct MqttAck {
    client: AsyncClient,
    publish: Publish,
    record: Record,
    generation: u64,
    link: watch::Receiver<Link>,
    held: HeldList,
}

#[async_trait]
impl AckHandle for MqttAck {
    async fn ack(&self) -> Result<(), SourceError> {
        let current = self.link.borrow().clone();
        if current.generation != self.generation || self.publish.qos == QoS::AtMostOnce {
            // Its packet id belonged to a closed connection (it may name another message
            // now); the handler succeeded, so there is nothing left to do here.
            return Ok(());
        }
        if !current.connected {
            return Err(SourceError::Connect(
                "disconnected; the broker sends the message again".into(),
            ));
        }
        self.client
            .ack(&self.publish)
            .await
            .map_err(|e| SourceError::Connect(e.to_string()))
    }

    async fn retry_later(&self, delay: Duration) -> Result<(), SourceError> {
        let current = self.link.borrow().clone();
        if current.generation != self.generation && current.resumed {
            // The broker resumed the session and sends it again itself.
            return Ok(());
        }
        self.held.lock().expect("held lock").push(Held {
            due_ms: crate::log::now_ms() + delay.as_millis() as i64,
            record: self.record.clone(),
            publish: self.publish.clone(),
            generation: self.generation,
        });
        Ok(())
    }

    async fn dead_letter(&self, _reason: &str, _error: &str) -> Result<bool, SourceError> {
        Ok(false)
    }
}

/// A publish as a CloudEvent. A structured-mode CloudEvent payload (a JSON object with
/// `specversion` "1.0", the CloudEvents MQTT 3.1.1 binding) gives its attributes and its
/// `data` / `data_base64`; anything else is the data as is. Defaults: `id` generated,
/// `source` `/mqtt/<topic filter>`, `type` `gust.mqtt.message`, `subject` the topic.
fn publish_event(filter: &str, p: &Publish, id: String, now_ms: i64) -> CloudEvent {
    let mut event = CloudEvent::internal("gust.mqtt.message", p.payload.clone());
    event.id = id;
    event.source = format!("/mqtt/{filter}");
    event.subject = Some(p.topic.clone());
    event.datacontenttype = None;
    event.time =
        chrono::DateTime::from_timestamp_millis(now_ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let structured = serde_json::from_slice::<serde_json::Map<String, Value>>(&p.payload)
        .ok()
        .filter(|m| m.get("specversion").and_then(Value::as_str) == Some("1.0"));
    if let Some(mut m) = structured {
        let data_base64 = m.remove("data_base64");
        let data = m.remove("data");
        for (k, v) in m {
            let text = match v {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            event.set_attribute(&k, text);
        }
        event.data = match (data_base64, data) {
            (Some(Value::String(b)), _) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map(bytes::Bytes::from)
                .unwrap_or_default(),
            (_, Some(Value::String(s))) => bytes::Bytes::from(s),
            (_, Some(v)) => bytes::Bytes::from(v.to_string()),
            _ => bytes::Bytes::new(),
        };
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(host_port("mqtt://127.0.0.1:1884").unwrap(), ("127.0.0.1".into(), 1884));
        assert_eq!(host_port("mqtt://broker").unwrap(), ("broker".into(), 1883));
        assert!(host_port("mqtt://h:x").is_err());
        assert!(host_port("mqtt://").is_err());
    }

    #[test]
    fn structured_cloudevent_payloads_set_attributes() {
        let p = Publish::new(
            "shop/orders/created",
            QoS::AtLeastOnce,
            br#"{"specversion":"1.0","id":"o-1","type":"order.created","source":"/shop","region":"eu","data":{"order":1}}"#.to_vec(),
        );
        let e = publish_event("shop/+/created", &p, "gen".into(), 0);
        assert_eq!(
            (e.id.as_str(), e.event_type.as_str(), e.source.as_str()),
            ("o-1", "order.created", "/shop")
        );
        assert_eq!(e.extensions["region"], "eu");
        assert_eq!(&e.data[..], br#"{"order":1}"#);
        assert_eq!(e.subject.as_deref(), Some("shop/orders/created"));
        let plain = Publish::new("a/b", QoS::AtLeastOnce, b"21.5".to_vec());
        let e = publish_event("a/+", &plain, "gen".into(), 0);
        assert_eq!((e.id.as_str(), e.event_type.as_str()), ("gen", "gust.mqtt.message"));
        assert_eq!(e.source, "/mqtt/a/+");
        assert_eq!(&e.data[..], b"21.5");
    }
}
