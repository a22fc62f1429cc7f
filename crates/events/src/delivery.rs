//! The delivery core: one batch of records -> one invocation -> what to do with each record.
//!
//! Both the embedded log's workers (`dispatcher.rs`) and the broker sources (`source/`) hand
//! their batches here, so that batching shape, the invocation through the one [`Invoker`]
//! (with `Trigger::Event`), tracing, metrics, and the reading of the answer (errors, partial
//! batch failure with `batchItemFailures`, back-pressure, maximum age, maximum attempts,
//! failures no retry can fix) exist once. The core decides; it does not settle: each caller
//! applies the [`Outcome`]s to its own store (delete a delivery row, `XACK`, JetStream ack,
//! ...), which is what lets a broker keep a record until the handler succeeded.

use crate::cloudevent::CloudEvent;
use crate::log::now_ms;
use crate::shape;
use gust_model::{event_defaults, EventShape, SpanRecord, SubscriptionSpec, TraceParent};
use gust_runtime::{metric_names as names, Invocation, InvokeError, Invoker, Trigger};
use std::sync::Arc;
use std::time::Duration;

/// Delay before records given back under back-pressure are tried again.
pub(crate) const BACKPRESSURE_DELAY: Duration = Duration::from_millis(100);

/// One record of a batch, wherever it was read from.
#[derive(Debug, Clone)]
pub struct Record {
    /// The id a handler names in `batchItemFailures` (`messageId`).
    pub message_id: String,
    /// Shown as `receiptHandle`.
    pub receipt: String,
    /// Deliveries of this record so far, this one included.
    pub attempts: u32,
    /// When the record became due the first time (epoch ms): its age for `max_event_age`.
    pub first_ms: i64,
    pub published_ms: i64,
    pub event: CloudEvent,
    /// What a broker's own event shape shows beside the data (RabbitMQ: `basicProperties`
    /// and `redelivered`), as JSON; `None` for Gust's topics and the SQS-like shape.
    pub native: Option<Arc<serde_json::Value>>,
}

/// What to do with one record after its batch was delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler succeeded with it: acknowledge (delete) it.
    Ack,
    /// Try again after `delay` (the attempt counted).
    Retry { delay: Duration, error: String },
    /// Into the dead-letter queue. `ran`: whether this attempt invoked the function (if not,
    /// it does not count as an attempt).
    DeadLetter { reason: String, error: String, ran: bool },
    /// Back-pressure: give it back to be tried after `delay`, without counting an attempt.
    Release { delay: Duration },
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, then scaled by 50-100%.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(event_defaults::MAX_RETRY_DELAY);
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    capped.mul_f64(0.5 + r * 0.5)
}

/// A failure that no retry can fix (see [`InvokeError::retryable`]).
struct NonRetryable {
    /// The error's stable code, named in the dead letter's reason.
    code: &'static str,
    /// Whether the function ran (if not, the claim does not count as an attempt).
    ran: bool,
}

/// Delivers batches of one platform's subscriptions.
#[derive(Debug)]
pub(crate) struct Deliverer {
    pub invoker: Arc<Invoker>,
    pub region: String,
    pub account: String,
}

