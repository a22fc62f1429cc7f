//! The backlog sampler: every minute (by default) it records each subscription's backlog, the
//! age of its oldest waiting record and its dead letters in the telemetry store
//! (`gust_store::TelemetryDb::record_backlog`), so the console can show backlogs over time.
//! For a broker source the backlog is the broker's lag where the source reports one, plus the
//! records Gust holds for retry.

use gust_events::Events;
use gust_store::{BacklogSample, TelemetryDb};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often backlogs are sampled (`PlatformConfig::backlog_sample_every`).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// Samples until aborted; the first sample is taken at once.
pub fn spawn_sampler(events: Arc<Events>, telemetry: TelemetryDb, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = chrono::Utc::now().timestamp_millis();
            let samples = sample(&events, now).await;
            if samples.is_empty() {
                continue;
            }
            if let Err(e) = telemetry.record_backlog(now, samples).await {
                tracing::warn!(error = %e, "recording subscription backlogs failed");
            }
        }
    })
}

async fn sample(events: &Events, now_ms: i64) -> Vec<BacklogSample> {
    let log = events.log();
    let mut dead: HashMap<String, u64> = HashMap::new();
    match log.dlq_list(None).await {
        Ok(list) => {
            for d in list {
                *dead.entry(d.subscription).or_default() += 1;
            }
        }
        Err(e) => tracing::warn!(error = %e, "the backlog sampler cannot read dead letters"),
    }
    let mut out = Vec::new();
    for s in events.subscriptions() {
        let name = s.name.as_str();
        let (Ok(held), Ok(oldest)) = (log.backlog(name).await, log.oldest_pending_ms(name).await) else {
            continue;
        };
        let lag = events.source_status(name).and_then(|st| st.state().lag).unwrap_or(0);
        out.push(BacklogSample {
            subscription: name.to_string(),
            backlog: held + lag,
            oldest_age_ms: oldest.map(|t| (now_ms - t).max(0)),
            dead_letters: dead.get(name).copied().unwrap_or(0),
        });
    }
    out
}
