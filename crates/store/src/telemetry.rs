//! Invocation records, function log lines and trace spans, kept in the state database for
//! `gust invocations`, `gust logs`, `gust trace` and `gust cost`.
//!
//! Writes are batched by one writer task (many rows per transaction) on a connection with
//! `synchronous=NORMAL`: telemetry is useful, not precious, and must never slow an invocation.
//! Retention is bounded by age and by row count, pruned periodically.
//!
//! The same transaction that writes a batch's invocation rows adds them to the per-minute
//! rollups ([`crate::rollups`]), which the console's charts and totals read ([`TelemetryDb::series`],
//! [`TelemetryDb::stats`]) and which outlive the rows.

use crate::rollups::{self, FunctionStats, MinuteBatch, SeriesPoint, Steps};
use gust_model::{InvocationRecord, InvokeSpan, SpanRecord};
use rusqlite::{params, Connection, Transaction};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// How long the writer gathers rows before one transaction writes them.
const WRITE_WINDOW: Duration = Duration::from_millis(50);
/// Most rows one transaction takes (the rest wait for the next one).
const MAX_BATCH: usize = 10_000;

// The row layout is chosen for the write path, one invocation row and usually one span row per
// request at up to ~10k requests/s: rows append in rowid order, and each table has only the
// indexes its queries need. `invocations` has no AUTOINCREMENT (its bookkeeping table is one
// more B-tree write per row; ids only need to grow while rows exist, and pruning removes the
// oldest). `spans` is a rowid table with an index on the trace id (it was a WITHOUT ROWID table
// keyed by trace and span id plus a start-time index: two scattered B-tree inserts and a wide
// row per span, about 40% of the telemetry writer's time); a span written twice is read back
// once, its last version. Pruning goes by rowid, which follows time. Databases from before are
// converted at open (`upgrade_spans`).
//
// `invocations_function` is on `function` alone, which SQLite keys as (function, rowid): a
// function's newest records, the console's invocation list, are a backward walk of it that
// stops at the limit. It was (function, start_ms), which made "newest first" sort all of a
// function's rows: 124 ms p50 / 206 ms p99 for 50 of 1M records (benches/console.rs, now
// under 1 ms). A time range within one function is checked row by row on that walk.
// `invocations_failed` is partial, failures only (a few % of the rows, so little cost on the
// write path): an outcome filter (the console's "errors only") walks it newest first instead of
// reading every record; an outcome nothing has read all 1M rows, 192 ms at p99, before it.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS invocations (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    billed_ms INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    cold_start INTEGER NOT NULL,
    init_us INTEGER,
    outcome TEXT NOT NULL,
    error_type TEXT,
    trace_id TEXT,
    span_id TEXT,
    parent_span_id TEXT,
    accepted_us INTEGER,
    wait_us INTEGER
);
CREATE INDEX IF NOT EXISTS invocations_function ON invocations (function);
CREATE INDEX IF NOT EXISTS invocations_failed ON invocations (outcome) WHERE outcome <> 'success';
CREATE INDEX IF NOT EXISTS invocations_trace ON invocations (trace_id);
CREATE TABLE IF NOT EXISTS function_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    function TEXT NOT NULL,
    request_id TEXT,
    stream TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_fn ON function_logs (function, id);
CREATE INDEX IF NOT EXISTS logs_req ON function_logs (request_id);
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    error INTEGER NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
";

/// One stored function log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub id: i64,
    pub ts_ms: i64,
    pub function: String,
    pub request_id: Option<String>,
    pub stream: String,
    pub line: String,
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub function: Option<String>,
    pub since_ms: Option<i64>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    /// Only lines after this id (for following).
    pub after_id: Option<i64>,
    pub limit: usize,
}

/// Which invocation records to read (every filter optional; all given must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationQuery {
    pub function: Option<String>,
    /// `success`, `error`, `timeout`, ... (as recorded).
    pub outcome: Option<String>,
    /// `http`, `event`, `schedule`, `direct`, `async`, `authorizer`.
    pub trigger: Option<String>,
    pub cold: Option<bool>,
    /// Started at or after (epoch ms).
    pub since_ms: Option<i64>,
    /// Started before (epoch ms).
    pub until_ms: Option<i64>,
    /// At most this many (1 to 10,000).
    pub limit: usize,
}

