//! The embedded log's delivery: one worker per subscription claims due records, hands each
//! batch to the delivery core (`delivery.rs`: the invocation through the shared [`Invoker`],
//! backoff, maximum attempts and age, failures no retry can fix, back-pressure), and applies
//! its verdicts to the log: ack, retry at a time, dead-letter, release. Schedule runs and
//! asynchronous invocations are queues here too, and a broker source's subscription has a
//! worker here for the records redriven from its dead-letter queue.
//!
//! At-least-once: a record is acknowledged only after the handler succeeded; a claim hides it
//! for the visibility timeout (longer than the function timeout), and a crash makes claimed
//! records due again at the next start. When the function is at its concurrency limit (429)
//! the records are given back without counting an attempt: back-pressure, not failure.

use crate::delivery::{Deliverer, Outcome, Record};
use crate::log::{now_ms, Claimed, EventLog};
use gust_model::{EventShape, SubscriptionSpec};
use gust_runtime::Invoker;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// The longest a worker with records waiting sleeps before looking again.
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// After a storage error, before trying again.
const IDLE_POLL: Duration = Duration::from_secs(1);

pub(crate) struct Worker {
    pub spec: SubscriptionSpec,
    pub wake: Notify,
}

pub struct Dispatcher {
    log: Arc<dyn EventLog>,
    pub(crate) deliverer: Arc<Deliverer>,
    pub(crate) workers: HashMap<String, Arc<Worker>>,
    stopped: AtomicBool,
    stop: Notify,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    started: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("subscriptions", &self.workers.len())
            .finish()
    }
}

impl Dispatcher {
    pub fn start(
        log: Arc<dyn EventLog>,
        invoker: Arc<Invoker>,
        subscriptions: Vec<SubscriptionSpec>,
        region: &str,
        account: &str,
    ) -> Arc<Self> {
        let workers = subscriptions
            .into_iter()
            .map(|spec| {
                (
                    spec.name.to_string(),
                    Arc::new(Worker {
                        spec,
                        wake: Notify::new(),
                    }),
                )
            })
            .collect();
        let d = Arc::new(Self {
            log,
            deliverer: Arc::new(Deliverer {
                invoker,
                region: region.into(),
                account: account.into(),
            }),
            workers,
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
            tasks: std::sync::Mutex::new(Vec::new()),
            started: std::sync::Mutex::new(std::collections::HashSet::new()),
        });
        // Subscriptions get their worker now; asynchronous-invocation queues (one per function)
        // only when used, or at start when they hold records: a thousand idle functions must
        // not cost a thousand workers.
        for (name, w) in &d.workers {
            if w.spec.shape != EventShape::Raw || !name.starts_with("gust.async.") {
                d.ensure_worker(name);
            }
        }
        let me = d.clone();
        tokio::spawn(async move {
            let queues: Vec<String> = me
                .workers
                .keys()
                .filter(|n| n.starts_with("gust.async."))
                .cloned()
                .collect();
            for q in queues {
                if me.log.backlog(&q).await.unwrap_or(0) > 0 {
                    me.ensure_worker(&q);
                }
            }
        });
        d
    }

    fn ensure_worker(self: &Arc<Self>, name: &str) {
        let Some(w) = self.workers.get(name) else { return };
        if self.stopping() || !self.started.lock().expect("started lock").insert(name.to_string()) {
            return;
        }
        let handle = tokio::spawn(run(self.clone(), w.clone()));
        self.tasks.lock().expect("tasks lock").push(handle);
    }

    /// Wakes the workers of these subscriptions (after a publish or a redrive).
    pub fn wake(self: &Arc<Self>, subscriptions: &[String]) {
        for s in subscriptions {
            if let Some(w) = self.workers.get(s) {
                self.ensure_worker(s);
                w.wake.notify_one();
            }
        }
    }

    /// The subscriptions whose worker has started.
    pub(crate) fn started_names(&self) -> std::collections::HashSet<String> {
        self.started.lock().expect("started lock").clone()
    }

    pub fn subscription(&self, name: &str) -> Option<&SubscriptionSpec> {
        self.workers.get(name).map(|w| &w.spec)
    }

