//! Golden tables: parsing, next fires, daylight saving, errors.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::{Clock, ManualClock, Schedule, ScheduleError, ScheduleKind};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
        .to_utc()
}

/// The next `n` fires of `expr` in `tz` after `after`, as RFC 3339 local
/// times with their offset (which pins both the wall clock and the instant).
fn fires(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    let schedule = Schedule::parse(expr, tz).unwrap_or_else(|e| panic!("{expr} in {tz} should parse: {e}"));
    let zone: Tz = tz.parse().unwrap();
    schedule
        .next_n(utc(after), n)
        .into_iter()
        .map(|t| t.with_timezone(&zone).to_rfc3339())
        .collect()
}

/// Checks a table of (expression, zone, after, expected fires).
fn check(table: &[(&str, &str, &str, &[&str])]) {
    let mut failures = Vec::new();
    for (expr, tz, after, want) in table {
        let got = fires(expr, tz, after, want.len() + 1);
        // The table lists every fire up to a point; one more may follow.
        if got.len() < want.len() || got[..want.len()] != want[..] {
            failures.push(format!(
                "{expr} in {tz} after {after}:\n  want {want:?}\n  got  {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Checks that the schedule fires exactly `want` and then never again.
fn check_exhausted(expr: &str, tz: &str, after: &str, want: &[&str]) {
    let got = fires(expr, tz, after, want.len() + 1);
    assert_eq!(got, want, "{expr} in {tz} after {after}");
}

// 2026-01-01 is a Thursday.

#[test]
fn unix_cron_next_fires() {
    check(&[
        (
            "*/5 * * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T00:05:00+00:00",
                "2026-01-01T00:10:00+00:00",
                "2026-01-01T00:15:00+00:00",
            ],
        ),
        // Strictly after, also with sub-second instants.
        (
            "*/5 * * * *",
            "UTC",
            "2026-01-01T00:04:59.999Z",
            &["2026-01-01T00:05:00+00:00"],
        ),
        (
            "*/5 * * * *",
            "UTC",
            "2026-01-01T00:05:00.001Z",
            &["2026-01-01T00:10:00+00:00"],
        ),
        (
            "0 9 * * MON-FRI",
            "UTC",
            "2026-01-02T10:00:00Z",
            &["2026-01-05T09:00:00+00:00", "2026-01-06T09:00:00+00:00"],
        ),
        (
            "0 9 * * 1-5",
            "Europe/Berlin",
            "2026-01-02T10:00:00Z",
            &["2026-01-05T09:00:00+01:00", "2026-01-06T09:00:00+01:00"],
        ),
        // 0 and 7 are both Sunday.
        (
            "0 0 * * 0",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"],
        ),
        (
            "0 0 * * 7",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"],
        ),
        (
            "0 0 * * fri-sun",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-02T00:00:00+00:00",
                "2026-01-03T00:00:00+00:00",
                "2026-01-04T00:00:00+00:00",
                "2026-01-09T00:00:00+00:00",
            ],
        ),
        (
            "15 10 1,15 jan,jul *",
            "UTC",
            "2026-01-01T12:00:00Z",
            &[
                "2026-01-15T10:15:00+00:00",
                "2026-07-01T10:15:00+00:00",
                "2026-07-15T10:15:00+00:00",
                "2027-01-01T10:15:00+00:00",
            ],
        ),
        (
            "0 8-10/2 * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-01T08:00:00+00:00", "2026-01-01T10:00:00+00:00"],
        ),
        // `a/n`: from a to the end of the range.
        (
            "50/5 * * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-01T00:50:00+00:00", "2026-01-01T00:55:00+00:00"],
        ),
        // Both day fields restricted: either one (the 1st, or a Monday).
        (
            "0 0 1 * MON",
            "UTC",
            "2026-01-01T12:00:00Z",
            &[
                "2026-01-05T00:00:00+00:00",
                "2026-01-12T00:00:00+00:00",
                "2026-01-19T00:00:00+00:00",
                "2026-01-26T00:00:00+00:00",
                "2026-02-01T00:00:00+00:00",
            ],
        ),
        // Day-of-month starting with `*`: both (odd days that are Mondays).
        (
            "0 0 */2 * MON",
            "UTC",
            "2026-01-01T12:00:00Z",
            &[
                "2026-01-05T00:00:00+00:00",
                "2026-01-19T00:00:00+00:00",
                "2026-02-09T00:00:00+00:00",
            ],
        ),
        // L: last day of the month.
        (
            "0 12 L * *",
            "UTC",
            "2026-02-01T00:00:00Z",
            &[
                "2026-02-28T12:00:00+00:00",
                "2026-03-31T12:00:00+00:00",
                "2026-04-30T12:00:00+00:00",
            ],
        ),
        // LW: last weekday (2026-02-28 is a Saturday, 2026-05-31 a Sunday).
        (
            "0 12 LW 2,3,5 *",
            "UTC",
            "2026-02-01T00:00:00Z",
            &[
                "2026-02-27T12:00:00+00:00",
                "2026-03-31T12:00:00+00:00",
                "2026-05-29T12:00:00+00:00",
            ],
        ),
        // 15W: the weekday nearest the 15th (2026-02-15 is a Sunday,
        // 2026-08-15 a Saturday).
        (
            "0 12 15W 2,4,8 *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-02-16T12:00:00+00:00",
                "2026-04-15T12:00:00+00:00",
                "2026-08-14T12:00:00+00:00",
            ],
        ),
        // 5L: the last Friday.
        (
            "0 12 * * 5L",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-30T12:00:00+00:00",
                "2026-02-27T12:00:00+00:00",
                "2026-03-27T12:00:00+00:00",
            ],
        ),
        // MON#1: the first Monday.
        (
            "0 12 * * MON#1",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-05T12:00:00+00:00",
                "2026-02-02T12:00:00+00:00",
                "2026-03-02T12:00:00+00:00",
            ],
        ),
        // ? is * in Unix cron.
        (
            "0 12 ? * MON",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-05T12:00:00+00:00", "2026-01-12T12:00:00+00:00"],
        ),
        // Feb 29 only in leap years.
        (
            "0 0 29 2 *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"],
        ),
    ]);
}

