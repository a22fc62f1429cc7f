//! Delivery: one worker per subscription claims due records, invokes the function through the
//! shared [`Invoker`] (so timeouts, pools and records are the same as for HTTP), and acks,
//! retries with exponential backoff and jitter, or dead-letters. A failure that cannot succeed
//! on a retry ([`InvokeError::retryable`] is false: the function is not deployed, its response
//! is over the limit) is dead-lettered at once with reason `NonRetryable: <code>`; schedule
//! runs and asynchronous invocations are queues here too, so the same holds for them.
//!
//! At-least-once: a record is acknowledged only after the handler succeeded; a claim hides it
//! for the visibility timeout (longer than the function timeout), and a crash makes claimed
//! records due again at the next start. When the function is at its concurrency limit (429)
//! the records are given back without counting an attempt: back-pressure, not failure.

use crate::log::{now_ms, Claimed, EventLog};
use crate::shape;
use gust_model::{event_defaults, EventShape, SpanRecord, SubscriptionSpec, TraceParent};
use gust_runtime::{metric_names as names, Invocation, InvokeError, Invoker, Trigger};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// The longest a worker with records waiting sleeps before looking again.
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// After a storage error, before trying again.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Delay before records given back under back-pressure are tried again.
const BACKPRESSURE_DELAY_MS: i64 = 100;

pub(crate) struct Worker {
    pub spec: SubscriptionSpec,
    pub wake: Notify,
}

