//! Time as the scheduler sees it: [`Clock`], the real [`SystemClock`], and a
//! [`ManualClock`] that tests move by hand.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// The future returned by [`Clock::sleep_until`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of wall-clock time that can also be slept on.
///
/// The future is boxed so the trait stays usable as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once [`now`](Clock::now) is at or after `deadline`
    /// (at once when it already is).
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_>;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        (**self).sleep_until(deadline)
    }
}

/// The real clock: [`Utc::now`] and tokio's timer. Needs a tokio runtime
/// with the time driver enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// Longest single timer sleep. tokio's timer runs on monotonic time; the
    /// wall clock can be stepped (NTP, suspend, an operator), so a long sleep
    /// wakes at least this often to look at the wall clock again.
    const MAX_NAP: TimeDelta = TimeDelta::seconds(30);
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let left = deadline - Utc::now();
                if left <= TimeDelta::zero() {
                    return;
                }
                let nap = left.min(Self::MAX_NAP).to_std().unwrap_or_default();
                tokio::time::sleep(nap).await;
            }
        })
    }
}

/// A clock that only moves when told to. Sleepers wake as soon as the clock
/// is set at or past their deadline, so a test can run a day, or a
/// daylight-saving change, in milliseconds. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves the clock forward by `by` (a negative `by` moves it back) and
    /// wakes the sleepers whose deadline has come.
    pub fn advance(&self, by: TimeDelta) {
        self.now.send_modify(|now| *now += by);
    }

    /// Sets the clock to `to` and wakes the sleepers whose deadline has come.
    /// Moving it back is allowed; sleepers then simply wait longer.
    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }

    /// How many [`sleep_until`](Clock::sleep_until) futures are waiting right
    /// now. Lets a test wait until the code under test has gone to sleep
    /// before it moves the clock.
    pub fn sleepers(&self) -> usize {
        self.now.receiver_count()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        // Subscribe before the future is first polled, so a sleeper counts
        // (and cannot miss a move) from the moment it is created.
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives in `self`, which outlives this future, so the
            // wait only ends by reaching the deadline.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Lets spawned tasks on the current-thread runtime run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced_past_their_instant() {
        let clock = ManualClock::new(t("2026-03-28T12:00:00Z"));
        let early = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock.sleep_until(t("2026-03-28T13:00:00Z")).await;
                clock.now()
            }
        });
        let late = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock.sleep_until(t("2026-03-29T12:00:00Z")).await;
                clock.now()
            }
        });
        settle().await;
        assert_eq!(clock.sleepers(), 2);

        clock.advance(TimeDelta::minutes(59));
        settle().await;
        assert!(!early.is_finished());
        assert_eq!(clock.sleepers(), 2);

        clock.advance(TimeDelta::minutes(1));
        settle().await;
        assert!(early.is_finished());
        assert_eq!(early.await.unwrap(), t("2026-03-28T13:00:00Z"));
        assert!(!late.is_finished());
        assert_eq!(clock.sleepers(), 1);

        // Jumping well past the deadline wakes it too.
        clock.set(t("2026-04-01T00:00:00Z"));
        assert_eq!(late.await.unwrap(), t("2026-04-01T00:00:00Z"));
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn manual_clock_sleep_into_the_past_returns_at_once() {
        let clock = ManualClock::new(t("2026-01-01T00:00:00Z"));
        clock.sleep_until(t("2025-12-31T23:00:00Z")).await;
        clock.sleep_until(t("2026-01-01T00:00:00Z")).await;
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn clocks_work_behind_dyn() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t("2026-01-01T00:00:00Z")));
        clock.sleep_until(t("2025-01-01T00:00:00Z")).await;
        assert_eq!(clock.now(), t("2026-01-01T00:00:00Z"));
    }

    #[tokio::test]
    async fn system_clock_sleeps_until_the_deadline() {
        let clock = SystemClock;
        let deadline = clock.now() + TimeDelta::milliseconds(30);
        clock.sleep_until(deadline).await;
        assert!(clock.now() >= deadline);
        // A deadline in the past returns at once.
        clock.sleep_until(deadline - TimeDelta::hours(1)).await;
    }
}