#[test]
fn six_field_cron_has_seconds_first() {
    check(&[
        (
            "*/20 * * * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T00:00:20+00:00",
                "2026-01-01T00:00:40+00:00",
                "2026-01-01T00:01:00+00:00",
            ],
        ),
        (
            "30 15 10 * * *",
            "Europe/Berlin",
            "2026-01-01T00:00:00Z",
            &["2026-01-01T10:15:30+01:00", "2026-01-02T10:15:30+01:00"],
        ),
        (
            "0 0 9 ? * MON-FRI",
            "UTC",
            "2026-01-02T10:00:00Z",
            &["2026-01-05T09:00:00+00:00"],
        ),
    ]);
}

#[test]
fn macros() {
    check(&[
        (
            "@yearly",
            "Europe/Berlin",
            "2026-05-05T00:00:00Z",
            &["2027-01-01T00:00:00+01:00", "2028-01-01T00:00:00+01:00"],
        ),
        (
            "@annually",
            "UTC",
            "2026-05-05T00:00:00Z",
            &["2027-01-01T00:00:00+00:00"],
        ),
        (
            "@monthly",
            "UTC",
            "2026-05-05T00:00:00Z",
            &["2026-06-01T00:00:00+00:00", "2026-07-01T00:00:00+00:00"],
        ),
        (
            "@weekly",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"],
        ),
        (
            "@daily",
            "America/New_York",
            "2026-01-01T12:00:00Z",
            &["2026-01-02T00:00:00-05:00", "2026-01-03T00:00:00-05:00"],
        ),
        (
            "@midnight",
            "UTC",
            "2026-01-01T12:00:00Z",
            &["2026-01-02T00:00:00+00:00"],
        ),
        (
            "@HOURLY",
            "UTC",
            "2026-01-01T12:00:00Z",
            &["2026-01-01T13:00:00+00:00", "2026-01-01T14:00:00+00:00"],
        ),
    ]);
}

