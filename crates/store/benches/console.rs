//! What a console page load asks of the telemetry database, on a database of 1,000,000
//! invocation records (20 functions over 24 h, ~3% errors, ~2% cold starts, rare timeouts):
//! series over 1 h and 24 h, one function's series, the function table's stats, and the
//! invocation list with its filters. Each is timed 200 times for a p50/p99 table (the goal:
//! every one under 200 ms at p99) and then measured by criterion; last, the worst case, a
//! filter that matches nothing (every row is read).
//!
//! It also weighs what the per-minute rollups add to the write path: batches of 10,000 records
//! written in one transaction, as the telemetry writer does, with and without their rollups.
//!
//! The database is built through the normal record path (`record_invocation`, flushed every
//! 10,000) and cached at `target/gust-bench/console-telemetry-v2.db`; a rerun reuses it while
//! it holds 1,000,000 records younger than the retention age. Queries are relative to its
//! newest record, so a cached database measures the same as a fresh one.
//!
//! Run: `cargo bench -p gust-store --bench console`

use criterion::Criterion;
use gust_model::{InvocationRecord, InvokeSpan};
use gust_store::{bench_write_batch, InvocationQuery, Retention, TelemetryDb};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RECORDS: i64 = 1_000_000;
const FUNCTIONS: u64 = 20;
const CHUNK: usize = 10_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const TIMED_CALLS: usize = 200;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// xorshift64*: the same records every build.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `i`-th record of a run, started at `start_ms`.
fn record(rng: &mut Rng, i: i64, start_ms: i64) -> InvocationRecord {
    let f = rng.next() % FUNCTIONS;
    // Per function a typical duration from 1 to ~40 ms, log-normal-ish around it.
    let typical = 1_000.0 * (1.0 + f as f64 * 2.0);
    let spread = (rng.unit() + rng.unit() + rng.unit() - 1.5) * 1.6;
    let duration_us = (typical * spread.exp()) as u64;
    let roll = rng.next() % 10_000;
    let outcome = match roll {
        0..=4 => "timeout",
        5..=6 => "crash",
        7..=306 => "error",
        _ => "success",
    };
    let trigger = match rng.next() % 10 {
        0..=6 => "http",
        7..=8 => "event",
        _ => "schedule",
    };
    let cold_start = rng.next().is_multiple_of(50);
    InvocationRecord {
        request_id: format!("req-{i:08}-{:016x}", rng.next()),
        function: format!("f{f:02}"),
        trigger: trigger.into(),
        start_ms,
        duration_us,
        billed_ms: duration_us.div_ceil(1000),
        memory_mb: [128, 256, 512, 1024][(f % 4) as usize],
        cold_start,
        init_us: cold_start.then_some(40_000),
        outcome: outcome.into(),
        error_type: (outcome != "success").then(|| "Error".into()),
        trace_id: Some(format!("{:016x}{:016x}", rng.next(), rng.next())),
        span: Some(InvokeSpan {
            span_id: format!("{:016x}", rng.next()),
            parent_id: Some(format!("{:016x}", rng.next())),
            accepted_us: start_ms * 1000,
            wait_us: 20,
        }),
    }
}

fn retention() -> Retention {
    Retention {
        max_invocations: 2 * RECORDS as u64,
        ..Retention::default()
    }
}

