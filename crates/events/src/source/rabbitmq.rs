//! RabbitMQ (AMQP 0-9-1) as a source: one connection and channel per subscription, a
//! `basic.consume` with manual acknowledgement and `basic.qos` prefetch = the subscription's
//! concurrency x batch size (or `prefetch`), so the broker never pushes more than Gust can
//! have in flight.
//!
//! Settling, and why:
//! - **ack** (`basic.ack`) only after the handler succeeded, or after the record was stored in
//!   Gust's DLQ. Until then the message is unacknowledged at the broker: if Gust dies or the
//!   connection breaks, RabbitMQ requeues it and delivers it again with `redelivered = true`.
//! - **retry: held, not requeued.** A failed message stays unacknowledged and Gust keeps it
//!   in memory until its backoff (`retry_delay`, doubled per attempt) is over, then delivers
//!   it to the handler again. `nack(requeue = true)` has no delay (the broker hands it back at
//!   once: a hot loop against a failing handler) and no attempt count on classic queues;
//!   republishing a copy with an attempt header and acking the original would break the
//!   "nothing is acked before it succeeded" rule for the moment between the two and reorder
//!   the queue. Holding keeps one copy, at the broker, the whole time. Its costs: a held
//!   message takes a prefetch slot (a queue full of failing messages slows to the rate the
//!   retries free them: back-pressure), and RabbitMQ's `consumer_timeout` (30 minutes by
//!   default) must be longer than the whole retry schedule.
//! - **attempts**: counted here while Gust runs. A message redelivered by the broker (after a
//!   restart of Gust or a broken connection) starts from RabbitMQ's `x-delivery-count` header
//!   (quorum queues) + 1, else from 2 when `redelivered` is set, else 1.
//! - **dead letter**: into Gust's DLQ, then acked; or, with `dead_letter_exchange`, a
//!   `basic.nack(requeue = false)` that lets RabbitMQ move it to the queue's dead-letter
//!   exchange (with its `x-death` header). The queue is declared with that
//!   `x-dead-letter-exchange` when Gust creates it, and the exchange must exist (checked at
//!   connect): a nack on a queue without a dead-letter exchange would drop the message.
//!
//! The queue is declared durable if it does not exist; an existing queue with other
//! arguments is used as it is. Lapin does not reconnect by itself here: the shared worker
//! calls [`Source::connect`] again with backoff after any error, and messages held for a
//! retry on the old connection are forgotten (the broker requeued them).

use super::{AckHandle, Source, SourceError, SourceMessage};
use crate::cloudevent::CloudEvent;
use crate::delivery::Record;
use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use gust_model::{RabbitMqSource as RabbitMqSpec, SubscriptionSpec};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Acker, BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn connect_error(e: impl std::fmt::Display) -> SourceError {
    SourceError::Connect(e.to_string())
}

fn amqp_error(e: lapin::Error) -> SourceError {
    if e.is_amqp_error() {
        SourceError::Broker(e.to_string())
    } else {
        SourceError::Connect(e.to_string())
    }
}

/// A message held unacknowledged until its retry is due.
struct Held {
    due_ms: i64,
    record: Record,
    acker: Acker,
    /// The connection it came on (see [`RabbitMqSource::generation`]).
    generation: u64,
}

type HeldList = Arc<Mutex<Vec<Held>>>;

pub struct RabbitMqSource {
    cfg: RabbitMqSpec,
    password: Option<String>,
    prefetch: u16,
    vhost: String,
    consumer_tag: String,
    connection: Option<Connection>,
    channel: Option<Channel>,
    consumer: Option<Consumer>,
    held: HeldList,
    /// Bumped at every new connection: delivery tags of an older one are void.
    generation: Arc<AtomicU64>,
}

