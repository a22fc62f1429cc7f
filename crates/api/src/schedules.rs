//! Schedules as the operator sees them (`GET /gust/v1/schedules`) and a run outside the ticks
//! (`POST /gust/v1/schedules/{name}/run`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /gust/v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// Gust's clock at the answer, RFC 3339 (what `next` is counted from).
    pub now: String,
    pub schedules: Vec<Schedule>,
}

/// One schedule of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    pub name: String,
    pub function: String,
    /// As written in the manifest (`rate(5 minutes)`, `cron(...)`, `*/5 * * * *`, ...).
    pub expression: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    pub enabled: bool,
    /// Ticks missed while Gust was down: `none`, `last` or `all(N)` (`docs/schedules.md`).
    pub catch_up: String,
    /// A tick while the previous run is still going: `skip`, `allow` or `queue`.
    pub overlap: String,
    /// The next three fire times, RFC 3339; empty when disabled.
    pub next: Vec<String>,
    /// The last tick fired, RFC 3339; `null` if none yet.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub last_fired: Option<String>,
}

/// `POST /gust/v1/schedules/{name}/run` (202): the run is queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleRun {
    pub schedule: String,
    pub function: String,
    /// The queued event's id.
    pub id: String,
}
