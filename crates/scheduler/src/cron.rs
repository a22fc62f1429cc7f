//! Cron fields: our own parser (for exact error messages and the two
//! dialects), translated into a 7-field pattern that `croner` evaluates.
//!
//! `croner` only ever sees patterns we generated: every field is either `*`
//! or an explicit, sorted list of numbers plus the special items `L`, `LW`,
//! `nW`, `d#k` and `d#L`, with Sunday = 0 in the day-of-week field. Our parser
//! owns the dialect differences (Unix day-of-week 0-7 vs EventBridge 1-7,
//! `?`, `a/step`, names, the EventBridge year field) and the validation, so
//! `croner`'s own lenient or differing rules never leak through.

use std::collections::BTreeSet;

use croner::parser::{CronParser, Seconds, Year};

use crate::error::ScheduleError;

/// Which cron syntax an expression is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Unix / Vixie cron: 5 fields, or 6 with seconds first. Day-of-week
    /// 0-7, where 0 and 7 are Sunday.
    Unix,
    /// AWS EventBridge `cron(...)`: minutes hours day-of-month month
    /// day-of-week year. Day-of-week 1-7 = SUN-SAT. Exactly one of
    /// day-of-month and day-of-week is `?`.
    EventBridge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    DayOfMonth,
    Month,
    DayOfWeek,
}

#[derive(Debug, Clone, Copy)]
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    kind: Kind,
}

const SECONDS: FieldSpec = FieldSpec {
    name: "seconds",
    min: 0,
    max: 59,
    kind: Kind::Plain,
};
const MINUTES: FieldSpec = FieldSpec {
    name: "minutes",
    min: 0,
    max: 59,
    kind: Kind::Plain,
};
const HOURS: FieldSpec = FieldSpec {
    name: "hours",
    min: 0,
    max: 23,
    kind: Kind::Plain,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    kind: Kind::DayOfMonth,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    kind: Kind::Month,
};
const DAY_OF_WEEK_UNIX: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    kind: Kind::DayOfWeek,
};
const DAY_OF_WEEK_EVENTBRIDGE: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 1,
    max: 7,
    kind: Kind::DayOfWeek,
};
/// EventBridge accepts years 1970-2199.
const YEAR: FieldSpec = FieldSpec {
    name: "year",
    min: 1970,
    max: 2199,
    kind: Kind::Plain,
};

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The most days each month can have (February: 29, in leap years).
const MAX_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

pub(crate) const UNIX_FIELDS: &str =
    "5 fields (minutes hours day-of-month month day-of-week) or 6 (seconds minutes hours day-of-month month day-of-week)";
pub(crate) const EVENTBRIDGE_FIELDS: &str = "6 fields (minutes hours day-of-month month day-of-week year)";

/// One parsed field.
#[derive(Debug, Default)]
struct Field {
    /// Plain values, in `croner`'s numbering (day-of-week: Sunday = 0).
    values: BTreeSet<u32>,
    /// Special items for `croner`: `L`, `LW`, `15W`, `1#2`, `5#L`.
    specials: Vec<String>,
    /// The field is exactly `*` or `?`: no restriction.
    star: bool,
}

