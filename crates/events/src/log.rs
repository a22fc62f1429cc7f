//! The durable event log: events, per-subscription deliveries, and dead letters.
//!
//! [`EventLog`] is the seam a NATS JetStream backend implements for cluster mode;
//! [`SqliteLog`] is the embedded one, in the state database with `synchronous=FULL`, so a
//! publish that was answered survives `kill -9` and power loss. Fan-out happens at publish:
//! one delivery row per matching subscription, written in the same transaction as the event.

use crate::cloudevent::CloudEvent;
use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("event log: {0}")]
pub struct LogError(pub String);

fn db(e: impl std::fmt::Display) -> LogError {
    LogError(e.to_string())
}

/// What a publish recorded for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    /// A repeat of an idempotency key inside the dedup window: accepted, not stored again.
    pub duplicate: bool,
    pub deliveries: usize,
}

/// A delivery handed to a subscription's worker.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub seq: i64,
    pub message_id: String,
    /// Including this one.
    pub attempts: u32,
    /// When the record became due the first time (epoch ms): its age for `max_event_age`.
    pub first_ms: i64,
    pub published_ms: i64,
    pub event: CloudEvent,
}

/// A record that ran out of attempts or age.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub subscription: String,
    pub seq: i64,
    pub message_id: String,
    pub attempts: u32,
    pub reason: String,
    pub last_error: String,
    pub failed_ms: i64,
    pub event: CloudEvent,
}

