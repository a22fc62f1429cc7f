//! Broker event sources: a subscription that reads a broker (Redis Streams, NATS JetStream,
//! core NATS, RabbitMQ, MQTT; Kafka later) directly instead of a Gust topic.
//!
//! Direct consumption, not ingest: a [`Source`] yields batches of [`SourceMessage`]s that are
//! still the broker's; each carries an [`AckHandle`], and the broker is told a message is done
//! only after the handler succeeded, or after the message was durably dead-lettered (into
//! Gust's DLQ for the subscription, in the embedded log, or into a broker-side target the user
//! named). Copying records into the embedded log first would have meant acking the broker
//! before the function ran, a second durable write per message, and a second source of truth
//! for ordering and lag (`docs/ARCHITECTURE.md`).
//!
//! The worker here is shared by every broker: (re)connection with capped backoff, the state
//! the operator sees ([`SourceStatus`]: connected / reconnecting with the last error / lag),
//! concurrency, per-key order, and the settling of each record after the delivery core
//! (`delivery.rs`, the same code the embedded log's workers use) decided its [`Outcome`]:
//! ack, retry later, back-pressure (give back without counting an attempt), dead letter.
//! A broker module only maps its protocol onto [`Source`] and [`AckHandle`].

pub mod dynamodb;
pub mod mqtt;
pub mod nats;
pub mod rabbitmq;
pub mod redis;

use crate::delivery::{Deliverer, Outcome, Record};
use crate::log::{now_ms, EventLog, NewDeadLetter};
use async_trait::async_trait;
use gust_model::{SourceSpec, SubscriptionSpec};
use gust_runtime::metric_names as names;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, Semaphore};

/// The longest a fetch waits for a first message (so that stop and lag checks stay timely).
pub(crate) const FETCH_WAIT: Duration = Duration::from_secs(1);
/// Reconnection backoff: first delay, doubled per failure up to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How often the broker is asked for the lag while connected.
const LAG_EVERY: Duration = Duration::from_secs(2);
/// Before a record whose dead letter could not be stored is tried again.
const SETTLE_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The broker cannot be reached or the connection broke: retried with backoff.
    #[error("cannot reach the broker: {0}")]
    Connect(String),
    /// The broker refused a command (a missing stream, a permission).
    #[error("the broker refused: {0}")]
    Broker(String),
    /// The source's settings cannot work (a missing secret).
    #[error("{0}")]
    Config(String),
}

/// One message read from a broker and not yet settled.
pub struct SourceMessage {
    /// `attempts` is filled in by the worker from `delivery_count`.
    pub record: Record,
    /// Deliveries the broker counted, this one included (0: the broker keeps no count).
    pub delivery_count: u32,
    /// Same key, same order (Redis: the `ordering_key` field's value).
    pub ordering_key: Option<String>,
    pub handle: Box<dyn AckHandle>,
}

impl std::fmt::Debug for SourceMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceMessage")
            .field("message_id", &self.record.message_id)
            .field("delivery_count", &self.delivery_count)
            .finish()
    }
}

/// How a message is settled at its broker.
#[async_trait]
pub trait AckHandle: Send + Sync {
    /// Done: the broker may forget the message (`XACK`, JetStream ack).
    async fn ack(&self) -> Result<(), SourceError>;
    /// Deliver it again after `delay` (Redis: stays pending, claimed again after a timer;
    /// JetStream: nak with delay).
    async fn retry_later(&self, delay: Duration) -> Result<(), SourceError>;
    /// Into the broker's own dead-letter target and done, when the user named one; `false`
    /// when the source has none (then it goes to Gust's DLQ and is acked after that).
    async fn dead_letter(&self, reason: &str, error: &str) -> Result<bool, SourceError>;
}

/// A broker connection that yields batches.
#[async_trait]
pub trait Source: Send + 'static {
    /// Connects, or checks a connection the client restores by itself, and prepares what the
    /// source reads (consumer group, durable consumer). Called again after any error.
    async fn connect(&mut self) -> Result<(), SourceError>;
    /// Up to `max` messages, waiting up to `wait` for the first; empty when none came.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceMessage>, SourceError>;
    /// Messages the broker holds that this subscription has not finished, where it tells.
    async fn lag(&mut self) -> Option<u64>;
}

