//! Token-bucket rate limits and daily quotas, keyed by string (an API key's id, a route key,
//! a client address). Pure logic: time is a parameter (`now: Instant` for buckets, `SystemTime`
//! for quota days), so tests are deterministic; the `*_now` wrappers read the clocks.
//!
//! Token buckets are in memory and per process: a restart refills every bucket (at most one
//! extra burst per restart; a bucket refills within `burst / rate` seconds anyway), and
//! several gateway nodes each enforce the full limit. A full bucket is the same as no bucket,
//! so idle keys are dropped when the table grows ([`RateLimiter::prune`]).
//!
//! Quota counters are kept in memory too, and survive a restart: [`QuotaCounter::unsaved`]
//! and [`QuotaCounter::restore`] let a write-behind loop (`crate::quotas`) keep them in the
//! state database without a write per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Requests per second (steady refill) and burst (bucket size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    /// Bucket size: at least one token when there is a refill, so a positive rate always
    /// admits something. A rate of zero (or not a finite positive number) admits only `burst`
    /// requests, ever.
    fn capacity(&self) -> f64 {
        if self.refills() {
            f64::from(self.burst.max(1))
        } else {
            f64::from(self.burst)
        }
    }

    fn refills(&self) -> bool {
        self.per_second.is_finite() && self.per_second > 0.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// What `retry_after` says when the limit never refills.
pub const NO_REFILL_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Entries kept before stale ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// A map that drops stale entries when it grows. After a prune the next one waits until the
/// map has doubled, so a flood of distinct keys costs amortised O(1) per insertion.
#[derive(Debug)]
struct Table<V> {
    map: HashMap<String, V>,
    prune_at: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            prune_at: PRUNE_ABOVE,
        }
    }
}

impl<V> Table<V> {
    /// Makes room before `key` is inserted, keeping entries for which `keep` holds.
    fn before_insert(&mut self, key: &str, keep: impl FnMut(&String, &mut V) -> bool) {
        if self.map.len() >= self.prune_at && !self.map.contains_key(key) {
            self.map.retain(keep);
            self.prune_at = PRUNE_ABOVE.max(self.map.len() * 2);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limit: RateLimit,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        if self.limit.refills() {
            self.tokens = (self.tokens + elapsed * self.limit.per_second).min(self.limit.capacity());
        }
    }

    fn is_full(&self) -> bool {
        self.tokens >= self.limit.capacity()
    }
}

/// Token buckets by key. One mutex: a check is a hash lookup and a few float operations.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<Table<Bucket>>,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Table<Bucket>> {
        // A panic while holding the lock cannot leave a bucket half-updated in a harmful way.
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one token from `key`'s bucket. A bucket starts full; when `limit` differs from
    /// the one the bucket was made with (a redeploy), the bucket keeps its tokens (capped to
    /// the new burst) and refills at the new rate.
    pub fn check(&self, key: &str, limit: RateLimit, now: Instant) -> Decision {
        let mut table = self.lock();
        table.before_insert(key, |_, b| {
            b.refill(now);
            !b.is_full()
        });
        let bucket = table.map.entry(key.to_string()).or_insert(Bucket {
            tokens: limit.capacity(),
            last: now,
            limit,
        });
        bucket.refill(now);
        if bucket.limit != limit {
            bucket.limit = limit;
            bucket.tokens = bucket.tokens.min(limit.capacity());
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Decision::Allowed;
        }
        let retry_after = if limit.refills() {
            // Round up to the next millisecond so retrying at exactly `retry_after` succeeds.
            let secs = (1.0 - bucket.tokens) / limit.per_second;
            Duration::from_millis((secs * 1000.0).ceil() as u64).max(Duration::from_millis(1))
        } else {
            NO_REFILL_RETRY_AFTER
        };
        Decision::Limited { retry_after }
    }

    pub fn check_now(&self, key: &str, limit: RateLimit) -> Decision {
        self.check(key, limit, Instant::now())
    }

    /// Drops buckets that have refilled completely (they hold no information).
    pub fn prune(&self, now: Instant) {
        self.lock().map.retain(|_, b| {
            b.refill(now);
            !b.is_full()
        });
    }

