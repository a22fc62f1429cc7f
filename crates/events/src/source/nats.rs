//! NATS as a source: JetStream durable pull consumers (at-least-once) and core NATS
//! subscriptions (at-most-once).
//!
//! JetStream: the stream is created if absent (with the subject), the durable consumer is
//! created or updated with `AckPolicy::Explicit`, `AckWait` = the visibility timeout and
//! `MaxDeliver` = max attempts + 1 (a backstop: Gust dead-letters after max attempts itself).
//! A fetch takes what is there (`no_wait`) or waits for the first message; ack after success,
//! nak with the backoff as delay for a retry, the delivery count from the message's metadata.
//! Only what nats-server 2.9 has is used (the old consumer create API, one filter subject).
//!
//! Core NATS has no acknowledgements: a message is Gust's once received. Retries are kept in
//! memory and a message in flight when Gust stops is lost; Gust says so at start.
//!
//! The client reconnects by itself after a broken connection; `connect` only makes the first
//! connection and then reports the client's state.

use super::{AckHandle, Source, SourceError, SourceMessage};
use crate::cloudevent::CloudEvent;
use crate::delivery::Record;
use async_nats::jetstream::{self, consumer, AckKind};
use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use gust_model::{JetStreamSource as JetStreamSpec, StartPosition, SubscriptionSpec};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn connect_error(e: impl std::fmt::Display) -> SourceError {
    SourceError::Connect(e.to_string())
}

fn broker_error(e: impl std::fmt::Display) -> SourceError {
    SourceError::Broker(e.to_string())
}

fn check_connected(url: &str, client: &Option<async_nats::Client>) -> Result<(), SourceError> {
    match client.as_ref().map(|c| c.connection_state()) {
        Some(async_nats::connection::State::Connected) => Ok(()),
        _ => Err(SourceError::Connect(format!(
            "{url}: disconnected, the client is reconnecting"
        ))),
    }
}

async fn client(
    url: &str,
    username: &Option<String>,
    password: &Option<String>,
    existing: &Option<async_nats::Client>,
) -> Result<async_nats::Client, SourceError> {
    if let Some(c) = existing {
        return match c.connection_state() {
            async_nats::connection::State::Connected => Ok(c.clone()),
            _ => Err(SourceError::Connect(format!(
                "{url}: disconnected, the client is reconnecting"
            ))),
        };
    }
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        // After a first connection the client keeps reconnecting by itself; the delay is
        // capped so that a restarted server is found again within seconds.
        .reconnect_delay_callback(|attempts| Duration::from_millis((100u64 << attempts.min(6)).min(5000)));
    if let (Some(u), Some(p)) = (username, password) {
        options = options.user_and_password(u.clone(), p.clone());
    } else if let Some(p) = password {
        options = options.token(p.clone());
    }
    options.connect(url).await.map_err(connect_error)
}

/// A NATS message as a CloudEvent: headers `ce-<attribute>` set attributes (the CloudEvents
/// NATS binding's binary mode), the payload is the data. Defaults: `id` `Nats-Msg-Id` or
/// `fallback_id`, `source` `/<kind>/<stream or subject>`, `type` `gust.<kind>.message`,
/// `subject` the NATS subject.
fn message_event(
    kind: &str,
    source: &str,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    payload: bytes::Bytes,
    fallback_id: String,
    published_ms: i64,
) -> CloudEvent {
    let mut event = CloudEvent::internal(&format!("gust.{kind}.message"), payload);
    event.id = fallback_id;
    event.source = format!("/{kind}/{source}");
    event.subject = Some(subject.to_string());
    event.time = chrono::DateTime::from_timestamp_millis(published_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    if let Some(h) = headers {
        if let Some(id) = h.get("Nats-Msg-Id") {
            event.id = id.to_string();
        }
        for (name, values) in h.iter() {
            let name: &str = name.as_ref();
            let Some(attr) = name.to_ascii_lowercase().strip_prefix("ce-").map(str::to_string) else {
                continue;
            };
            let Some(value) = values.first().map(|v| v.to_string()) else {
                continue;
            };
            event.set_attribute(&attr, value);
        }
        if let Some(ct) = h.get("Content-Type") {
            event.datacontenttype.get_or_insert_with(|| ct.to_string());
        }
    }
    event
}

pub struct JetStreamSource {
    cfg: JetStreamSpec,
    password: Option<String>,
    ack_wait: Duration,
    max_deliver: i64,
    client: Option<async_nats::Client>,
    consumer: Option<consumer::PullConsumer>,
}

impl JetStreamSource {
    pub fn new(cfg: JetStreamSpec, sub: &SubscriptionSpec, password: Option<String>) -> Self {
        Self {
            cfg,
            password,
            ack_wait: sub.visibility_timeout,
            max_deliver: sub.max_attempts as i64 + 1,
            client: None,
            consumer: None,
        }
    }

    fn consumer_config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.cfg.durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            filter_subject: self.cfg.subject.clone(),
            deliver_policy: match self.cfg.start {
                StartPosition::Latest => consumer::DeliverPolicy::New,
                StartPosition::Earliest => consumer::DeliverPolicy::All,
            },
            ..Default::default()
        }
    }

    fn message(&self, m: jetstream::Message) -> Result<SourceMessage, SourceError> {
        let info = m.info().map_err(broker_error)?;
        let (seq, delivered) = (info.stream_sequence, info.delivered);
        let published_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
        let message_id = format!("{}:{seq}", self.cfg.stream);
        let event = message_event(
            "nats-jetstream",
            &self.cfg.stream,
            m.subject.as_str(),
            m.headers.as_ref(),
            m.payload.clone(),
            message_id.clone(),
            published_ms,
        );
        Ok(SourceMessage {
            record: Record {
                receipt: message_id.clone(),
                message_id,
                attempts: delivered.max(1) as u32,
                first_ms: published_ms,
                published_ms,
                event,
                native: None,
            },
            delivery_count: delivered.max(1) as u32,
            ordering_key: None,
            handle: Box::new(JetStreamAck {
                message: m,
                client: self.client.clone().expect("connected"),
                dead_letter_subject: self.cfg.dead_letter_subject.clone(),
            }),
        })
    }
}

