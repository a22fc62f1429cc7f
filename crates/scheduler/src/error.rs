//! The one error type of this crate.

/// Why a schedule expression or its time zone was rejected.
///
/// Every message names the offending part of the input, so it can be shown to
/// the person who wrote the manifest as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The expression was empty or only whitespace.
    #[error("empty schedule expression")]
    Empty,

    /// The time zone name was empty.
    #[error("empty time zone (use an IANA name such as Europe/Berlin, or UTC)")]
    EmptyTimeZone,

    /// The time zone is not an IANA zone name known to the tz database.
    #[error("unknown time zone {0}")]
    UnknownTimeZone(String),

    /// A cron expression had the wrong number of fields.
    #[error("{expr} needs {expected}, got {got}")]
    FieldCount {
        /// The whole expression as written.
        expr: String,
        /// The fields that were expected, in order.
        expected: &'static str,
        /// How many fields were found.
        got: usize,
    },

    /// One field of a cron expression is wrong, e.g.
    /// `day-of-week MON-FRO: unknown day`.
    #[error("{field} {text}: {reason}")]
    Field {
        /// The field's name: `seconds`, `minutes`, `hours`, `day-of-month`,
        /// `month`, `day-of-week` or `year`.
        field: &'static str,
        /// The offending part of the field (one comma-separated item, or the
        /// whole field).
        text: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The expression as a whole is wrong, e.g.
    /// `rate(0 minutes): the value must be a positive integer`.
    #[error("{expr}: {reason}")]
    Invalid {
        /// The expression (or the part of it) that is wrong.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ScheduleError {
    pub(crate) fn field(field: &'static str, text: &str, reason: impl Into<String>) -> Self {
        ScheduleError::Field {
            field,
            text: text.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(expr: &str, reason: impl Into<String>) -> Self {
        ScheduleError::Invalid {
            expr: expr.to_string(),
            reason: reason.into(),
        }
    }
}
