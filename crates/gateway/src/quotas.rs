//! API-key quota counters that survive a restart, without a database write per request.
//!
//! Requests are counted in memory ([`QuotaCounter`], one lock and one atomic flag on the hot
//! path); a write-behind loop writes the counts that changed to the state database
//! (`gust_store::QuotaStore`) [`FLUSH_EVERY`] after the first change, in one transaction, and
//! once more on shutdown. At start the current period's counts are read back. An idle Gust
//! does not wake for it: the loop sleeps until something is counted.
//!
//! What a crash costs: after `kill -9` (or a power loss once the OS has not written the WAL),
//! the requests counted in the last [`FLUSH_EVERY`] at most are forgotten, so a key may get
//! that many requests more than its quota after the restart; never fewer.

use crate::ratelimit::{quota_day, QuotaCounter};
use gust_store::{KvError, QuotaStore};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// How long counts stay in memory only after they change (the most a crash can lose).
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A [`QuotaCounter`] kept in the state database.
pub struct DurableQuotas {
    counter: Arc<QuotaCounter>,
    store: QuotaStore,
    /// One write at a time, so that an older snapshot never overwrites a newer one.
    writing: tokio::sync::Mutex<()>,
    stop: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for DurableQuotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DurableQuotas")
    }
}

impl DurableQuotas {
    /// A counter holding the counts `store` has for the period `now` is in (older ones are
    /// deleted).
    pub async fn load(store: QuotaStore, now: SystemTime) -> Result<Arc<Self>, KvError> {
        let counter = Arc::new(QuotaCounter::new());
        counter.restore(store.load(quota_day(now)).await?);
        Ok(Arc::new(Self {
            counter,
            store,
            writing: tokio::sync::Mutex::new(()),
            stop: Notify::new(),
            task: Mutex::new(None),
        }))
    }

    /// The counter to give [`crate::ApiKeyAuthorizer::with_quotas`].
    pub fn counter(&self) -> Arc<QuotaCounter> {
        self.counter.clone()
    }

    /// Starts the write-behind loop: after a change, waits `every` (later changes join the
    /// same write), then writes what changed.
    pub fn start(self: &Arc<Self>, every: Duration) {
        let this = self.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = this.counter.changed() => {}
                    _ = this.stop.notified() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = this.stop.notified() => return,
                }
                if let Err(e) = this.flush().await {
                    tracing::warn!(error = %e, "cannot save API key quota counts; trying again");
                }
            }
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Writes the counts that changed since the last write; returns how many.
    pub async fn flush(&self) -> Result<usize, KvError> {
        let _one = self.writing.lock().await;
        let rows = self.counter.unsaved();
        if rows.is_empty() {
            return Ok(0);
        }
        match self.store.save(rows.clone()).await {
            Ok(()) => {
                self.counter.saved(&rows);
                Ok(rows.len())
            }
            Err(e) => {
                self.counter.mark_dirty();
                Err(e)
            }
        }
    }

    /// Stops the loop and writes what is left (at shutdown, once no request is counted).
    pub async fn stop(&self) {
        self.stop.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "cannot save API key quota counts at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::QuotaDecision;

    #[tokio::test]
    async fn counts_are_written_behind_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let now = SystemTime::now();
        let quotas = DurableQuotas::load(QuotaStore::open(&path).unwrap(), now)
            .await
            .unwrap();
        quotas.start(Duration::from_millis(20));
        for _ in 0..3 {
            quotas.counter().take("key", 5, now);
        }
        // Written behind, without a shutdown: what a `kill -9` after the window finds.
        let store = QuotaStore::open(&path).unwrap();
        let mut saved = Vec::new();
        for _ in 0..250 {
            saved = store.load(quota_day(now)).await.unwrap();
            if saved.first().is_some_and(|r| r.used == 3) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(saved.len(), 1);
        assert_eq!((saved[0].key.as_str(), saved[0].used), ("key", 3));
        // The last count before a clean stop is written by the stop.
        quotas.counter().take("key", 5, now);
        quotas.stop().await;
        let restarted = DurableQuotas::load(QuotaStore::open(&path).unwrap(), now)
            .await
            .unwrap();
        assert_eq!(
            restarted.counter().take("key", 5, now),
            QuotaDecision::Allowed { remaining: 0 }
        );
        assert!(matches!(
            restarted.counter().take("key", 5, now),
            QuotaDecision::Exhausted { .. }
        ));
        // Nothing changed: nothing to write.
        restarted.flush().await.unwrap();
        assert_eq!(restarted.flush().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn yesterdays_counts_do_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let yesterday = SystemTime::now() - Duration::from_secs(86_400);
        let quotas = DurableQuotas::load(QuotaStore::open(&path).unwrap(), yesterday)
            .await
            .unwrap();
        quotas.counter().take("key", 1, yesterday);
        quotas.stop().await;
        let today = DurableQuotas::load(QuotaStore::open(&path).unwrap(), SystemTime::now())
            .await
            .unwrap();
        assert!(matches!(
            today.counter().take_now("key", 1),
            QuotaDecision::Allowed { remaining: 0 }
        ));
    }
}