    /// Number of buckets held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const DAY_SECS: u64 = 86_400;

/// The quota period `now` falls in: days since the epoch, UTC.
pub fn quota_day(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / DAY_SECS
}

/// Requests per UTC day, by key. A day runs from 00:00:00 UTC; the count resets then.
#[derive(Debug, Default)]
pub struct QuotaCounter {
    used: Mutex<Table<Used>>,
    /// Something changed since [`QuotaCounter::unsaved`] last looked.
    dirty: AtomicBool,
    changed: tokio::sync::Notify,
}

/// One key's count, and what of it is known to be saved.
#[derive(Debug, Clone, Copy)]
struct Used {
    day: u64,
    count: u64,
    saved: Option<(u64, u64)>,
}

/// Outcome of [`QuotaCounter::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Counted; `remaining` more are allowed today.
    Allowed { remaining: u64 },
    /// Spent for today; `retry_after` is the time to the next UTC midnight.
    Exhausted { retry_after: Duration },
}

impl QuotaCounter {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Table<Used>> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one request against `per_day` for `key`, unless the day's quota is spent.
    pub fn take(&self, key: &str, per_day: u64, now: SystemTime) -> QuotaDecision {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let day = since_epoch.as_secs() / DAY_SECS;
        let mut used = self.lock();
        used.before_insert(key, |_, u| u.day == day);
        if !used.map.contains_key(key) {
            // (Looked up first: no key allocation per request for a key already counted.) A
            // count of zero needs no row.
            used.map.insert(
                key.to_string(),
                Used {
                    day,
                    count: 0,
                    saved: Some((day, 0)),
                },
            );
        }
        let Some(entry) = used.map.get_mut(key) else {
            unreachable!("inserted above");
        };
        if entry.day != day {
            entry.day = day;
            entry.count = 0;
        }
        if entry.count >= per_day {
            let next_midnight = Duration::from_secs((day + 1) * DAY_SECS);
            let retry_after = next_midnight.saturating_sub(since_epoch);
            return QuotaDecision::Exhausted { retry_after };
        }
        entry.count += 1;
        let remaining = per_day - entry.count;
        drop(used);
        self.mark_dirty();
        QuotaDecision::Allowed { remaining }
    }

    /// Wakes [`QuotaCounter::changed`] (also after a failed write, to try again).
    pub(crate) fn mark_dirty(&self) {
        // A load first: under load the flag is already set, and a load shares the cache line.
        if !self.dirty.load(Ordering::Relaxed) && !self.dirty.swap(true, Ordering::AcqRel) {
            self.changed.notify_one();
        }
    }

    /// Returns once a count has changed since the last [`QuotaCounter::unsaved`].
    pub async fn changed(&self) {
        loop {
            let notified = self.changed.notified();
            if self.dirty.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The counts that changed since they were last saved (as `(key, day, count)` rows), for
    /// a writer to store; pass what was stored to [`QuotaCounter::saved`].
    pub fn unsaved(&self) -> Vec<gust_store::QuotaUsage> {
        self.dirty.store(false, Ordering::Release);
        self.lock()
            .map
            .iter()
            .filter(|(_, u)| u.saved != Some((u.day, u.count)))
            .map(|(key, u)| gust_store::QuotaUsage {
                key: key.clone(),
                period: u.day,
                used: u.count,
            })
            .collect()
    }

    /// Records that `rows` (from [`QuotaCounter::unsaved`]) were stored.
    pub fn saved(&self, rows: &[gust_store::QuotaUsage]) {
        let mut used = self.lock();
        for r in rows {
            if let Some(u) = used.map.get_mut(&r.key) {
                u.saved = Some((r.period, r.used));
            }
        }
    }

    /// Puts back counts saved before a restart. A key counted since keeps the larger count.
    pub fn restore(&self, rows: impl IntoIterator<Item = gust_store::QuotaUsage>) {
        let mut used = self.lock();
        for r in rows {
            let entry = used.map.entry(r.key).or_insert(Used {
                day: r.period,
                count: 0,
                saved: None,
            });
            if entry.day < r.period || (entry.day == r.period && entry.count <= r.used) {
                *entry = Used {
                    day: r.period,
                    count: r.used,
                    saved: Some((r.period, r.used)),
                };
            }
        }
    }

    pub fn take_now(&self, key: &str, per_day: u64) -> QuotaDecision {
        self.take(key, per_day, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn burst_then_refill_at_rate() {
        let limiter = RateLimiter::new();
        let limit = RateLimit::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("k", limit, t0), Decision::Allowed);
        }
        // Empty: one token every 500 ms.
        assert_eq!(
            limiter.check("k", limit, t0),
            Decision::Limited { retry_after: 500 * MS }
        );
        assert_eq!(
            limiter.check("k", limit, t0 + 200 * MS),
            Decision::Limited { retry_after: 300 * MS }
        );
        assert_eq!(limiter.check("k", limit, t0 + 500 * MS), Decision::Allowed);
        assert!(!limiter.check("k", limit, t0 + 500 * MS).is_allowed());
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.check("k", limit, later).is_allowed());
        }
        assert!(!limiter.check("k", limit, later).is_allowed());
    }