/// A dead letter from a broker source (see [`EventLog::store_dead_letter`]).
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub message_id: String,
    pub attempts: u32,
    pub reason: String,
    pub error: String,
    pub published_ms: i64,
    pub event: CloudEvent,
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores events with the subscriptions each one fans out to, atomically and durably.
    async fn publish(
        &self,
        topic: &str,
        events: Vec<(CloudEvent, Vec<String>)>,
        dedup_window_ms: i64,
    ) -> Result<Vec<Published>, LogError>;
    /// Takes up to `max` due deliveries and hides them for `visibility_ms`.
    async fn claim(&self, sub: &str, max: usize, visibility_ms: i64) -> Result<Vec<Claimed>, LogError>;
    async fn ack(&self, sub: &str, seqs: &[i64]) -> Result<(), LogError>;
    /// Schedules another attempt at `at_ms`, remembering the error.
    async fn retry(&self, sub: &str, seq: i64, at_ms: i64, error: &str) -> Result<(), LogError>;
    /// Gives deliveries back without counting the attempt (back-pressure).
    async fn release(&self, sub: &str, seqs: &[i64], at_ms: i64) -> Result<(), LogError>;
    /// Moves a delivery to the DLQ. `ran`: whether its current claim invoked the function
    /// (if not, that claim is not counted as an attempt).
    async fn dead_letter(&self, sub: &str, seq: i64, reason: &str, error: &str, ran: bool) -> Result<(), LogError>;
    /// Stores a record read from a broker source straight into `sub`'s dead-letter queue
    /// (durably, before the broker is told it is done with it), under the broker's
    /// `message_id`; returns its seq. `gust dlq redrive` then delivers it from this log.
    async fn store_dead_letter(&self, sub: &str, letter: NewDeadLetter) -> Result<i64, LogError>;
    /// When the next delivery of `sub` becomes due, if any is waiting.
    async fn next_due(&self, sub: &str) -> Result<Option<i64>, LogError>;
    /// How many deliveries wait (due or not) for `sub`.
    async fn backlog(&self, sub: &str) -> Result<u64, LogError>;
    /// When the oldest record waiting for `sub` was published (epoch ms); `None` when none waits.
    async fn oldest_pending_ms(&self, sub: &str) -> Result<Option<i64>, LogError>;
    async fn dlq_list(&self, sub: Option<&str>) -> Result<Vec<DeadLetter>, LogError>;
    /// Moves dead letters back into delivery (all of `sub`'s, or the given ones); returns how many.
    async fn dlq_redrive(&self, sub: &str, seqs: Option<&[i64]>) -> Result<usize, LogError>;
    async fn dlq_purge(&self, sub: &str, seqs: Option<&[i64]>) -> Result<usize, LogError>;
    /// The last tick a schedule fired (epoch ms), if it ever did.
    async fn last_fired(&self, schedule: &str) -> Result<Option<i64>, LogError>;
    /// Records `tick_ms` as fired for `schedule` and, unless `event` is `None` (a skipped tick),
    /// enqueues it for `sub` — in one transaction, and only if `tick_ms` is later than the
    /// recorded tick. Returns false when the tick had already fired (after a restart, or on
    /// another node): each tick fires once.
    async fn fire_once(
        &self,
        schedule: &str,
        tick_ms: i64,
        topic: &str,
        event: Option<CloudEvent>,
        sub: &str,
    ) -> Result<bool, LogError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    data BLOB NOT NULL,
    published_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_dedup (
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    subscription TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    visible_ms INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_error TEXT,
    PRIMARY KEY (subscription, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (subscription, visible_ms);
CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries (seq);
CREATE TABLE IF NOT EXISTS schedule_ticks (
    schedule TEXT PRIMARY KEY,
    last_tick_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    subscription TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    last_error TEXT NOT NULL,
    failed_ms INTEGER NOT NULL,
    PRIMARY KEY (subscription, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dead_letters_seq ON dead_letters (seq);
";

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Clone)]
pub struct SqliteLog {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteLog")
    }
}

fn encode_attributes(e: &CloudEvent) -> String {
    let map: BTreeMap<String, String> = e.attributes().into_iter().collect();
    serde_json::to_string(&map).expect("string map serialises")
}

fn decode_event(attributes: &str, data: Vec<u8>) -> CloudEvent {
    let mut map: BTreeMap<String, String> = serde_json::from_str(attributes).unwrap_or_default();
    let mut take = |k: &str| map.remove(k);
    let id = take("id").unwrap_or_default();
    let source = take("source").unwrap_or_default();
    let event_type = take("type").unwrap_or_default();
    let subject = take("subject");
    let time = take("time");
    let datacontenttype = take("datacontenttype");
    let dataschema = take("dataschema");
    map.remove("specversion");
    CloudEvent {
        id,
        source,
        event_type,
        subject,
        time,
        datacontenttype,
        dataschema,
        extensions: map,
        data: Bytes::from(data),
        dedup_key: None,
    }
}

impl SqliteLog {
    /// Opens the log in the state database at `path`. Deliveries claimed by a previous run
    /// (which may have died mid-delivery) become due again at once.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.execute(
            "UPDATE deliveries SET visible_ms = 0 WHERE visible_ms > ?1",
            params![now_ms()],
        )
        .map_err(db)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().map_err(|_| LogError("lock poisoned".into()))?;
            f(&mut c)
        })
        .await
        .map_err(db)?
    }
}

/// Deletes events no delivery or dead letter refers to any more.
fn collect_garbage(tx: &rusqlite::Transaction<'_>, seqs: &[i64]) -> Result<(), LogError> {
    for seq in seqs {
        tx.execute(
            "DELETE FROM events WHERE seq = ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE seq = ?1)
               AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE seq = ?1)",
            params![seq],
        )
        .map_err(db)?;
    }
    Ok(())
}