/// What the operator sees of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// `connecting`, `connected` or `reconnecting`.
    pub state: &'static str,
    pub last_error: Option<String>,
    pub lag: Option<u64>,
    /// When the state last changed (epoch ms).
    pub since_ms: i64,
}

/// A source's identity and live state (shared with the operator API and `/metrics`).
#[derive(Debug)]
pub struct SourceStatus {
    pub kind: &'static str,
    /// The broker URL (never with credentials).
    pub url: String,
    /// What is read (stream and group, subject, ...).
    pub address: String,
    /// False for core NATS: a message in flight when Gust stops is lost.
    pub at_least_once: bool,
    state: Mutex<SourceState>,
}

impl SourceStatus {
    fn new(spec: &SourceSpec) -> Self {
        Self {
            kind: spec.kind(),
            url: spec.url().to_string(),
            address: spec.address(),
            at_least_once: spec.at_least_once(),
            state: Mutex::new(SourceState {
                state: "connecting",
                last_error: None,
                lag: None,
                since_ms: now_ms(),
            }),
        }
    }

    pub fn state(&self) -> SourceState {
        self.state.lock().expect("source state lock").clone()
    }

    /// Records a state; returns whether it changed (so that it is logged once per change).
    fn set(&self, state: &'static str, error: Option<String>) -> bool {
        let mut s = self.state.lock().expect("source state lock");
        let changed = s.state != state;
        if changed {
            s.since_ms = now_ms();
        }
        s.state = state;
        if error.is_some() {
            s.last_error = error;
        }
        changed
    }

    fn set_lag(&self, lag: Option<u64>) {
        self.state.lock().expect("source state lock").lag = lag;
    }
}

/// Of the messages a source holds for a retry (brokers with no delayed redelivery: RabbitMQ,
/// MQTT), takes those due at `now`, at most `room` of them (the others stay held), and says
/// how long a fetch may wait at most: until the earliest one still held is due.
pub(crate) fn take_due<H>(
    held: &mut Vec<H>,
    now: i64,
    room: usize,
    wait: Duration,
    due_ms: impl Fn(&H) -> i64,
) -> (Vec<H>, Duration) {
    let mut due = Vec::new();
    let mut kept = Vec::with_capacity(held.len());
    for h in held.drain(..) {
        if due_ms(&h) <= now && due.len() < room {
            due.push(h);
        } else {
            kept.push(h);
        }
    }
    *held = kept;
    let wait = match held.iter().map(&due_ms).min() {
        Some(at) => wait.min(Duration::from_millis((at - now).max(1) as u64)),
        None => wait,
    };
    (due, wait)
}

/// Builds the source of `spec`; `password` is the value of its `password_secret`.
pub fn build(
    sub: &SubscriptionSpec,
    spec: &SourceSpec,
    password: Option<String>,
    tables: Option<&dynamodb::Tables>,
) -> Result<Box<dyn Source>, SourceError> {
    if let (Some(name), None) = (spec.password_secret(), &password) {
        return Err(SourceError::Config(format!(
            "the secret `{name}` named in `password_secret` is not set (`gust secrets set {name}`)"
        )));
    }
    Ok(match spec {
        SourceSpec::RedisStreams(r) => Box::new(redis::RedisSource::new(r.clone(), sub, password)?),
        SourceSpec::NatsJetStream(j) => Box::new(nats::JetStreamSource::new(j.clone(), sub, password)),
        SourceSpec::Nats(n) => Box::new(nats::CoreNatsSource::new(n.clone(), password)),
        SourceSpec::RabbitMq(r) => Box::new(rabbitmq::RabbitMqSource::new(r.clone(), sub, password)),
        SourceSpec::Mqtt(m) => Box::new(mqtt::MqttSource::new(m.clone(), sub, password)?),
        SourceSpec::DynamoDbStream(d) => {
            let tables = tables.ok_or_else(|| SourceError::Config("this Gust serves no DynamoDB tables".into()))?;
            Box::new(dynamodb::DynamoDbStream::new(
                d.clone(),
                sub.name.as_str(),
                tables.clone(),
            ))
        }
    })
}

