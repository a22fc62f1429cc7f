//! The embedded backend: one SQLite file in the state directory, WAL mode.
//!
//! `synchronous=FULL`: a write the store acknowledged survives power loss, because a function
//! that was told "stored" may already have answered its caller. One connection behind a mutex,
//! used from `spawn_blocking`, is enough for one node: SQLite serialises writers anyway.

use crate::kv::{check_key, Entry, KeyPage, KvError, KvStore, Precondition, PutOutcome, MAX_VALUE_BYTES};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv_seq (id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL);
INSERT OR IGNORE INTO kv_seq (id, next) VALUES (1, 1);
";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn storage(e: impl std::fmt::Display) -> KvError {
    KvError::Storage(e.to_string())
}

/// A connection to the state database at `path` with `pragmas` set and `schema` applied, for
/// the stores that keep their tables there.
pub(crate) fn open_connection(path: &Path, pragmas: &str, schema: &str) -> Result<Arc<Mutex<Connection>>, KvError> {
    let conn = Connection::open(path).map_err(storage)?;
    conn.execute_batch(pragmas).map_err(storage)?;
    conn.execute_batch(schema).map_err(storage)?;
    Ok(Arc::new(Mutex::new(conn)))
}

/// Runs `f` on `conn` on a blocking thread (SQLite calls block).
pub(crate) async fn with_connection<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&mut Connection) -> Result<T, KvError> + Send + 'static,
) -> Result<T, KvError> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = conn
            .lock()
            .map_err(|_| KvError::Storage("state database lock poisoned".into()))?;
        f(&mut guard)
    })
    .await
    .map_err(storage)?
}

impl SqliteStore {
    /// Opens (creating if needed) the state database at `path`.
    pub fn open(path: &Path) -> Result<Self, KvError> {
        let conn = open_connection(
            path,
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;",
            SCHEMA,
        )?;
        Ok(Self { conn })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        with_connection(&self.conn, f).await
    }
}

