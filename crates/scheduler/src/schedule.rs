//! [`Schedule`]: one parsed expression in one time zone, and its next fires.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use crate::cron::{self, CronExpr, Dialect};
use crate::error::ScheduleError;
use crate::zone;

/// Which form of expression a [`Schedule`] was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleKind {
    /// Unix cron (5 or 6 fields), a macro such as `@daily`, or EventBridge
    /// `cron(...)`: fires on matching local wall-clock times.
    Cron,
    /// `rate(...)`: fires at a fixed interval of absolute time.
    Rate,
    /// `at(...)`: fires once.
    At,
}

/// A parsed schedule expression bound to a time zone.
///
/// Build one with [`Schedule::parse`]; ask it when it fires next with
/// [`Schedule::next_after`]. Its [`Display`](fmt::Display) is the normalized
/// expression (without the zone), which parses back to the same schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expr: Expr,
    tz: Tz,
    /// The normalized expression.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Cron(Box<CronExpr>),
    Rate {
        /// The interval, in whole seconds (at least 60).
        every: i64,
        /// Fires fall on `anchor + k * every`.
        anchor: DateTime<Utc>,
    },
    At(NaiveDateTime),
}

impl Schedule {
    /// Parses `expr` as a schedule in the IANA time zone `tz` (such as
    /// `Europe/Berlin` or `UTC`).
    ///
    /// Accepted forms (see the crate docs for the details):
    /// - Unix cron, 5 fields (`*/5 * * * *`) or 6 with seconds first
    ///   (`30 0 9 * * MON-FRI`);
    /// - the macros `@yearly @annually @monthly @weekly @daily @midnight
    ///   @hourly`;
    /// - EventBridge `cron(minutes hours day-of-month month day-of-week year)`;
    /// - `rate(1 minute)`, `rate(5 minutes)`, `rate(1 hour)`, `rate(2 days)`…;
    /// - `at(2026-12-01T09:00:00)`, a local date-time in `tz`.
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let tz = parse_time_zone(tz)?;
        let expr = expr.trim();
        if expr.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let lower = expr.to_ascii_lowercase();
        let (expr, text) = if let Some(inner) = strip_call(&lower, expr, "cron")? {
            let fields: Vec<&str> = inner.split_whitespace().collect();
            let parsed = cron::parse(Dialect::EventBridge, expr, &fields)?;
            let text = format!("cron({})", parsed.fields.join(" "));
            (Expr::Cron(Box::new(parsed)), text)
        } else if let Some(inner) = strip_call(&lower, expr, "rate")? {
            let (every, text) = parse_rate(expr, inner)?;
            let anchor = DateTime::UNIX_EPOCH;
            (Expr::Rate { every, anchor }, text)
        } else if let Some(inner) = strip_call(&lower, expr, "at")? {
            let local = parse_at(expr, inner)?;
            let text = format!("at({})", local.format(AT_FORMAT));
            (Expr::At(local), text)
        } else if lower.starts_with('@') {
            let fields = macro_fields(&lower).ok_or_else(|| {
                ScheduleError::invalid(
                    expr,
                    "unknown macro (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)",
                )
            })?;
            let fields: Vec<&str> = fields.split_whitespace().collect();
            let parsed = cron::parse(Dialect::Unix, expr, &fields)?;
            (Expr::Cron(Box::new(parsed)), lower)
        } else {
            let fields: Vec<&str> = expr.split_whitespace().collect();
            let parsed = cron::parse(Dialect::Unix, expr, &fields)?;
            let text = parsed.fields.join(" ");
            (Expr::Cron(Box::new(parsed)), text)
        };
        Ok(Schedule { expr, tz, text })
    }

    /// Returns this schedule with its `rate()` intervals counted from
    /// `anchor` (fires at `anchor`, `anchor + interval`, …; none before
    /// `anchor`). Without it a rate counts from the Unix epoch, so
    /// `rate(5 minutes)` fires at :00, :05, … and `rate(1 day)` at 00:00 UTC,
    /// the same on every node. Cron and `at()` schedules are returned
    /// unchanged.
    pub fn anchored_at(mut self, anchor: DateTime<Utc>) -> Schedule {
        if let Expr::Rate { anchor: a, .. } = &mut self.expr {
            *a = anchor;
        }
        self
    }

    /// The form the expression was written in.
    pub fn kind(&self) -> ScheduleKind {
        match self.expr {
            Expr::Cron(_) => ScheduleKind::Cron,
            Expr::Rate { .. } => ScheduleKind::Rate,
            Expr::At(_) => ScheduleKind::At,
        }
    }

    /// The IANA name of the schedule's time zone.
    pub fn time_zone(&self) -> &'static str {
        self.tz.name()
    }

    /// The first fire strictly after `after`, or `None` when the schedule
    /// never fires again (an `at()` in the past, a year field that has run
    /// out).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.expr {
            Expr::Cron(c) => next_cron(&c.cron, self.tz, after),
            Expr::Rate { every, anchor } => next_rate(*every, *anchor, after),
            Expr::At(local) => zone::resolve(self.tz, *local).filter(|t| *t > after),
        }
    }

    /// Up to `n` fires strictly after `after`, in order (fewer when the
    /// schedule runs out).
    pub fn next_n(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while fires.len() < n {
            match self.next_after(cursor) {
                Some(t) => {
                    fires.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        fires
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_time_zone(tz: &str) -> Result<Tz, ScheduleError> {
    let tz = tz.trim();
    if tz.is_empty() {
        return Err(ScheduleError::EmptyTimeZone);
    }
    tz.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimeZone(tz.to_string()))
}

/// When `lower` (the lower-cased `expr`) is `name(...)`, the text between
/// the parentheses, taken from `expr`.
fn strip_call<'a>(lower: &str, expr: &'a str, name: &str) -> Result<Option<&'a str>, ScheduleError> {
    let Some(rest) = lower.strip_prefix(name) else {
        return Ok(None);
    };
    if !rest.starts_with('(') {
        return Ok(None);
    }
    if !rest.ends_with(')') {
        return Err(ScheduleError::invalid(expr, "missing closing parenthesis"));
    }
    let inner = &expr[name.len() + 1..expr.len() - 1];
    if inner.contains(['(', ')']) {
        return Err(ScheduleError::invalid(expr, "unbalanced parentheses"));
    }
    Ok(Some(inner))
}

fn macro_fields(lower: &str) -> Option<&'static str> {
    Some(match lower {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Parses the inside of `rate(...)`; returns the interval in seconds and the
/// normalized text.
fn parse_rate(expr: &str, inner: &str) -> Result<(i64, String), ScheduleError> {
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err(ScheduleError::invalid(
            expr,
            "expected rate(value unit), e.g. rate(5 minutes)",
        ));
    };
    let value: u64 = match value.parse() {
        Ok(v) if v > 0 && value.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => return Err(ScheduleError::invalid(expr, "the value must be a positive integer")),
    };
    let unit = unit.to_ascii_lowercase();
    let (singular, seconds) = match unit.as_str() {
        "minute" | "minutes" => ("minute", 60),
        "hour" | "hours" => ("hour", 3600),
        "day" | "days" => ("day", 86_400),
        _ => {
            return Err(ScheduleError::invalid(
                expr,
                format!("unknown unit {unit} (expected minute(s), hour(s) or day(s))"),
            ))
        }
    };
    let plural = unit != singular;
    if value == 1 && plural {
        return Err(ScheduleError::invalid(
            expr,
            format!("use the singular \"{singular}\" when the value is 1"),
        ));
    }
    if value > 1 && !plural {
        return Err(ScheduleError::invalid(
            expr,
            format!("use the plural \"{singular}s\" when the value is greater than 1"),
        ));
    }
    // A century is far more than anyone schedules and keeps the arithmetic
    // well inside chrono's range.
    const MAX_SECONDS: u64 = 100 * 366 * 86_400;
    let every = value
        .checked_mul(seconds)
        .filter(|s| *s <= MAX_SECONDS)
        .ok_or_else(|| ScheduleError::invalid(expr, "the value is too large (at most 100 years)"))?;
    Ok((every as i64, format!("rate({value} {unit})")))
}

const AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

fn parse_at(expr: &str, inner: &str) -> Result<NaiveDateTime, ScheduleError> {
    let inner = inner.trim();
    let shape = inner.len() == 19
        && inner.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T' || b == b't',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return Err(ScheduleError::invalid(
            expr,
            "expected at(yyyy-mm-ddThh:mm:ss), a local date-time in the schedule's time zone",
        ));
    }
    NaiveDateTime::parse_from_str(&inner.to_ascii_uppercase(), AT_FORMAT)
        .map_err(|_| ScheduleError::invalid(expr, format!("no such date-time {inner}")))
}

/// Safety net for the search below: the only repeated candidates are the
/// second pass of a repeated (fall-back) hour, at most 3600 of them for a
/// per-second schedule.
const MAX_CANDIDATES: usize = 10_000;

fn next_cron(cron: &croner::Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Walk the local wall clock (naive, no DST) from `after`'s local time.
    // Each matching wall-clock time maps to one instant (see `zone::resolve`);
    // that map never goes backwards, so the first match whose instant is
    // later than `after` is the answer. Matches at or before `after` only
    // occur when `after` lies in the second pass of a repeated hour.
    let mut cursor = after.with_timezone(&tz).naive_local().with_nanosecond(0)?;
    for _ in 0..MAX_CANDIDATES {
        let local = cron.find_next_occurrence(&cursor, false).ok()?;
        let at = zone::resolve(tz, local)?;
        if at > after {
            return Some(at);
        }
        cursor = local;
    }
    None
}

fn next_rate(every: i64, anchor: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if after < anchor {
        return Some(anchor);
    }
    let elapsed = (after - anchor).num_seconds(); // >= 0: rounds down
    let k = elapsed / every + 1;
    anchor.checked_add_signed(TimeDelta::try_seconds(k.checked_mul(every)?)?)
}