impl Deliverer {
    /// Invokes `spec`'s function with `batch` (taken at `claimed_ms`) and says, per record in
    /// the batch's order, what to do with it.
    pub async fn deliver(&self, spec: &SubscriptionSpec, batch: &[Record], claimed_ms: i64) -> Vec<Outcome> {
        let sub = spec.name.as_str();
        let max_age = spec.max_event_age.as_millis() as i64;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut live: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            if claimed_ms - r.first_ms > max_age {
                // This claim did not run the function: it does not count as an attempt.
                outcomes[i] = Some(Outcome::DeadLetter {
                    reason: "MaxEventAgeExceeded".into(),
                    error: format!(
                        "the record is older than max_event_age ({}s)",
                        spec.max_event_age.as_secs()
                    ),
                    ran: false,
                });
            } else {
                live.push(i);
            }
        }
        let live_count = live.len();
        if !live.is_empty() {
            let records: Vec<&Record> = live.iter().map(|i| &batch[*i]).collect();
            let decided = self.invoke(spec, &records, claimed_ms).await;
            for (i, o) in live.into_iter().zip(decided) {
                outcomes[i] = Some(o);
            }
        }
        let metrics = self.invoker.metrics();
        let ok = outcomes.iter().filter(|o| matches!(o, Some(Outcome::Ack))).count() as u64;
        let released = outcomes
            .iter()
            .filter(|o| matches!(o, Some(Outcome::Release { .. })))
            .count() as u64;
        // Records too old to try were not delivered: neither a success nor a failure.
        let expired = (batch.len() - live_count) as u64;
        let failed = batch.len() as u64 - ok - released - expired;
        if released > 0 {
            metrics.incr(
                names::EVENT_DELIVERIES,
                &[("subscription", sub), ("result", "backpressure")],
                1,
            );
        } else {
            metrics.incr(
                names::EVENT_DELIVERIES,
                &[("subscription", sub), ("result", "success")],
                ok,
            );
            metrics.incr(
                names::EVENT_DELIVERIES,
                &[("subscription", sub), ("result", "failure")],
                failed,
            );
        }
        outcomes.into_iter().map(|o| o.expect("every record decided")).collect()
    }

    async fn invoke(&self, spec: &SubscriptionSpec, batch: &[&Record], claimed_ms: i64) -> Vec<Outcome> {
        let sub = spec.name.as_str();
        let topic = spec.topic.as_str();
        let origin = shape::Origin::of(spec, &self.region, &self.account);
        let payload = match spec.shape {
            EventShape::Sqs => serde_json::to_vec(&shape::sqs_event(batch, &origin, &self.region)),
            EventShape::Sns => serde_json::to_vec(&shape::sns_event(batch, topic, sub, &self.region, &self.account)),
            EventShape::Raw => Ok(batch[0].event.data.to_vec()),
            EventShape::RabbitMq => serde_json::to_vec(&shape::rabbitmq_event(batch, spec, &origin)),
            EventShape::DynamoDb => serde_json::to_vec(&shape::dynamodb_event(batch)),
        }
        .expect("JSON values serialise");
        let mut inv = Invocation::new(spec.function.as_str(), payload, Trigger::Event);
        // Claimed at `claimed_ms`, hidden for the visibility timeout: waiting for an instance
        // plus the function timeout must end before the records become visible again, or a
        // second worker could take them while the first invocation still runs. Past that wait
        // the records go back (back-pressure, no attempt counted).
        let fn_timeout = self
            .invoker
            .spec(spec.function.as_str())
            .map(|f| f.timeout)
            .unwrap_or_default();
        let claimed_for = Duration::from_millis((now_ms() - claimed_ms).max(0) as u64);
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
        inv.trace = Some(deliver.child());
        inv.parent_span = Some(deliver.span_id.clone());
        let result = self.invoker.invoke(inv).await;
        let telemetry = self.invoker.telemetry();
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
        let attempt_id = result.as_ref().map(|o| o.request_id.to_string()).unwrap_or_default();
        // Set when the failure cannot succeed on a retry: the records go to the DLQ now.
        let mut non_retryable: Option<NonRetryable> = None;
        // Ok(indices of the records that failed) or Err(why all of them failed).
        let failed: Result<Vec<usize>, String> = match result {
            Ok(out) if out.function_error.is_none() => {
                // Lambda's RabbitMQ event has no partial batch failure (the model refuses it).
                if spec.report_batch_item_failures && matches!(spec.shape, EventShape::Sqs | EventShape::Sns) {
                    shape::batch_item_failures(&out.payload, batch).inspect_err(|e| {
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
                tracing::debug!(subscription = %sub, reason = %e, "function busy; records wait in the queue");
                return vec![
                    Outcome::Release {
                        delay: BACKPRESSURE_DELAY
                    };
                    batch.len()
                ];
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
        let (to_fail, error) = match failed {
            Ok(f) => (
                f,
                format!(
                    "the handler reported it in batchItemFailures (invocation {attempt_id}: `gust logs {} --request {attempt_id}` shows why)",
                    spec.function
                ),
            ),
            Err(error) => ((0..batch.len()).collect(), error),
        };
        batch
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if !to_fail.contains(&i) {
                    Outcome::Ack
                } else if let Some(nr) = &non_retryable {
                    tracing::warn!(subscription = %sub, message_id = %r.message_id, attempts = r.attempts, code = nr.code, %error, "not retryable: dead-lettered at once");
                    Outcome::DeadLetter {
                        reason: format!("NonRetryable: {}", nr.code),
                        error: error.clone(),
                        ran: nr.ran,
                    }
                } else if r.attempts >= spec.max_attempts {
                    tracing::warn!(subscription = %sub, message_id = %r.message_id, attempts = r.attempts, "retries exhausted: dead-lettered");
                    Outcome::DeadLetter {
                        reason: "MaxAttemptsExceeded".into(),
                        error: error.clone(),
                        ran: true,
                    }
                } else {
                    Outcome::Retry {
                        delay: backoff(spec.retry_delay, r.attempts),
                        error: error.clone(),
                    }
                }
            })
            .collect()
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