/// What the worker shares with the tasks settling its batches.
struct Shared {
    spec: SubscriptionSpec,
    deliverer: Arc<Deliverer>,
    log: Arc<dyn EventLog>,
    /// Back-pressure give-backs per message id: the broker counts them as deliveries, Gust
    /// does not count them as attempts (in memory: after a restart the broker's count is used).
    released: Mutex<HashMap<String, u32>>,
    /// Set at shutdown: lanes stop retrying in place and leave what is left to the broker.
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

/// A running source worker.
pub(crate) struct SourceWorker {
    pub status: Arc<SourceStatus>,
    stop: Arc<Notify>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SourceWorker {
    pub fn start(
        spec: SubscriptionSpec,
        source: Result<Box<dyn Source>, SourceError>,
        deliverer: Arc<Deliverer>,
        log: Arc<dyn EventLog>,
    ) -> Self {
        let src_spec = spec.source.clone().expect("a source subscription");
        let status = Arc::new(SourceStatus::new(&src_spec));
        if !src_spec.at_least_once() {
            let advice = match src_spec {
                SourceSpec::Mqtt(_) => "use qos = 1 and clean_session = false for at-least-once",
                _ => "use nats-jetstream for at-least-once",
            };
            tracing::warn!(subscription = %spec.name, source = src_spec.kind(), "this source is at-most-once: a message in flight when Gust stops is lost ({advice})");
        }
        let stop = Arc::new(Notify::new());
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = match source {
            Ok(source) => {
                let shared = Arc::new(Shared {
                    spec,
                    deliverer,
                    log,
                    released: Mutex::new(HashMap::new()),
                    stopped: stopped.clone(),
                });
                Some(tokio::spawn(run(
                    source,
                    shared,
                    status.clone(),
                    stop.clone(),
                    stopped.clone(),
                )))
            }
            Err(e) => {
                tracing::error!(subscription = %spec.name, source = src_spec.kind(), error = %e, "the source cannot start");
                status.set("reconnecting", Some(e.to_string()));
                None
            }
        };
        Self {
            status,
            stop,
            stopped,
            task: Mutex::new(task),
        }
    }

    /// Stops fetching (see [`Self::join`]).
    pub fn signal_stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Release);
        self.stop.notify_waiters();
    }

    /// Waits for batches in flight to finish, up to `grace`. Unsettled messages stay with the
    /// broker (pending / unacked), to be delivered again.
    pub async fn join(&self, grace: Duration) {
        let task = self.task.lock().expect("task lock").take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(grace, t).await;
        }
    }
}