/// `target/gust-bench`, from the bench binary's place (`target/release/deps/console-*`).
fn bench_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's path");
    let target = exe.ancestors().nth(3).expect("target dir");
    let dir = target.join("gust-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

/// Whether the cached database holds the full set, young enough for the pruner to keep.
fn cached_is_usable(path: &Path) -> bool {
    let Ok(c) = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return false;
    };
    let row = c.query_row("SELECT COUNT(*), MIN(start_ms) FROM invocations", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
    });
    let has_rollups = c
        .query_row("SELECT COUNT(*) FROM rollups", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|n| n > 0);
    match row {
        Ok((n, Some(oldest))) => {
            let age = now_ms() - oldest;
            n == RECORDS && has_rollups && age < retention().max_age.as_millis() as i64 - DAY
        }
        _ => false,
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The 1M-record database, built through the normal record path unless cached.
fn database(rt: &tokio::runtime::Runtime) -> PathBuf {
    let path = bench_dir().join("console-telemetry-v2.db");
    if cached_is_usable(&path) {
        println!("using the cached database {}", path.display());
        return path;
    }
    remove_db(&path);
    println!("building {} ({RECORDS} records) ...", path.display());
    rt.block_on(async {
        let db = TelemetryDb::open(&path, retention()).expect("open");
        let end = now_ms();
        let begin = end - DAY;
        let mut rng = Rng(0x5eed);
        let started = Instant::now();
        let mut i = 0;
        while i < RECORDS {
            for _ in 0..CHUNK {
                db.record_invocation(record(&mut rng, i, begin + i * DAY / RECORDS));
                i += 1;
            }
            db.flush().await;
        }
        let took = started.elapsed();
        println!(
            "built in {:.1} s: {:.0} records/s through record_invocation (generation included)",
            took.as_secs_f64(),
            RECORDS as f64 / took.as_secs_f64()
        );
    });
    path
}

/// One console request.
enum Query {
    Series {
        function: Option<&'static str>,
        range_ms: i64,
        step_ms: i64,
    },
    Stats {
        range_ms: i64,
    },
    Invocations(InvocationQuery),
}

fn invocations(function: Option<&str>, outcome: Option<&str>, limit: usize) -> Query {
    Query::Invocations(InvocationQuery {
        function: function.map(str::to_string),
        outcome: outcome.map(str::to_string),
        limit,
        ..Default::default()
    })
}

/// Runs `q` as of `now`; returns how many rows or points came back.
async fn run(db: &TelemetryDb, now: i64, q: &Query) -> usize {
    match q {
        Query::Series {
            function,
            range_ms,
            step_ms,
        } => db
            .series(function.map(str::to_string), now - range_ms, now, *step_ms)
            .await
            .expect("series")
            .len(),
        Query::Stats { range_ms } => db.stats(now - range_ms).await.expect("stats").len(),
        Query::Invocations(q) => {
            let mut q = q.clone();
            // A range, when given, is relative to `now`.
            q.since_ms = q.since_ms.map(|back| now - back);
            db.invocations_where(q).await.expect("invocations").len()
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Batches of 10,000 records one second apart (as the writer sees them at 10k records/s),
/// written alternately with and without rollups to two fresh databases.
fn write_path() {
    let dir = tempfile::tempdir_in(bench_dir()).expect("scratch dir");
    let (with, without) = (dir.path().join("with.db"), dir.path().join("without.db"));
    let mut rng = Rng(42);
    let begin = now_ms() - HOUR;
    let (mut t_with, mut t_without) = (Vec::new(), Vec::new());
    let batches = 100;
    for b in 0..batches {
        let records: Vec<InvocationRecord> = (0..CHUNK as i64)
            .map(|i| record(&mut rng, b * CHUNK as i64 + i, begin + b * 1000 + i / 10))
            .collect();
        // Alternate which goes first, so neither always meets a warmer cache.
        let order = if b % 2 == 0 { [true, false] } else { [false, true] };
        for rollups in order {
            let path = if rollups { &with } else { &without };
            let took = bench_write_batch(path, records.clone(), rollups).expect("write batch");
            if rollups { &mut t_with } else { &mut t_without }.push(took);
        }
    }
    println!("\nwrite path: {batches} batches of {CHUNK} records each, one transaction per batch");
    println!("| variant | p50 per batch (ms) | p90 per batch (ms) | records/s at p50 |");
    println!("|---|---:|---:|---:|");
    for (name, t) in [("without rollups", &mut t_without), ("with rollups", &mut t_with)] {
        t.sort();
        let p50 = percentile(t, 0.5);
        println!(
            "| {name} | {} | {} | {:.0} |",
            ms(p50),
            ms(percentile(t, 0.9)),
            CHUNK as f64 / p50.as_secs_f64()
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let path = database(&rt);
    let db = rt
        .block_on(async { TelemetryDb::open(&path, retention()) })
        .expect("open");
    let newest = rt
        .block_on(db.invocations(None, 1))
        .expect("newest")
        .first()
        .map(|r| r.start_ms)
        .expect("records");
    let now = newest + 1;

    // `since_ms` here is how far back from `now` (see `run`).
    let function_hour = InvocationQuery {
        function: Some("f07".into()),
        since_ms: Some(HOUR),
        limit: 50,
        ..Default::default()
    };
    let queries: Vec<(&str, Query)> = vec![
        (
            "series, all functions, 1 h, step 60 s",
            Query::Series {
                function: None,
                range_ms: HOUR,
                step_ms: 60_000,
            },
        ),
        (
            "series, all functions, 24 h, step 300 s",
            Query::Series {
                function: None,
                range_ms: DAY,
                step_ms: 300_000,
            },
        ),
        (
            "series, one function, 24 h, step 300 s",
            Query::Series {
                function: Some("f07"),
                range_ms: DAY,
                step_ms: 300_000,
            },
        ),
        ("stats, 1 h", Query::Stats { range_ms: HOUR }),
        ("stats, 24 h", Query::Stats { range_ms: DAY }),
        (
            "invocations_where(function, limit 50)",
            invocations(Some("f07"), None, 50),
        ),
        (
            "invocations_where(function, outcome=error, limit 50)",
            invocations(Some("f07"), Some("error"), 50),
        ),
        (
            "invocations_where(outcome=timeout, limit 50)",
            invocations(None, Some("timeout"), 50),
        ),
        (
            "invocations_where(function, since 1 h, limit 50)",
            Query::Invocations(function_hour),
        ),
        // The worst case: a filter nothing matches reads every row, newest to oldest.
        (
            "invocations_where(outcome=out_of_memory (none), limit 50)",
            invocations(None, Some("out_of_memory"), 50),
        ),
    ];

    println!("\n{TIMED_CALLS} timed calls each (after 5 untimed), through the async API:");
    println!("| query | rows | p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, q) in &queries {
        for _ in 0..5 {
            rt.block_on(run(&db, now, q));
        }
        let mut times = Vec::with_capacity(TIMED_CALLS);
        let mut rows = 0;
        for _ in 0..TIMED_CALLS {
            let started = Instant::now();
            rows = rt.block_on(run(&db, now, q));
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "| {name} | {rows} | {} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
    }

    write_path();
    println!();

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (name, q) in &queries {
        c.bench_function(name, |b| b.iter(|| black_box(rt.block_on(run(&db, now, q)))));
    }
    c.final_summary();
}
