//! Tests of what the console reads from the telemetry database: the per-minute rollups behind
//! `series` and `stats` against the raw rows they summarise, and `invocations_where` against a
//! brute-force filter of the records written. Real SQLite files in temp dirs, through the
//! normal record path.

use super::*;
use crate::histogram::MAX_RELATIVE_ERROR;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// xorshift64*: the same records every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn record(id: usize, function: &str, start_ms: i64, duration_us: u64) -> InvocationRecord {
    InvocationRecord {
        request_id: format!("r{id}"),
        function: function.into(),
        trigger: "http".into(),
        start_ms,
        duration_us,
        billed_ms: duration_us.div_ceil(1000),
        memory_mb: 128,
        cold_start: false,
        init_us: None,
        outcome: "success".into(),
        error_type: None,
        trace_id: None,
        span: None,
    }
}

const FUNCTIONS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const OUTCOMES: [&str; 4] = ["success", "error", "timeout", "crash"];
const TRIGGERS: [&str; 3] = ["http", "event", "schedule"];

/// `n` varied records starting in `[from_ms, from_ms + span_ms)`, in time order.
fn varied(n: usize, from_ms: i64, span_ms: i64, seed: u64) -> Vec<InvocationRecord> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let function = FUNCTIONS[rng.below(4) as usize];
            let start = from_ms + (i as i64 * span_ms) / n as i64;
            // Skewed: mostly a few ms, a tail to a second.
            let duration = (200.0 * (rng.unit() * 8.5).exp()) as u64;
            let mut r = record(i, function, start, duration);
            r.memory_mb = [128, 256, 1024][rng.below(3) as usize];
            r.outcome = match rng.below(100) {
                0..=79 => OUTCOMES[0],
                80..=91 => OUTCOMES[1],
                92..=96 => OUTCOMES[2],
                _ => OUTCOMES[3],
            }
            .into();
            r.trigger = TRIGGERS[rng.below(3) as usize].into();
            r.cold_start = rng.below(10) == 0;
            r
        })
        .collect()
}

async fn open_with(dir: &tempfile::TempDir, retention: Retention, records: &[InvocationRecord]) -> TelemetryDb {
    let db = TelemetryDb::open(&dir.path().join("telemetry.db"), retention).unwrap();
    for r in records {
        db.record_invocation(r.clone());
    }
    db.flush().await;
    db
}

/// The exact nearest-rank `p`-quantile.
fn exact_percentile(durations: &mut [u64], p: f64) -> u64 {
    durations.sort_unstable();
    let rank = ((p * durations.len() as f64).ceil() as usize).clamp(1, durations.len());
    durations[rank - 1]
}

fn assert_close(what: &str, got: Option<u64>, exact: u64) {
    let got = got.unwrap_or_else(|| panic!("{what}: no percentile"));
    let off = (got as f64 - exact as f64).abs();
    assert!(
        off <= MAX_RELATIVE_ERROR * exact as f64 + 0.5,
        "{what}: {got} µs against exact {exact} µs ({:.2}%)",
        100.0 * off / exact as f64
    );
}

/// What a series point should hold, summed from the records.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    requests: u64,
    errors: u64,
    cold_starts: u64,
    billed_mb_ms: u64,
}

impl Expected {
    fn add(&mut self, r: &InvocationRecord) {
        self.requests += 1;
        self.errors += u64::from(r.outcome != "success");
        self.cold_starts += u64::from(r.cold_start);
        self.billed_mb_ms += r.billed_ms * u64::from(r.memory_mb);
    }
}

fn got(p: &SeriesPoint) -> Expected {
    Expected {
        requests: p.requests,
        errors: p.errors,
        cold_starts: p.cold_starts,
        billed_mb_ms: p.billed_mb_ms,
    }
}

/// Brute force: the records of `function` (or all) per step, as `series` defines the steps.
fn expected_series(
    records: &[InvocationRecord],
    function: Option<&str>,
    since: i64,
    until: i64,
    step: i64,
) -> Vec<Expected> {
    let t0 = since - since % step;
    let n = (until - t0 + step - 1) / step;
    let mut out: Vec<Expected> = (0..n).map(|_| Expected::default()).collect();
    for r in records {
        let minute_start = r.start_ms.div_euclid(MINUTE) * MINUTE;
        let in_range = minute_start + MINUTE > since && minute_start < until;
        if in_range && function.is_none_or(|f| f == r.function) {
            out[((minute_start - t0) / step) as usize].add(r);
        }
    }
    out
}