#[test]
fn eventbridge_cron_next_fires() {
    check(&[
        // The example: every 2 minutes on weekdays. 2026-01-02 is a
        // Friday.
        (
            "cron(0/2 * ? * MON-FRI *)",
            "UTC",
            "2026-01-02T23:57:00Z",
            &[
                "2026-01-02T23:58:00+00:00",
                "2026-01-05T00:00:00+00:00",
                "2026-01-05T00:02:00+00:00",
            ],
        ),
        (
            "cron(15 12 * * ? *)",
            "Europe/Berlin",
            "2026-01-01T00:00:00Z",
            &["2026-01-01T12:15:00+01:00", "2026-01-02T12:15:00+01:00"],
        ),
        (
            "cron(0 8 1 * ? *)",
            "UTC",
            "2026-01-01T09:00:00Z",
            &["2026-02-01T08:00:00+00:00", "2026-03-01T08:00:00+00:00"],
        ),
        (
            "cron(0/15 8-9 * * ? *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T08:00:00+00:00",
                "2026-01-01T08:15:00+00:00",
                "2026-01-01T08:30:00+00:00",
                "2026-01-01T08:45:00+00:00",
                "2026-01-01T09:00:00+00:00",
            ],
        ),
        // Day-of-week 1 is Sunday in EventBridge (Monday in Unix cron).
        (
            "cron(0 9 ? * 1 *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T09:00:00+00:00", "2026-01-11T09:00:00+00:00"],
        ),
        (
            "cron(0 9 ? * 2-6 *)",
            "UTC",
            "2026-01-02T10:00:00Z",
            &["2026-01-05T09:00:00+00:00", "2026-01-06T09:00:00+00:00"],
        ),
        (
            "cron(0 9 ? * 7 *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-03T09:00:00+00:00"],
        ),
        // L alone in day-of-week: the last day of the week, Saturday.
        (
            "cron(0 9 ? * L *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-03T09:00:00+00:00", "2026-01-10T09:00:00+00:00"],
        ),
        // 2#1: the first Monday.
        (
            "cron(0 9 ? * 2#1 *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-05T09:00:00+00:00",
                "2026-02-02T09:00:00+00:00",
                "2026-03-02T09:00:00+00:00",
            ],
        ),
        (
            "cron(0 9 ? * FRI#3 *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-16T09:00:00+00:00", "2026-02-20T09:00:00+00:00"],
        ),
        // 6L: the last Friday.
        (
            "cron(0 9 ? * 6L *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-30T09:00:00+00:00", "2026-02-27T09:00:00+00:00"],
        ),
        // L: the last day of the month.
        (
            "cron(0 18 L * ? *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-31T18:00:00+00:00",
                "2026-02-28T18:00:00+00:00",
                "2026-03-31T18:00:00+00:00",
            ],
        ),
        // W: the weekday nearest the given day; LW: the last weekday.
        (
            "cron(0 9 15W * ? *)",
            "UTC",
            "2026-02-01T00:00:00Z",
            &["2026-02-16T09:00:00+00:00", "2026-03-16T09:00:00+00:00"],
        ),
        (
            "cron(0 9 1W * ? *)",
            "UTC",
            "2026-01-15T00:00:00Z",
            // 2026-02-01 and 2026-03-01 are Sundays: 1W never reaches back
            // into the month before, so it fires on Monday the 2nd.
            &[
                "2026-02-02T09:00:00+00:00",
                "2026-03-02T09:00:00+00:00",
                "2026-04-01T09:00:00+00:00",
            ],
        ),
        (
            "cron(0 9 LW * ? *)",
            "UTC",
            "2026-05-01T00:00:00Z",
            &["2026-05-29T09:00:00+00:00", "2026-06-30T09:00:00+00:00"],
        ),
        // Rare: a fifth Monday in February needs a leap year whose Feb 1 is
        // a Monday.
        (
            "cron(0 0 ? 2 MON#5 *)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2044-02-29T00:00:00+00:00", "2072-02-29T00:00:00+00:00"],
        ),
        // The year field.
        (
            "cron(0 12 * * ? 2027)",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2027-01-01T12:00:00+00:00", "2027-01-02T12:00:00+00:00"],
        ),
        (
            "cron(0 0 1 1 ? 2027/2)",
            "UTC",
            "2026-06-01T00:00:00Z",
            &[
                "2027-01-01T00:00:00+00:00",
                "2029-01-01T00:00:00+00:00",
                "2031-01-01T00:00:00+00:00",
            ],
        ),
    ]);
}

#[test]
fn eventbridge_year_field_runs_out() {
    check_exhausted(
        "cron(0 12 1 1,7 ? 2026-2027)",
        "UTC",
        "2026-03-01T00:00:00Z",
        &[
            "2026-07-01T12:00:00+00:00",
            "2027-01-01T12:00:00+00:00",
            "2027-07-01T12:00:00+00:00",
        ],
    );
    check_exhausted("cron(0 12 * * ? 2020-2025)", "UTC", "2026-01-01T00:00:00Z", &[]);
    // Feb 29 in a year without one.
    check_exhausted("cron(0 0 29 2 ? 2027)", "UTC", "2026-01-01T00:00:00Z", &[]);
}