/// Per function: what it used since a point in time (for cost).
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub function: String,
    pub requests: u64,
    /// Sum of billed milliseconds x memory in MB.
    pub billed_mb_ms: u64,
    pub cold_starts: u64,
    pub errors: u64,
}

/// How long and how much telemetry is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_invocations: u64,
    pub max_log_lines: u64,
    pub max_spans: u64,
    /// Per-minute rollups older than this are deleted; invocation rows pruned by `max_age` or
    /// `max_invocations` leave theirs.
    pub max_rollup_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_invocations: 200_000,
            max_log_lines: 1_000_000,
            max_spans: 500_000,
            max_rollup_age: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

enum Row {
    Invocation(InvocationRecord),
    Span(SpanRecord),
    Log {
        ts_ms: i64,
        function: String,
        request_id: Option<String>,
        stream: &'static str,
        line: String,
    },
    /// Answered once every row sent before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct TelemetryDb {
    conn: Arc<Mutex<Connection>>,
    tx: mpsc::UnboundedSender<Row>,
    /// Ends the writer's gathering window early: a reader is waiting for a flush.
    flush_wake: Arc<Notify>,
    /// Marked changed whenever a log line is recorded: what log streams wait on.
    logs_recorded: Arc<tokio::sync::watch::Sender<()>>,
}

