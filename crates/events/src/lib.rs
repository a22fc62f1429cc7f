//! # gust-events: topics, subscriptions, and asynchronous invocation
//!
//! Owns publishing (CloudEvents over HTTP in every mode, idempotency keys), fan-out to
//! subscriptions with filters, the durable log behind the [`EventLog`] seam (embedded SQLite
//! today, NATS JetStream for clusters later), delivery with batches, partial batch failure,
//! retries with backoff and jitter, maximum age, and dead-letter queues, and asynchronous
//! invocation (Lambda's `InvocationType: Event`), which is a hidden subscription per function,
//! and broker sources (`source/`: Redis Streams, NATS, RabbitMQ, MQTT), consumed directly and settled at the
//! broker only after the handler succeeded, through the same delivery core as the log.
//!
//! Every delivery is an invocation through the shared `gust_runtime::Invoker`: no second
//! invoke path. Must not depend on: HTTP serving, the gateway, the CLI.

mod cloudevent;
mod delivery;
mod dispatcher;
mod log;
pub mod shape;
pub mod source;

pub use cloudevent::{from_http, CloudEvent, EventError, MAX_EVENT_BYTES};
pub use delivery::{Outcome, Record};
pub use dispatcher::Dispatcher;
pub use log::{Claimed, DeadLetter, EventLog, LogError, NewDeadLetter, Published, SqliteLog};
pub use source::{SourceState, SourceStatus};