#[test]
fn rate_is_a_fixed_interval_from_the_epoch() {
    check(&[
        (
            "rate(5 minutes)",
            "UTC",
            "2026-01-01T00:02:00Z",
            &["2026-01-01T00:05:00+00:00", "2026-01-01T00:10:00+00:00"],
        ),
        (
            "rate(1 minute)",
            "UTC",
            "2026-01-01T00:00:30Z",
            &["2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00"],
        ),
        // Strictly after.
        (
            "rate(1 hour)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"],
        ),
        (
            "rate(1 day)",
            "America/New_York",
            "2026-01-01T12:00:00Z",
            &["2026-01-01T19:00:00-05:00", "2026-01-02T19:00:00-05:00"],
        ),
        // 2026-01-01 is day 20454 since the epoch, an even day.
        (
            "rate(2 days)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-03T00:00:00+00:00", "2026-01-05T00:00:00+00:00"],
        ),
        (
            "rate(90 minutes)",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-01T01:30:00+00:00", "2026-01-01T03:00:00+00:00"],
        ),
        // Daylight saving changes nothing: one hour of absolute time apart.
        (
            "rate(1 hour)",
            "Europe/Berlin",
            "2026-03-28T23:30:00Z",
            &[
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00",
            ],
        ),
        (
            "rate(1 hour)",
            "Europe/Berlin",
            "2026-10-24T23:30:00Z",
            &[
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T03:00:00+01:00",
            ],
        ),
        (
            "rate(1 day)",
            "Europe/Berlin",
            "2026-03-28T12:00:00Z",
            // Always 00:00 UTC, so the local time moves with the offset.
            &["2026-03-29T01:00:00+01:00", "2026-03-30T02:00:00+02:00"],
        ),
    ]);
}

#[test]
fn rate_can_be_anchored() {
    let anchor = utc("2026-01-01T00:07:00Z");
    let s = Schedule::parse("rate(90 minutes)", "UTC").unwrap().anchored_at(anchor);
    assert_eq!(s.next_after(utc("2025-06-01T00:00:00Z")), Some(anchor));
    assert_eq!(
        s.next_n(anchor, 2),
        vec![utc("2026-01-01T01:37:00Z"), utc("2026-01-01T03:07:00Z")]
    );
    assert_eq!(
        s.next_after(utc("2026-01-01T01:37:00Z")),
        Some(utc("2026-01-01T03:07:00Z"))
    );
    // Anchoring leaves cron and at() schedules alone.
    let cron = Schedule::parse("@daily", "UTC").unwrap();
    assert_eq!(cron.clone().anchored_at(anchor), cron);
}

#[test]
fn at_fires_once_at_a_local_time() {
    check_exhausted(
        "at(2026-12-01T09:00:00)",
        "Europe/Berlin",
        "2026-06-01T00:00:00Z",
        &["2026-12-01T09:00:00+01:00"],
    );
    check_exhausted(
        "at(2026-12-01T09:00:00)",
        "UTC",
        "2026-06-01T00:00:00Z",
        &["2026-12-01T09:00:00+00:00"],
    );
    // In the past, or exactly now: no next fire.
    check_exhausted("at(2020-01-01T00:00:00)", "UTC", "2026-06-01T00:00:00Z", &[]);
    check_exhausted("at(2026-06-01T00:00:00)", "UTC", "2026-06-01T00:00:00Z", &[]);
    // Daylight saving: a missing local time fires when the gap ends, a
    // repeated one at its first occurrence.
    check_exhausted(
        "at(2026-03-29T02:30:00)",
        "Europe/Berlin",
        "2026-03-01T00:00:00Z",
        &["2026-03-29T03:00:00+02:00"],
    );
    check_exhausted(
        "at(2026-10-25T02:30:00)",
        "Europe/Berlin",
        "2026-10-01T00:00:00Z",
        &["2026-10-25T02:30:00+02:00"],
    );
    check_exhausted(
        "at(2026-11-01T01:30:00)",
        "America/New_York",
        "2026-10-01T00:00:00Z",
        &["2026-11-01T01:30:00-04:00"],
    );
}

#[test]
fn daily_0230_across_daylight_saving() {
    check(&[
        // Europe/Berlin springs forward 02:00 CET -> 03:00 CEST on 2026-03-29:
        // 02:30 does not exist and fires once, at 03:00 CEST.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-27T12:00:00Z",
            &[
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
            ],
        ),
        // Europe/Berlin falls back 03:00 CEST -> 02:00 CET on 2026-10-25:
        // 02:30 happens twice and fires once, at the first (CEST).
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-23T12:00:00Z",
            &[
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
            ],
        ),
        // Asked from inside the second pass of the repeated hour, the
        // repeated 02:30 has already fired.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T01:10:00Z",
            &["2026-10-26T02:30:00+01:00"],
        ),
        // America/New_York springs forward 02:00 EST -> 03:00 EDT on
        // 2026-03-08.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-06T12:00:00Z",
            &[
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
            ],
        ),
        // America/New_York falls back 02:00 EDT -> 01:00 EST on 2026-11-01:
        // 02:30 exists once (EST); 01:30 happens twice and fires at the first.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-10-30T12:00:00Z",
            &[
                "2026-10-31T02:30:00-04:00",
                "2026-11-01T02:30:00-05:00",
                "2026-11-02T02:30:00-05:00",
            ],
        ),
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-30T12:00:00Z",
            &[
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00",
            ],
        ),
        // The same rule for EventBridge cron and seconds.
        (
            "cron(30 2 * * ? *)",
            "Europe/Berlin",
            "2026-03-28T12:00:00Z",
            &["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        (
            "15 30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00:00Z",
            &["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:15+02:00"],
        ),
    ]);
}