#[async_trait]
impl KvStore for SqliteStore {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>, KvError> {
        check_key(key)?;
        let (ns, key) = (ns.to_string(), key.to_string());
        self.with(move |c| {
            c.query_row(
                "SELECT value, version FROM kv WHERE ns = ?1 AND key = ?2",
                params![ns, key],
                |r| {
                    Ok(Entry {
                        value: r.get(0)?,
                        version: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn put(&self, ns: &str, key: &str, value: Vec<u8>, pre: Precondition) -> Result<PutOutcome, KvError> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::ValueTooLarge(value.len()));
        }
        let (ns, key) = (ns.to_string(), key.to_string());
        self.with(move |c| {
            let tx = c.transaction().map_err(storage)?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM kv WHERE ns = ?1 AND key = ?2",
                    params![ns, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(storage)?;
            let allowed = match pre {
                Precondition::None => true,
                Precondition::IfAbsent => current.is_none(),
                Precondition::IfVersion(v) => current == Some(v as i64),
            };
            if !allowed {
                return Ok(PutOutcome::PreconditionFailed);
            }
            let version: i64 = tx
                .query_row(
                    "UPDATE kv_seq SET next = next + 1 WHERE id = 1 RETURNING next - 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(storage)?;
            tx.execute(
                "INSERT INTO kv (ns, key, value, version) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = excluded.version",
                params![ns, key, value, version],
            )
            .map_err(storage)?;
            tx.commit().map_err(storage)?;
            Ok(PutOutcome::Written {
                version: version as u64,
                created: current.is_none(),
            })
        })
        .await
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        let (ns, key) = (ns.to_string(), key.to_string());
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM kv WHERE ns = ?1 AND key = ?2", params![ns, key])
                .map_err(storage)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list(&self, ns: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<KeyPage, KvError> {
        let (ns, prefix) = (ns.to_string(), prefix.to_string());
        let after = after.map(str::to_string);
        let limit = limit.clamp(1, 1000);
        self.with(move |c| {
            // Range scan on the primary key: keys >= prefix (or > after), stopping at the first
            // key that no longer has the prefix. No LIKE, so `%` and `_` in keys are literal.
            let start = match &after {
                Some(a) if a.as_str() >= prefix.as_str() => a.clone(),
                _ => prefix.clone(),
            };
            let strict = after.as_deref().is_some_and(|a| a >= prefix.as_str());
            let sql = if strict {
                "SELECT key, version FROM kv WHERE ns = ?1 AND key > ?2 ORDER BY key LIMIT ?3"
            } else {
                "SELECT key, version FROM kv WHERE ns = ?1 AND key >= ?2 ORDER BY key LIMIT ?3"
            };
            let mut stmt = c.prepare_cached(sql).map_err(storage)?;
            let rows = stmt
                .query_map(params![ns, start, (limit + 1) as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })
                .map_err(storage)?;
            let mut keys = Vec::new();
            for row in rows {
                let (k, v) = row.map_err(storage)?;
                if !k.starts_with(prefix.as_str()) {
                    break;
                }
                keys.push((k, v));
            }
            let next = if keys.len() > limit {
                keys.truncate(limit);
                keys.last().map(|(k, _)| k.clone())
            } else {
                None
            };
            Ok(KeyPage { keys, next })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kv_contract_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.get("a", "k").await.unwrap(), None);
        let PutOutcome::Written {
            version: v1,
            created: true,
        } = s.put("a", "k", b"one".to_vec(), Precondition::IfAbsent).await.unwrap()
        else {
            panic!("first create must write");
        };
        assert_eq!(
            s.put("a", "k", b"x".to_vec(), Precondition::IfAbsent).await.unwrap(),
            PutOutcome::PreconditionFailed
        );
        assert_eq!(
            s.put("a", "k", b"x".to_vec(), Precondition::IfVersion(v1 + 100))
                .await
                .unwrap(),
            PutOutcome::PreconditionFailed
        );
        let PutOutcome::Written {
            version: v2,
            created: false,
        } = s
            .put("a", "k", b"two".to_vec(), Precondition::IfVersion(v1))
            .await
            .unwrap()
        else {
            panic!("CAS with the current version must write");
        };
        assert!(v2 > v1);
        assert_eq!(
            s.get("a", "k").await.unwrap(),
            Some(Entry {
                value: b"two".to_vec(),
                version: v2
            })
        );
        // Namespaces are separate.
        assert_eq!(s.get("b", "k").await.unwrap(), None);
        // Delete then re-create never reuses a version (no ABA for CAS).
        assert!(s.delete("a", "k").await.unwrap());
        assert!(!s.delete("a", "k").await.unwrap());
        let PutOutcome::Written { version: v3, .. } = s.put("a", "k", b"3".to_vec(), Precondition::None).await.unwrap()
        else {
            panic!()
        };
        assert!(v3 > v2);
        // Limits.
        assert!(matches!(s.get("a", "").await, Err(KvError::BadKey)));
        assert!(matches!(
            s.put("a", "big", vec![0; MAX_VALUE_BYTES + 1], Precondition::None)
                .await,
            Err(KvError::ValueTooLarge(_))
        ));
        // Survives reopening.
        drop(s);
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.get("a", "k").await.unwrap().unwrap().value, b"3");
    }

    #[tokio::test]
    async fn list_pages_by_prefix_with_literal_wildcards() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        for k in ["u/1", "u/2", "u/3", "u%x", "v/1", "t"] {
            s.put("a", k, b"v".to_vec(), Precondition::None).await.unwrap();
        }
        let p = s.list("a", "u/", None, 2).await.unwrap();
        let names: Vec<_> = p.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["u/1", "u/2"]);
        assert_eq!(p.next.as_deref(), Some("u/2"));
        let p = s.list("a", "u/", p.next.as_deref(), 2).await.unwrap();
        let names: Vec<_> = p.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["u/3"]);
        assert_eq!(p.next, None);
        let p = s.list("a", "u%", None, 10).await.unwrap();
        assert_eq!(p.keys.len(), 1, "% is literal");
    }
}