impl Field {
    fn to_croner(&self) -> String {
        if self.star {
            return "*".to_string();
        }
        self.values
            .iter()
            .map(u32::to_string)
            .chain(self.specials.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A validated cron expression, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronExpr {
    /// The fields as written, upper-cased, for display.
    pub fields: Vec<String>,
    /// The evaluator, fed the pattern we generated.
    pub cron: croner::Cron,
}

/// Parses the fields of a cron expression. `fields` are already split on
/// whitespace; `expr` is the whole expression, for error messages.
pub(crate) fn parse(dialect: Dialect, expr: &str, fields: &[&str]) -> Result<CronExpr, ScheduleError> {
    // Errors quote the fields as written; names and letters match in any case.
    let upper: Vec<String> = fields.iter().map(|f| f.to_ascii_uppercase()).collect();
    let (specs, texts): (Vec<FieldSpec>, Vec<&str>) = match (dialect, fields.len()) {
        (Dialect::Unix, 5) => (
            vec![MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK_UNIX],
            fields.to_vec(),
        ),
        (Dialect::Unix, 6) => (
            vec![SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK_UNIX],
            fields.to_vec(),
        ),
        (Dialect::EventBridge, 6) => (
            vec![MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK_EVENTBRIDGE, YEAR],
            fields.to_vec(),
        ),
        (Dialect::Unix, got) => {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_string(),
                expected: UNIX_FIELDS,
                got,
            })
        }
        (Dialect::EventBridge, got) => {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_string(),
                expected: EVENTBRIDGE_FIELDS,
                got,
            })
        }
    };

    let mut parsed = Vec::with_capacity(specs.len());
    for (spec, text) in specs.iter().zip(&texts) {
        parsed.push(parse_field(dialect, spec, text)?);
    }

    // Name the fields by position; seconds and year may be absent.
    let offset = usize::from(dialect == Dialect::Unix && texts.len() == 6);
    let seconds = if offset == 1 {
        parsed[0].to_croner()
    } else {
        "0".to_string()
    };
    let minutes = &parsed[offset];
    let hours = &parsed[offset + 1];
    let dom = &parsed[offset + 2];
    let month = &parsed[offset + 3];
    let dow = &parsed[offset + 4];
    let year = match dialect {
        Dialect::EventBridge => parsed[5].to_croner(),
        Dialect::Unix => "*".to_string(),
    };
    let dom_text = texts[offset + 2];
    let dow_text = texts[offset + 4];
    let month_text = texts[offset + 3];

    // How day-of-month and day-of-week combine.
    let and_days = match dialect {
        Dialect::EventBridge => {
            match (dom_text == "?", dow_text == "?") {
                (true, false) | (false, true) => {}
                (true, true) => {
                    return Err(ScheduleError::invalid(
                        expr,
                        "day-of-month and day-of-week cannot both be ?; set one of them",
                    ))
                }
                (false, false) => {
                    return Err(ScheduleError::invalid(
                        expr,
                        "day-of-month and day-of-week cannot both be set; use ? in one of them",
                    ))
                }
            }
            true
        }
        // Vixie cron: when either field starts with `*` the day must match
        // both; when both are restricted, either one is enough.
        Dialect::Unix => dom_text.starts_with(['*', '?']) || dow_text.starts_with(['*', '?']),
    };

    // A plain day-of-month that no selected month has never fires:
    // `0 0 30 2 *`. Reject it rather than searching for it forever.
    if !dom.star && dom.specials.is_empty() && (dow.star || and_days) {
        let months: Vec<u32> = if month.star {
            (1..=12).collect()
        } else {
            month.values.iter().copied().collect()
        };
        let possible = dom
            .values
            .iter()
            .any(|&d| months.iter().any(|&m| d <= MAX_DAYS[(m - 1) as usize]));
        if !possible {
            return Err(ScheduleError::field(
                DAY_OF_MONTH.name,
                dom_text,
                format!("never occurs in month {month_text}"),
            ));
        }
    }

    let dow_croner = if and_days && !dom.star && !dow.star {
        format!("+{}", dow.to_croner())
    } else {
        dow.to_croner()
    };
    let pattern = format!(
        "{seconds} {} {} {} {} {dow_croner} {year}",
        minutes.to_croner(),
        hours.to_croner(),
        dom.to_croner(),
        month.to_croner(),
    );
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .build()
        .parse(&pattern)
        .map_err(|e| ScheduleError::invalid(expr, format!("not supported ({e})")))?;

    Ok(CronExpr { fields: upper, cron })
}

fn parse_field(dialect: Dialect, spec: &FieldSpec, text: &str) -> Result<Field, ScheduleError> {
    let day_field = matches!(spec.kind, Kind::DayOfMonth | Kind::DayOfWeek);
    if text == "*" || (text == "?" && day_field) {
        return Ok(Field {
            star: true,
            ..Field::default()
        });
    }
    let mut field = Field::default();
    // Values in the dialect's own numbering, mapped to croner's at the end.
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(ScheduleError::field(spec.name, text, "empty list item"));
        }
        if item.contains('?') {
            let reason = if day_field {
                "? must stand alone"
            } else {
                "? is only allowed in day-of-month and day-of-week"
            };
            return Err(ScheduleError::field(spec.name, item, reason));
        }
        if !item.contains('/') && parse_special(dialect, spec, item, &mut field, &mut values)? {
            continue;
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(parse_step(spec, item, step)?)),
            None => (item, None),
        };
        let (start, end) = if base == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let a = parse_value(dialect, spec, item, a, false)?;
            let b = parse_value(dialect, spec, item, b, true)?;
            if a > b {
                return Err(ScheduleError::field(spec.name, item, "range start is after its end"));
            }
            (a, b)
        } else {
            let a = parse_value(dialect, spec, item, base, false)?;
            // `a/step` runs from a to the end of the field's range.
            (a, if step.is_some() { spec.max } else { a })
        };
        values.extend((start..=end).step_by(step.unwrap_or(1) as usize));
    }
    field.values = values.into_iter().map(|v| to_croner_value(dialect, spec, v)).collect();
    Ok(field)
}

