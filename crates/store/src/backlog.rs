//! Subscription backlogs over time: one sample per subscription per minute of how many records
//! wait, how old the oldest is and how many dead letters there are, for the console's Events
//! page ("is this backlog draining?"). The binary's sampler reads them from the event log and
//! the broker sources and records them here ([`crate::TelemetryDb::record_backlog`]); they are
//! kept as long as the invocation rollups (`Retention::max_rollup_age`).
//!
//! A minute keeps the largest backlog and the oldest age sampled in it (a spike between two
//! samples of the same minute is not lost to the second) and the last dead-letter count.

use crate::rollups::Steps;
use rusqlite::{params, Connection};

const MINUTE_MS: i64 = 60_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS backlog_samples (
    subscription TEXT NOT NULL,
    minute INTEGER NOT NULL,
    backlog INTEGER NOT NULL,
    oldest_age_ms INTEGER,
    dead_letters INTEGER NOT NULL,
    PRIMARY KEY (subscription, minute)
) WITHOUT ROWID;
";

/// One subscription's state at a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogSample {
    pub subscription: String,
    /// Records waiting (for a broker source: its lag, where the broker tells it).
    pub backlog: u64,
    /// Age of the oldest waiting record; `None` when nothing waits or the age is not known.
    pub oldest_age_ms: Option<i64>,
    pub dead_letters: u64,
}

/// One step of a backlog series: the largest backlog and oldest age sampled in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogPoint {
    pub t_ms: i64,
    /// `None`: no sample in the step (Gust was not running, or the subscription did not exist).
    pub backlog: Option<u64>,
    pub oldest_age_ms: Option<i64>,
    pub dead_letters: Option<u64>,
}

pub(crate) fn open(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(SCHEMA)
}

pub(crate) fn record(c: &mut Connection, at_ms: i64, samples: &[BacklogSample]) -> rusqlite::Result<()> {
    let minute = at_ms.div_euclid(MINUTE_MS);
    let tx = c.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO backlog_samples (subscription, minute, backlog, oldest_age_ms, dead_letters)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (subscription, minute) DO UPDATE SET
                 backlog = max(backlog, excluded.backlog),
                 oldest_age_ms = CASE
                     WHEN oldest_age_ms IS NULL THEN excluded.oldest_age_ms
                     WHEN excluded.oldest_age_ms IS NULL THEN oldest_age_ms
                     ELSE max(oldest_age_ms, excluded.oldest_age_ms) END,
                 dead_letters = excluded.dead_letters",
        )?;
        for s in samples {
            stmt.execute(params![
                s.subscription,
                minute,
                s.backlog as i64,
                s.oldest_age_ms,
                s.dead_letters as i64
            ])?;
        }
    }
    tx.commit()
}

pub(crate) fn prune(c: &Connection, cutoff_ms: i64) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM backlog_samples WHERE minute < ?1",
        params![cutoff_ms.div_euclid(MINUTE_MS)],
    )?;
    Ok(())
}

/// One point per step of `steps` for `subscription`.
pub(crate) fn series(c: &Connection, subscription: &str, steps: Steps) -> rusqlite::Result<Vec<BacklogPoint>> {
    let mut points: Vec<BacklogPoint> = (0..steps.n)
        .map(|i| BacklogPoint {
            t_ms: steps.t0 + i * steps.step_ms,
            backlog: None,
            oldest_age_ms: None,
            dead_letters: None,
        })
        .collect();
    let first = steps.t0.div_euclid(MINUTE_MS);
    let end = (steps.t0 + steps.n * steps.step_ms).div_euclid(MINUTE_MS);
    let mut stmt = c.prepare_cached(
        "SELECT minute, backlog, oldest_age_ms, dead_letters FROM backlog_samples
         WHERE subscription = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute",
    )?;
    let rows = stmt.query_map(params![subscription, first, end], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, i64>(3)? as u64,
        ))
    })?;
    for row in rows {
        let (minute, backlog, age, dead) = row?;
        let i = (minute * MINUTE_MS - steps.t0) / steps.step_ms;
        let Some(p) = points.get_mut(i as usize) else { continue };
        p.backlog = Some(p.backlog.map_or(backlog, |b| b.max(backlog)));
        p.oldest_age_ms = match (p.oldest_age_ms, age) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // Rows come in time order: the step keeps its last count.
        p.dead_letters = Some(dead);
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sub: &str, backlog: u64, age: Option<i64>, dead: u64) -> BacklogSample {
        BacklogSample {
            subscription: sub.into(),
            backlog,
            oldest_age_ms: age,
            dead_letters: dead,
        }
    }

    #[test]
    fn a_minute_keeps_its_peak_and_steps_merge_minutes() {
        let mut c = Connection::open_in_memory().unwrap();
        open(&c).unwrap();
        let t = 1_000 * MINUTE_MS;
        record(
            &mut c,
            t + 1_000,
            &[sample("a", 5, Some(800), 0), sample("b", 1, None, 0)],
        )
        .unwrap();
        // Later in the same minute: smaller backlog, younger oldest, one dead letter.
        record(&mut c, t + 30_000, &[sample("a", 2, Some(300), 1)]).unwrap();
        record(&mut c, t + MINUTE_MS + 5, &[sample("a", 0, None, 1)]).unwrap();
        record(&mut c, t + 3 * MINUTE_MS, &[sample("a", 7, Some(90_000), 2)]).unwrap();
        let one = series(&c, "a", Steps::new(t, t + 4 * MINUTE_MS, MINUTE_MS).unwrap()).unwrap();
        let got: Vec<_> = one
            .iter()
            .map(|p| (p.backlog, p.oldest_age_ms, p.dead_letters))
            .collect();
        assert_eq!(
            got,
            [
                (Some(5), Some(800), Some(1)),
                (Some(0), None, Some(1)),
                (None, None, None),
                (Some(7), Some(90_000), Some(2)),
            ]
        );
        let two = series(&c, "a", Steps::new(t, t + 4 * MINUTE_MS, 2 * MINUTE_MS).unwrap()).unwrap();
        let got: Vec<_> = two
            .iter()
            .map(|p| (p.t_ms, p.backlog, p.oldest_age_ms, p.dead_letters))
            .collect();
        assert_eq!(
            got,
            [
                (t, Some(5), Some(800), Some(1)),
                (t + 2 * MINUTE_MS, Some(7), Some(90_000), Some(2))
            ]
        );
        let b = series(&c, "b", Steps::new(t, t + MINUTE_MS, MINUTE_MS).unwrap()).unwrap();
        assert_eq!(b[0].backlog, Some(1));
        prune(&c, t + MINUTE_MS).unwrap();
        let pruned = series(&c, "a", Steps::new(t, t + 2 * MINUTE_MS, MINUTE_MS).unwrap()).unwrap();
        assert_eq!(pruned[0].backlog, None, "the pruned minute is gone");
        assert_eq!(pruned[1].backlog, Some(0), "the next one stays");
    }
}