    #[test]
    fn keys_are_independent() {
        let limiter = RateLimiter::new();
        let limit = RateLimit::new(1.0, 1);
        let t0 = Instant::now();
        assert!(limiter.check("route:GET /a", limit, t0).is_allowed());
        assert!(!limiter.check("route:GET /a", limit, t0).is_allowed());
        assert!(limiter.check("route:GET /b", limit, t0).is_allowed());
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn retry_after_is_honoured_exactly() {
        let limiter = RateLimiter::new();
        let limit = RateLimit::new(3.0, 1);
        let t0 = Instant::now();
        assert!(limiter.check("k", limit, t0).is_allowed());
        let Decision::Limited { retry_after } = limiter.check("k", limit, t0) else {
            panic!("expected a limit");
        };
        assert_eq!(retry_after, 334 * MS);
        assert!(limiter.check("k", limit, t0 + retry_after).is_allowed());
    }

    #[test]
    fn zero_rate_and_zero_burst() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let blocked = RateLimit::new(0.0, 0);
        assert_eq!(
            limiter.check("a", blocked, t0),
            Decision::Limited {
                retry_after: NO_REFILL_RETRY_AFTER
            }
        );
        let two_ever = RateLimit::new(0.0, 2);
        assert!(limiter.check("b", two_ever, t0).is_allowed());
        assert!(limiter.check("b", two_ever, t0).is_allowed());
        assert!(!limiter.check("b", two_ever, t0 + Duration::from_secs(99)).is_allowed());
        // A positive rate with burst 0 still admits one at a time.
        let no_burst = RateLimit::new(10.0, 0);
        assert!(limiter.check("c", no_burst, t0).is_allowed());
        assert!(!limiter.check("c", no_burst, t0).is_allowed());
        assert!(limiter.check("c", no_burst, t0 + 100 * MS).is_allowed());
    }