#[tokio::test]
async fn rollups_agree_with_the_raw_rows_across_minutes_and_functions() {
    let dir = tempfile::tempdir().unwrap();
    let base = (now_ms() - 3 * HOUR).div_euclid(HOUR) * HOUR;
    let records = varied(6_000, base, 3 * HOUR, 7);
    let db = open_with(&dir, Retention::default(), &records).await;

    for (since, until, step) in [
        (base, base + 3 * HOUR, MINUTE),
        (base + 90_000, base + 2 * HOUR + 1, 5 * MINUTE),
        (base + 17 * MINUTE, base + 17 * MINUTE + 1, HOUR),
    ] {
        let all = db.series(None, since, until, step).await.unwrap();
        let want = expected_series(&records, None, since, until, step);
        assert_eq!(
            all.iter().map(got).collect::<Vec<_>>(),
            want,
            "all functions, {since}..{until}/{step}"
        );
        let mut summed: Vec<Expected> = all.iter().map(|_| Expected::default()).collect();
        for f in FUNCTIONS {
            let one = db.series(Some(f.into()), since, until, step).await.unwrap();
            let want = expected_series(&records, Some(f), since, until, step);
            assert_eq!(
                one.iter().map(got).collect::<Vec<_>>(),
                want,
                "{f}, {since}..{until}/{step}"
            );
            assert_eq!(
                one.iter().map(|p| p.t_ms).collect::<Vec<_>>(),
                all.iter().map(|p| p.t_ms).collect::<Vec<_>>()
            );
            for (s, p) in summed.iter_mut().zip(&one) {
                s.requests += p.requests;
                s.errors += p.errors;
                s.cold_starts += p.cold_starts;
                s.billed_mb_ms += p.billed_mb_ms;
            }
        }
        // `function: None` is the sum of every function.
        assert_eq!(summed, all.iter().map(got).collect::<Vec<_>>());
        assert!(all.iter().all(|p| (p.requests == 0) == p.p50_us.is_none()));
    }

    // Totals per function, with percentiles merged over many minutes, against the rows.
    let since = base + HOUR;
    let stats = db.stats(since).await.unwrap();
    assert_eq!(
        stats.iter().map(|s| s.function.as_str()).collect::<Vec<_>>(),
        ["alpha", "beta", "delta", "gamma"]
    );
    for s in &stats {
        let mine: Vec<&InvocationRecord> = records
            .iter()
            .filter(|r| r.function == s.function && r.start_ms >= since)
            .collect();
        let mut want = Expected::default();
        mine.iter().for_each(|r| want.add(r));
        assert_eq!(
            Expected {
                requests: s.requests,
                errors: s.errors,
                cold_starts: s.cold_starts,
                billed_mb_ms: s.billed_mb_ms
            },
            want,
            "{}",
            s.function
        );
        let mut durations: Vec<u64> = mine.iter().map(|r| r.duration_us).collect();
        assert_close(
            &format!("{} p50", s.function),
            s.p50_us,
            exact_percentile(&mut durations, 0.5),
        );
        assert_close(
            &format!("{} p99", s.function),
            s.p99_us,
            exact_percentile(&mut durations, 0.99),
        );
    }
    // And the raw-row usage query agrees (an hour boundary is a minute boundary).
    let usage = db.usage(since).await.unwrap();
    let from_rollups: Vec<(String, u64, u64, u64, u64)> = stats
        .iter()
        .map(|s| (s.function.clone(), s.requests, s.billed_mb_ms, s.cold_starts, s.errors))
        .collect();
    let from_rows: Vec<(String, u64, u64, u64, u64)> = usage
        .into_iter()
        .map(|u| (u.function, u.requests, u.billed_mb_ms, u.cold_starts, u.errors))
        .collect();
    assert_eq!(from_rollups, from_rows);
}

