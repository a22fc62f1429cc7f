//! The firing loop: one task per enabled schedule, sleeping on the [`Clock`] until the next
//! tick, then asking a [`Firer`] to record the tick and start the run.
//!
//! Fire-once: the `Firer` records a tick and enqueues its run in one transaction, and refuses
//! a tick that is not later than the recorded one, so a restart (or, in a cluster, another
//! node holding the same database) never fires a tick twice.
//!
//! Catch-up: a tick more than [`ON_TIME`] in the past when the loop looks (Gust was down, or
//! the clock jumped) is *missed*. `none` drops missed ticks, `last` fires the most recent one,
//! `all` fires up to `n` of the most recent, oldest first. On-time ticks always fire.
//! A schedule that never fired starts from now: history is not replayed on first deploy.
//!
//! Overlap: with `skip`, an on-time tick that comes while a run is queued or going is recorded
//! and not run; `queue` and `allow` are enforced by the run queue's concurrency (1, or the
//! function's). Catch-up runs always queue: `all` asked for each of them. A catch-up run queued
//! in the same look as an on-time tick does not make that tick skip: after downtime the
//! on-time tick runs too, after the catch-up (`skip` looks at what was running before).

use crate::{Clock, Schedule};
use chrono::{DateTime, TimeDelta, Utc};
use gust_model::{CatchUp, Overlap, ScheduleSpec};
use std::collections::VecDeque;
use std::sync::Arc;

/// How late a tick may be seen and still count as on time.
pub const ON_TIME: TimeDelta = TimeDelta::seconds(60);

/// Where ticks go: the binary wires this to the event log and run queue.
#[async_trait::async_trait]
pub trait Firer: Send + Sync + 'static {
    async fn last_fired(&self, schedule: &str) -> Result<Option<DateTime<Utc>>, String>;
    /// Records `tick` as fired and queues the run, or only records it when `skip`.
    /// False when the tick had fired before.
    async fn fire(&self, spec: &ScheduleSpec, tick: DateTime<Utc>, skip: bool) -> Result<bool, String>;
    /// Whether a run is queued or going.
    async fn busy(&self, schedule: &str) -> bool;
}

/// Starts the loop of one schedule; it ends when the schedule has no further ticks.
pub fn spawn_runner(
    spec: ScheduleSpec,
    schedule: Schedule,
    clock: Arc<dyn Clock>,
    firer: Arc<dyn Firer>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run(&spec, &schedule, clock.as_ref(), firer.as_ref()).await {
            tracing::error!(schedule = %spec.name, error = %e, "schedule stopped");
        }
    })
}

fn jitter(max: std::time::Duration) -> std::time::Duration {
    if max.is_zero() {
        return max;
    }
    let r = (uuid::Uuid::new_v4().as_u128() % 10_000) as f64 / 10_000.0;
    max.mul_f64(r)
}

async fn run(spec: &ScheduleSpec, schedule: &Schedule, clock: &dyn Clock, firer: &dyn Firer) -> Result<(), String> {
    let name = spec.name.as_str();
    let mut last = match firer.last_fired(name).await? {
        Some(t) => t,
        None => clock.now(),
    };
    let keep = match spec.catch_up {
        CatchUp::All(n) => n as usize + 1,
        _ => 2,
    };
    loop {
        let now = clock.now();
        // Ticks in (last, now], keeping only the most recent few (a long outage of a
        // per-minute schedule must not build a huge list).
        let mut due: VecDeque<DateTime<Utc>> = VecDeque::new();
        let mut t = last;
        while let Some(next) = schedule.next_after(t) {
            if next > now {
                break;
            }
            due.push_back(next);
            if due.len() > keep + 1 {
                due.pop_front();
            }
            t = next;
        }
        let Some(&latest) = due.back() else {
            match schedule.next_after(now.max(last)) {
                Some(next) => {
                    clock.sleep_until(next).await;
                    continue;
                }
                None => return Ok(()), // a one-shot that has fired, or is in the past
            }
        };
        let (on_time, missed): (Vec<_>, Vec<_>) = due.iter().partition(|t| now - **t <= ON_TIME);
        let mut to_fire: Vec<DateTime<Utc>> = match spec.catch_up {
            CatchUp::None => vec![],
            CatchUp::Last => missed.last().map(|t| vec![*t]).unwrap_or_default(),
            CatchUp::All(n) => missed.iter().rev().take(n as usize).rev().copied().collect(),
        };
        if !missed.is_empty() {
            tracing::info!(schedule = name, missed = missed.len(), fired = to_fire.len(), policy = ?spec.catch_up, "missed ticks");
        }
        let catching_up = to_fire.len();
        // Whether a run was queued or going before this look's catch-up runs were queued.
        let busy_before = if catching_up > 0 && spec.overlap == Overlap::Skip {
            firer.busy(name).await
        } else {
            false
        };
        to_fire.extend(on_time);
        for (i, tick) in to_fire.iter().enumerate() {
            // Catch-up runs were asked for explicitly: they queue behind each other, and
            // neither jitter nor `skip` applies to them.
            let on_time = i >= catching_up;
            let j = jitter(spec.jitter);
            if on_time && !j.is_zero() {
                clock
                    .sleep_until(clock.now() + TimeDelta::from_std(j).unwrap_or_default())
                    .await;
            }
            let skip = on_time
                && spec.overlap == Overlap::Skip
                && if catching_up > 0 {
                    busy_before
                } else {
                    firer.busy(name).await
                };
            if skip {
                tracing::info!(schedule = name, tick = %tick, "previous run still going: tick skipped");
            }
            firer.fire(spec, *tick, skip).await?;
        }
        if to_fire.last() != Some(&latest) {
            // Remember the dropped ticks as handled.
            firer.fire(spec, latest, true).await?;
        }
        last = latest;
    }
}
