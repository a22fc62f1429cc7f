//! What Gust recorded about invocations: records (`/gust/v1/invocations`), function output
//! (`/gust/v1/logs`), spans (`/gust/v1/traces/{id}`) and usage for the bill
//! (`/gust/v1/usage`). Read by `gust invocations`, `gust logs`, `gust trace` and `gust cost`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// `GET /gust/v1/invocations`: the newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvocationList {
    pub invocations: Vec<Invocation>,
}

/// One invocation's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Invocation {
    pub request_id: String,
    pub function: String,
    /// `http`, `event`, `schedule`, `direct`, `async`, `authorizer` (a gateway Lambda authorizer).
    pub trigger: String,
    /// Epoch milliseconds when the invocation was accepted.
    pub start_ms: i64,
    /// Time in the function, excluding any wait for an instance.
    pub duration_ms: f64,
    /// Duration rounded up to the millisecond, as Lambda bills.
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub cold_start: bool,
    /// The cold start's init time; `null` for a warm start.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub init_ms: Option<f64>,
    /// `success`, `error` (the handler reported one), `timeout`, `crash`, `out_of_memory`,
    /// `init_error`, `too_large`, `platform_error`.
    pub outcome: String,
    /// The error's type when there was one (`Runtime.ExitError`, the handler's own, ...).
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub error_type: Option<String>,
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub trace_id: Option<String>,
}

/// `GET /gust/v1/logs`: oldest first; page with `after` set to the last `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLines {
    pub lines: Vec<LogLine>,
}

/// A line a function printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Increasing; the cursor for `after`.
    pub id: i64,
    /// Epoch milliseconds.
    pub ts_ms: i64,
    pub function: String,
    /// The invocation that printed it; `null` outside one (init, between invocations).
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

/// `GET /gust/v1/traces/{trace_id}`: every span recorded for the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
}

/// One span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// `null` for a root span.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub parent_id: Option<String>,
    pub name: String,
    /// `server`, `internal`, `consumer`, `producer`.
    pub kind: String,
    /// Epoch microseconds.
    pub start_us: i64,
    pub duration_us: u64,
    pub error: bool,
    pub attributes: BTreeMap<String, String>,
}

/// `GET /gust/v1/usage`: per function, since `since_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// Epoch milliseconds the figures start at (0: everything kept).
    pub since_ms: i64,
    pub usage: Vec<FunctionUsage>,
}

/// One function's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionUsage {
    pub function: String,
    pub requests: u64,
    /// Sum of billed milliseconds times memory in MB (what GB-seconds are computed from).
    pub billed_mb_ms: u64,
    pub cold_starts: u64,
    pub errors: u64,
}