/// Handles `L`, `LW`, `nW` (day-of-month) and `nL`, `d#k`, EventBridge `L`
/// (day-of-week). Returns whether `item` was one of them.
fn parse_special(
    dialect: Dialect,
    spec: &FieldSpec,
    item: &str,
    field: &mut Field,
    values: &mut BTreeSet<u32>,
) -> Result<bool, ScheduleError> {
    match spec.kind {
        Kind::DayOfMonth => {
            if !item.contains(['L', 'W', 'l', 'w']) {
                return Ok(false);
            }
            if item.eq_ignore_ascii_case("L") || item.eq_ignore_ascii_case("LW") {
                field.specials.push(item.to_ascii_uppercase());
                return Ok(true);
            }
            let Some(day) = item.strip_suffix(['W', 'w']).filter(|d| is_number(d)) else {
                return Err(ScheduleError::field(
                    spec.name,
                    item,
                    "unsupported; use L (last day), LW (last weekday) or nW (weekday nearest day n, e.g. 15W)",
                ));
            };
            let day = parse_value(dialect, spec, item, day, false)?;
            field.specials.push(format!("{day}W"));
            Ok(true)
        }
        Kind::DayOfWeek => {
            if let Some((day, nth)) = item.split_once('#') {
                if day.contains(['-', '*']) {
                    return Err(ScheduleError::field(
                        spec.name,
                        item,
                        "# takes a single day (e.g. MON#2, the second Monday)",
                    ));
                }
                let day = parse_value(dialect, spec, item, day, false)?;
                let nth = match nth.parse::<u32>() {
                    Ok(n @ 1..=5) if is_number(nth) => n,
                    _ => {
                        return Err(ScheduleError::field(
                            spec.name,
                            item,
                            "the occurrence after # must be 1-5",
                        ))
                    }
                };
                let day = to_croner_value(dialect, spec, day);
                field.specials.push(format!("{day}#{nth}"));
                return Ok(true);
            }
            if item.eq_ignore_ascii_case("L") {
                return match dialect {
                    // EventBridge: L alone is the last day of the week.
                    Dialect::EventBridge => {
                        values.insert(7);
                        Ok(true)
                    }
                    Dialect::Unix => Err(ScheduleError::field(
                        spec.name,
                        item,
                        "use nL for the last given weekday of the month (e.g. 5L, the last Friday)",
                    )),
                };
            }
            if let Some(day) = item.strip_suffix(['L', 'l']) {
                let day = parse_value(dialect, spec, item, day, false)?;
                let day = to_croner_value(dialect, spec, day);
                field.specials.push(format!("{day}#L"));
                return Ok(true);
            }
            Ok(false)
        }
        Kind::Plain | Kind::Month => Ok(false),
    }
}

fn parse_step(spec: &FieldSpec, item: &str, step: &str) -> Result<u32, ScheduleError> {
    match step.parse::<u32>() {
        Ok(n) if n > 0 && is_number(step) => Ok(n),
        _ => Err(ScheduleError::field(
            spec.name,
            item,
            "the step must be a positive integer",
        )),
    }
}