#[async_trait]
impl Source for JetStreamSource {
    async fn connect(&mut self) -> Result<(), SourceError> {
        let c = client(&self.cfg.url, &self.cfg.username, &self.password, &self.client).await?;
        self.client = Some(c.clone());
        if self.consumer.is_some() {
            return Ok(());
        }
        let js = jetstream::new(c);
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: self.cfg.stream.clone(),
                subjects: vec![self.cfg.subject.clone()],
                ..Default::default()
            })
            .await
            .map_err(broker_error)?;
        let consumer = match stream.create_consumer(self.consumer_config()).await {
            Ok(c) => c,
            Err(e) => {
                // An existing durable whose settings cannot be changed in place: use it as is.
                tracing::warn!(stream = %self.cfg.stream, durable = %self.cfg.durable, error = %e, "could not create or update the durable consumer; using the existing one");
                stream
                    .get_consumer::<consumer::pull::Config>(&self.cfg.durable)
                    .await
                    .map_err(broker_error)?
            }
        };
        self.consumer = Some(consumer);
        Ok(())
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceMessage>, SourceError> {
        // While the client reconnects by itself, pull requests time out empty: say so.
        check_connected(&self.cfg.url, &self.client)?;
        let consumer = self
            .consumer
            .clone()
            .ok_or_else(|| SourceError::Connect("not connected".into()))?;
        // What is there now, without waiting ...
        let mut out = Vec::new();
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(connect_error)?;
        while let Some(m) = batch.next().await {
            out.push(self.message(m.map_err(connect_error)?)?);
        }
        if !out.is_empty() {
            return Ok(out);
        }
        // ... else wait for the first one.
        let mut batch = consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(connect_error)?;
        while let Some(m) = batch.next().await {
            out.push(self.message(m.map_err(connect_error)?)?);
        }
        Ok(out)
    }

    async fn lag(&mut self) -> Option<u64> {
        let consumer = self.consumer.as_mut()?;
        let info = consumer.info().await.ok()?;
        Some(info.num_pending + info.num_ack_pending as u64)
    }
}

struct JetStreamAck {
    message: jetstream::Message,
    client: async_nats::Client,
    dead_letter_subject: Option<String>,
}

#[async_trait]
impl AckHandle for JetStreamAck {
    async fn ack(&self) -> Result<(), SourceError> {
        // Confirmed by the server: an ack lost on the way is a redelivery, not a surprise.
        self.message.double_ack().await.map_err(connect_error)
    }

    async fn retry_later(&self, delay: Duration) -> Result<(), SourceError> {
        self.message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(connect_error)
    }

    async fn dead_letter(&self, reason: &str, error: &str) -> Result<bool, SourceError> {
        let Some(subject) = &self.dead_letter_subject else {
            return Ok(false);
        };
        let mut headers = self.message.headers.clone().unwrap_or_default();
        headers.insert("Gust-Reason", reason);
        headers.insert(
            "Gust-Error",
            error.chars().take(1000).collect::<String>().replace(['\r', '\n'], " "),
        );
        headers.insert("Gust-Subject", self.message.subject.as_str());
        // Published (and confirmed by the stream, if one stores the subject) before the
        // original is terminated.
        let js = jetstream::new(self.client.clone());
        let ack = js
            .publish_with_headers(subject.clone(), headers, self.message.payload.clone())
            .await
            .map_err(connect_error)?;
        ack.await.map_err(connect_error)?;
        self.message
            .double_ack_with(AckKind::Term)
            .await
            .map_err(connect_error)?;
        Ok(true)
    }
}

