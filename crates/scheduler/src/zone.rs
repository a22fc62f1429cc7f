//! Local wall-clock time to instant, with the daylight-saving rule of this
//! crate (see the crate docs): a local time in a spring-forward gap maps to
//! the first instant after the gap; a local time that occurs twice maps to
//! its first occurrence.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant a local wall-clock time in `tz` fires at.
pub(crate) fn resolve(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.to_utc()),
        LocalResult::Ambiguous(a, b) => Some(a.to_utc().min(b.to_utc())),
        LocalResult::None => gap_end(tz, local),
    }
}

/// The first instant whose local time is later than `local`, which lies in a
/// gap: that is the instant the clocks jumped, the first valid instant after
/// the gap (02:30 on a spring-forward day in Europe/Berlin gives 03:00 local).
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // Offsets lie within +-16 h, so `local` read as UTC +-16 h brackets the
    // transition: at `lo` the local time is before `local`, at `hi` after.
    const BRACKET: i64 = 16 * 3600;
    let naive = local.and_utc().timestamp();
    let mut lo = naive - BRACKET;
    let mut hi = naive + BRACKET;
    let later = |secs: i64| -> Option<bool> {
        let instant = DateTime::from_timestamp(secs, 0)?;
        Some(instant.with_timezone(&tz).naive_local() > local)
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if later(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn unique_local_times_map_directly() {
        let t = resolve(chrono_tz::Europe::Berlin, local(2026, 6, 1, 12, 0));
        assert_eq!(t, Some(utc("2026-06-01T10:00:00Z")));
    }

    #[test]
    fn gap_times_map_to_the_end_of_the_gap() {
        let berlin = chrono_tz::Europe::Berlin;
        for minute in [0, 1, 30, 59] {
            let t = resolve(berlin, local(2026, 3, 29, 2, minute));
            assert_eq!(t, Some(utc("2026-03-29T01:00:00Z")), "02:{minute:02}");
        }
        let ny = chrono_tz::America::New_York;
        let t = resolve(ny, local(2026, 3, 8, 2, 30));
        assert_eq!(t, Some(utc("2026-03-08T07:00:00Z")));
        // A half-hour gap: Australia/Lord_Howe springs from 02:00 to 02:30.
        let lh = chrono_tz::Australia::Lord_Howe;
        let t = resolve(lh, local(2026, 10, 4, 2, 10));
        assert_eq!(t, Some(utc("2026-10-03T15:30:00Z")));
    }

    #[test]
    fn repeated_times_map_to_the_first_occurrence() {
        let berlin = chrono_tz::Europe::Berlin;
        let t = resolve(berlin, local(2026, 10, 25, 2, 30));
        assert_eq!(t, Some(utc("2026-10-25T00:30:00Z")));
        let ny = chrono_tz::America::New_York;
        let t = resolve(ny, local(2026, 11, 1, 1, 30));
        assert_eq!(t, Some(utc("2026-11-01T05:30:00Z")));
    }
}