#[tokio::test]
async fn percentiles_of_a_skewed_distribution_are_within_the_stated_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = (now_ms() - HOUR).div_euclid(HOUR) * HOUR;
    let mut rng = Rng(99);
    // Pareto (alpha 1.2) from 800 µs: a long tail, p99 about 40 times p50. Spread over 10
    // minutes, so stats and a 10-minute step merge ten histograms.
    let records: Vec<InvocationRecord> = (0..20_000)
        .map(|i| {
            let d = 800.0 / (1.0 - rng.unit()).powf(1.0 / 1.2);
            record(i, "skewed", base + i as i64 * 30, d as u64)
        })
        .collect();
    let db = open_with(&dir, Retention::default(), &records).await;
    let mut durations: Vec<u64> = records.iter().map(|r| r.duration_us).collect();
    let (p50, p99) = (
        exact_percentile(&mut durations, 0.5),
        exact_percentile(&mut durations, 0.99),
    );
    assert!(p99 > 20 * p50, "not skewed: {p50} {p99}");
    let stats = db.stats(base).await.unwrap();
    assert_eq!((stats.len(), stats[0].requests), (1, 20_000));
    assert_close("stats p50", stats[0].p50_us, p50);
    assert_close("stats p99", stats[0].p99_us, p99);
    let series = db.series(None, base, base + 10 * MINUTE, 10 * MINUTE).await.unwrap();
    assert_eq!((series.len(), series[0].requests), (1, 20_000));
    assert_close("series p50", series[0].p50_us, p50);
    assert_close("series p99", series[0].p99_us, p99);
    // Each minute on its own too.
    let minutes = db.series(None, base, base + 10 * MINUTE, MINUTE).await.unwrap();
    for (k, p) in minutes.iter().enumerate() {
        let mut mine: Vec<u64> = records
            .iter()
            .filter(|r| (r.start_ms - base) / MINUTE == k as i64)
            .map(|r| r.duration_us)
            .collect();
        assert_close(&format!("minute {k} p50"), p.p50_us, exact_percentile(&mut mine, 0.5));
        assert_close(&format!("minute {k} p99"), p.p99_us, exact_percentile(&mut mine, 0.99));
    }
}

#[tokio::test]
async fn a_series_is_zero_filled_with_one_point_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let base = (now_ms() - 2 * HOUR).div_euclid(HOUR) * HOUR;
    let records = [
        record(0, "a", base + 5 * MINUTE + 10, 1_000),
        record(1, "a", base + 5 * MINUTE + 20, 3_000),
        record(2, "b", base + 42 * MINUTE, 9_000),
    ];
    let db = open_with(&dir, Retention::default(), &records).await;
    let points = db.series(None, base, base + HOUR, MINUTE).await.unwrap();
    assert_eq!(points.len(), 60);
    assert!(points
        .iter()
        .enumerate()
        .all(|(k, p)| p.t_ms == base + k as i64 * MINUTE));
    let busy: Vec<(usize, u64)> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.requests > 0)
        .map(|(k, p)| (k, p.requests))
        .collect();
    assert_eq!(busy, [(5, 2), (42, 1)]);
    assert!(points
        .iter()
        .filter(|p| p.requests == 0)
        .all(|p| p.p50_us.is_none() && p.p99_us.is_none() && p.billed_mb_ms == 0));
    assert_close("one request's p99", points[42].p99_us, 9_000);
    // An unaligned hour touches 61 minutes; a day at 5 minutes is 288 (+1 unaligned).
    assert_eq!(
        db.series(None, base + 1, base + HOUR + 1, MINUTE).await.unwrap().len(),
        61
    );
    let day = db
        .series(Some("b".into()), base - DAY + 2 * HOUR, base + 2 * HOUR, 300_000)
        .await
        .unwrap();
    assert_eq!((day.len(), day.iter().map(|p| p.requests).sum::<u64>()), (288, 1));
    assert_eq!(
        db.series(None, base + 1, base + DAY + 1, 300_000).await.unwrap().len(),
        289
    );
    // A function with nothing recorded: all zero.
    let none = db
        .series(Some("nobody".into()), base, base + HOUR, MINUTE)
        .await
        .unwrap();
    assert_eq!((none.len(), none.iter().map(|p| p.requests).sum::<u64>()), (60, 0));
    // Bad steps and ranges are refused with a reason.
    for (since, until, step, why) in [
        (base, base + HOUR, 30_000, "multiple of 60 s"),
        (base, base + HOUR, 0, "multiple of 60 s"),
        (base, base + 2 * DAY, MINUTE, "more than 1500"),
        (base + HOUR, base, MINUTE, "must be after"),
    ] {
        let e = db.series(None, since, until, step).await.unwrap_err();
        assert!(e.contains(why), "{e}");
    }
}

