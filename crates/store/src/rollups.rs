//! Per-function, per-minute rollups of invocation records: what the console's charts
//! ([`series`]) and its function table ([`stats`]) read, so that no page load scans
//! invocation rows.
//!
//! One row per (minute, function) that had invocations: requests, errors (an outcome other
//! than `success`), cold starts, billed MB·ms (`billed_ms * memory_mb`) and a duration
//! histogram ([`Histogram`]: p50 and p99 within ~4.8% of the exact ones). The telemetry writer
//! adds each batch's rollups in the same transaction as its invocation rows ([`MinuteBatch`]),
//! so the two never disagree. A batch touches few rollup rows (its minutes × its functions;
//! a 50 ms window at 10k records/s is one or two minutes), each read, merged and rewritten once.
//!
//! Rollups outlive invocation rows, which is their point: pruning rows by count or by age
//! leaves them alone; they have their own age limit (`Retention::max_rollup_age`, [`prune`]).
//! A database from before rollups gets them built once, at open, from the rows it still has
//! ([`open`]).
//!
//! The key is (minute, function) in a WITHOUT ROWID table: the all-functions range read, the
//! one every console page load makes, is one range scan in time order, and age pruning deletes
//! from the front. One function's series scans the same range and skips other functions' rows.

use crate::histogram::Histogram;
use gust_model::InvocationRecord;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};

const MINUTE_MS: i64 = 60_000;

/// Most points one [`series`] answers (a day at one minute is 1,440).
pub const MAX_SERIES_POINTS: i64 = 1_500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollups (
    minute INTEGER NOT NULL,
    function TEXT NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    cold_starts INTEGER NOT NULL,
    billed_mb_ms INTEGER NOT NULL,
    durations BLOB NOT NULL,
    PRIMARY KEY (minute, function)
) WITHOUT ROWID;
";

/// One step of a series: the minutes starting in `[t_ms, t_ms + step)`, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesPoint {
    /// The step's start, epoch ms (a multiple of the step).
    pub t_ms: i64,
    pub requests: u64,
    pub errors: u64,
    pub cold_starts: u64,
    pub billed_mb_ms: u64,
    /// `None` when the step had no requests.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// One function's totals over a range of minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionStats {
    pub function: String,
    pub requests: u64,
    pub errors: u64,
    pub cold_starts: u64,
    pub billed_mb_ms: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// What one invocation adds to its minute.
struct Sample<'a> {
    function: &'a str,
    start_ms: i64,
    duration_us: u64,
    billed_mb_ms: u64,
    cold_start: bool,
    success: bool,
}

#[derive(Default)]
struct Minute {
    requests: u64,
    errors: u64,
    cold_starts: u64,
    billed_mb_ms: u64,
    durations: Histogram,
}

impl Minute {
    fn add(&mut self, s: &Sample<'_>) {
        self.requests += 1;
        self.errors += u64::from(!s.success);
        self.cold_starts += u64::from(s.cold_start);
        self.billed_mb_ms += s.billed_mb_ms;
        self.durations.record(s.duration_us);
    }
}

/// The rollups of one write batch, gathered in memory and then merged into the table.
#[derive(Default)]
pub(crate) struct MinuteBatch {
    functions: HashMap<String, HashMap<i64, Minute>>,
}

impl MinuteBatch {
    pub(crate) fn add_record(&mut self, r: &InvocationRecord) {
        self.add(&Sample {
            function: &r.function,
            start_ms: r.start_ms,
            duration_us: r.duration_us,
            billed_mb_ms: r.billed_ms.saturating_mul(u64::from(r.memory_mb)),
            cold_start: r.cold_start,
            success: r.outcome == "success",
        });
    }

    fn add(&mut self, s: &Sample<'_>) {
        let minutes = match self.functions.get_mut(s.function) {
            Some(m) => m,
            None => self.functions.entry(s.function.to_string()).or_default(),
        };
        minutes.entry(s.start_ms.div_euclid(MINUTE_MS)).or_default().add(s);
    }

    /// Merges the batch into the table (inside the caller's transaction).
    pub(crate) fn write(self, c: &Connection) -> rusqlite::Result<()> {
        if self.functions.is_empty() {
            return Ok(());
        }
        let mut read = c.prepare_cached(
            "SELECT requests, errors, cold_starts, billed_mb_ms, durations FROM rollups
             WHERE minute = ?1 AND function = ?2",
        )?;
        let mut write = c.prepare_cached(
            "INSERT OR REPLACE INTO rollups (minute, function, requests, errors, cold_starts, billed_mb_ms, durations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (function, minutes) in self.functions {
            for (minute, mut m) in minutes {
                let before = read
                    .query_row(params![minute, function], |r| {
                        Ok((
                            r.get::<_, i64>(0)? as u64,
                            r.get::<_, i64>(1)? as u64,
                            r.get::<_, i64>(2)? as u64,
                            r.get::<_, i64>(3)? as u64,
                            r.get::<_, Vec<u8>>(4)?,
                        ))
                    })
                    .optional()?;
                if let Some((requests, errors, cold_starts, billed_mb_ms, durations)) = before {
                    m.requests += requests;
                    m.errors += errors;
                    m.cold_starts += cold_starts;
                    m.billed_mb_ms += billed_mb_ms;
                    m.durations.add_encoded(&durations);
                }
                write.execute(params![
                    minute,
                    function,
                    m.requests as i64,
                    m.errors as i64,
                    m.cold_starts as i64,
                    m.billed_mb_ms as i64,
                    m.durations.encode()
                ])?;
            }
        }
        Ok(())
    }
}