fn in_list(seqs: &[i64]) -> String {
    seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn publish(
        &self,
        topic: &str,
        events: Vec<(CloudEvent, Vec<String>)>,
        dedup_window_ms: i64,
    ) -> Result<Vec<Published>, LogError> {
        let topic = topic.to_string();
        self.with(move |c| {
            let now = now_ms();
            let tx = c.transaction().map_err(db)?;
            tx.execute("DELETE FROM event_dedup WHERE expires_ms < ?1", params![now])
                .map_err(db)?;
            let mut out = Vec::with_capacity(events.len());
            for (event, subs) in events {
                if let Some(key) = &event.dedup_key {
                    let fresh = tx
                        .execute(
                            "INSERT OR IGNORE INTO event_dedup (topic, key, expires_ms) VALUES (?1, ?2, ?3)",
                            params![topic, key, now + dedup_window_ms],
                        )
                        .map_err(db)?;
                    if fresh == 0 {
                        out.push(Published {
                            id: event.id,
                            duplicate: true,
                            deliveries: 0,
                        });
                        continue;
                    }
                }
                if subs.is_empty() {
                    out.push(Published {
                        id: event.id,
                        duplicate: false,
                        deliveries: 0,
                    });
                    continue;
                }
                insert_event(&tx, &topic, &event, &subs, now)?;
                out.push(Published {
                    id: event.id,
                    duplicate: false,
                    deliveries: subs.len(),
                });
            }
            tx.commit().map_err(db)?;
            Ok(out)
        })
        .await
    }

    async fn claim(&self, sub: &str, max: usize, visibility_ms: i64) -> Result<Vec<Claimed>, LogError> {
        let sub = sub.to_string();
        self.with(move |c| {
            let now = now_ms();
            let tx = c.transaction().map_err(db)?;
            let mut claimed = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE deliveries SET attempts = attempts + 1, visible_ms = ?3
                         WHERE subscription = ?1 AND seq IN (
                             SELECT seq FROM deliveries WHERE subscription = ?1 AND visible_ms <= ?2 ORDER BY seq LIMIT ?4)
                         RETURNING seq, attempts, first_ms",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map(params![sub, now, now + visibility_ms, max as i64], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    })
                    .map_err(db)?;
                for row in rows {
                    claimed.push(row.map_err(db)?);
                }
            }
            claimed.sort_by_key(|(seq, _, _)| *seq);
            let mut out = Vec::with_capacity(claimed.len());
            {
                let mut ev = tx
                    .prepare_cached("SELECT message_id, attributes, data, published_ms FROM events WHERE seq = ?1")
                    .map_err(db)?;
                for (seq, attempts, first_ms) in claimed {
                    let row = ev
                        .query_row(params![seq], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, i64>(3)?))
                        })
                        .optional()
                        .map_err(db)?;
                    let Some((message_id, attrs, data, published_ms)) = row else { continue };
                    out.push(Claimed {
                        seq,
                        message_id,
                        attempts: attempts as u32,
                        first_ms,
                        published_ms,
                        event: decode_event(&attrs, data),
                    });
                }
            }
            tx.commit().map_err(db)?;
            Ok(out)
        })
        .await
    }

    async fn ack(&self, sub: &str, seqs: &[i64]) -> Result<(), LogError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let (sub, seqs) = (sub.to_string(), seqs.to_vec());
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute(
                &format!(
                    "DELETE FROM deliveries WHERE subscription = ?1 AND seq IN ({})",
                    in_list(&seqs)
                ),
                params![sub],
            )
            .map_err(db)?;
            collect_garbage(&tx, &seqs)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn retry(&self, sub: &str, seq: i64, at_ms: i64, error: &str) -> Result<(), LogError> {
        let (sub, error) = (sub.to_string(), error.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE deliveries SET visible_ms = ?3, last_error = ?4 WHERE subscription = ?1 AND seq = ?2",
                params![sub, seq, at_ms, error],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, sub: &str, seqs: &[i64], at_ms: i64) -> Result<(), LogError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let (sub, seqs) = (sub.to_string(), seqs.to_vec());
        self.with(move |c| {
            c.execute(
                &format!(
                    "UPDATE deliveries SET visible_ms = ?2, attempts = MAX(attempts - 1, 0) WHERE subscription = ?1 AND seq IN ({})",
                    in_list(&seqs)
                ),
                params![sub, at_ms],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn dead_letter(&self, sub: &str, seq: i64, reason: &str, error: &str, ran: bool) -> Result<(), LogError> {
        let (sub, reason, error) = (sub.to_string(), reason.to_string(), error.to_string());
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            let attempts: Option<i64> = tx
                .query_row("SELECT attempts FROM deliveries WHERE subscription = ?1 AND seq = ?2", params![sub, seq], |r| r.get(0))
                .optional()
                .map_err(db)?;
            let Some(attempts) = attempts else { return Ok(()) };
            let attempts = if ran { attempts } else { (attempts - 1).max(0) };
            tx.execute(
                "INSERT OR REPLACE INTO dead_letters (subscription, seq, attempts, reason, last_error, failed_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![sub, seq, attempts, reason, error, now_ms()],
            )
            .map_err(db)?;
            tx.execute("DELETE FROM deliveries WHERE subscription = ?1 AND seq = ?2", params![sub, seq]).map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn store_dead_letter(&self, sub: &str, letter: NewDeadLetter) -> Result<i64, LogError> {
        let sub = sub.to_string();
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute(
                "INSERT INTO events (topic, message_id, attributes, data, published_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    sub,
                    letter.message_id,
                    encode_attributes(&letter.event),
                    &letter.event.data[..],
                    letter.published_ms
                ],
            )
            .map_err(db)?;
            let seq = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO dead_letters (subscription, seq, attempts, reason, last_error, failed_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![sub, seq, letter.attempts, letter.reason, letter.error, now_ms()],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(seq)
        })
        .await
    }

    async fn next_due(&self, sub: &str) -> Result<Option<i64>, LogError> {
        let sub = sub.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT MIN(visible_ms) FROM deliveries WHERE subscription = ?1",
                params![sub],
                |r| r.get(0),
            )
            .map_err(db)
        })
        .await
    }

    async fn oldest_pending_ms(&self, sub: &str) -> Result<Option<i64>, LogError> {
        let sub = sub.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT MIN(e.published_ms) FROM deliveries d JOIN events e ON e.seq = d.seq
                 WHERE d.subscription = ?1",
                params![sub],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(db)
        })
        .await
    }

    async fn backlog(&self, sub: &str) -> Result<u64, LogError> {
        let sub = sub.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM deliveries WHERE subscription = ?1",
                params![sub],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn dlq_list(&self, sub: Option<&str>) -> Result<Vec<DeadLetter>, LogError> {
        let sub = sub.map(str::to_string);
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT d.subscription, d.seq, e.message_id, d.attempts, d.reason, d.last_error, d.failed_ms, e.attributes, e.data
                     FROM dead_letters d JOIN events e ON e.seq = d.seq
                     WHERE ?1 IS NULL OR d.subscription = ?1 ORDER BY d.subscription, d.seq",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![sub], |r| {
                    Ok(DeadLetter {
                        subscription: r.get(0)?,
                        seq: r.get(1)?,
                        message_id: r.get(2)?,
                        attempts: r.get::<_, i64>(3)? as u32,
                        reason: r.get(4)?,
                        last_error: r.get(5)?,
                        failed_ms: r.get(6)?,
                        event: decode_event(&r.get::<_, String>(7)?, r.get(8)?),
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
        .await
    }

    async fn dlq_redrive(&self, sub: &str, seqs: Option<&[i64]>) -> Result<usize, LogError> {
        let (sub, seqs) = (sub.to_string(), seqs.map(<[i64]>::to_vec));
        self.with(move |c| {
            let now = now_ms();
            let tx = c.transaction().map_err(db)?;
            let filter = seqs
                .as_ref()
                .map(|s| format!(" AND seq IN ({})", in_list(s)))
                .unwrap_or_default();
            tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO deliveries (subscription, seq, attempts, visible_ms, first_ms)
                     SELECT subscription, seq, 0, ?2, ?2 FROM dead_letters WHERE subscription = ?1{filter}"
                ),
                params![sub, now],
            )
            .map_err(db)?;
            let n = tx
                .execute(
                    &format!("DELETE FROM dead_letters WHERE subscription = ?1{filter}"),
                    params![sub],
                )
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(n)
        })
        .await
    }

    async fn last_fired(&self, schedule: &str) -> Result<Option<i64>, LogError> {
        let schedule = schedule.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT last_tick_ms FROM schedule_ticks WHERE schedule = ?1",
                params![schedule],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn fire_once(
        &self,
        schedule: &str,
        tick_ms: i64,
        topic: &str,
        event: Option<CloudEvent>,
        sub: &str,
    ) -> Result<bool, LogError> {
        let (schedule, topic, sub) = (schedule.to_string(), topic.to_string(), sub.to_string());
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            let changed = tx
                .execute(
                    "INSERT INTO schedule_ticks (schedule, last_tick_ms) VALUES (?1, ?2)
                     ON CONFLICT (schedule) DO UPDATE SET last_tick_ms = excluded.last_tick_ms
                     WHERE schedule_ticks.last_tick_ms < excluded.last_tick_ms",
                    params![schedule, tick_ms],
                )
                .map_err(db)?;
            if changed == 0 {
                return Ok(false);
            }
            if let Some(event) = event {
                insert_event(&tx, &topic, &event, &[sub], now_ms())?;
            }
            tx.commit().map_err(db)?;
            Ok(true)
        })
        .await
    }

    async fn dlq_purge(&self, sub: &str, seqs: Option<&[i64]>) -> Result<usize, LogError> {
        let (sub, seqs) = (sub.to_string(), seqs.map(<[i64]>::to_vec));
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            let filter = seqs
                .as_ref()
                .map(|s| format!(" AND seq IN ({})", in_list(s)))
                .unwrap_or_default();
            let doomed: Vec<i64> = {
                let mut stmt = tx
                    .prepare(&format!("SELECT seq FROM dead_letters WHERE subscription = ?1{filter}"))
                    .map_err(db)?;
                let rows = stmt.query_map(params![sub], |r| r.get(0)).map_err(db)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db)?
            };
            let n = tx
                .execute(
                    &format!("DELETE FROM dead_letters WHERE subscription = ?1{filter}"),
                    params![sub],
                )
                .map_err(db)?;
            collect_garbage(&tx, &doomed)?;
            tx.commit().map_err(db)?;
            Ok(n)
        })
        .await
    }
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    topic: &str,
    event: &CloudEvent,
    subs: &[String],
    now: i64,
) -> Result<(), LogError> {
    tx.execute(
        "INSERT INTO events (topic, message_id, attributes, data, published_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            topic,
            uuid::Uuid::new_v4().to_string(),
            encode_attributes(event),
            &event.data[..],
            now
        ],
    )
    .map_err(db)?;
    let seq = tx.last_insert_rowid();
    for sub in subs {
        tx.execute(
            "INSERT INTO deliveries (subscription, seq, visible_ms, first_ms) VALUES (?1, ?2, ?3, ?3)",
            params![sub, seq, now],
        )
        .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, key: Option<&str>) -> CloudEvent {
        let mut e = CloudEvent::internal("t", Bytes::from_static(b"{}"));
        e.id = id.into();
        e.dedup_key = key.map(str::to_string);
        e
    }

    #[tokio::test]
    async fn publish_claim_ack_retry_dead_letter_redrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let log = SqliteLog::open(&path).unwrap();
        let subs = vec!["a".to_string(), "b".to_string()];
        let out = log
            .publish(
                "t",
                vec![(ev("1", Some("k")), subs.clone()), (ev("2", None), subs.clone())],
                60_000,
            )
            .await
            .unwrap();
        assert_eq!(out.iter().map(|p| p.deliveries).collect::<Vec<_>>(), [2, 2]);
        // A repeated key inside the window is accepted and not stored.
        let out = log
            .publish("t", vec![(ev("1", Some("k")), subs.clone())], 60_000)
            .await
            .unwrap();
        assert!(out[0].duplicate);
        assert_eq!(log.backlog("a").await.unwrap(), 2);

        let c = log.claim("a", 10, 60_000).await.unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].attempts, 1);
        assert_eq!(c[0].event.id, "1");
        // Claimed deliveries are invisible until their visibility timeout.
        assert!(log.claim("a", 10, 60_000).await.unwrap().is_empty());
        log.ack("a", &[c[0].seq]).await.unwrap();
        log.retry("a", c[1].seq, 0, "boom").await.unwrap();
        let again = log.claim("a", 10, 60_000).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 2));
        log.dead_letter("a", again[0].seq, "MaxAttemptsExceeded", "boom", true)
            .await
            .unwrap();
        let dl = log.dlq_list(Some("a")).await.unwrap();
        assert_eq!(
            (dl.len(), dl[0].attempts, dl[0].reason.as_str()),
            (1, 2, "MaxAttemptsExceeded")
        );
        assert_eq!(log.backlog("a").await.unwrap(), 0);
        // Subscription b is untouched by a's progress.
        assert_eq!(log.backlog("b").await.unwrap(), 2);
        assert_eq!(log.dlq_redrive("a", None).await.unwrap(), 1);
        let back = log.claim("a", 10, 60_000).await.unwrap();
        assert_eq!((back.len(), back[0].attempts), (1, 1));
        // Back-pressure release does not count an attempt.
        log.release("a", &[back[0].seq], 0).await.unwrap();
        let back = log.claim("a", 10, 60_000).await.unwrap();
        assert_eq!(back[0].attempts, 1);

        // After a crash, claimed deliveries are due again at the next open.
        drop(log);
        let log = SqliteLog::open(&path).unwrap();
        assert_eq!(log.claim("a", 10, 60_000).await.unwrap().len(), 1);
        log.dead_letter("a", back[0].seq, "r", "e", true).await.unwrap();
        assert_eq!(log.dlq_purge("a", None).await.unwrap(), 1);
        assert!(log.dlq_list(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_source_dead_letter_is_stored_durably_and_redrives_into_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let log = SqliteLog::open(&path).unwrap();
        let seq = log
            .store_dead_letter(
                "redis-sub",
                NewDeadLetter {
                    message_id: "1700000000000-0".into(),
                    attempts: 3,
                    reason: "MaxAttemptsExceeded".into(),
                    error: "boom".into(),
                    published_ms: 1_700_000_000_000,
                    event: ev("1700000000000-0", None),
                },
            )
            .await
            .unwrap();
        drop(log);
        let log = SqliteLog::open(&path).unwrap();
        let dl = log.dlq_list(Some("redis-sub")).await.unwrap();
        assert_eq!(dl.len(), 1);
        assert_eq!(
            (dl[0].seq, dl[0].attempts, dl[0].message_id.as_str()),
            (seq, 3, "1700000000000-0")
        );
        assert_eq!(log.backlog("redis-sub").await.unwrap(), 0);
        assert_eq!(log.dlq_redrive("redis-sub", None).await.unwrap(), 1);
        let c = log.claim("redis-sub", 10, 60_000).await.unwrap();
        assert_eq!(
            (c.len(), c[0].message_id.as_str(), c[0].attempts),
            (1, "1700000000000-0", 1)
        );
        log.ack("redis-sub", &[c[0].seq]).await.unwrap();
        assert!(log.dlq_list(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn each_schedule_tick_fires_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let log = SqliteLog::open(&path).unwrap();
        assert_eq!(log.last_fired("s").await.unwrap(), None);
        assert!(log
            .fire_once("s", 1000, "gust.schedule.s", Some(ev("a", None)), "q")
            .await
            .unwrap());
        assert!(
            !log.fire_once("s", 1000, "gust.schedule.s", Some(ev("b", None)), "q")
                .await
                .unwrap(),
            "same tick"
        );
        assert!(
            !log.fire_once("s", 900, "gust.schedule.s", Some(ev("c", None)), "q")
                .await
                .unwrap(),
            "older tick"
        );
        drop(log);
        let log = SqliteLog::open(&path).unwrap();
        assert!(
            !log.fire_once("s", 1000, "gust.schedule.s", Some(ev("d", None)), "q")
                .await
                .unwrap(),
            "after a restart"
        );
        assert_eq!(log.last_fired("s").await.unwrap(), Some(1000));
        // A skipped tick is recorded without a delivery.
        assert!(log.fire_once("s", 2000, "gust.schedule.s", None, "q").await.unwrap());
        assert_eq!(log.backlog("q").await.unwrap(), 1);
    }
}
