//! DynamoDB's data plane and control plane (API version 2012-08-10), over SQLite.
//!
//! [`DynamoDb::handle`] takes an operation name (the part of `X-Amz-Target` after
//! `DynamoDB_20120810.`) and its JSON body and answers the JSON DynamoDB would, or a
//! [`DynamoError`] that carries DynamoDB's `__type` and message. Module by job:
//! - [`value`], [`number`]: the attribute value model and exact decimal numbers;
//! - [`expr`]: the expression languages (parser, evaluation, updates, projections);
//! - [`table`]: table definitions and the key byte encoding; [`store`]: the SQLite schema;
//! - [`tables`] (control plane), [`items`], [`query`], [`batch`]: the operations;
//! - [`stream`]: change records and the DynamoDB Streams API;
//! - [`access`]: the IAM actions and resources a request needs (for the caller's policy).
//! - [`provision`]: tables a manifest declares, created or extended at deploy.
//!
//! Why SQLite here, in a file of its own (`<state>/aws.db`) rather than in `state.db`: table
//! traffic is bulky and write-heavy, and behind one connection it would queue behind (and
//! delay) the event log's and scheduler's small `synchronous=FULL` writes; a separate file
//! also keeps user data apart from Gust's own state for backup and removal. The same
//! `synchronous=FULL` as the rest of the store: an acknowledged `PutItem` survives a crash.
//! One connection behind a mutex: SQLite serialises writers anyway, and each operation is one
//! transaction (a TransactWriteItems too, which is what makes it all-or-nothing).
//!
//! Tables belong to an app (the `app` argument); today one Gust serves one app, and more apps
//! is a change of that parameter.

pub mod access;
pub mod batch;
pub mod error;
pub mod expr;
pub mod items;
pub mod number;
pub mod provision;
pub mod query;
pub mod request;
pub mod store;
pub mod stream;
pub mod table;
pub mod tables;
pub mod value;

pub use error::{DynamoError, Result};

use rusqlite::Connection;
use serde_json::Value as Json;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// The `X-Amz-Target` prefix of DynamoDB's operations.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// The `X-Amz-Target` prefix of DynamoDB Streams' operations (signed as `dynamodb` too).
pub const STREAMS_TARGET_PREFIX: &str = "DynamoDBStreams_20120810.";

/// How often (seconds) expired items are swept, piggybacked on requests.
const SWEEP_EVERY_SECS: i64 = 30;
const SWEEP_BATCH: usize = 1000;

/// What an operation runs with.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a str,
    pub region: &'a str,
    /// Seconds since the epoch, with fractions.
    pub now: f64,
}

impl Ctx<'_> {
    pub fn now_secs(&self) -> i64 {
        self.now as i64
    }
}

pub struct DynamoDb {
    conn: Mutex<Connection>,
    last_sweep: AtomicI64,
}