/// Creates the table; a database that had none gets its rollups built from the invocation
/// rows it has, in one transaction (so an interrupted build is redone at the next open).
/// Needs the `invocations` table.
pub(crate) fn open(c: &Connection) -> rusqlite::Result<()> {
    let exists = c
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollups'")?
        .exists([])?;
    if exists {
        return Ok(());
    }
    let tx = c.unchecked_transaction()?;
    tx.execute_batch(SCHEMA)?;
    let mut batch = MinuteBatch::default();
    {
        let mut stmt = tx.prepare(
            "SELECT function, start_ms, duration_us, billed_ms * memory_mb, cold_start, outcome = 'success'
             FROM invocations",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let function: String = r.get(0)?;
            batch.add(&Sample {
                function: &function,
                start_ms: r.get(1)?,
                duration_us: r.get::<_, i64>(2)? as u64,
                billed_mb_ms: r.get::<_, i64>(3)? as u64,
                cold_start: r.get::<_, i64>(4)? != 0,
                success: r.get::<_, i64>(5)? != 0,
            });
        }
    }
    batch.write(&tx)?;
    tx.commit()
}

/// Deletes the rollups of minutes that started before `cutoff_ms`'s minute.
pub(crate) fn prune(c: &Connection, cutoff_ms: i64) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM rollups WHERE minute < ?1",
        params![cutoff_ms.div_euclid(MINUTE_MS)],
    )?;
    Ok(())
}

/// Whether a series over `[since_ms, until_ms)` in steps of `step_ms` may be asked for (a step
/// that is a positive multiple of a minute, a range that is not empty, at most
/// [`MAX_SERIES_POINTS`] points); the error says which rule it breaks.
pub fn check_series(since_ms: i64, until_ms: i64, step_ms: i64) -> Result<(), String> {
    Steps::new(since_ms, until_ms, step_ms).map(|_| ())
}

/// The steps of a series, checked: `[t0, t0 + n·step)` covers `[since_ms, until_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Steps {
    pub(crate) t0: i64,
    pub(crate) step_ms: i64,
    pub(crate) n: i64,
}

impl Steps {
    /// Steps are aligned to multiples of `step_ms` since the epoch (so a chart refreshed a few
    /// seconds later shows the same buckets): the first holds `since_ms`, the last
    /// `until_ms - 1`.
    pub(crate) fn new(since_ms: i64, until_ms: i64, step_ms: i64) -> Result<Self, String> {
        if step_ms <= 0 || step_ms % MINUTE_MS != 0 {
            return Err(format!(
                "the step must be a positive multiple of 60 s (60000 ms), not {step_ms} ms"
            ));
        }
        if since_ms < 0 {
            return Err(format!("since_ms must not be negative, not {since_ms}"));
        }
        if until_ms <= since_ms {
            return Err(format!("until_ms ({until_ms}) must be after since_ms ({since_ms})"));
        }
        let t0 = since_ms - since_ms % step_ms;
        // In i128: `until_ms` and `step_ms` may be near i64::MAX.
        let n = (i128::from(until_ms) - i128::from(t0) + i128::from(step_ms) - 1) / i128::from(step_ms);
        if n > i128::from(MAX_SERIES_POINTS) {
            return Err(format!(
                "{n} points of {} s would be more than {MAX_SERIES_POINTS}: use a longer step or a shorter range",
                step_ms / 1000
            ));
        }
        Ok(Self {
            t0,
            step_ms,
            n: n as i64,
        })
    }
}