/// Parses one number or name in the dialect's own numbering. `range_end`:
/// the token ends a range, where Unix `SUN` means 7 (`FRI-SUN`).
fn parse_value(
    dialect: Dialect,
    spec: &FieldSpec,
    item: &str,
    token: &str,
    range_end: bool,
) -> Result<u32, ScheduleError> {
    if is_number(token) {
        return match token.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ if token == item => Err(ScheduleError::field(
                spec.name,
                item,
                format!("out of range {}-{}", spec.min, spec.max),
            )),
            _ => Err(ScheduleError::field(
                spec.name,
                item,
                format!("{token} is out of range {}-{}", spec.min, spec.max),
            )),
        };
    }
    match spec.kind {
        Kind::Month => MONTH_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(token))
            .map(|i| i as u32 + 1)
            .ok_or_else(|| ScheduleError::field(spec.name, item, "unknown month")),
        Kind::DayOfWeek => {
            let i = DAY_NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(token))
                .ok_or_else(|| ScheduleError::field(spec.name, item, "unknown day"))? as u32;
            Ok(match dialect {
                Dialect::Unix if i == 0 && range_end => 7,
                Dialect::Unix => i,
                Dialect::EventBridge => i + 1,
            })
        }
        Kind::Plain | Kind::DayOfMonth => {
            let reason = if token.is_empty() {
                format!("missing number (expected {}-{})", spec.min, spec.max)
            } else if token == item {
                format!("not a number (expected {}-{})", spec.min, spec.max)
            } else {
                format!("{token} is not a number (expected {}-{})", spec.min, spec.max)
            };
            Err(ScheduleError::field(spec.name, item, reason))
        }
    }
}

/// Maps a day-of-week to croner's numbering (Sunday = 0); other fields are
/// unchanged.
fn to_croner_value(dialect: Dialect, spec: &FieldSpec, v: u32) -> u32 {
    match (spec.kind, dialect) {
        (Kind::DayOfWeek, Dialect::Unix) => v % 7,
        (Kind::DayOfWeek, Dialect::EventBridge) => v - 1,
        _ => v,
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(dialect: Dialect, expr: &str) -> String {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        parse(dialect, expr, &fields).unwrap().cron.pattern.to_string()
    }

    #[test]
    fn unix_patterns_translate_to_explicit_lists() {
        assert_eq!(
            pattern(Dialect::Unix, "*/15 9-17 * * MON-FRI"),
            "0 0,15,30,45 9,10,11,12,13,14,15,16,17 * * 1,2,3,4,5 *"
        );
        // 7 is Sunday, and SUN at the end of a range is 7.
        assert_eq!(pattern(Dialect::Unix, "0 0 * * 7"), "0 0 0 * * 0 *");
        assert_eq!(pattern(Dialect::Unix, "0 0 * * FRI-SUN"), "0 0 0 * * 0,5,6 *");
        // Seconds first.
        assert_eq!(pattern(Dialect::Unix, "30 0 0 * * *"), "30 0 0 * * * *");
        // `*/n` in day-of-month with a restricted day-of-week: both must match.
        assert_eq!(pattern(Dialect::Unix, "0 0 */10 * MON"), "0 0 0 1,11,21,31 * +1 *");
        // Both restricted: either matches (Vixie cron).
        assert_eq!(pattern(Dialect::Unix, "0 0 1 * MON"), "0 0 0 1 * 1 *");
        assert_eq!(pattern(Dialect::Unix, "0 0 L,15W * 5L"), "0 0 0 L,15W * 5#L *");
        assert_eq!(pattern(Dialect::Unix, "0 0 lw * fril"), "0 0 0 LW * 5#L *");
    }

    #[test]
    fn eventbridge_patterns_translate_day_of_week_and_year() {
        assert_eq!(
            pattern(Dialect::EventBridge, "0/20 * ? * MON-FRI *"),
            "0 0,20,40 * * * 1,2,3,4,5 *"
        );
        // 1 = SUN, 7 = SAT; 2#1 = first Monday; 6L = last Friday; L = SAT.
        assert_eq!(pattern(Dialect::EventBridge, "0 0 ? * 1,7 *"), "0 0 0 * * 0,6 *");
        assert_eq!(pattern(Dialect::EventBridge, "0 0 ? * 2#1 *"), "0 0 0 * * 1#1 *");
        assert_eq!(pattern(Dialect::EventBridge, "0 0 ? * 6L *"), "0 0 0 * * 5#L *");
        assert_eq!(pattern(Dialect::EventBridge, "0 0 ? * L *"), "0 0 0 * * 6 *");
        assert_eq!(
            pattern(Dialect::EventBridge, "0 0 1 * ? 2026-2028"),
            "0 0 0 1 * * 2026,2027,2028"
        );
    }
}
