//! Usage counters that must survive a restart: how much of each API key's quota the current
//! period has used. One row per counter in the state database (`quota_usage`), written in
//! batches by the gateway's write-behind loop, never on a request.
//!
//! `synchronous=NORMAL` on this connection (WAL): a commit survives a crash of Gust (`kill -9`)
//! once it returned; a power loss may take the last commits back. A counter that goes back a
//! few requests lets a client that many requests more, which the write-behind window already
//! allows; it never stops a client that should pass.

use crate::kv::KvError;
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS quota_usage (
    key TEXT PRIMARY KEY,
    period INTEGER NOT NULL,
    used INTEGER NOT NULL
) WITHOUT ROWID;
";

/// One counter: `used` requests in `period` (for daily quotas, days since the epoch, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    pub key: String,
    pub period: u64,
    pub used: u64,
}

/// The `quota_usage` table of the state database.
#[derive(Clone)]
pub struct QuotaStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for QuotaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuotaStore")
    }
}

fn storage(e: impl std::fmt::Display) -> KvError {
    KvError::Storage(e.to_string())
}

impl QuotaStore {
    /// Opens (creating the table if needed) the counters in the state database at `path`.
    /// `synchronous=NORMAL`: the counters are written behind anyway (at most a second of
    /// requests may be lost on a crash), unlike the queue and kv tables.
    pub fn open(path: &Path) -> Result<Self, KvError> {
        let conn = crate::sqlite::open_connection(
            path,
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            SCHEMA,
        )?;
        Ok(Self { conn })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        crate::sqlite::with_connection(&self.conn, f).await
    }

    /// Every counter of `period` or later; rows of earlier periods are deleted (they count
    /// for nothing any more).
    pub async fn load(&self, period: u64) -> Result<Vec<QuotaUsage>, KvError> {
        self.with(move |c| {
            c.execute("DELETE FROM quota_usage WHERE period < ?1", params![period as i64])
                .map_err(storage)?;
            let mut stmt = c
                .prepare("SELECT key, period, used FROM quota_usage ORDER BY key")
                .map_err(storage)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(QuotaUsage {
                        key: r.get(0)?,
                        period: r.get::<_, i64>(1)? as u64,
                        used: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(storage)?;
            rows.collect::<Result<_, _>>().map_err(storage)
        })
        .await
    }

    /// Writes `rows` in one transaction (each replaces its key's row).
    pub async fn save(&self, rows: Vec<QuotaUsage>) -> Result<(), KvError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.with(move |c| {
            let tx = c.transaction().map_err(storage)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO quota_usage (key, period, used) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET period = excluded.period, used = excluded.used",
                    )
                    .map_err(storage)?;
                for r in &rows {
                    stmt.execute(params![r.key, r.period as i64, r.used as i64])
                        .map_err(storage)?;
                }
            }
            tx.commit().map_err(storage)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(key: &str, period: u64, used: u64) -> QuotaUsage {
        QuotaUsage {
            key: key.into(),
            period,
            used,
        }
    }

    #[tokio::test]
    async fn counters_survive_reopening_and_old_periods_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = QuotaStore::open(&path).unwrap();
        assert_eq!(s.load(10).await.unwrap(), []);
        s.save(vec![usage("a", 10, 3), usage("b", 9, 7)]).await.unwrap();
        s.save(vec![usage("a", 10, 5)]).await.unwrap();
        s.save(Vec::new()).await.unwrap();
        drop(s);
        let s = QuotaStore::open(&path).unwrap();
        assert_eq!(s.load(9).await.unwrap(), [usage("a", 10, 5), usage("b", 9, 7)]);
        // Day 10: yesterday's row is gone for good.
        assert_eq!(s.load(10).await.unwrap(), [usage("a", 10, 5)]);
        assert_eq!(s.load(9).await.unwrap(), [usage("a", 10, 5)]);
    }

    #[tokio::test]
    async fn shares_the_state_database_with_the_key_value_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let kv = crate::SqliteStore::open(&path).unwrap();
        let s = QuotaStore::open(&path).unwrap();
        s.save(vec![usage("k", 1, 1)]).await.unwrap();
        use crate::KvStore;
        kv.put("app", "x", b"1".to_vec(), crate::Precondition::None)
            .await
            .unwrap();
        assert_eq!(s.load(1).await.unwrap(), [usage("k", 1, 1)]);
    }
}