/// The series of one function (or, with `None`, of every function summed) over `steps`,
/// one point per step, zero-filled. Minutes that started before `since_ms` but hold it count.
pub(crate) fn series(
    c: &Connection,
    function: Option<&str>,
    since_ms: i64,
    until_ms: i64,
    steps: Steps,
) -> rusqlite::Result<Vec<SeriesPoint>> {
    let first_minute = since_ms.div_euclid(MINUTE_MS);
    // Minutes that start before `until_ms`.
    let end_minute = until_ms.div_euclid(MINUTE_MS) + i64::from(until_ms.rem_euclid(MINUTE_MS) > 0);
    let mut points: Vec<SeriesPoint> = (0..steps.n)
        .map(|k| SeriesPoint {
            t_ms: steps.t0 + k * steps.step_ms,
            requests: 0,
            errors: 0,
            cold_starts: 0,
            billed_mb_ms: 0,
            p50_us: None,
            p99_us: None,
        })
        .collect();
    let mut stmt = match function {
        Some(_) => c.prepare_cached(
            "SELECT minute, requests, errors, cold_starts, billed_mb_ms, durations FROM rollups
             WHERE minute >= ?1 AND minute < ?2 AND function = ?3 ORDER BY minute",
        )?,
        None => c.prepare_cached(
            "SELECT minute, requests, errors, cold_starts, billed_mb_ms, durations FROM rollups
             WHERE minute >= ?1 AND minute < ?2 ORDER BY minute",
        )?,
    };
    let mut rows = match function {
        Some(f) => stmt.query(params![first_minute, end_minute, f])?,
        None => stmt.query(params![first_minute, end_minute])?,
    };
    // Rows come in minute order, so a step's histogram is complete when the next step starts.
    let mut durations = Histogram::default();
    let mut open: Option<usize> = None;
    let finish = |p: &mut SeriesPoint, h: &Histogram| {
        p.p50_us = h.percentile(0.5);
        p.p99_us = h.percentile(0.99);
    };
    while let Some(r) = rows.next()? {
        let minute: i64 = r.get(0)?;
        let k = (minute * MINUTE_MS - steps.t0) / steps.step_ms;
        let Some(k) = usize::try_from(k).ok().filter(|&k| k < points.len()) else {
            continue;
        };
        if open != Some(k) {
            if let Some(j) = open {
                finish(&mut points[j], &durations);
            }
            durations.clear();
            open = Some(k);
        }
        let p = &mut points[k];
        p.requests += r.get::<_, i64>(1)? as u64;
        p.errors += r.get::<_, i64>(2)? as u64;
        p.cold_starts += r.get::<_, i64>(3)? as u64;
        p.billed_mb_ms += r.get::<_, i64>(4)? as u64;
        durations.add_encoded(r.get_ref(5)?.as_blob()?);
    }
    if let Some(j) = open {
        finish(&mut points[j], &durations);
    }
    Ok(points)
}

/// Per function, by name: the minutes from the one holding `since_ms` on.
pub(crate) fn stats(c: &Connection, since_ms: i64) -> rusqlite::Result<Vec<FunctionStats>> {
    let mut stmt = c.prepare_cached(
        "SELECT function, requests, errors, cold_starts, billed_mb_ms, durations FROM rollups WHERE minute >= ?1",
    )?;
    let mut rows = stmt.query(params![since_ms.div_euclid(MINUTE_MS)])?;
    let mut by_function: BTreeMap<String, (FunctionStats, Histogram)> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let name = r.get_ref(0)?.as_str()?;
        let (s, h) = match by_function.get_mut(name) {
            Some(e) => e,
            None => by_function.entry(name.to_string()).or_insert_with(|| {
                (
                    FunctionStats {
                        function: name.to_string(),
                        requests: 0,
                        errors: 0,
                        cold_starts: 0,
                        billed_mb_ms: 0,
                        p50_us: None,
                        p99_us: None,
                    },
                    Histogram::default(),
                )
            }),
        };
        s.requests += r.get::<_, i64>(1)? as u64;
        s.errors += r.get::<_, i64>(2)? as u64;
        s.cold_starts += r.get::<_, i64>(3)? as u64;
        s.billed_mb_ms += r.get::<_, i64>(4)? as u64;
        h.add_encoded(r.get_ref(5)?.as_blob()?);
    }
    Ok(by_function
        .into_values()
        .map(|(mut s, h)| {
            s.p50_us = h.percentile(0.5);
            s.p99_us = h.percentile(0.99);
            s
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_aligned_counted_and_bounded() {
        let h = 3_600_000;
        // Aligned: exactly one point per step.
        let s = Steps::new(10 * h, 11 * h, MINUTE_MS).unwrap();
        assert_eq!((s.t0, s.n), (10 * h, 60));
        // Unaligned: the partial minutes at both ends get a point each.
        let s = Steps::new(10 * h + 1_000, 11 * h + 1_000, MINUTE_MS).unwrap();
        assert_eq!((s.t0, s.n), (10 * h, 61));
        let s = Steps::new(10 * h + 1_000, 34 * h + 1_000, 300_000).unwrap();
        assert_eq!((s.t0, s.n), (10 * h, 24 * 12 + 1));
        // 25 h at one minute is 1,500 points; one more is refused, as are odd steps.
        assert!(Steps::new(0, 25 * h, MINUTE_MS).is_ok());
        let too_many = Steps::new(0, 25 * h + 1, MINUTE_MS).unwrap_err();
        assert!(too_many.contains("more than 1500"), "{too_many}");
        for step in [0, -MINUTE_MS, 30_000, 90_000] {
            let e = Steps::new(0, h, step).unwrap_err();
            assert!(e.contains("multiple of 60 s"), "{e}");
        }
        assert!(Steps::new(h, h, MINUTE_MS).is_err());
        assert!(Steps::new(-1, h, MINUTE_MS).is_err());
    }
}