async fn run(
    mut source: Box<dyn Source>,
    shared: Arc<Shared>,
    status: Arc<SourceStatus>,
    stop: Arc<Notify>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
) {
    let spec = shared.spec.clone();
    let sub = spec.name.to_string();
    let kind = status.kind;
    let metrics = shared.deliverer.invoker.metrics().clone();
    let is_stopped = || stopped.load(std::sync::atomic::Ordering::Acquire);
    let concurrency = spec.max_concurrency.max(1) as usize;
    let permits = Arc::new(Semaphore::new(concurrency));
    let ordered = matches!(&spec.source, Some(SourceSpec::RedisStreams(r)) if r.ordering_key.is_some())
        || matches!(&spec.source, Some(SourceSpec::DynamoDbStream(_)));
    // Ordered: one lane per concurrency slot; a key always maps to the same lane, and a lane
    // delivers its batches one after another (retrying in place), so a key's order holds.
    let mut lanes: Vec<mpsc::Sender<Vec<SourceMessage>>> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    if ordered {
        for _ in 0..concurrency {
            let (tx, mut rx) = mpsc::channel::<Vec<SourceMessage>>(1);
            let shared = shared.clone();
            tasks.spawn(async move {
                while let Some(batch) = rx.recv().await {
                    deliver_in_order(&shared, batch).await;
                }
            });
            lanes.push(tx);
        }
    }
    let mut connected = false;
    let mut delay = RECONNECT_FIRST;
    let mut last_lag = Instant::now() - LAG_EVERY;
    let mut next_lane = 0usize;
    metrics.gauge(names::SOURCE_UP, &[("subscription", &sub), ("type", kind)], 0.0);
    while !is_stopped() {
        if !connected {
            match source.connect().await {
                Ok(()) => {
                    connected = true;
                    delay = RECONNECT_FIRST;
                    if status.set("connected", None) {
                        tracing::info!(subscription = %sub, source = kind, url = %status.url, what = %status.address, "source connected");
                    }
                    metrics.gauge(names::SOURCE_UP, &[("subscription", &sub), ("type", kind)], 1.0);
                }
                Err(e) => {
                    if status.set("reconnecting", Some(e.to_string())) {
                        tracing::warn!(subscription = %sub, source = kind, url = %status.url, error = %e, "source not connected; retrying with backoff (logged again when the state changes)");
                    }
                    metrics.gauge(names::SOURCE_UP, &[("subscription", &sub), ("type", kind)], 0.0);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.notified() => break,
                    }
                    delay = (delay * 2).min(RECONNECT_MAX);
                    continue;
                }
            }
        }
        if last_lag.elapsed() >= LAG_EVERY {
            last_lag = Instant::now();
            let lag = source.lag().await;
            status.set_lag(lag);
            if let Some(l) = lag {
                metrics.gauge(names::SOURCE_LAG, &[("subscription", &sub)], l as f64);
            }
        }
        // Capacity first: a batch is fetched only when it can be delivered now.
        let permit = if ordered {
            None
        } else {
            tokio::select! {
                p = permits.clone().acquire_owned() => Some(p.expect("semaphore never closed")),
                _ = stop.notified() => break,
            }
        };
        let fetched = tokio::select! {
            f = source.fetch(spec.batch_size as usize, FETCH_WAIT) => f,
            _ = stop.notified() => break,
        };
        let batch = match fetched {
            Ok(b) => b,
            Err(e) => {
                connected = false;
                if status.set("reconnecting", Some(e.to_string())) {
                    tracing::warn!(subscription = %sub, source = kind, url = %status.url, error = %e, "source lost; reconnecting with backoff (logged again when the state changes)");
                }
                metrics.gauge(names::SOURCE_UP, &[("subscription", &sub), ("type", kind)], 0.0);
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        metrics.incr(names::SOURCE_RECEIVED, &[("subscription", &sub)], batch.len() as u64);
        // The subscription's filters (`types`, `attributes`, filter patterns on the record's
        // JSON), as Lambda's filter criteria: a message they do not accept is done without an
        // invocation.
        let (batch, skipped): (Vec<_>, Vec<_>) = batch.into_iter().partition(|m| {
            spec.filter
                .matches(&m.record.event.event_type, |k| m.record.event.attribute(k))
                && spec.filter.matches_data(&m.record.event.data)
        });
        for m in skipped {
            if let Err(e) = m.handle.ack().await {
                tracing::warn!(subscription = %sub, message_id = %m.record.message_id, error = %e, "acknowledging a filtered-out message failed; it will be seen again");
            }
        }
        if batch.is_empty() {
            continue;
        }
        let mut batch = batch;
        {
            let released = shared.released.lock().expect("released lock");
            for m in &mut batch {
                let given_back = released.get(&m.record.message_id).copied().unwrap_or(0);
                m.record.attempts = m.delivery_count.saturating_sub(given_back).max(1);
            }
        }
        if ordered {
            let mut per_lane: Vec<Vec<SourceMessage>> = (0..lanes.len()).map(|_| Vec::new()).collect();
            for m in batch {
                let lane = match &m.ordering_key {
                    Some(k) => lane_of(k, lanes.len()),
                    None => {
                        next_lane = (next_lane + 1) % lanes.len();
                        next_lane
                    }
                };
                per_lane[lane].push(m);
            }
            for (lane, msgs) in per_lane.into_iter().enumerate() {
                if !msgs.is_empty() && lanes[lane].send(msgs).await.is_err() {
                    break;
                }
            }
        } else {
            let shared = shared.clone();
            tasks.spawn(async move {
                deliver_once(&shared, batch).await;
                drop(permit);
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(lanes);
    while tasks.join_next().await.is_some() {}
    metrics.gauge(names::SOURCE_UP, &[("subscription", &sub), ("type", kind)], 0.0);
}

fn lane_of(key: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// Delivers a batch once and settles every record at its broker.
async fn deliver_once(shared: &Shared, batch: Vec<SourceMessage>) {
    let records: Vec<Record> = batch.iter().map(|m| m.record.clone()).collect();
    let outcomes = shared.deliverer.deliver(&shared.spec, &records, now_ms()).await;
    for (m, o) in batch.into_iter().zip(outcomes) {
        settle(shared, m, o).await;
    }
}

/// Delivers a batch of one lane, retrying what failed in place (after its backoff) until it
/// succeeded or was dead-lettered, so that nothing later of the same key overtakes it.
async fn deliver_in_order(shared: &Shared, mut batch: Vec<SourceMessage>) {
    loop {
        let records: Vec<Record> = batch.iter().map(|m| m.record.clone()).collect();
        let outcomes = shared.deliverer.deliver(&shared.spec, &records, now_ms()).await;
        let mut again = Vec::new();
        let mut wait = Duration::ZERO;
        for (mut m, o) in batch.into_iter().zip(outcomes) {
            match o {
                Outcome::Retry { delay, .. } => {
                    m.record.attempts += 1;
                    wait = wait.max(delay);
                    again.push(m);
                }
                Outcome::Release { delay } => {
                    wait = wait.max(delay);
                    again.push(m);
                }
                o => settle(shared, m, o).await,
            }
        }
        if again.is_empty() {
            return;
        }
        if shared.stopped.load(std::sync::atomic::Ordering::Acquire) {
            // Shutting down: leave the rest with the broker, in order, for the next start.
            for m in again {
                let _ = m.handle.retry_later(wait).await;
            }
            return;
        }
        tokio::time::sleep(wait).await;
        batch = again;
    }
}

/// Applies one outcome at the broker (and, for a dead letter, in Gust's DLQ first).
async fn settle(shared: &Shared, m: SourceMessage, outcome: Outcome) {
    let sub = shared.spec.name.as_str();
    let id = m.record.message_id.clone();
    let result = match outcome {
        Outcome::Ack => {
            shared.released.lock().expect("released lock").remove(&id);
            m.handle.ack().await
        }
        Outcome::Retry { delay, .. } => m.handle.retry_later(delay).await,
        Outcome::Release { delay } => {
            *shared
                .released
                .lock()
                .expect("released lock")
                .entry(id.clone())
                .or_default() += 1;
            m.handle.retry_later(delay).await
        }
        Outcome::DeadLetter { reason, error, ran } => {
            shared.released.lock().expect("released lock").remove(&id);
            let attempts = if ran {
                m.record.attempts
            } else {
                m.record.attempts.saturating_sub(1)
            };
            match m.handle.dead_letter(&reason, &error).await {
                Ok(true) => Ok(()),
                Ok(false) => {
                    let letter = NewDeadLetter {
                        message_id: id.clone(),
                        attempts,
                        reason,
                        error,
                        published_ms: m.record.published_ms,
                        event: m.record.event.clone(),
                    };
                    // Durable in Gust's DLQ first; only then is the broker told it is done.
                    match shared.log.store_dead_letter(sub, letter).await {
                        Ok(_) => m.handle.ack().await,
                        Err(e) => {
                            tracing::error!(subscription = %sub, message_id = %id, error = %e, "storing a dead letter failed; the message stays with the broker");
                            m.handle.retry_later(SETTLE_RETRY).await
                        }
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        // Not settled: the broker delivers it again (at least once).
        tracing::warn!(subscription = %sub, message_id = %id, error = %e, "settling a message at the broker failed; it will be delivered again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_due_hands_out_what_is_due_within_room_and_bounds_the_wait_by_the_next_one() {
        let mut held = vec![5_i64, 100, 1, 3, 250];
        let (due, wait) = take_due(&mut held, 10, 2, Duration::from_secs(1), |h| *h);
        assert_eq!(due, vec![5, 1], "due ones, in held order, at most `room`");
        assert_eq!(held, vec![100, 3, 250]);
        assert_eq!(wait, Duration::from_millis(1), "one is due already: look again at once");
        let (due, wait) = take_due(&mut held, 10, 8, Duration::from_secs(1), |h| *h);
        assert_eq!(due, vec![3]);
        assert_eq!(wait, Duration::from_millis(90), "until the next one is due");
        let (due, wait) = take_due(&mut held, 10, 8, Duration::from_millis(50), |h| *h);
        assert!(due.is_empty());
        assert_eq!(wait, Duration::from_millis(50), "never longer than asked");
    }
}
