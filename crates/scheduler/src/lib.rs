//! Gust's scheduler: when schedules fire.
//!
//! This crate owns schedule expressions (parsing, validation with messages
//! that name the offending part, normalized display), time zones, the
//! computation of the next fire time, and a [`Clock`] abstraction that tests
//! can move by hand. Later it also owns the firing loop, with leases so that
//! one node fires each tick. It is pure computation over time: it must not
//! depend on HTTP, the runtime or the store (the firing loop will reach them
//! through traits the binary wires up).
//!
//! # Expressions
//!
//! | form | example | notes |
//! |---|---|---|
//! | Unix cron, 5 fields | `*/5 * * * *` | minutes hours day-of-month month day-of-week; day-of-week 0-7 (0 and 7 = SUN) |
//! | Unix cron, 6 fields | `30 0 9 * * MON-FRI` | seconds first |
//! | macros | `@yearly @annually @monthly @weekly @daily @midnight @hourly` | `@weekly` is Sunday 00:00 |
//! | EventBridge cron | `cron(0/2 * ? * MON-FRI *)` | minutes hours day-of-month month day-of-week year; day-of-week 1-7 = SUN-SAT; exactly one of day-of-month and day-of-week is `?`; year 1970-2199 |
//! | rate | `rate(1 minute)`, `rate(5 minutes)`, `rate(1 hour)`, `rate(2 days)` | singular for 1, plural above; a positive integer |
//! | one-shot | `at(2026-12-01T09:00:00)` | a local date-time in the schedule's zone; never fires again once past |
//!
//! Cron fields take numbers, `*`, lists `a,b`, ranges `a-b`, steps `*/n`,
//! `a-b/n` and `a/n` (from `a` to the end of the range), and the names
//! `JAN`-`DEC` and `SUN`-`SAT` (any case). Day-of-month also takes `L` (last
//! day), `LW` (last weekday) and `nW` (the weekday nearest day `n`, within the
//! month); day-of-week takes `dL` (the last such day of the month: the last
//! Friday is `5L` or `FRIL` in Unix cron, `6L` in EventBridge), `d#k` (the
//! `k`-th such day, 1-5: `MON#1`) and, in EventBridge, `L` alone (Saturday,
//! the last day of the week). `?` means `*` in Unix cron. In Unix
//! cron, when both day fields are restricted a day matching either fires;
//! when either starts with `*` the day must match both (Vixie cron's rule).
//! A day-of-month that no selected month has (`0 0 30 2 *`) is rejected.
//!
//! # Time zones and daylight saving
//!
//! Cron and `at()` schedules are wall-clock times in the schedule's IANA time
//! zone. Each matching wall-clock time fires exactly once:
//!
//! - **Spring forward** (a local time that does not exist): it fires once, at
//!   the first valid instant after the gap. `30 2 * * *` in Europe/Berlin on
//!   2026-03-29 fires at 03:00 CEST (01:00 UTC). Times that fall in the gap
//!   and times at the end of the gap collapse into that one fire, so an
//!   hourly `0 * * * *` fires at 01:00 CET then 03:00 CEST, while `30 * * * *`
//!   fires at 01:30 CET, 03:00 CEST (for the missing 02:30) and 03:30 CEST.
//! - **Fall back** (a local time that occurs twice): it fires once, at the
//!   first occurrence. `30 2 * * *` in Europe/Berlin on 2026-10-25 fires at
//!   02:30 CEST (00:30 UTC) only; an hourly `0 * * * *` fires at 02:00 CEST
//!   and next at 03:00 CET, two hours later, not also at 02:00 CET.
//!
//! This holds for every cron schedule, with fixed or wildcard fields alike.
//! (`croner`, which evaluates the fields, differs for wildcard hours and
//! minutes: it skips gap times and fires in both passes of a repeated hour.
//! This crate therefore hands `croner` only naive wall-clock times and does
//! the mapping to instants itself.) A schedule that must tick at even
//! intervals through a change should use `rate()` or the `UTC` zone.
//!
//! `rate()` schedules are fixed intervals of absolute time, unaffected by
//! daylight saving or the zone. They count from the Unix epoch unless
//! [`Schedule::anchored_at`] sets another start, so `rate(5 minutes)` fires
//! at :00, :05, … UTC and every node computes the same instants.
//!
//! # Time in tests
//!
//! Code that waits for a fire takes a [`Clock`]: [`SystemClock`] in
//! production, [`ManualClock`] in tests, which wakes sleepers as soon as the
//! test moves it past their instant.

mod clock;
mod cron;
mod error;
mod schedule;
mod zone;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use error::ScheduleError;
pub use schedule::{Schedule, ScheduleKind};

mod runner;
pub use runner::{spawn_runner, Firer, ON_TIME};