impl std::fmt::Debug for DynamoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynamoDb")
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl DynamoDb {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")?;
        conn.execute_batch(store::SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
            last_sweep: AtomicI64::new(0),
        })
    }

    /// Runs the operation `target` names (the `X-Amz-Target` header: `DynamoDB_20120810.PutItem`,
    /// `DynamoDBStreams_20120810.GetRecords`) with the JSON `body` for `app`; `region` goes into
    /// ARNs.
    pub fn handle(&self, app: &str, region: &str, target: &str, body: &[u8]) -> Result<Json> {
        let (streams, operation) = match (
            target.strip_prefix(TARGET_PREFIX),
            target.strip_prefix(STREAMS_TARGET_PREFIX),
        ) {
            (Some(op), _) => (false, op),
            (_, Some(op)) => (true, op),
            _ => {
                return Err(DynamoError::UnknownOperation(format!(
                    "Gust does not support the operation {}",
                    target.chars().take(80).collect::<String>()
                )))
            }
        };
        let req: Json = if body.iter().all(u8::is_ascii_whitespace) {
            Json::Object(Default::default())
        } else {
            serde_json::from_slice(body).map_err(|e| DynamoError::Serialization(format!("Malformed JSON: {e}")))?
        };
        if !req.is_object() {
            return Err(DynamoError::Serialization(
                "The request body must be a JSON object".into(),
            ));
        }
        let ctx = Ctx {
            app,
            region,
            now: now(),
        };
        let mut conn = self.conn()?;
        self.maybe_sweep(&conn, ctx.now_secs());
        let c = &mut *conn;
        if streams {
            return match operation {
                "ListStreams" => stream::list_streams(c, &ctx, &req),
                "DescribeStream" => stream::describe_stream(c, &ctx, &req),
                "GetShardIterator" => stream::get_shard_iterator(c, &ctx, &req),
                "GetRecords" => stream::get_records(c, &ctx, &req),
                other => Err(DynamoError::UnknownOperation(format!(
                    "Gust does not support the DynamoDB Streams operation {}",
                    other.chars().take(64).collect::<String>()
                ))),
            };
        }
        match operation {
            "CreateTable" => tables::create_table(c, &ctx, &req),
            "DescribeTable" => tables::describe_table(c, &ctx, &req),
            "ListTables" => tables::list_tables(c, &ctx, &req),
            "DeleteTable" => tables::delete_table(c, &ctx, &req),
            "UpdateTable" => tables::update_table(c, &ctx, &req),
            "UpdateTimeToLive" => tables::update_time_to_live(c, &ctx, &req),
            "DescribeTimeToLive" => tables::describe_time_to_live(c, &ctx, &req),
            "PutItem" => items::put_item(c, &ctx, &req),
            "GetItem" => items::get_item(c, &ctx, &req),
            "DeleteItem" => items::delete_item(c, &ctx, &req),
            "UpdateItem" => items::update_item(c, &ctx, &req),
            "Query" => query::query(c, &ctx, &req),
            "Scan" => query::scan(c, &ctx, &req),
            "BatchGetItem" => batch::batch_get_item(c, &ctx, &req),
            "BatchWriteItem" => batch::batch_write_item(c, &ctx, &req),
            "TransactGetItems" => batch::transact_get_items(c, &ctx, &req),
            "TransactWriteItems" => batch::transact_write_items(c, &ctx, &req),
            other => Err(DynamoError::UnknownOperation(format!(
                "Gust does not support the DynamoDB operation {}",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }

    /// [`handle`](Self::handle) on a blocking thread (SQLite calls block).
    pub async fn call(self: &Arc<Self>, app: String, region: String, target: String, body: Vec<u8>) -> Result<Json> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.handle(&app, &region, &target, &body))
            .await
            .map_err(|e| DynamoError::Internal(format!("DynamoDB worker: {e}")))?
    }

    /// Deletes expired items at most every [`SWEEP_EVERY_SECS`]; a failure is logged by the
    /// next read that finds the database broken, not here.
    fn maybe_sweep(&self, conn: &Connection, now: i64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now - last < SWEEP_EVERY_SECS {
            return;
        }
        self.last_sweep.store(now, Ordering::Relaxed);
        let _ = store::sweep(conn, now, SWEEP_BATCH);
    }

    /// The change records of `table`'s stream after sequence number `after` (0: from the
    /// oldest kept), at most `limit`, in Lambda's DynamoDB stream event record shape
    /// (`eventSourceARN` included): what a stream event source hands to functions. `None`
    /// The database connection (one writer: SQLite serialises writes anyway).
    fn conn(&self) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>> {
        self.conn
            .lock()
            .map_err(|_| DynamoError::Internal("DynamoDB database lock poisoned".into()))
    }

    /// `table`'s id, metadata and stream, or `None` when it does not exist or has no stream.
    fn streamed(conn: &rusqlite::Connection, app: &str, table: &str) -> Result<Option<(i64, table::TableMeta)>> {
        Ok(store::table(conn, app, table)?.filter(|(_, meta)| meta.stream.is_some()))
    }

    /// when the table has no stream.
    pub fn read_stream(
        &self,
        app: &str,
        region: &str,
        table: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<Vec<(i64, Json)>>> {
        let conn = self.conn()?;
        let Some((tid, meta)) = Self::streamed(&conn, app, table)? else {
            return Ok(None);
        };
        let (Some(spec), Some(arn)) = (&meta.stream, meta.stream_arn(region)) else {
            return Ok(None);
        };
        let mut records = stream::records(&conn, tid, &spec.label, after, limit, region)?;
        for (_, r) in &mut records {
            r["eventSourceARN"] = serde_json::json!(arn);
        }
        Ok(Some(records))
    }

    /// Where `table`'s stream stands: its partition key attribute and the sequence number of
    /// its newest record (0 when it has none); `None` when the table has no stream. A stream
    /// event source starting at `LATEST` reads after that number.
    pub fn stream_head(&self, app: &str, table: &str) -> Result<Option<(String, i64)>> {
        let conn = self.conn()?;
        let Some((tid, meta)) = Self::streamed(&conn, app, table)? else {
            return Ok(None);
        };
        let spec = meta.stream.as_ref().expect("streamed tables have a stream");
        let last: i64 = conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM ddb_stream WHERE tid = ?1 AND label = ?2",
            rusqlite::params![tid, spec.label],
            |r| r.get(0),
        )?;
        Ok(Some((meta.key.hash.name.clone(), last)))
    }

    /// How many records of `table`'s stream follow sequence number `after`, counted up to
    /// `limit` (a stream event source's lag); `None` when the table has no stream.
    pub fn stream_backlog(&self, app: &str, table: &str, after: i64, limit: usize) -> Result<Option<u64>> {
        let conn = self.conn()?;
        let Some((tid, meta)) = Self::streamed(&conn, app, table)? else {
            return Ok(None);
        };
        let spec = meta.stream.as_ref().expect("streamed tables have a stream");
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM (SELECT 1 FROM ddb_stream WHERE tid = ?1 AND label = ?2 AND seq > ?3 LIMIT ?4)",
            rusqlite::params![tid, spec.label, after, limit as i64],
            |r| r.get(0),
        )?;
        Ok(Some(n as u64))
    }

    /// The last sequence number `consumer` (a stream event source) settled, if it has one.
    pub fn stream_checkpoint(&self, consumer: &str) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT seq FROM ddb_stream_checkpoint WHERE consumer = ?1",
                [consumer],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores `consumer`'s checkpoint durably (`synchronous=FULL`): after a crash it reads
    /// on after `seq`, so a record is delivered again at most if it was not yet settled.
    pub fn save_stream_checkpoint(&self, consumer: &str, seq: i64) -> Result<()> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO ddb_stream_checkpoint (consumer, seq) VALUES (?1, ?2)
             ON CONFLICT (consumer) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            rusqlite::params![consumer, seq],
        )?;
        Ok(())
    }

    /// Deletes every expired item now (for tests and operators); how many.
    pub fn sweep_now(&self) -> Result<usize> {
        let conn = self.conn()?;
        store::sweep(&conn, now() as i64, usize::MAX >> 1)
    }
}

#[cfg(test)]
mod tests;