/// The rows and the rollups as they are in the file.
fn counts(db: &TelemetryDb) -> (i64, i64) {
    let c = db.conn.lock().unwrap();
    let rows = c
        .query_row("SELECT COUNT(*) FROM invocations", [], |r| r.get(0))
        .unwrap();
    let rollups = c
        .query_row("SELECT SUM(requests) FROM rollups", [], |r| r.get(0))
        .unwrap();
    (rows, rollups)
}

#[tokio::test]
async fn pruning_rows_by_count_or_age_keeps_the_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let base = (now - 2 * HOUR).div_euclid(HOUR) * HOUR;
    let records = varied(2_000, base, HOUR, 3);
    let db = open_with(&dir, Retention::default(), &records).await;
    let before = db.stats(base).await.unwrap();
    assert_eq!(counts(&db), (2_000, 2_000));
    let retention = Retention {
        max_invocations: 150,
        ..Retention::default()
    };
    prune(&db.conn.lock().unwrap(), &retention, now).unwrap();
    assert_eq!(counts(&db), (150, 2_000));
    assert_eq!(db.invocations(None, 10_000).await.unwrap().len(), 150);
    assert_eq!(db.stats(base).await.unwrap(), before);
    // Rows past their age go; rollups are younger than theirs and stay.
    let retention = Retention {
        max_age: Duration::from_secs(60),
        ..Retention::default()
    };
    prune(&db.conn.lock().unwrap(), &retention, now).unwrap();
    assert_eq!(counts(&db), (0, 2_000));
    assert_eq!(db.stats(base).await.unwrap(), before);
}

#[tokio::test]
async fn rollups_are_pruned_by_their_own_age() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let records = [
        record(0, "a", now - 3 * DAY, 1_000),
        record(1, "a", now - DAY, 1_000),
        record(2, "b", now - DAY, 1_000),
        record(3, "a", now - MINUTE, 1_000),
    ];
    let db = open_with(&dir, Retention::default(), &records).await;
    let requests =
        |s: Vec<FunctionStats>| -> Vec<(String, u64)> { s.into_iter().map(|s| (s.function, s.requests)).collect() };
    assert_eq!(requests(db.stats(0).await.unwrap()), [("a".into(), 3), ("b".into(), 1)]);
    let retention = Retention {
        max_rollup_age: Duration::from_millis(2 * DAY as u64),
        ..Retention::default()
    };
    prune(&db.conn.lock().unwrap(), &retention, now).unwrap();
    assert_eq!(requests(db.stats(0).await.unwrap()), [("a".into(), 2), ("b".into(), 1)]);
    // The rows are within their own (default, 7 days) age.
    assert_eq!(counts(&db).0, 4);
    let retention = Retention {
        max_rollup_age: Duration::from_millis(HOUR as u64),
        ..Retention::default()
    };
    prune(&db.conn.lock().unwrap(), &retention, now).unwrap();
    assert_eq!(requests(db.stats(0).await.unwrap()), [("a".into(), 1)]);
}