    #[test]
    fn changed_limit_applies_to_an_existing_bucket() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        assert!(limiter.check("k", RateLimit::new(1.0, 10), t0).is_allowed());
        // Burst lowered to 2: at most 2 tokens remain.
        let lower = RateLimit::new(1.0, 2);
        assert!(limiter.check("k", lower, t0).is_allowed());
        assert!(limiter.check("k", lower, t0).is_allowed());
        assert!(!limiter.check("k", lower, t0).is_allowed());
        // Rate raised: refills at the new rate.
        let faster = RateLimit::new(10.0, 2);
        assert!(!limiter.check("k", faster, t0).is_allowed());
        assert!(limiter.check("k", faster, t0 + 100 * MS).is_allowed());
    }

    #[test]
    fn prune_drops_full_buckets_only() {
        let limiter = RateLimiter::new();
        let limit = RateLimit::new(1.0, 2);
        let t0 = Instant::now();
        limiter.check("idle", limit, t0);
        limiter.check("busy", limit, t0 + Duration::from_secs(10));
        limiter.prune(t0 + Duration::from_secs(10));
        assert_eq!(limiter.len(), 1);
        // A pruned key starts full again: same behaviour as if it had been kept.
        assert!(limiter.check("idle", limit, t0 + Duration::from_secs(10)).is_allowed());
    }

    #[test]
    fn many_keys_are_pruned_without_rescanning_each_time() {
        let limiter = RateLimiter::new();
        let limit = RateLimit::new(1.0, 1);
        let t0 = Instant::now();
        // Busy keys (empty buckets) cannot be pruned: the table grows past the threshold and
        // the next prune waits until it has doubled.
        for i in 0..PRUNE_ABOVE + 5 {
            limiter.check(&format!("busy-{i}"), limit, t0);
        }
        assert_eq!(limiter.len(), PRUNE_ABOVE + 5);
        assert_eq!(limiter.lock().prune_at, 2 * PRUNE_ABOVE);
        // Once they have refilled, the next prune drops them all.
        let later = t0 + Duration::from_secs(5);
        for i in 0..PRUNE_ABOVE {
            limiter.check(&format!("late-{i}"), limit, later);
        }
        assert!(limiter.len() <= PRUNE_ABOVE + 1, "{}", limiter.len());
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let limiter = RateLimiter::new();
        let limit = RateLimit::new(1.0, 1);
        let t0 = Instant::now() + Duration::from_secs(5);
        assert!(limiter.check("k", limit, t0).is_allowed());
        assert!(!limiter.check("k", limit, t0 - Duration::from_secs(5)).is_allowed());
        assert!(limiter.check("k", limit, t0 + Duration::from_secs(1)).is_allowed());
    }

    #[test]
    fn daily_quota_resets_at_utc_midnight() {
        let quotas = QuotaCounter::new();
        // 2026-03-01T23:59:00Z
        let day_start = UNIX_EPOCH + Duration::from_secs(20_513 * DAY_SECS);
        let t = day_start + Duration::from_secs(DAY_SECS - 60);
        assert_eq!(quotas.take("k", 2, t), QuotaDecision::Allowed { remaining: 1 });
        assert_eq!(quotas.take("k", 2, t), QuotaDecision::Allowed { remaining: 0 });
        assert_eq!(
            quotas.take("k", 2, t),
            QuotaDecision::Exhausted {
                retry_after: Duration::from_secs(60)
            }
        );
        assert_eq!(quotas.take("other", 2, t), QuotaDecision::Allowed { remaining: 1 });
        let next_day = day_start + Duration::from_secs(DAY_SECS);
        assert_eq!(quotas.take("k", 2, next_day), QuotaDecision::Allowed { remaining: 1 });
        assert!(matches!(quotas.take("z", 0, t), QuotaDecision::Exhausted { .. }));
    }

    fn usage(key: &str, period: u64, used: u64) -> gust_store::QuotaUsage {
        gust_store::QuotaUsage {
            key: key.into(),
            period,
            used,
        }
    }

    fn sorted(mut rows: Vec<gust_store::QuotaUsage>) -> Vec<gust_store::QuotaUsage> {
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows
    }

    #[test]
    fn quota_counts_are_saved_once_and_restored() {
        let day = 20_513;
        let t = UNIX_EPOCH + Duration::from_secs(day * DAY_SECS + 3600);
        let quotas = QuotaCounter::new();
        assert!(quotas.unsaved().is_empty());
        quotas.take("a", 5, t);
        quotas.take("a", 5, t);
        quotas.take("b", 5, t);
        let rows = sorted(quotas.unsaved());
        assert_eq!(rows, [usage("a", day, 2), usage("b", day, 1)]);
        quotas.saved(&rows);
        assert!(quotas.unsaved().is_empty(), "nothing changed since");
        quotas.take("a", 5, t);
        assert_eq!(quotas.unsaved(), [usage("a", day, 3)]);
        // A refused request changes nothing.
        let quotas = QuotaCounter::new();
        assert!(matches!(quotas.take("z", 0, t), QuotaDecision::Exhausted { .. }));
        assert!(quotas.unsaved().is_empty());

        // After a restart: the count goes on from where it was, and today's rows are saved.
        let restarted = QuotaCounter::new();
        restarted.restore([usage("a", day, 4), usage("old", day - 1, 9)]);
        assert!(restarted.unsaved().is_empty());
        assert_eq!(restarted.take("a", 5, t), QuotaDecision::Allowed { remaining: 0 });
        assert!(matches!(restarted.take("a", 5, t), QuotaDecision::Exhausted { .. }));
        // Yesterday's count is no count today.
        assert_eq!(restarted.take("old", 5, t), QuotaDecision::Allowed { remaining: 4 });
        // A restore never lowers a count taken since.
        restarted.restore([usage("a", day, 1)]);
        assert!(matches!(restarted.take("a", 5, t), QuotaDecision::Exhausted { .. }));
    }

    #[tokio::test]
    async fn a_change_wakes_the_writer_once() {
        let quotas = std::sync::Arc::new(QuotaCounter::new());
        let waiter = tokio::spawn({
            let q = quotas.clone();
            async move { q.changed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        quotas.take_now("k", 10);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // Still unsaved: returns at once. Once looked at: waits again.
        tokio::time::timeout(Duration::from_secs(5), quotas.changed())
            .await
            .unwrap();
        quotas.unsaved();
        assert!(tokio::time::timeout(Duration::from_millis(50), quotas.changed())
            .await
            .is_err());
    }
}