impl std::fmt::Debug for TelemetryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TelemetryDb")
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl TelemetryDb {
    /// Opens the tables and starts the writer and the pruner (needs a tokio runtime).
    pub fn open(path: &Path, retention: Retention) -> Result<Self, String> {
        let conn = open_tables(path).map_err(err)?;
        let conn = Arc::new(Mutex::new(conn));
        let (tx, rx) = mpsc::unbounded_channel();
        let flush_wake = Arc::new(Notify::new());
        tokio::spawn(write_loop(conn.clone(), rx, flush_wake.clone()));
        tokio::spawn(prune_loop(conn.clone(), retention));
        Ok(Self {
            conn,
            tx,
            flush_wake,
            logs_recorded: Arc::new(tokio::sync::watch::Sender::new(())),
        })
    }

    pub fn record_invocation(&self, r: InvocationRecord) {
        let _ = self.tx.send(Row::Invocation(r));
    }

    pub fn record_span(&self, s: SpanRecord) {
        let _ = self.tx.send(Row::Span(s));
    }

    pub fn record_log(&self, ts_ms: i64, function: &str, request_id: Option<&str>, stderr: bool, line: String) {
        let _ = self.tx.send(Row::Log {
            ts_ms,
            function: function.to_string(),
            request_id: request_id.map(str::to_string),
            stream: if stderr { "stderr" } else { "stdout" },
            line,
        });
        self.logs_recorded.send_replace(());
    }

    /// Changes (marked seen or not) whenever a log line is recorded; a follower waits on it,
    /// then reads with [`TelemetryDb::logs`] after the last id it has (the read writes pending
    /// rows first).
    pub fn watch_logs(&self) -> tokio::sync::watch::Receiver<()> {
        self.logs_recorded.subscribe()
    }

    /// Reads see everything recorded before the call: pending rows are written first.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        self.flush().await;
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().map_err(|_| "telemetry lock poisoned".to_string())?;
            f(&c).map_err(err)
        })
        .await
        .map_err(err)?
    }

    /// Most recent invocations first.
    pub async fn invocations(&self, function: Option<String>, limit: usize) -> Result<Vec<InvocationRecord>, String> {
        self.invocations_where(InvocationQuery {
            function,
            limit,
            ..Default::default()
        })
        .await
    }

    /// The invocations matching every filter given, most recently written first.
    ///
    /// Only the filters given are in the statement, so a function's filter walks its index
    /// from the newest row; the others are checked row by row, newest first, until `limit`
    /// match (a filter nothing matches reads every row the others leave).
    pub async fn invocations_where(&self, q: InvocationQuery) -> Result<Vec<InvocationRecord>, String> {
        self.read(move |c| {
            use rusqlite::types::Value;
            let mut conditions = Vec::new();
            let mut args: Vec<Value> = Vec::new();
            let mut filter = |condition: &str, v: Option<Value>| {
                if let Some(v) = v {
                    args.push(v);
                    conditions.push(format!("{condition} ?{}", args.len()));
                }
            };
            filter("function =", q.function.map(Value::Text));
            // Failures have a partial index of their own (`invocations_failed`); the literal
            // lets the planner see that it applies.
            let failed = q.outcome.as_deref().is_some_and(|o| o != "success");
            filter("outcome =", q.outcome.map(Value::Text));
            filter("trigger_type =", q.trigger.map(Value::Text));
            filter("cold_start =", q.cold.map(|b| Value::Integer(b as i64)));
            filter("start_ms >=", q.since_ms.map(Value::Integer));
            filter("start_ms <", q.until_ms.map(Value::Integer));
            if failed {
                conditions.push("outcome <> 'success'".to_string());
            }
            let filters = if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            args.push(Value::Integer(q.limit.clamp(1, 10_000) as i64));
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {INVOCATION_COLUMNS} FROM invocations {filters} ORDER BY id DESC LIMIT ?{}",
                args.len()
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), invocation_row)?;
            rows.collect()
        })
        .await
    }

    /// One point per `step_ms` (a multiple of a minute) covering `[since_ms, until_ms)`,
    /// zero-filled, from the per-minute rollups; `function: None` sums every function. Steps
    /// are aligned to multiples of `step_ms` since the epoch: the first holds `since_ms`, the
    /// last `until_ms - 1`, so an unaligned range has one point more than its length in steps.
    /// At most [`rollups::MAX_SERIES_POINTS`] points.
    pub async fn series(
        &self,
        function: Option<String>,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<SeriesPoint>, String> {
        let steps = Steps::new(since_ms, until_ms, step_ms)?;
        self.read(move |c| rollups::series(c, function.as_deref(), since_ms, until_ms, steps))
            .await
    }

    /// Per function, by name, from the per-minute rollups: the minute holding `since_ms` and
    /// every one after.
    pub async fn stats(&self, since_ms: i64) -> Result<Vec<FunctionStats>, String> {
        self.read(move |c| rollups::stats(c, since_ms)).await
    }

    /// Records each subscription's backlog as sampled at `at_ms` (`backlog.rs`).
    pub async fn record_backlog(&self, at_ms: i64, samples: Vec<crate::BacklogSample>) -> Result<(), String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().map_err(|_| "telemetry lock poisoned".to_string())?;
            crate::backlog::record(&mut c, at_ms, &samples).map_err(err)
        })
        .await
        .map_err(err)?
    }

    /// A subscription's sampled backlog, one point per `step_ms` (as [`TelemetryDb::series`]).
    pub async fn backlog_series(
        &self,
        subscription: String,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<crate::BacklogPoint>, String> {
        let steps = Steps::new(since_ms, until_ms, step_ms)?;
        self.read(move |c| crate::backlog::series(c, &subscription, steps))
            .await
    }

    /// Log lines in order.
    pub async fn logs(&self, q: LogQuery) -> Result<Vec<LogRow>, String> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT l.id, l.ts_ms, l.function, l.request_id, l.stream, l.line FROM function_logs l
                 WHERE (?1 IS NULL OR l.function = ?1)
                   AND (?2 IS NULL OR l.ts_ms >= ?2)
                   AND (?3 IS NULL OR l.request_id = ?3)
                   AND (?4 IS NULL OR l.request_id IN (SELECT request_id FROM invocations WHERE trace_id = ?4))
                   AND (?5 IS NULL OR l.id > ?5)
                 ORDER BY l.id LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![
                    q.function,
                    q.since_ms,
                    q.request_id,
                    q.trace_id,
                    q.after_id,
                    q.limit.clamp(1, 10_000) as i64
                ],
                |r| {
                    Ok(LogRow {
                        id: r.get(0)?,
                        ts_ms: r.get(1)?,
                        function: r.get(2)?,
                        request_id: r.get(3)?,
                        stream: r.get(4)?,
                        line: r.get(5)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    /// Every span of a trace, by start time.
    pub async fn trace(&self, trace_id: String) -> Result<Vec<SpanRecord>, String> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT trace_id, span_id, parent_id, name, kind, start_us, duration_us, error, attributes
                 FROM spans WHERE trace_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map(params![&trace_id], |r| {
                    let attrs: String = r.get(8)?;
                    Ok(SpanRecord {
                        trace_id: r.get(0)?,
                        span_id: r.get(1)?,
                        parent_id: r.get(2)?,
                        name: r.get(3)?,
                        kind: r.get(4)?,
                        start_us: r.get(5)?,
                        duration_us: r.get::<_, i64>(6)? as u64,
                        error: r.get::<_, i64>(7)? != 0,
                        attributes: decode_pairs(&attrs),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // A span written more than once counts once, as last written (rows come in write
            // order; the result is sorted below).
            let mut by_id = std::collections::HashMap::new();
            for s in rows {
                by_id.insert(s.span_id.clone(), s);
            }
            let mut spans: Vec<SpanRecord> = by_id.into_values().collect();
            // Invoke spans live in their invocation records.
            let mut stmt = c.prepare(&format!(
                "SELECT {INVOCATION_COLUMNS} FROM invocations WHERE trace_id = ?1 AND span_id IS NOT NULL"
            ))?;
            for record in stmt.query_map(params![&trace_id], invocation_row)? {
                spans.extend(record?.invoke_span());
            }
            spans.sort_by(|a, b| (a.start_us, &a.span_id).cmp(&(b.start_us, &b.span_id)));
            Ok(spans)
        })
        .await
    }

    /// Per-function usage since `since_ms`.
    pub async fn usage(&self, since_ms: i64) -> Result<Vec<Usage>, String> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT function, COUNT(*), SUM(billed_ms * memory_mb), SUM(cold_start),
                        SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END)
                 FROM invocations WHERE start_ms >= ?1 GROUP BY function ORDER BY function",
            )?;
            let rows = stmt.query_map(params![since_ms], |r| {
                Ok(Usage {
                    function: r.get(0)?,
                    requests: r.get::<_, i64>(1)? as u64,
                    billed_mb_ms: r.get::<_, i64>(2)? as u64,
                    cold_starts: r.get::<_, i64>(3)? as u64,
                    errors: r.get::<_, i64>(4)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Waits until everything sent so far is written (tests, shutdown).
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Row::Flush(done)).is_ok() {
            self.flush_wake.notify_one();
            let _ = wait.await;
        }
    }
}

const INVOCATION_COLUMNS: &str = "request_id, function, trigger_type, start_ms, duration_us, billed_ms, memory_mb,
    cold_start, init_us, outcome, error_type, trace_id, span_id, parent_span_id, accepted_us, wait_us";

/// An [`InvocationRecord`] from a row of [`INVOCATION_COLUMNS`].
fn invocation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvocationRecord> {
    let span_id: Option<String> = r.get(12)?;
    Ok(InvocationRecord {
        request_id: r.get(0)?,
        function: r.get(1)?,
        trigger: r.get(2)?,
        start_ms: r.get(3)?,
        duration_us: r.get::<_, i64>(4)? as u64,
        billed_ms: r.get::<_, i64>(5)? as u64,
        memory_mb: r.get::<_, i64>(6)? as u32,
        cold_start: r.get::<_, i64>(7)? != 0,
        init_us: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        outcome: r.get(9)?,
        error_type: r.get(10)?,
        trace_id: r.get(11)?,
        span: match span_id {
            Some(span_id) => Some(InvokeSpan {
                span_id,
                parent_id: r.get(13)?,
                accepted_us: r.get::<_, Option<i64>>(14)?.unwrap_or_default(),
                wait_us: r.get::<_, Option<i64>>(15)?.unwrap_or_default() as u64,
            }),
            None => None,
        },
    })
}

/// Creates the tables; a `spans` table of the earlier layout (keyed by trace and span id, no
/// rowid) is converted, its rows kept, in one transaction.
fn upgrade_spans(conn: &Connection, schema: &str) -> rusqlite::Result<()> {
    let old_layout = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spans'")?
        .exists([])?
        && !conn
            .prepare("SELECT 1 FROM pragma_table_info('spans') WHERE name = 'id'")?
            .exists([])?;
    if !old_layout {
        return conn.execute_batch(schema);
    }
    conn.execute_batch(&format!(
        "BEGIN;
         ALTER TABLE spans RENAME TO spans_before_rowid;
         DROP INDEX IF EXISTS spans_start;
         {schema}
         INSERT INTO spans (trace_id, span_id, parent_id, name, kind, start_us, duration_us, error, attributes)
             SELECT trace_id, span_id, parent_id, name, kind, start_us, duration_us, error, attributes
             FROM spans_before_rowid ORDER BY start_us;
         DROP TABLE spans_before_rowid;
         COMMIT;"
    ))
}

/// Databases written before invocation records carried their span get the columns (NULL for
/// old rows, whose spans are rows of `spans`).
fn add_span_columns(conn: &Connection) -> rusqlite::Result<()> {
    let has = conn
        .prepare("SELECT 1 FROM pragma_table_info('invocations') WHERE name = 'span_id'")?
        .exists([])?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE invocations ADD COLUMN span_id TEXT;
             ALTER TABLE invocations ADD COLUMN parent_span_id TEXT;
             ALTER TABLE invocations ADD COLUMN accepted_us INTEGER;
             ALTER TABLE invocations ADD COLUMN wait_us INTEGER;",
        )?;
    }
    Ok(())
}

fn decode_pairs(s: &str) -> Vec<(String, String)> {
    serde_json::from_str(s).unwrap_or_default()
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    serde_json::to_string(pairs).expect("string pairs serialise")
}

/// Opens the database and brings its tables to the current layout.
fn open_tables(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // Checkpoints are the costly part of a busy WAL: let the log grow further between them.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=8000; PRAGMA cache_size=-8192;",
    )?;
    upgrade_spans(&conn, SCHEMA)?;
    add_span_columns(&conn)?;
    // The earlier (function, start_ms) index; `invocations_function` replaces it.
    conn.execute_batch("DROP INDEX IF EXISTS invocations_fn")?;
    rollups::open(&conn)?;
    crate::backlog::open(&conn)?;
    Ok(conn)
}

/// For `benches/console.rs` only, not an API: writes `records` to the telemetry database at
/// `path` in one transaction as the writer does, with or without their rollups, and returns
/// how long the transaction took (to weigh what the rollups add to the write path).
#[doc(hidden)]
pub fn bench_write_batch(path: &Path, records: Vec<InvocationRecord>, rollups: bool) -> Result<Duration, String> {
    let mut c = open_tables(path).map_err(err)?;
    let started = std::time::Instant::now();
    let tx = c.transaction().map_err(err)?;
    write_rows(&tx, records.into_iter().map(Row::Invocation).collect(), rollups).map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(started.elapsed())
}

type Flushes = Vec<tokio::sync::oneshot::Sender<()>>;

/// Writes a batch inside `tx` (and, with `rollups`, its invocations' rollups); returns the
/// flush requests it held, to be answered once `tx` commits.
fn write_rows(tx: &Transaction<'_>, batch: Vec<Row>, rollups: bool) -> rusqlite::Result<Flushes> {
    let mut flushes = Vec::new();
    let mut minutes = MinuteBatch::default();
    for row in batch {
        match row {
            Row::Flush(done) => flushes.push(done),
            Row::Invocation(r) => {
                tx.prepare_cached(
                    "INSERT INTO invocations (request_id, function, trigger_type, start_ms, duration_us, billed_ms,
                     memory_mb, cold_start, init_us, outcome, error_type, trace_id, span_id,
                     parent_span_id, accepted_us, wait_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )?
                .execute(params![
                    r.request_id,
                    r.function,
                    r.trigger,
                    r.start_ms,
                    r.duration_us as i64,
                    r.billed_ms as i64,
                    r.memory_mb,
                    r.cold_start as i64,
                    r.init_us.map(|v| v as i64),
                    r.outcome,
                    r.error_type,
                    r.trace_id,
                    r.span.as_ref().map(|s| s.span_id.as_str()),
                    r.span.as_ref().and_then(|s| s.parent_id.as_deref()),
                    r.span.as_ref().map(|s| s.accepted_us),
                    r.span.as_ref().map(|s| s.wait_us as i64)
                ])?;
                if rollups {
                    minutes.add_record(&r);
                }
            }
            Row::Span(s) => {
                tx.prepare_cached(
                    "INSERT INTO spans (trace_id, span_id, parent_id, name, kind, start_us, duration_us,
                     error, attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    s.trace_id,
                    s.span_id,
                    s.parent_id,
                    s.name,
                    s.kind,
                    s.start_us,
                    s.duration_us as i64,
                    s.error as i64,
                    encode_pairs(&s.attributes)
                ])?;
            }
            Row::Log {
                ts_ms,
                function,
                request_id,
                stream,
                line,
            } => {
                tx.prepare_cached(
                    "INSERT INTO function_logs (ts_ms, function, request_id, stream, line) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![ts_ms, function, request_id, stream, line])?;
            }
        }
    }
    minutes.write(tx)?;
    Ok(flushes)
}

async fn write_loop(conn: Arc<Mutex<Connection>>, mut rx: mpsc::UnboundedReceiver<Row>, flushed: Arc<Notify>) {
    while let Some(first) = rx.recv().await {
        // Gather rows for a short while: one transaction per window instead of one per
        // invocation keeps commits, syscalls and thread wake-ups off the request rate. The
        // writer sleeps through the window rather than waking for every row sent; a flush
        // request (a reader waiting) ends the window at once.
        if !matches!(first, Row::Flush(_)) {
            tokio::select! {
                _ = tokio::time::sleep(WRITE_WINDOW) => {}
                _ = flushed.notified() => {}
            }
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let conn = conn.clone();
        let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<Flushes> {
            let mut c = conn.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
            let tx = c.transaction()?;
            let flushes = write_rows(&tx, batch, true)?;
            tx.commit()?;
            Ok(flushes)
        })
        .await;
        match result {
            Ok(Ok(flushes)) => {
                for f in flushes {
                    let _ = f.send(());
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "writing telemetry failed"),
            Err(e) => tracing::warn!(error = %e, "telemetry writer failed"),
        }
    }
}

async fn prune_loop(conn: Arc<Mutex<Connection>>, retention: Retention) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let conn = conn.clone();
        let _ = tokio::task::spawn_blocking(move || -> rusqlite::Result<()> {
            let c = conn.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            prune(&c, &retention, now_ms)
        })
        .await;
    }
}