use gust_model::{event_defaults, App, EventFilter, EventShape, FunctionName, Overlap, SubscriptionSpec, TopicName};
use gust_runtime::Invoker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How long an idempotency key (or CloudEvent id) suppresses a repeat publish.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Lambda's asynchronous invocation defaults: two retries, six hours.
pub const ASYNC_MAX_ATTEMPTS: u32 = 3;
pub const ASYNC_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("function `{0}` does not exist")]
    UnknownFunction(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A hidden queue that hands its payloads to `f` one at a time, unwrapped (asynchronous
/// invocations and schedule runs), with Lambda's asynchronous maximum age.
fn raw_queue(
    name: TopicName,
    f: &gust_model::FunctionSpec,
    max_concurrency: u32,
    max_attempts: u32,
    retry_delay: Duration,
) -> SubscriptionSpec {
    SubscriptionSpec {
        name: name.clone(),
        topic: name,
        function: f.name.clone(),
        filter: EventFilter::default(),
        shape: EventShape::Raw,
        batch_size: 1,
        batch_window: Duration::ZERO,
        max_concurrency,
        max_attempts,
        max_event_age: ASYNC_MAX_AGE,
        visibility_timeout: (f.timeout * 6).max(event_defaults::MIN_VISIBILITY),
        report_batch_item_failures: false,
        retry_delay,
        source: None,
    }
}

/// The subscription (and topic) carrying the runs of a schedule.
pub fn schedule_queue(schedule: &str) -> String {
    format!("gust.schedule.{schedule}")
}

/// The subscription (and topic) carrying asynchronous invocations of `function`.
pub fn async_queue(function: &str) -> String {
    format!("gust.async.{function}")
}

pub struct Events {
    log: Arc<dyn EventLog>,
    invoker: Arc<Invoker>,
    account: String,
    /// The tables `dynamodb-stream` sources read (`None`: this Gust serves none).
    dynamodb: Option<Arc<gust_aws::dynamodb::DynamoDb>>,
    /// What the running version of the app subscribes: swapped whole by a redeploy.
    topology: RwLock<Arc<Topology>>,
    /// Dispatchers and source workers a redeploy replaced, finishing their batches in flight.
    draining: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// One version's subscriptions: the dispatcher's workers, the broker sources, the fan-out.
struct Topology {
    dispatcher: Arc<Dispatcher>,
    /// Subscriptions that read a broker: their spec and worker, by subscription name.
    sources: HashMap<String, (SubscriptionSpec, Arc<source::SourceWorker>)>,
    /// topic -> (subscription, filter)
    fanout: HashMap<String, Vec<(String, EventFilter)>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("topics", &self.topology().fanout.len())
            .finish()
    }
}

/// Every queue `app` delivers from: its subscriptions, one asynchronous-invocation queue per
/// function and one run queue per schedule.
fn queues_of(app: &App) -> Vec<SubscriptionSpec> {
    let mut subs: Vec<SubscriptionSpec> = app.subscriptions.clone();
    for f in app.functions.values() {
        let name = TopicName::new(async_queue(f.name.as_str())).expect("function names make valid topic names");
        subs.push(raw_queue(
            name,
            f,
            f.scaling.max_instances,
            ASYNC_MAX_ATTEMPTS,
            event_defaults::RETRY_DELAY,
        ));
    }
    for sc in &app.schedules {
        let Some(f) = app.functions.get(&sc.function) else {
            continue;
        };
        let name = TopicName::new(schedule_queue(sc.name.as_str())).expect("schedule names make valid topic names");
        let concurrency = match sc.overlap {
            Overlap::Allow => f.scaling.max_instances,
            Overlap::Skip | Overlap::Queue => 1,
        };
        subs.push(raw_queue(name, f, concurrency, sc.max_attempts, sc.retry_delay));
    }
    subs
}

impl Events {
    /// Starts delivery for `app`'s subscriptions plus one asynchronous-invocation queue per
    /// function. `secret` resolves the Gust secrets broker sources name (`password_secret`).
    pub fn start(
        log: Arc<dyn EventLog>,
        invoker: Arc<Invoker>,
        app: &App,
        account: &str,
        secret: &dyn Fn(&str) -> Option<String>,
        dynamodb: Option<Arc<gust_aws::dynamodb::DynamoDb>>,
    ) -> Arc<Self> {
        let topology = Self::build(&log, &invoker, account, app, secret, dynamodb.as_ref(), &HashMap::new());
        Arc::new(Self {
            dynamodb,
            log,
            invoker,
            account: account.into(),
            topology: RwLock::new(Arc::new(topology)),
            draining: Mutex::new(Vec::new()),
        })
    }

    fn build(
        log: &Arc<dyn EventLog>,
        invoker: &Arc<Invoker>,
        account: &str,
        app: &App,
        secret: &dyn Fn(&str) -> Option<String>,
        dynamodb: Option<&Arc<gust_aws::dynamodb::DynamoDb>>,
        running: &HashMap<String, (SubscriptionSpec, Arc<source::SourceWorker>)>,
    ) -> Topology {
        let subs = queues_of(app);
        let mut fanout: HashMap<String, Vec<(String, EventFilter)>> =
            app.topics.iter().map(|t| (t.to_string(), Vec::new())).collect();
        // A broker source's subscription is fed by its broker, not by a topic; its worker in
        // the dispatcher delivers only what is redriven from its DLQ.
        for s in subs.iter().filter(|s| s.source.is_none()) {
            fanout
                .entry(s.topic.to_string())
                .or_default()
                .push((s.name.to_string(), s.filter.clone()));
        }
        let dispatcher = Dispatcher::start(log.clone(), invoker.clone(), subs, &app.region, account);
        let mut sources = HashMap::new();
        for s in app.subscriptions.iter() {
            let Some(src) = &s.source else { continue };
            // An unchanged source keeps its connection, consumer and batches in flight.
            if let Some((spec, worker)) = running.get(s.name.as_str()) {
                if spec == s {
                    sources.insert(s.name.to_string(), (spec.clone(), worker.clone()));
                    continue;
                }
            }
            let password = src.password_secret().and_then(secret);
            let tables = dynamodb.map(|db| source::dynamodb::Tables {
                db: db.clone(),
                app: app.name.to_string(),
                region: app.region.clone(),
            });
            let built = source::build(s, src, password, tables.as_ref());
            let worker = source::SourceWorker::start(s.clone(), built, dispatcher.deliverer.clone(), log.clone());
            sources.insert(s.name.to_string(), (s.clone(), Arc::new(worker)));
        }
        Topology {
            dispatcher,
            sources,
            fanout,
        }
    }

    fn topology(&self) -> Arc<Topology> {
        self.topology.read().expect("topology lock").clone()
    }

    /// Switches delivery to a new version of the app. The new version's workers start
    /// claiming at once; the replaced dispatcher stops claiming and finishes its batches in
    /// flight in the background (a claim hides a record from every other worker, so a record
    /// in flight completes once, on the version that claimed it, and everything else goes to
    /// the new version). Broker sources whose subscription is unchanged keep running; changed
    /// and removed ones stop after their batches in flight.
    pub fn redeploy(&self, app: &App, secret: &dyn Fn(&str) -> Option<String>, grace: Duration) {
        let old = self.topology();
        let new = Arc::new(Self::build(
            &self.log,
            &self.invoker,
            &self.account,
            app,
            secret,
            self.dynamodb.as_ref(),
            &old.sources,
        ));
        *self.topology.write().expect("topology lock") = new.clone();
        // A publish that read the old fan-out may have woken only the old workers: every new
        // worker looks once now.
        // (Asynchronous-invocation queues only where the old version had a worker: the others
        // are idle, and a thousand idle functions must not cost a thousand workers.)
        let was_running = old.dispatcher.started_names();
        let names: Vec<String> = new
            .dispatcher
            .workers
            .keys()
            .filter(|n| !n.starts_with("gust.async.") || was_running.contains(*n))
            .cloned()
            .collect();
        new.dispatcher.wake(&names);
        let retired: Vec<Arc<source::SourceWorker>> = old
            .sources
            .iter()
            .filter(|(name, (_, w))| new.sources.get(*name).is_none_or(|(_, n)| !Arc::ptr_eq(n, w)))
            .map(|(_, (_, w))| w.clone())
            .collect();
        for w in &retired {
            w.signal_stop();
        }
        let drain = tokio::spawn(async move {
            for w in &retired {
                w.join(grace).await;
            }
            old.dispatcher.stop(grace).await;
        });
        let mut draining = self.draining.lock().expect("draining lock");
        draining.retain(|t| !t.is_finished());
        draining.push(drain);
    }

    pub fn has_topic(&self, topic: &str) -> bool {
        !topic.starts_with("gust.") && self.topology().fanout.contains_key(topic)
    }

    /// Stores `events` durably (answers only after the commit) and wakes their subscribers.
    pub async fn publish(&self, topic: &str, events: Vec<CloudEvent>) -> Result<Vec<Published>, PublishError> {
        if !self.has_topic(topic) {
            return Err(PublishError::UnknownTopic(topic.into()));
        }
        self.publish_internal(topic, events).await
    }

    async fn publish_internal(&self, topic: &str, events: Vec<CloudEvent>) -> Result<Vec<Published>, PublishError> {
        let topology = self.topology();
        let subs = topology.fanout.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        let routed: Vec<(CloudEvent, Vec<String>)> = events
            .into_iter()
            .map(|e| {
                let targets = subs
                    .iter()
                    .filter(|(_, f)| f.matches(&e.event_type, |k| e.attribute(k)))
                    .map(|(s, _)| s.clone())
                    .collect();
                (e, targets)
            })
            .collect();
        let published = self.log.publish(topic, routed, DEDUP_WINDOW.as_millis() as i64).await?;
        let fresh = published.iter().filter(|p| !p.duplicate).count() as u64;
        self.invoker
            .metrics()
            .incr(gust_runtime::metric_names::EVENTS_PUBLISHED, &[("topic", topic)], fresh);
        let names: Vec<String> = subs.iter().map(|(s, _)| s.clone()).collect();
        // The version running now (a redeploy may have switched since the fan-out was read).
        self.topology().dispatcher.wake(&names);
        Ok(published)
    }

    /// Queues an asynchronous invocation (answer 202 at once); returns its request id.
    pub async fn invoke_async(
        &self,
        function: &str,
        payload: bytes::Bytes,
        trace: Option<String>,
    ) -> Result<String, PublishError> {
        if FunctionName::new(function).is_err() || !self.topology().fanout.contains_key(&async_queue(function)) {
            return Err(PublishError::UnknownFunction(function.into()));
        }
        let mut event = CloudEvent::internal("gust.async.invoke", payload);
        // Every attempt (retries included) belongs to one trace: the caller's, or one started now.
        let trace = trace.unwrap_or_else(|| gust_model::TraceParent::new_root().to_string());
        event.extensions.insert("traceparent".into(), trace);
        let id = event.id.clone();
        self.publish_internal(&async_queue(function), vec![event]).await?;
        Ok(id)
    }

    /// Records `tick` of `schedule` and queues its run (unless `skip`), exactly once per tick.
    pub async fn fire_schedule(
        &self,
        schedule: &str,
        tick_ms: i64,
        payload: Option<bytes::Bytes>,
    ) -> Result<bool, LogError> {
        let queue = schedule_queue(schedule);
        let skipped = payload.is_none();
        let root = gust_model::TraceParent::new_root();
        let event = payload.map(|p| {
            let mut e = CloudEvent::internal("gust.schedule.tick", p);
            e.extensions.insert("traceparent".into(), root.to_string());
            e
        });
        let fired = self.log.fire_once(schedule, tick_ms, &queue, event, &queue).await?;
        if fired {
            let metrics = self.invoker.metrics();
            if skipped {
                metrics.incr(
                    gust_runtime::metric_names::SCHEDULE_MISSES,
                    &[("schedule", schedule)],
                    1,
                );
            } else {
                metrics.incr(gust_runtime::metric_names::SCHEDULE_FIRES, &[("schedule", schedule)], 1);
                self.invoker.telemetry().span(gust_model::SpanRecord {
                    trace_id: root.trace_id.clone(),
                    span_id: root.span_id.clone(),
                    parent_id: None,
                    name: format!("schedule {schedule}"),
                    kind: "producer".into(),
                    start_us: tick_ms * 1000,
                    duration_us: 0,
                    error: false,
                    attributes: vec![("gust.schedule".into(), schedule.into())],
                });
            }
        }
        self.topology().dispatcher.wake(&[queue]);
        Ok(fired)
    }

    /// Queues a run of `schedule` now, outside its ticks (`gust schedules run`).
    pub async fn run_schedule_now(&self, schedule: &str, payload: bytes::Bytes) -> Result<String, PublishError> {
        let queue = schedule_queue(schedule);
        if !self.topology().fanout.contains_key(&queue) {
            return Err(PublishError::UnknownTopic(schedule.into()));
        }
        let event = CloudEvent::internal("gust.schedule.run", payload);
        let id = event.id.clone();
        self.publish_internal(&queue, vec![event]).await?;
        Ok(id)
    }

    /// Whether a run of `schedule` is queued or in progress (for `overlap = "skip"`).
    pub async fn schedule_busy(&self, schedule: &str) -> Result<bool, LogError> {
        Ok(self.log.backlog(&schedule_queue(schedule)).await? > 0)
    }

    pub fn subscriptions(&self) -> Vec<SubscriptionSpec> {
        let mut v: Vec<_> = self
            .topology()
            .dispatcher
            .workers
            .values()
            .map(|w| w.spec.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The state of a broker source's subscription (`None` for one on a Gust topic).
    pub fn source_status(&self, subscription: &str) -> Option<Arc<SourceStatus>> {
        self.topology().sources.get(subscription).map(|(_, w)| w.status.clone())
    }

    pub fn knows_subscription(&self, name: &str) -> bool {
        self.topology().dispatcher.subscription(name).is_some()
    }

    pub async fn redrive(&self, sub: &str, seqs: Option<&[i64]>) -> Result<usize, LogError> {
        let n = self.log.dlq_redrive(sub, seqs).await?;
        self.topology().dispatcher.wake(&[sub.to_string()]);
        Ok(n)
    }

    /// Stops delivering; batches in flight finish within `grace`.
    pub async fn stop(&self, grace: Duration) {
        let topology = self.topology();
        for (_, w) in topology.sources.values() {
            w.signal_stop();
        }
        let _ = tokio::time::timeout(grace, async {
            for (_, w) in topology.sources.values() {
                w.join(grace).await;
            }
        })
        .await;
        topology.dispatcher.stop(grace).await;
        let draining: Vec<_> = self.draining.lock().expect("draining lock").drain(..).collect();
        let _ = tokio::time::timeout(grace, async {
            for t in draining {
                let _ = t.await;
            }
        })
        .await;
    }
}