impl RabbitMqSource {
    pub fn new(cfg: RabbitMqSpec, sub: &SubscriptionSpec, password: Option<String>) -> Self {
        let default_prefetch = (sub.max_concurrency.max(1) as u64 * sub.batch_size.max(1) as u64).min(u16::MAX as u64);
        let prefetch = cfg.prefetch.unwrap_or(default_prefetch as u16);
        let vhost = cfg.vhost();
        Self {
            consumer_tag: format!("gust-{}-{}", super::redis::host_name(), sub.name),
            cfg,
            password,
            prefetch,
            vhost,
            connection: None,
            channel: None,
            consumer: None,
            held: Arc::default(),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    fn is_up(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| c.status().connected())
            && self.channel.as_ref().is_some_and(|c| c.status().connected())
            && self.consumer.is_some()
    }

    async fn teardown(&mut self) {
        self.consumer = None;
        self.channel = None;
        if let Some(c) = self.connection.take() {
            if c.status().connected() {
                let _ = tokio::time::timeout(Duration::from_secs(1), c.close(200, "reconnecting".into())).await;
            }
        }
        // Whatever was held is requeued by the broker with the old connection.
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.held
            .lock()
            .expect("held lock")
            .retain(|h| h.generation == generation);
    }

    /// Declares the queue (durable) unless it exists with other arguments, and checks the
    /// dead-letter exchange. Returns the channel to consume on (a failed declare closes one).
    async fn declare(&self, conn: &Connection, channel: Channel) -> Result<Channel, SourceError> {
        let queue: ShortString = self.cfg.queue.as_str().into();
        let mut args = FieldTable::default();
        if let Some(dlx) = &self.cfg.dead_letter_exchange {
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(dlx.as_str().into()),
            );
        }
        let channel = match channel
            .queue_declare(
                queue.clone(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
        {
            Ok(_) => channel,
            Err(e) if e.is_amqp_soft_error() => {
                // PRECONDITION_FAILED: it exists with other settings (non-durable, other
                // arguments, a policy). Use it as it is.
                match &self.cfg.dead_letter_exchange {
                    Some(dlx) => {
                        tracing::warn!(queue = %self.cfg.queue, error = %e, "the queue exists with other settings; using it as it is: it must dead-letter to `{dlx}` (argument or policy), or a dead letter is dropped")
                    }
                    None => {
                        tracing::info!(queue = %self.cfg.queue, error = %e, "the queue exists with other settings; using it as it is")
                    }
                }
                let channel = conn.create_channel().await.map_err(amqp_error)?;
                channel
                    .queue_declare(
                        queue,
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(amqp_error)?;
                channel
            }
            Err(e) => return Err(amqp_error(e)),
        };
        if let Some(dlx) = &self.cfg.dead_letter_exchange {
            if let Err(e) = channel
                .exchange_declare(
                    dlx.as_str().into(),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
            {
                return Err(SourceError::Broker(format!(
                    "the dead-letter exchange `{dlx}` does not exist (declare it and bind a queue to it; a message nacked into a missing exchange is dropped): {e}"
                )));
            }
        }
        Ok(channel)
    }

    fn message(&self, d: lapin::message::Delivery) -> SourceMessage {
        let now = crate::log::now_ms();
        let props = &d.properties;
        let published_ms = props
            .timestamp()
            .map(|s| (s as i64).saturating_mul(1000))
            .filter(|ms| *ms > 0)
            .unwrap_or(now);
        let broker_count = props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count"))
            .and_then(amqp_u64);
        let delivery_count = match broker_count {
            Some(n) => n as u32 + 1,
            None if d.redelivered => 2,
            None => 1,
        };
        let message_id = props
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let event = delivery_event(&self.cfg.queue, &self.vhost, &d, &message_id, published_ms);
        let native = json!({
            "basicProperties": basic_properties(props, d.data.len()),
            "redelivered": d.redelivered,
        });
        let record = Record {
            message_id,
            receipt: d.delivery_tag.to_string(),
            attempts: delivery_count,
            // Its age counts from when Gust first got it: a producer's `timestamp` may be
            // old or from another clock.
            first_ms: now,
            published_ms,
            event,
            native: Some(Arc::new(native)),
        };
        self.wrap(record, d.acker, self.generation.load(Ordering::Acquire))
    }

    fn wrap(&self, record: Record, acker: Acker, generation: u64) -> SourceMessage {
        SourceMessage {
            delivery_count: record.attempts,
            record: record.clone(),
            ordering_key: None,
            handle: Box::new(RabbitAck {
                acker,
                record,
                generation,
                current: self.generation.clone(),
                held: self.held.clone(),
                dead_letter_exchange: self.cfg.dead_letter_exchange.is_some(),
            }),
        }
    }
}

#[async_trait]
impl Source for RabbitMqSource {
    async fn connect(&mut self) -> Result<(), SourceError> {
        if self.is_up() {
            return Ok(());
        }
        self.teardown().await;
        let mut uri: lapin::uri::AMQPUri = self
            .cfg
            .url
            .parse()
            .map_err(|e| SourceError::Config(format!("source url `{}`: {e}", self.cfg.url)))?;
        if let Some(u) = &self.cfg.username {
            uri.authority.userinfo.username = u.clone();
        }
        if let Some(p) = &self.password {
            uri.authority.userinfo.password = p.clone();
        }
        let props = ConnectionProperties::default().with_connection_name(self.consumer_tag.as_str().into());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, props))
            .await
            .map_err(|_| SourceError::Connect(format!("{}: no answer in {CONNECT_TIMEOUT:?}", self.cfg.url)))?
            .map_err(|e| SourceError::Connect(format!("{}: {e}", self.cfg.url)))?;
        let channel = conn.create_channel().await.map_err(amqp_error)?;
        let channel = self.declare(&conn, channel).await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(amqp_error)?;
        let consumer = channel
            .basic_consume(
                self.cfg.queue.as_str().into(),
                self.consumer_tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp_error)?;
        self.connection = Some(conn);
        self.channel = Some(channel);
        self.consumer = Some(consumer);
        Ok(())
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceMessage>, SourceError> {
        if !self.is_up() {
            return Err(SourceError::Connect(format!(
                "{}: the connection is closed",
                self.cfg.url
            )));
        }
        let now = crate::log::now_ms();
        let generation = self.generation.load(Ordering::Acquire);
        let mut out = Vec::new();
        let (due, wait) = {
            let mut held = self.held.lock().expect("held lock");
            // A new connection voided the old one's delivery tags (the broker requeued them).
            held.retain(|h| h.generation == generation);
            super::take_due(&mut held, now, max, wait, |h| h.due_ms)
        };
        for h in due {
            let mut record = h.record;
            record.attempts += 1;
            out.push(self.wrap(record, h.acker, h.generation));
        }
        let mut deliveries = Vec::new();
        {
            let consumer = self
                .consumer
                .as_mut()
                .ok_or_else(|| SourceError::Connect("not connected".into()))?;
            let ended =
                || SourceError::Connect("the broker ended the consumer (connection closed or queue deleted)".into());
            if out.is_empty() {
                match tokio::time::timeout(wait, consumer.next()).await {
                    Ok(Some(Ok(d))) => deliveries.push(d),
                    Ok(Some(Err(e))) => {
                        self.consumer = None;
                        return Err(amqp_error(e));
                    }
                    Ok(None) => {
                        self.consumer = None;
                        return Err(ended());
                    }
                    Err(_) => {}
                }
            }
            let consumer = self.consumer.as_mut().expect("kept");
            while out.len() + deliveries.len() < max {
                match consumer.next().now_or_never() {
                    Some(Some(Ok(d))) => deliveries.push(d),
                    Some(Some(Err(e))) => {
                        tracing::debug!(error = %e, "consumer error after a delivery; reconnecting on the next fetch");
                        self.consumer = None;
                        break;
                    }
                    Some(None) => {
                        self.consumer = None;
                        break;
                    }
                    None => break,
                }
            }
        }
        for d in deliveries {
            out.push(self.message(d));
        }
        Ok(out)
    }

    async fn lag(&mut self) -> Option<u64> {
        let channel = self.channel.as_ref()?;
        let q = channel
            .queue_declare(
                self.cfg.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        let held = self.held.lock().expect("held lock").len() as u64;
        Some(q.message_count() as u64 + held)
    }
}

struct RabbitAck {
    acker: Acker,
    record: Record,
    generation: u64,
    current: Arc<AtomicU64>,
    held: HeldList,
    dead_letter_exchange: bool,
}

impl RabbitAck {
    fn check_connection(&self) -> Result<(), SourceError> {
        if self.current.load(Ordering::Acquire) != self.generation {
            return Err(SourceError::Connect(
                "the connection this message came on is gone; the broker delivers it again".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl AckHandle for RabbitAck {
    async fn ack(&self) -> Result<(), SourceError> {
        self.check_connection()?;
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(connect_error)?;
        Ok(())
    }

    async fn retry_later(&self, delay: Duration) -> Result<(), SourceError> {
        self.check_connection()?;
        self.held.lock().expect("held lock").push(Held {
            due_ms: crate::log::now_ms() + delay.as_millis() as i64,
            record: self.record.clone(),
            acker: self.acker.clone(),
            generation: self.generation,
        });
        Ok(())
    }

    async fn dead_letter(&self, _reason: &str, _error: &str) -> Result<bool, SourceError> {
        if !self.dead_letter_exchange {
            return Ok(false);
        }
        self.check_connection()?;
        // RabbitMQ moves it to the queue's dead-letter exchange, adding `x-death`.
        self.acker
            .nack(BasicNackOptions {
                requeue: false,
                ..Default::default()
            })
            .await
            .map_err(connect_error)?;
        Ok(true)
    }
}

fn amqp_u64(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(*n as u64),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(*n as u64),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(*n as u64),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::Timestamp(n) => Some(*n),
        _ => None,
    }
}

/// An AMQP field value as Lambda shows it: strings and byte arrays as `{"bytes":[...]}` (the
/// RabbitMQ Java client's `LongString`, which Lambda serialises), numbers, booleans, nested
/// tables and arrays as themselves.
fn amqp_json(v: &AMQPValue) -> Value {
    let bytes = |b: &[u8]| json!({ "bytes": b });
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::DecimalValue(d) => json!(d.value as f64 / 10f64.powi(d.scale as i32)),
        AMQPValue::ShortString(s) => bytes(s.as_str().as_bytes()),
        AMQPValue::LongString(s) => bytes(s.as_bytes()),
        AMQPValue::ByteArray(b) => bytes(b.as_slice()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(table_json(t)),
        AMQPValue::Void => Value::Null,
        other => amqp_u64(other)
            .map(|n| json!(n))
            .or_else(|| amqp_i64(other).map(|n| json!(n)))
            .unwrap_or(Value::Null),
    }
}

fn amqp_i64(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(n) => Some(*n as i64),
        AMQPValue::ShortInt(n) => Some(*n as i64),
        AMQPValue::LongInt(n) => Some(*n as i64),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

fn table_json(t: &FieldTable) -> Map<String, Value> {
    t.inner().iter().map(|(k, v)| (k.to_string(), amqp_json(v))).collect()
}

/// A string header's text (`LongString` / `ShortString`), for CloudEvents attributes.
fn amqp_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// `basicProperties` of Lambda's RabbitMQ event (the names and forms its Java client shows;
/// `timestamp` as `Jan 1, 1970, 12:33:41 AM` in UTC).
fn basic_properties(p: &BasicProperties, body_size: usize) -> Value {
    let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.to_string());
    json!({
        "contentType": s(p.content_type()),
        "contentEncoding": s(p.content_encoding()),
        "headers": p.headers().as_ref().map(table_json).unwrap_or_default(),
        "deliveryMode": p.delivery_mode().unwrap_or(1),
        "priority": p.priority().unwrap_or(0),
        "correlationId": s(p.correlation_id()),
        "replyTo": s(p.reply_to()),
        "expiration": s(p.expiration()),
        "messageId": s(p.message_id()),
        "timestamp": p.timestamp().and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
            .map(|t| t.format("%b %-d, %Y, %-I:%M:%S %p").to_string()),
        "type": s(p.kind()),
        "userId": s(p.user_id()),
        "appId": s(p.app_id()),
        "clusterId": s(p.cluster_id()),
        "bodySize": body_size,
    })
}

/// A delivery as a CloudEvent (for filters, Gust's DLQ and the SQS-like shape): `id` the
/// `message_id` property (else generated), `type` the `type` property (else
/// `gust.rabbitmq.message`), `source` `/rabbitmq/<vhost>/<queue>`, `subject` the routing key,
/// `datacontenttype` the `content_type`; headers `cloudEvents:<attr>` / `cloudEvents_<attr>`
/// (the CloudEvents AMQP binding) or `ce-<attr>` / `ce_<attr>` set attributes.
fn delivery_event(
    queue: &str,
    vhost: &str,
    d: &lapin::message::Delivery,
    message_id: &str,
    published_ms: i64,
) -> CloudEvent {
    let p = &d.properties;
    let mut event = CloudEvent::internal("gust.rabbitmq.message", bytes::Bytes::from(d.data.clone()));
    event.id = message_id.to_string();
    event.source = format!("/rabbitmq/{}/{queue}", vhost.trim_start_matches('/'));
    if let Some(t) = p.kind() {
        event.event_type = t.to_string();
    }
    event.subject = Some(d.routing_key.to_string()).filter(|s| !s.is_empty());
    event.datacontenttype = p.content_type().as_ref().map(|c| c.to_string());
    event.time = chrono::DateTime::from_timestamp_millis(published_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    if let Some(h) = p.headers() {
        for (name, value) in h.inner() {
            let name = name.as_str();
            let lower = name.to_ascii_lowercase();
            let Some(attr) = ["cloudevents:", "cloudevents_", "ce-", "ce_"]
                .iter()
                .find_map(|prefix| lower.strip_prefix(prefix))
            else {
                continue;
            };
            if let Some(text) = amqp_text(value) {
                event.set_attribute(attr, text);
            }
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_take_lambdas_forms() {
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongLongInt(-3));
        assert_eq!(
            amqp_json(&AMQPValue::LongString("ab".into())),
            json!({ "bytes": [97, 98] })
        );
        assert_eq!(amqp_json(&AMQPValue::LongInt(10)), json!(10));
        assert_eq!(amqp_json(&AMQPValue::Boolean(true)), json!(true));
        assert_eq!(amqp_json(&AMQPValue::FieldTable(inner)), json!({ "n": -3 }));
        assert_eq!(amqp_json(&AMQPValue::Void), Value::Null);
    }

    #[test]
    fn basic_properties_have_every_field_lambda_sends() {
        let p = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2)
            .with_timestamp(2021);
        let v = basic_properties(&p, 80);
        assert_eq!(v["contentType"], "text/plain");
        assert_eq!(v["deliveryMode"], 2);
        assert_eq!(v["priority"], 0);
        assert_eq!(v["bodySize"], 80);
        assert_eq!(v["timestamp"], "Jan 1, 1970, 12:33:41 AM");
        for k in [
            "contentEncoding",
            "correlationId",
            "replyTo",
            "expiration",
            "messageId",
            "type",
            "userId",
            "appId",
            "clusterId",
        ] {
            assert!(v.get(k).is_some_and(Value::is_null), "{k} in {v}");
        }
    }
}