/// Deletes what is older than the retention age, then the oldest rows past the row limits;
/// rollups go by their own age only.
fn prune(c: &Connection, retention: &Retention, now_ms: i64) -> rusqlite::Result<()> {
    rollups::prune(c, now_ms - retention.max_rollup_age.as_millis() as i64)?;
    crate::backlog::prune(c, now_ms - retention.max_rollup_age.as_millis() as i64)?;
    let cutoff = now_ms - retention.max_age.as_millis() as i64;
    c.execute("DELETE FROM invocations WHERE start_ms < ?1", params![cutoff])?;
    c.execute("DELETE FROM function_logs WHERE ts_ms < ?1", params![cutoff])?;
    // Spans by rowid (rows append in time order): up to the first one within the age.
    c.execute(
        "DELETE FROM spans WHERE id < COALESCE(
             (SELECT id FROM spans WHERE start_us >= ?1 ORDER BY id LIMIT 1),
             (SELECT MAX(id) + 1 FROM spans))",
        params![cutoff * 1000],
    )?;
    c.execute(
        "DELETE FROM invocations WHERE id <= (SELECT MAX(id) FROM invocations) - ?1",
        params![retention.max_invocations as i64],
    )?;
    c.execute(
        "DELETE FROM function_logs WHERE id <= (SELECT MAX(id) FROM function_logs) - ?1",
        params![retention.max_log_lines as i64],
    )?;
    c.execute(
        "DELETE FROM spans WHERE id <= (SELECT MAX(id) FROM spans) - ?1",
        params![retention.max_spans as i64],
    )?;
    Ok(())
}