#[test]
fn hourly_across_daylight_saving() {
    check(&[
        // Berlin, spring forward: the missing 02:00 collapses into 03:00.
        (
            "0 * * * *",
            "Europe/Berlin",
            "2026-03-28T23:30:00Z",
            &[
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00",
            ],
        ),
        // ... and the missing 02:30 fires at 03:00, before 03:30.
        (
            "30 * * * *",
            "Europe/Berlin",
            "2026-03-28T23:45:00Z",
            &[
                "2026-03-29T01:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:30:00+02:00",
                "2026-03-29T04:30:00+02:00",
            ],
        ),
        // Berlin, fall back: the repeated 02:00 fires once, at the first.
        (
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:30:00Z",
            &[
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T04:00:00+01:00",
            ],
        ),
        (
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-10-25T00:40:00Z",
            &["2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00"],
        ),
        // From inside the second pass: nothing more until 03:30.
        (
            "30 * * * *",
            "Europe/Berlin",
            "2026-10-25T01:10:00Z",
            &["2026-10-25T03:30:00+01:00"],
        ),
        (
            "@hourly",
            "America/New_York",
            "2026-03-08T05:30:00Z",
            &[
                "2026-03-08T01:00:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T04:00:00-04:00",
            ],
        ),
        (
            "0 * * * *",
            "America/New_York",
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T03:00:00-05:00",
            ],
        ),
        (
            "cron(30 * * * ? *)",
            "America/New_York",
            "2026-03-08T06:15:00Z",
            &[
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00",
            ],
        ),
        // Every second through the repeated hour: one pass only.
        (
            "59 59 1 * * *",
            "America/New_York",
            "2026-11-01T05:00:00Z",
            &["2026-11-01T01:59:59-04:00", "2026-11-02T01:59:59-05:00"],
        ),
    ]);
}

#[test]
fn every_second_schedule_skips_the_second_pass_quickly() {
    let s = Schedule::parse("* * * * * *", "Europe/Berlin").unwrap();
    // 02:00:00 CET, the start of the second pass.
    let after = utc("2026-10-25T01:00:00Z");
    assert_eq!(s.next_after(after), Some(utc("2026-10-25T02:00:00Z")));
}

#[test]
fn display_is_the_normalized_expression_and_parses_back() {
    let table = [
        ("*/5 * * * *", "*/5 * * * *"),
        ("  0  9\t* *   mon-fri ", "0 9 * * MON-FRI"),
        ("30 0 9 * * sun", "30 0 9 * * SUN"),
        ("@Daily", "@daily"),
        ("@annually", "@annually"),
        ("cron(0/2 * ? * mon-fri *)", "cron(0/2 * ? * MON-FRI *)"),
        ("CRON( 0 12 L * ? 2027 )", "cron(0 12 L * ? 2027)"),
        ("rate(05 Minutes)", "rate(5 minutes)"),
        ("rate(1 hour)", "rate(1 hour)"),
        ("rate( 1 day )", "rate(1 day)"),
        ("at(2026-12-01t09:00:00)", "at(2026-12-01T09:00:00)"),
    ];
    for (expr, normal) in table {
        let s = Schedule::parse(expr, "Europe/Berlin").unwrap();
        assert_eq!(s.to_string(), normal, "{expr}");
        let again = Schedule::parse(&s.to_string(), s.time_zone()).unwrap();
        assert_eq!(again, s, "{expr} should parse back from {s}");
    }
}