#[tokio::test]
async fn a_database_from_before_rollups_gets_them_built_once_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.db");
    let base = (now_ms() - 2 * HOUR).div_euclid(HOUR) * HOUR;
    let records = varied(3_000, base, HOUR, 11);
    {
        // The layout and the writer as they were: no rollups table, rows without rollups.
        let mut c = Connection::open(&path).unwrap();
        upgrade_spans(&c, SCHEMA).unwrap();
        add_span_columns(&c).unwrap();
        c.execute_batch(
            "DROP INDEX invocations_function; CREATE INDEX invocations_fn ON invocations (function, start_ms);",
        )
        .unwrap();
        let tx = c.transaction().unwrap();
        write_rows(&tx, records.iter().cloned().map(Row::Invocation).collect(), false).unwrap();
        tx.commit().unwrap();
        let has_rollups = c
            .prepare("SELECT 1 FROM sqlite_master WHERE name = 'rollups'")
            .unwrap()
            .exists([])
            .unwrap();
        assert!(!has_rollups);
    }
    let check = |db: TelemetryDb| async move {
        let all = db.series(None, base, base + HOUR, MINUTE).await.unwrap();
        assert_eq!(
            all.iter().map(got).collect::<Vec<_>>(),
            expected_series(&records, None, base, base + HOUR, MINUTE)
        );
        let stats = db.stats(base).await.unwrap();
        assert_eq!(stats.iter().map(|s| s.requests).sum::<u64>(), 3_000);
        stats
    };
    let db = TelemetryDb::open(&path, Retention::default()).unwrap();
    let first = check(db.clone()).await;
    // The earlier function index is replaced by the one newest-first walks.
    let indexes: Vec<String> = db
        .conn
        .lock()
        .unwrap()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invocations' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        indexes,
        ["invocations_failed", "invocations_function", "invocations_trace"]
    );
    // New records add to the built rollups.
    db.record_invocation(record(9_999, "alpha", base + 30 * MINUTE, 5));
    db.flush().await;
    let alpha = |s: &[FunctionStats]| s.iter().find(|s| s.function == "alpha").unwrap().requests;
    let after = db.stats(base).await.unwrap();
    assert_eq!(alpha(&after), alpha(&first) + 1);
    drop(db);
    // Opening again does not build them again (nothing is counted twice).
    let db = TelemetryDb::open(&path, Retention::default()).unwrap();
    assert_eq!(db.stats(base).await.unwrap(), after);
}

#[tokio::test]
async fn invocations_where_matches_a_brute_force_filter_for_every_combination() {
    let dir = tempfile::tempdir().unwrap();
    let base = (now_ms() - 2 * HOUR).div_euclid(HOUR) * HOUR;
    let records = varied(3_000, base, HOUR, 5);
    let db = open_with(&dir, Retention::default(), &records).await;
    let (t1, t2) = (base + 20 * MINUTE + 7, base + 41 * MINUTE);
    let functions = [None, Some("beta"), Some("nobody")];
    let outcomes = [None, Some("success"), Some("error"), Some("timeout")];
    let triggers = [None, Some("http"), Some("event")];
    let colds = [None, Some(true), Some(false)];
    let sinces = [None, Some(t1)];
    let untils = [None, Some(t2)];
    let mut queries = 0;
    let mut nonempty = 0;
    for function in functions {
        for outcome in outcomes {
            for trigger in triggers {
                for cold in colds {
                    for since_ms in sinces {
                        for until_ms in untils {
                            for limit in [10_000, 7] {
                                let q = InvocationQuery {
                                    function: function.map(str::to_string),
                                    outcome: outcome.map(str::to_string),
                                    trigger: trigger.map(str::to_string),
                                    cold,
                                    since_ms,
                                    until_ms,
                                    limit,
                                };
                                // Rows are written in order: newest first is reverse order.
                                let want: Vec<&str> = records
                                    .iter()
                                    .rev()
                                    .filter(|r| {
                                        function.is_none_or(|f| r.function == f)
                                            && outcome.is_none_or(|o| r.outcome == o)
                                            && trigger.is_none_or(|t| r.trigger == t)
                                            && cold.is_none_or(|c| r.cold_start == c)
                                            && since_ms.is_none_or(|s| r.start_ms >= s)
                                            && until_ms.is_none_or(|u| r.start_ms < u)
                                    })
                                    .take(limit)
                                    .map(|r| r.request_id.as_str())
                                    .collect();
                                let rows = db.invocations_where(q.clone()).await.unwrap();
                                let ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
                                assert_eq!(ids, want, "{q:?}");
                                queries += 1;
                                nonempty += usize::from(!want.is_empty());
                            }
                        }
                    }
                }
            }
        }
    }
    // The combinations are not vacuous: most of them find something.
    assert_eq!(queries, 864);
    assert!(nonempty > 400, "{nonempty}");
    // The whole record comes back.
    let one = db
        .invocations_where(InvocationQuery {
            function: Some("beta".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(&one[0], records.iter().rev().find(|r| r.function == "beta").unwrap());
}