#[cfg(test)]
#[path = "telemetry_console_tests.rs"]
mod console_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_logs_and_spans_are_written_and_queried() {
        let dir = tempfile::tempdir().unwrap();
        let db = TelemetryDb::open(&dir.path().join("state.db"), Retention::default()).unwrap();
        // Recent times: the pruner drops anything older than the retention.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let rec = |id: &str, f: &str, billed: u64, outcome: &str| InvocationRecord {
            request_id: id.into(),
            function: f.into(),
            trigger: "http".into(),
            start_ms: now,
            duration_us: billed * 1000 - 300,
            billed_ms: billed,
            memory_mb: 512,
            cold_start: id == "r1",
            init_us: (id == "r1").then_some(5_000),
            outcome: outcome.into(),
            error_type: None,
            trace_id: Some("t1".into()),
            span: (id == "r1").then(|| InvokeSpan {
                span_id: "s2".into(),
                parent_id: Some("s1".into()),
                accepted_us: now * 1000 + 1,
                wait_us: 7,
            }),
        };
        db.record_invocation(rec("r1", "a", 10, "success"));
        db.record_invocation(rec("r2", "a", 20, "error"));
        db.record_invocation(rec("r3", "b", 5, "success"));
        db.record_log(now, "a", Some("r1"), false, "hello".into());
        db.record_log(now + 1, "a", Some("r2"), true, "oops".into());
        db.record_span(SpanRecord {
            trace_id: "t1".into(),
            span_id: "s1".into(),
            parent_id: None,
            name: "GET /x".into(),
            kind: "server".into(),
            start_us: now * 1000,
            duration_us: 2,
            error: false,
            attributes: vec![("k".into(), "v \"q\"".into())],
        });
        db.flush().await;
        let inv = db.invocations(Some("a".into()), 10).await.unwrap();
        assert_eq!(
            inv.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
            ["r2", "r1"]
        );
        assert_eq!(inv[1].init_us, Some(5_000));
        let logs = db
            .logs(LogQuery {
                request_id: Some("r2".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!((logs.len(), logs[0].stream.as_str()), (1, "stderr"));
        let logs = db
            .logs(LogQuery {
                trace_id: Some("t1".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(logs.len(), 2);
        let after = db
            .logs(LogQuery {
                after_id: Some(logs[0].id),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        let spans = db.trace("t1".into()).await.unwrap();
        assert_eq!(spans[0].attributes, vec![("k".to_string(), "v \"q\"".to_string())]);
        // The invoke span comes back from its invocation record, nested and in start order.
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let invoke = &spans[1];
        assert_eq!(
            (
                invoke.name.as_str(),
                invoke.span_id.as_str(),
                invoke.parent_id.as_deref()
            ),
            ("invoke a", "s2", Some("s1"))
        );
        assert_eq!((invoke.start_us, invoke.duration_us), (now * 1000 + 1, 7 + 9_700));
        assert!(invoke
            .attributes
            .contains(&("faas.invocation_id".to_string(), "r1".to_string())));
        assert!(invoke
            .attributes
            .contains(&("gust.wait_us".to_string(), "7".to_string())));
        assert_eq!(inv[1].span.as_ref().map(|s| s.wait_us), Some(7));
        let usage = db.usage(0).await.unwrap();
        assert_eq!(
            usage[0],
            Usage {
                function: "a".into(),
                requests: 2,
                billed_mb_ms: 30 * 512,
                cold_starts: 1,
                errors: 1
            }
        );
    }

    #[tokio::test]
    async fn a_database_from_before_invoke_spans_gets_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telemetry.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE invocations (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
                 function TEXT NOT NULL, trigger_type TEXT NOT NULL, start_ms INTEGER NOT NULL,
                 duration_us INTEGER NOT NULL, billed_ms INTEGER NOT NULL, memory_mb INTEGER NOT NULL,
                 cold_start INTEGER NOT NULL, init_us INTEGER, outcome TEXT NOT NULL, error_type TEXT, trace_id TEXT);
                 INSERT INTO invocations (request_id, function, trigger_type, start_ms, duration_us, billed_ms,
                 memory_mb, cold_start, outcome, trace_id)
                 VALUES ('old', 'f', 'http', CAST(strftime('%s', 'now') AS INTEGER) * 1000, 1, 1, 128, 0, 'success', 't');",
            )
            .unwrap();
        }
        // A recent row: the pruner's first pass (at open) must not race the read below.
        let db = TelemetryDb::open(&path, Retention::default()).unwrap();
        let old = db.invocations(None, 10).await.unwrap();
        assert_eq!(
            (old.len(), old[0].request_id.as_str(), old[0].span.is_none()),
            (1, "old", true)
        );
        assert!(db.trace("t".into()).await.unwrap().is_empty());
    }

    fn span(trace: &str, id: &str, start_us: i64, name: &str) -> SpanRecord {
        SpanRecord {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_id: None,
            name: name.into(),
            kind: "server".into(),
            start_us,
            duration_us: 5,
            error: false,
            attributes: vec![],
        }
    }

    #[tokio::test]
    async fn a_span_written_twice_is_read_once_as_last_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = TelemetryDb::open(&dir.path().join("t.db"), Retention::default()).unwrap();
        let now_us = now_ms() * 1000;
        db.record_span(span("t", "a", now_us, "first"));
        db.record_span(span("t", "b", now_us + 1, "other"));
        db.record_span(span("t", "a", now_us, "second"));
        db.record_span(span("u", "a", now_us, "another trace"));
        db.flush().await;
        let got: Vec<(String, String)> = db
            .trace("t".into())
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.span_id, s.name))
            .collect();
        assert_eq!(got, vec![("a".into(), "second".into()), ("b".into(), "other".into())]);
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    #[test]
    fn pruning_drops_spans_past_the_age_and_past_the_row_limit() {
        let c = Connection::open_in_memory().unwrap();
        upgrade_spans(&c, SCHEMA).unwrap();
        rollups::open(&c).unwrap();
        crate::backlog::open(&c).unwrap();
        let insert = |trace: &str, start_us: i64| {
            c.execute(
                "INSERT INTO spans (trace_id, span_id, parent_id, name, kind, start_us, duration_us, error, attributes)
                 VALUES (?1, 's', NULL, 'n', 'server', ?2, 1, 0, '[]')",
                params![trace, start_us],
            )
            .unwrap();
        };
        let traces = |c: &Connection| -> Vec<String> {
            c.prepare("SELECT trace_id FROM spans ORDER BY id")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let now = 10_000_000_i64; // ms
        let day = 86_400_000_i64;
        let retention = Retention {
            max_age: Duration::from_millis(day as u64),
            max_invocations: 100,
            max_log_lines: 100,
            max_spans: 3,
            max_rollup_age: Duration::from_millis(day as u64),
        };
        insert("old1", (now - 2 * day) * 1000);
        insert("old2", (now - day - 1) * 1000);
        insert("new1", (now - 10) * 1000);
        insert("new2", (now - 5) * 1000);
        prune(&c, &retention, now).unwrap();
        assert_eq!(traces(&c), ["new1", "new2"]);
        for i in 0..4 {
            insert(&format!("more{i}"), now * 1000);
        }
        prune(&c, &retention, now).unwrap();
        assert_eq!(traces(&c), ["more1", "more2", "more3"]);
        // Everything past the age: all of it goes.
        prune(&c, &retention, now + 2 * day).unwrap();
        assert!(traces(&c).is_empty());
    }

    #[tokio::test]
    async fn spans_of_the_earlier_layout_are_converted_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telemetry.db");
        let now_us = now_ms() * 1000;
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT,
                 name TEXT NOT NULL, kind TEXT NOT NULL, start_us INTEGER NOT NULL,
                 duration_us INTEGER NOT NULL, error INTEGER NOT NULL, attributes TEXT NOT NULL,
                 PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID;
                 CREATE INDEX spans_start ON spans (start_us);",
            )
            .unwrap();
            for (id, offset) in [("late", 2), ("early", 1)] {
                c.execute(
                    "INSERT INTO spans VALUES ('t', ?1, NULL, ?1, 'server', ?2, 3, 1, '[[\"k\",\"v\"]]')",
                    params![id, now_us + offset],
                )
                .unwrap();
            }
        }
        let db = TelemetryDb::open(&path, Retention::default()).unwrap();
        db.record_span(span("t", "new", now_us + 3, "new"));
        db.flush().await;
        let got = db.trace("t".into()).await.unwrap();
        let names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["early", "late", "new"]);
        assert!(got[0].error && got[0].attributes == vec![("k".to_string(), "v".to_string())]);
        drop(db);
        let c = Connection::open(&path).unwrap();
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE tbl_name LIKE 'spans%' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(tables, ["spans", "spans_trace"]);
    }
}