#[test]
fn kind_and_time_zone() {
    let kind = |e: &str| Schedule::parse(e, "UTC").unwrap().kind();
    assert_eq!(kind("*/5 * * * *"), ScheduleKind::Cron);
    assert_eq!(kind("@hourly"), ScheduleKind::Cron);
    assert_eq!(kind("cron(0 12 * * ? *)"), ScheduleKind::Cron);
    assert_eq!(kind("rate(5 minutes)"), ScheduleKind::Rate);
    assert_eq!(kind("at(2026-12-01T09:00:00)"), ScheduleKind::At);
    let s = Schedule::parse("@daily", " America/New_York ").unwrap();
    assert_eq!(s.time_zone(), "America/New_York");
}

#[test]
fn error_messages_name_the_offending_part() {
    let table: &[(&str, &str, &str)] = &[
        // The examples.
        ("cron(0 12 ? * MON-FRO *)", "UTC", "day-of-week MON-FRO: unknown day"),
        ("0 12 * * MON-FRO", "UTC", "day-of-week MON-FRO: unknown day"),
        ("*/5 * * * *", "Europe/Berln", "unknown time zone Europe/Berln"),
        (
            "rate(0 minutes)",
            "UTC",
            "rate(0 minutes): the value must be a positive integer",
        ),
        (
            "cron(0 12 * * ?)",
            "UTC",
            "cron(0 12 * * ?) needs 6 fields (minutes hours day-of-month month day-of-week year), got 5",
        ),
        // The expression as a whole.
        ("", "UTC", "empty schedule expression"),
        ("   ", "UTC", "empty schedule expression"),
        (
            "@daily",
            "",
            "empty time zone (use an IANA name such as Europe/Berlin, or UTC)",
        ),
        (
            "* * * *",
            "UTC",
            "* * * * needs 5 fields (minutes hours day-of-month month day-of-week) or 6 (seconds minutes hours day-of-month month day-of-week), got 4",
        ),
        (
            "0 0 0 1 1 ? 2027",
            "UTC",
            "0 0 0 1 1 ? 2027 needs 5 fields (minutes hours day-of-month month day-of-week) or 6 (seconds minutes hours day-of-month month day-of-week), got 7",
        ),
        (
            "cron(0 12 * * ? * *)",
            "UTC",
            "cron(0 12 * * ? * *) needs 6 fields (minutes hours day-of-month month day-of-week year), got 7",
        ),
        (
            "cron(0 12 * * ? *",
            "UTC",
            "cron(0 12 * * ? *: missing closing parenthesis",
        ),
        (
            "@fortnightly",
            "UTC",
            "@fortnightly: unknown macro (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)",
        ),
        // Fields.
        ("61 * * * *", "UTC", "minutes 61: out of range 0-59"),
        ("0 24 * * *", "UTC", "hours 24: out of range 0-23"),
        ("60 0 0 * * *", "UTC", "seconds 60: out of range 0-59"),
        ("0 x * * *", "UTC", "hours x: not a number (expected 0-23)"),
        ("0 0 10-40 * *", "UTC", "day-of-month 10-40: 40 is out of range 1-31"),
        ("0 0 0 * *", "UTC", "day-of-month 0: out of range 1-31"),
        ("0 0 5-2 * *", "UTC", "day-of-month 5-2: range start is after its end"),
        ("0 0 1,,2 * *", "UTC", "day-of-month 1,,2: empty list item"),
        ("0 0 -5 * *", "UTC", "day-of-month -5: missing number (expected 1-31)"),
        ("*/0 * * * *", "UTC", "minutes */0: the step must be a positive integer"),
        ("*/x * * * *", "UTC", "minutes */x: the step must be a positive integer"),
        ("0 0 * FOO *", "UTC", "month FOO: unknown month"),
        ("0 0 * 13 *", "UTC", "month 13: out of range 1-12"),
        ("0 0 * * 8", "UTC", "day-of-week 8: out of range 0-7"),
        ("0 0 * * MON,FUN", "UTC", "day-of-week FUN: unknown day"),
        // Quoted as written.
        ("0 0 * * mon-fro", "UTC", "day-of-week mon-fro: unknown day"),
        (
            "? 0 * * *",
            "UTC",
            "minutes ?: ? is only allowed in day-of-month and day-of-week",
        ),
        ("0 0 ?,1 * *", "UTC", "day-of-month ?: ? must stand alone"),
        (
            "0 0 L-2 * *",
            "UTC",
            "day-of-month L-2: unsupported; use L (last day), LW (last weekday) or nW (weekday nearest day n, e.g. 15W)",
        ),
        ("0 0 32W * *", "UTC", "day-of-month 32W: 32 is out of range 1-31"),
        (
            "0 0 * * L",
            "UTC",
            "day-of-week L: use nL for the last given weekday of the month (e.g. 5L, the last Friday)",
        ),
        (
            "0 0 * * MON-FRI#2",
            "UTC",
            "day-of-week MON-FRI#2: # takes a single day (e.g. MON#2, the second Monday)",
        ),
        ("0 0 30 2 *", "UTC", "day-of-month 30: never occurs in month 2"),
        (
            "0 0 30,31 FEB *",
            "UTC",
            "day-of-month 30,31: never occurs in month FEB",
        ),
        // EventBridge.
        ("cron(0 0 ? * 0 *)", "UTC", "day-of-week 0: out of range 1-7"),
        (
            "cron(0 0 ? * MON#6 *)",
            "UTC",
            "day-of-week MON#6: the occurrence after # must be 1-5",
        ),
        (
            "cron(0 0 1 * MON *)",
            "UTC",
            "cron(0 0 1 * MON *): day-of-month and day-of-week cannot both be set; use ? in one of them",
        ),
        (
            "cron(0 0 * * * *)",
            "UTC",
            "cron(0 0 * * * *): day-of-month and day-of-week cannot both be set; use ? in one of them",
        ),
        (
            "cron(0 0 ? * ? *)",
            "UTC",
            "cron(0 0 ? * ? *): day-of-month and day-of-week cannot both be ?; set one of them",
        ),
        ("cron(0 0 1 * ? 1969)", "UTC", "year 1969: out of range 1970-2199"),
        ("cron(0 0 1 * ? ?)", "UTC", "year ?: ? is only allowed in day-of-month and day-of-week"),
        (
            "cron(0 0 31 FEB,APR ? *)",
            "UTC",
            "day-of-month 31: never occurs in month FEB,APR",
        ),
        // rate().
        (
            "rate(-1 minutes)",
            "UTC",
            "rate(-1 minutes): the value must be a positive integer",
        ),
        (
            "rate(1.5 hours)",
            "UTC",
            "rate(1.5 hours): the value must be a positive integer",
        ),
        (
            "rate(1 minutes)",
            "UTC",
            "rate(1 minutes): use the singular \"minute\" when the value is 1",
        ),
        (
            "rate(5 minute)",
            "UTC",
            "rate(5 minute): use the plural \"minutes\" when the value is greater than 1",
        ),
        (
            "rate(2 hour)",
            "UTC",
            "rate(2 hour): use the plural \"hours\" when the value is greater than 1",
        ),
        (
            "rate(1 days)",
            "UTC",
            "rate(1 days): use the singular \"day\" when the value is 1",
        ),
        (
            "rate(5 weeks)",
            "UTC",
            "rate(5 weeks): unknown unit weeks (expected minute(s), hour(s) or day(s))",
        ),
        (
            "rate(5)",
            "UTC",
            "rate(5): expected rate(value unit), e.g. rate(5 minutes)",
        ),
        (
            "rate(99999999 days)",
            "UTC",
            "rate(99999999 days): the value is too large (at most 100 years)",
        ),
        // at().
        (
            "at(2026-12-01 09:00)",
            "UTC",
            "at(2026-12-01 09:00): expected at(yyyy-mm-ddThh:mm:ss), a local date-time in the schedule's time zone",
        ),
        (
            "at(2026-02-30T09:00:00)",
            "UTC",
            "at(2026-02-30T09:00:00): no such date-time 2026-02-30T09:00:00",
        ),
        (
            "at(2026-12-01T25:00:00)",
            "UTC",
            "at(2026-12-01T25:00:00): no such date-time 2026-12-01T25:00:00",
        ),
    ];
    let mut failures = Vec::new();
    for (expr, tz, want) in table {
        match Schedule::parse(expr, tz) {
            Ok(s) => failures.push(format!("{expr} in {tz}: parsed as {s}, want error {want}")),
            Err(e) if e.to_string() != *want => failures.push(format!("{expr} in {tz}:\n  want {want}\n  got  {e}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn errors_are_matchable() {
    assert_eq!(
        Schedule::parse("@daily", "Mars/Olympus"),
        Err(ScheduleError::UnknownTimeZone("Mars/Olympus".to_string()))
    );
    assert!(matches!(
        Schedule::parse("0 0 * * MON-FRO", "UTC"),
        Err(ScheduleError::Field {
            field: "day-of-week",
            ..
        })
    ));
}

/// A miniature firing loop on a [`ManualClock`]: a daily 02:30 schedule in
/// Europe/Berlin runs through the spring-forward day in milliseconds.
#[tokio::test]
async fn manual_clock_drives_a_daily_schedule_through_spring_forward() {
    let clock = ManualClock::new(utc("2026-03-27T12:00:00Z"));
    let schedule = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
    let fired = tokio::spawn({
        let clock = clock.clone();
        async move {
            let mut fired = Vec::new();
            for _ in 0..3 {
                let next = schedule.next_after(clock.now()).unwrap();
                clock.sleep_until(next).await;
                fired.push(clock.now());
            }
            fired
        }
    });
    // Move time on in 10-minute steps, letting the loop react each time.
    while !fired.is_finished() {
        tokio::task::yield_now().await;
        clock.advance(TimeDelta::minutes(10));
        tokio::task::yield_now().await;
    }
    assert_eq!(
        fired.await.unwrap(),
        vec![
            utc("2026-03-28T01:30:00Z"),
            utc("2026-03-29T01:00:00Z"),
            utc("2026-03-30T00:30:00Z"),
        ]
    );
}

/// A firer that records what it was asked, and is busy once it has queued a run (nothing
/// drains its queue).
#[derive(Default)]
struct Recording {
    last: Option<DateTime<Utc>>,
    fired: std::sync::Mutex<Vec<(DateTime<Utc>, bool)>>,
}

#[async_trait::async_trait]
impl crate::Firer for Recording {
    async fn last_fired(&self, _: &str) -> Result<Option<DateTime<Utc>>, String> {
        Ok(self.last)
    }
    async fn fire(&self, _: &gust_model::ScheduleSpec, tick: DateTime<Utc>, skip: bool) -> Result<bool, String> {
        self.fired.lock().unwrap().push((tick, skip));
        Ok(true)
    }
    async fn busy(&self, _: &str) -> bool {
        self.fired.lock().unwrap().iter().any(|(_, skip)| !skip)
    }
}

fn spec(catch_up: gust_model::CatchUp, overlap: gust_model::Overlap) -> gust_model::ScheduleSpec {
    gust_model::ScheduleSpec {
        name: gust_model::TopicName::new("hourly").unwrap(),
        function: gust_model::FunctionName::new("f").unwrap(),
        expression: "rate(1 hour)".into(),
        timezone: "UTC".into(),
        input: None,
        description: None,
        enabled: true,
        catch_up,
        overlap,
        jitter: std::time::Duration::ZERO,
        max_attempts: 1,
        retry_delay: std::time::Duration::ZERO,
    }
}

/// Runs the firing loop from `last` with the clock at `now` until it sleeps, and gives what
/// it fired.
async fn fired_after_downtime(
    catch_up: gust_model::CatchUp,
    overlap: gust_model::Overlap,
    last: &str,
    now: &str,
) -> Vec<(String, bool)> {
    let clock = ManualClock::new(utc(now));
    let firer = std::sync::Arc::new(Recording {
        last: Some(utc(last)),
        ..Default::default()
    });
    let task = crate::spawn_runner(
        spec(catch_up, overlap),
        Schedule::parse("rate(1 hour)", "UTC").unwrap(),
        std::sync::Arc::new(clock.clone()),
        firer.clone(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while clock.sleepers() == 0 {
        assert!(std::time::Instant::now() < deadline, "the loop never went to sleep");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    task.abort();
    let fired = firer.fired.lock().unwrap().clone();
    fired
        .into_iter()
        .map(|(t, skip)| (t.format("%H:%M").to_string(), skip))
        .collect()
}

#[tokio::test]
async fn catch_up_after_downtime_keeps_the_on_time_tick() {
    use gust_model::{CatchUp, Overlap};
    // Down from after the 09:00 tick until 12:00:10: 10:00 and 11:00 are missed, 12:00 is on
    // time. `last` runs 11:00 and then 12:00; the catch-up run does not make 12:00 skip.
    let fired = fired_after_downtime(
        CatchUp::Last,
        Overlap::Skip,
        "2026-11-26T09:00:00Z",
        "2026-11-26T12:00:10Z",
    )
    .await;
    assert_eq!(fired, [("11:00".to_string(), false), ("12:00".to_string(), false)]);
    let fired = fired_after_downtime(
        CatchUp::All(5),
        Overlap::Skip,
        "2026-11-26T09:00:00Z",
        "2026-11-26T12:00:10Z",
    )
    .await;
    assert_eq!(
        fired,
        [
            ("10:00".to_string(), false),
            ("11:00".to_string(), false),
            ("12:00".to_string(), false)
        ]
    );
    // `none` drops the missed ones and still runs the on-time tick.
    let fired = fired_after_downtime(
        CatchUp::None,
        Overlap::Skip,
        "2026-11-26T09:00:00Z",
        "2026-11-26T12:00:10Z",
    )
    .await;
    assert_eq!(fired, [("12:00".to_string(), false)]);
}