    /// Stops claiming and waits (up to `grace`) for batches in flight to finish.
    pub async fn stop(&self, grace: Duration) {
        self.stopped.store(true, Ordering::Release);
        self.stop.notify_waiters();
        for w in self.workers.values() {
            w.wake.notify_one();
        }
        let tasks: Vec<_> = self.tasks.lock().expect("tasks lock").drain(..).collect();
        let _ = tokio::time::timeout(grace, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }

    fn stopping(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

async fn run(d: Arc<Dispatcher>, w: Arc<Worker>) {
    let spec = &w.spec;
    let sub = spec.name.to_string();
    let permits = Arc::new(Semaphore::new(spec.max_concurrency as usize));
    let mut in_flight = tokio::task::JoinSet::new();
    let visibility_ms = spec.visibility_timeout.as_millis() as i64;
    loop {
        if d.stopping() {
            break;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = d.stop.notified() => break,
        };
        // Batching window: once a record is due, wait up to the window for a fuller batch.
        if !spec.batch_window.is_zero() && spec.batch_size > 1 {
            if let Ok(Some(due)) = d.log.next_due(&sub).await {
                let waited = now_ms() - due;
                let window = spec.batch_window.as_millis() as i64;
                if waited >= 0 && waited < window && d.log.backlog(&sub).await.unwrap_or(0) < spec.batch_size as u64 {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis((window - waited) as u64)) => {}
                        _ = d.stop.notified() => break,
                    }
                }
            }
        }
        let claimed_ms = now_ms();
        let batch = match d.log.claim(&sub, spec.batch_size as usize, visibility_ms).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(subscription = %sub, error = %e, "claiming deliveries failed");
                drop(permit);
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
        };
        if batch.is_empty() {
            drop(permit);
            // Sleep until the next record is due; with none waiting, until a publish (or a
            // redrive, or a release) wakes this worker: an idle subscription costs no queries.
            let sleep = match d.log.next_due(&sub).await {
                Ok(Some(due)) => Some(Duration::from_millis(
                    (due - now_ms()).clamp(1, MAX_SLEEP.as_millis() as i64) as u64,
                )),
                Ok(None) => None,
                Err(_) => Some(MAX_SLEEP),
            };
            tokio::select! {
                _ = w.wake.notified() => {}
                _ = async { match sleep { Some(s) => tokio::time::sleep(s).await, None => std::future::pending().await } } => {}
                _ = d.stop.notified() => break,
            }
            continue;
        }
        let d2 = d.clone();
        let w2 = w.clone();
        in_flight.spawn(async move {
            deliver(&d2, &w2.spec, batch, claimed_ms).await;
            // Retries and releases change when the next record is due: look again now.
            w2.wake.notify_one();
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// Delivers one claimed batch through the delivery core and settles each record in the log.
async fn deliver(d: &Dispatcher, spec: &SubscriptionSpec, batch: Vec<Claimed>, claimed_ms: i64) {
    let sub = spec.name.as_str();
    let seqs: Vec<i64> = batch.iter().map(|c| c.seq).collect();
    let records: Vec<Record> = batch
        .into_iter()
        .map(|c| Record {
            receipt: format!("{}:{}", c.seq, c.attempts),
            message_id: c.message_id,
            attempts: c.attempts,
            first_ms: c.first_ms,
            published_ms: c.published_ms,
            event: c.event,
            native: None,
        })
        .collect();
    let outcomes = d.deliverer.deliver(spec, &records, claimed_ms).await;
    let (mut ok, mut released) = (Vec::new(), Vec::new());
    let mut release_at = now_ms();
    for (seq, outcome) in seqs.iter().copied().zip(outcomes) {
        let result = match outcome {
            Outcome::Ack => {
                ok.push(seq);
                Ok(())
            }
            Outcome::Release { delay } => {
                released.push(seq);
                release_at = now_ms() + delay.as_millis() as i64;
                Ok(())
            }
            Outcome::Retry { delay, error } => d.log.retry(sub, seq, now_ms() + delay.as_millis() as i64, &error).await,
            Outcome::DeadLetter { reason, error, ran } => d.log.dead_letter(sub, seq, &reason, &error, ran).await,
        };
        if let Err(e) = result {
            tracing::error!(subscription = %sub, error = %e, "recording a failed delivery failed");
        }
    }
    if let Err(e) = d.log.ack(sub, &ok).await {
        tracing::error!(subscription = %sub, error = %e, "acknowledging deliveries failed");
    }
    if let Err(e) = d.log.release(sub, &released, release_at).await {
        tracing::error!(subscription = %sub, error = %e, "releasing deliveries failed");
    }
}