pub struct Dispatcher {
    log: Arc<dyn EventLog>,
    invoker: Arc<Invoker>,
    region: String,
    account: String,
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

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, then scaled by 50-100%.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(event_defaults::MAX_RETRY_DELAY);
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    capped.mul_f64(0.5 + r * 0.5)
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
            invoker,
            region: region.into(),
            account: account.into(),
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
            deliver(&d2, &w2.spec, batch).await;
            // Retries and releases change when the next record is due: look again now.
            w2.wake.notify_one();
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// A failure that no retry can fix (see [`InvokeError::retryable`]).
struct NonRetryable {
    /// The error's stable code, named in the dead letter's reason.
    code: &'static str,
    /// Whether the function ran (if not, the claim does not count as an attempt).
    ran: bool,
}

async fn deliver(d: &Dispatcher, spec: &SubscriptionSpec, batch: Vec<Claimed>) {
    let sub = spec.name.as_str();
    let now = now_ms();
    let max_age = spec.max_event_age.as_millis() as i64;
    let (expired, batch): (Vec<_>, Vec<_>) = batch.into_iter().partition(|c| now - c.first_ms > max_age);
    for c in &expired {
        let error = format!(
            "the record is older than max_event_age ({}s)",
            spec.max_event_age.as_secs()
        );
        // This claim did not run the function: it does not count as an attempt.
        if let Err(e) = d
            .log
            .dead_letter(sub, c.seq, "MaxEventAgeExceeded", &error, false)
            .await
        {
            tracing::error!(subscription = %sub, error = %e, "dead-lettering failed");
        }
    }
    if batch.is_empty() {
        return;
    }
    let topic = spec.topic.as_str();
    let payload = match spec.shape {
        EventShape::Sqs => serde_json::to_vec(&shape::sqs_event(&batch, topic, &d.region, &d.account)),
        EventShape::Sns => serde_json::to_vec(&shape::sns_event(&batch, topic, sub, &d.region, &d.account)),
        EventShape::Raw => Ok(batch[0].event.data.to_vec()),
    }
    .expect("JSON values serialise");
    let mut inv = Invocation::new(spec.function.as_str(), payload, Trigger::Event);
    // Claimed at `now`, hidden for the visibility timeout: waiting for an instance plus the
    // function timeout must end before the records become visible again, or a second worker
    // could take them while the first invocation still runs. Past that wait the records go
    // back to the queue (back-pressure, no attempt counted).
    let fn_timeout = d
        .invoker
        .spec(spec.function.as_str())
        .map(|f| f.timeout)
        .unwrap_or_default();
    let claimed_for = Duration::from_millis((now_ms() - now).max(0) as u64);
    inv.acquire_timeout = Some(
        spec.visibility_timeout
            .saturating_sub(fn_timeout)
            .saturating_sub(claimed_for)
            .saturating_sub(Duration::from_millis(250)),
    );
    if spec.shape == EventShape::Raw {
        inv.trigger = if sub.starts_with("gust.schedule.") {
            Trigger::Schedule
        } else {
            Trigger::Async
        };
        inv.request_id = Some(batch[0].event.id.clone());
    }
    // Trace: the publisher's span (from the event) -> queue wait -> delivery -> invocation.
    let publisher = batch[0]
        .event
        .extensions
        .get("traceparent")
        .and_then(|t| TraceParent::parse(t));
    let deliver = publisher
        .as_ref()
        .map(TraceParent::child)
        .unwrap_or_else(TraceParent::new_root);
    let claimed_us = now_ms() * 1000;
    let invocation = deliver.child();
    inv.trace = Some(invocation);
    inv.parent_span = Some(deliver.span_id.clone());
    let seqs: Vec<i64> = batch.iter().map(|c| c.seq).collect();
    let result = d.invoker.invoke(inv).await;
    let telemetry = d.invoker.telemetry();
    let queued_us = batch[0].first_ms.max(batch[0].published_ms) * 1000;
    telemetry.span(SpanRecord {
        trace_id: deliver.trace_id.clone(),
        span_id: deliver.child().span_id,
        parent_id: publisher.as_ref().map(|p| p.span_id.clone()),
        name: format!("queue {sub}"),
        kind: "producer".into(),
        start_us: queued_us,
        duration_us: (claimed_us - queued_us).max(0) as u64,
        error: false,
        attributes: vec![("messaging.batch.message_count".into(), batch.len().to_string())],
    });
    telemetry.span(SpanRecord {
        trace_id: deliver.trace_id.clone(),
        span_id: deliver.span_id.clone(),
        parent_id: publisher.as_ref().map(|p| p.span_id.clone()),
        name: format!("deliver {sub}"),
        kind: "consumer".into(),
        start_us: claimed_us,
        duration_us: (now_ms() * 1000 - claimed_us).max(0) as u64,
        error: !matches!(&result, Ok(o) if o.function_error.is_none()),
        attributes: vec![
            ("messaging.destination.name".into(), topic.to_string()),
            ("gust.subscription".into(), sub.to_string()),
            ("gust.attempt".into(), batch[0].attempts.to_string()),
        ],
    });
    let metrics = d.invoker.metrics();
    let attempt_id = result.as_ref().map(|o| o.request_id.to_string()).unwrap_or_default();
    // Set when the failure cannot succeed on a retry: the records go to the DLQ now.
    let mut non_retryable: Option<NonRetryable> = None;
    let failed: Result<Vec<i64>, String> = match result {
        Ok(out) if out.function_error.is_none() => {
            if spec.report_batch_item_failures && spec.shape != EventShape::Raw {
                shape::batch_item_failures(&out.payload, &batch).inspect_err(|e| {
                    tracing::warn!(subscription = %sub, "{e}: the whole batch is retried");
                })
            } else {
                Ok(vec![])
            }
        }
        Ok(out) => Err(format!(
            "{}: {}",
            out.function_error.unwrap_or_default(),
            String::from_utf8_lossy(&out.payload)
                .chars()
                .take(2000)
                .collect::<String>()
        )),
        Err(e @ (InvokeError::TooManyRequests { .. } | InvokeError::ShuttingDown)) => {
            metrics.incr(
                names::EVENT_DELIVERIES,
                &[("subscription", sub), ("result", "backpressure")],
                1,
            );
            tracing::debug!(subscription = %sub, reason = %e, "function busy; records wait in the queue");
            if let Err(e) = d.log.release(sub, &seqs, now_ms() + BACKPRESSURE_DELAY_MS).await {
                tracing::error!(subscription = %sub, error = %e, "releasing deliveries failed");
            }
            return;
        }
        Err(e) => {
            // `InvokeError::retryable` says for each error why it can or cannot succeed
            // later (`FunctionNotFound`, `ResponseTooLarge` cannot).
            if !e.retryable() {
                non_retryable = Some(NonRetryable {
                    code: e.code(),
                    ran: !matches!(e, InvokeError::FunctionNotFound(_)),
                });
            }
            Err(format!("{}: {e}", e.code()))
        }
    };
    let ok_count = match &failed {
        Ok(f) => seqs.len() - f.len(),
        Err(_) => 0,
    };
    metrics.incr(
        names::EVENT_DELIVERIES,
        &[("subscription", sub), ("result", "success")],
        ok_count as u64,
    );
    metrics.incr(
        names::EVENT_DELIVERIES,
        &[("subscription", sub), ("result", "failure")],
        (seqs.len() - ok_count) as u64,
    );
    let (to_fail, error) = match failed {
        Ok(f) => {
            let ok: Vec<i64> = seqs.iter().copied().filter(|s| !f.contains(s)).collect();
            if let Err(e) = d.log.ack(sub, &ok).await {
                tracing::error!(subscription = %sub, error = %e, "acknowledging deliveries failed");
            }
            let error = format!(
                "the handler reported it in batchItemFailures (invocation {attempt_id}: `gust logs {} --request {attempt_id}` shows why)",
                spec.function
            );
            (f, error)
        }
        Err(error) => (seqs, error),
    };
    for c in batch.iter().filter(|c| to_fail.contains(&c.seq)) {
        let result = if let Some(nr) = &non_retryable {
            tracing::warn!(subscription = %sub, message_id = %c.message_id, attempts = c.attempts, code = nr.code, %error, "not retryable: dead-lettered at once");
            d.log
                .dead_letter(sub, c.seq, &format!("NonRetryable: {}", nr.code), &error, nr.ran)
                .await
        } else if c.attempts >= spec.max_attempts {
            tracing::warn!(subscription = %sub, message_id = %c.message_id, attempts = c.attempts, "retries exhausted: dead-lettered");
            d.log.dead_letter(sub, c.seq, "MaxAttemptsExceeded", &error, true).await
        } else {
            let at = now_ms() + backoff(spec.retry_delay, c.attempts).as_millis() as i64;
            d.log.retry(sub, c.seq, at, &error).await
        };
        if let Err(e) = result {
            tracing::error!(subscription = %sub, error = %e, "recording a failed delivery failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let base = Duration::from_secs(1);
        for attempt in 1..=4u32 {
            let full = Duration::from_secs(1 << (attempt - 1));
            for _ in 0..50 {
                let d = backoff(base, attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        assert!(backoff(base, 30) <= event_defaults::MAX_RETRY_DELAY);
    }
}
