//! When the invoker's reconciler next has to look at the pools.
//!
//! The reconciler stops instances idle past their timeout and restarts instances up to
//! `min_instances`. Instead of polling, it sleeps until the earliest deadline it knows of, and
//! is woken early when a new, earlier deadline appears (an instance went idle in a pool that
//! can shrink), or when something needs attention now (an instance exited, a slot under
//! `min_instances` was freed, an app was deployed). An idle platform with no instances therefore
//! takes no wake-ups at all.
//!
//! Releases arm a deadline with one atomic `fetch_min`; only a deadline earlier than the armed
//! one wakes the reconciler, so under load (instances going idle and busy again all the time)
//! the reconciler runs about once per idle timeout, not once per invocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// "Nothing armed": the reconciler sleeps until woken.
const NONE: u64 = u64::MAX;

/// Shared by the invoker's reconcile loop, its pools and their instances' exit watchers.
#[derive(Debug)]
pub(crate) struct Reconciler {
    notify: Notify,
    /// The deadline the loop sleeps until, in microseconds since [`base`].
    armed_us: AtomicU64,
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn to_us(at: Instant) -> u64 {
    at.saturating_duration_since(base()).as_micros() as u64
}

fn from_us(us: u64) -> Instant {
    base() + Duration::from_micros(us)
}

impl Default for Reconciler {
    fn default() -> Self {
        base();
        Self {
            notify: Notify::new(),
            armed_us: AtomicU64::new(NONE),
        }
    }
}

impl Reconciler {
    /// Something will need the reconciler at `at`: wakes it if that is earlier than the
    /// deadline it sleeps until.
    pub(crate) fn due(&self, at: Instant) {
        let us = to_us(at);
        if us < self.armed_us.fetch_min(us, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Something needs the reconciler now.
    pub(crate) fn wake(&self) {
        self.armed_us.store(0, Ordering::Release);
        self.notify.notify_one();
    }

    /// Called by the loop before it looks at the pools: from here on every deadline counts
    /// as new, so none that appears while it looks is missed.
    pub(crate) fn disarm(&self) {
        self.armed_us.store(NONE, Ordering::Release);
    }

    /// Called by the loop after it looked: sleeps until `next` (the earliest deadline the
    /// pools reported), or an earlier deadline armed meanwhile, or a wake-up.
    pub(crate) async fn sleep(&self, next: Option<Instant>) {
        if let Some(at) = next {
            self.armed_us.fetch_min(to_us(at), Ordering::AcqRel);
        }
        let armed = self.armed_us.load(Ordering::Acquire);
        if armed == NONE {
            self.notify.notified().await;
            return;
        }
        let deadline = tokio::time::Instant::from_std(from_us(armed));
        tokio::select! {
            _ = self.notify.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn wakes_within(r: &Arc<Reconciler>, next: Option<Instant>, within: Duration) -> bool {
        tokio::time::timeout(within, r.sleep(next)).await.is_ok()
    }

    #[tokio::test]
    async fn with_nothing_armed_it_sleeps_until_woken() {
        let r = Arc::new(Reconciler::default());
        r.disarm();
        assert!(!wakes_within(&r, None, Duration::from_millis(100)).await);
        r.wake();
        r.disarm();
        assert!(
            wakes_within(&r, None, Duration::from_millis(100)).await,
            "the wake-up was kept"
        );
    }

    #[tokio::test]
    async fn it_wakes_at_the_deadline_the_pools_reported() {
        let r = Arc::new(Reconciler::default());
        r.disarm();
        let next = Instant::now() + Duration::from_millis(30);
        assert!(wakes_within(&r, Some(next), Duration::from_secs(2)).await);
        assert!(Instant::now() >= next);
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_it_and_a_later_one_does_not() {
        let r = Arc::new(Reconciler::default());
        r.disarm();
        let far = Instant::now() + Duration::from_secs(60);
        let sleeper = {
            let r = r.clone();
            tokio::spawn(async move { r.sleep(Some(far)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        r.due(far + Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sleeper.is_finished(), "a later deadline woke it");
        r.due(Instant::now());
        tokio::time::timeout(Duration::from_secs(2), sleeper)
            .await
            .expect("an earlier deadline did not wake it")
            .unwrap();
    }

    #[tokio::test]
    async fn a_deadline_armed_while_the_pools_are_read_is_not_missed() {
        let r = Arc::new(Reconciler::default());
        r.disarm();
        // A release arms a deadline after the loop disarmed but before it sleeps.
        let soon = Instant::now() + Duration::from_millis(20);
        r.due(soon);
        // The pools (read before that release) reported nothing.
        assert!(wakes_within(&r, None, Duration::from_secs(2)).await);
    }
}