/// Messages of a core NATS subscription waiting for a retry (in memory).
type Pending = Arc<Mutex<Vec<(i64, Record)>>>;

pub struct CoreNatsSource {
    cfg: gust_model::CoreNatsSource,
    password: Option<String>,
    client: Option<async_nats::Client>,
    subscriber: Option<async_nats::Subscriber>,
    retries: Pending,
}

impl CoreNatsSource {
    pub fn new(cfg: gust_model::CoreNatsSource, password: Option<String>) -> Self {
        Self {
            cfg,
            password,
            client: None,
            subscriber: None,
            retries: Arc::default(),
        }
    }

    fn wrap(&self, record: Record) -> SourceMessage {
        let record_copy = record.clone();
        SourceMessage {
            delivery_count: record.attempts,
            record,
            ordering_key: None,
            handle: Box::new(CoreAck {
                retries: self.retries.clone(),
                record: record_copy,
            }),
        }
    }

    fn record(&self, m: async_nats::Message) -> Record {
        let now = crate::log::now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let event = message_event(
            "nats",
            &self.cfg.subject,
            m.subject.as_str(),
            m.headers.as_ref(),
            m.payload,
            id.clone(),
            now,
        );
        Record {
            message_id: event.id.clone(),
            receipt: id,
            attempts: 1,
            first_ms: now,
            published_ms: now,
            event,
            native: None,
        }
    }
}

#[async_trait]
impl Source for CoreNatsSource {
    async fn connect(&mut self) -> Result<(), SourceError> {
        let c = client(&self.cfg.url, &self.cfg.username, &self.password, &self.client).await?;
        self.client = Some(c.clone());
        if self.subscriber.is_none() {
            let s = match &self.cfg.queue_group {
                Some(q) => c.queue_subscribe(self.cfg.subject.clone(), q.clone()).await,
                None => c.subscribe(self.cfg.subject.clone()).await,
            }
            .map_err(broker_error)?;
            // The subscription must be known to the server before Gust says it is connected.
            c.flush().await.map_err(connect_error)?;
            self.subscriber = Some(s);
        }
        Ok(())
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceMessage>, SourceError> {
        check_connected(&self.cfg.url, &self.client)?;
        let mut out = Vec::new();
        let now = crate::log::now_ms();
        let due: Vec<Record> = {
            let mut r = self.retries.lock().expect("retries lock");
            let (due, later): (Vec<_>, Vec<_>) = r.drain(..).partition(|(at, _)| *at <= now);
            *r = later;
            due.into_iter().map(|(_, rec)| rec).collect()
        };
        for mut rec in due {
            rec.attempts += 1;
            out.push(self.wrap(rec));
        }
        let next_retry = self
            .retries
            .lock()
            .expect("retries lock")
            .iter()
            .map(|(at, _)| *at)
            .min();
        let wait = match next_retry {
            Some(at) => wait.min(Duration::from_millis((at - now).max(1) as u64)),
            None => wait,
        };
        let mut received = Vec::new();
        {
            let sub = self
                .subscriber
                .as_mut()
                .ok_or_else(|| SourceError::Connect("not connected".into()))?;
            if out.is_empty() {
                match tokio::time::timeout(wait, sub.next()).await {
                    Ok(Some(m)) => received.push(m),
                    Ok(None) => {
                        self.subscriber = None;
                        return Err(SourceError::Connect("the subscription ended".into()));
                    }
                    Err(_) => {}
                }
            }
            while out.len() + received.len() < max {
                match sub.next().now_or_never() {
                    Some(Some(m)) => received.push(m),
                    _ => break,
                }
            }
        }
        for m in received {
            let rec = self.record(m);
            out.push(self.wrap(rec));
        }
        Ok(out)
    }

    async fn lag(&mut self) -> Option<u64> {
        None
    }
}

/// Core NATS has nothing to acknowledge: a retry is kept in memory.
struct CoreAck {
    retries: Pending,
    record: Record,
}

#[async_trait]
impl AckHandle for CoreAck {
    async fn ack(&self) -> Result<(), SourceError> {
        Ok(())
    }

    async fn retry_later(&self, delay: Duration) -> Result<(), SourceError> {
        let at = crate::log::now_ms() + delay.as_millis() as i64;
        self.retries
            .lock()
            .expect("retries lock")
            .push((at, self.record.clone()));
        Ok(())
    }

    async fn dead_letter(&self, _reason: &str, _error: &str) -> Result<bool, SourceError> {
        Ok(false)
    }
}
