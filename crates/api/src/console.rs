//! What the web console reads besides the records every client reads: the platform's status
//! and what needs attention (`/gust/v1/status`), one function's whole configuration
//! (`/gust/v1/functions/{name}`), time series and totals from the per-minute rollups
//! (`/gust/v1/series`, `/gust/v1/stats`), and the one-time login codes `gust console` prints
//! (`/gust/v1/console/codes`). The console reads nothing the CLI could not: these are operator
//! endpoints like the others.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /gust/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub app: String,
    pub stage: String,
    /// The running deployment's number; `null` where this Gust does not keep versions.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub version: Option<u64>,
    /// When this Gust started (RFC 3339).
    pub started_at: String,
    /// Each protection of the sandbox and whether it is in force (`gust doctor`).
    pub sandbox: Vec<Protection>,
    /// What an operator should look at now; empty when nothing.
    pub attention: Vec<Attention>,
}

/// One protection of the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Protection {
    pub protection: String,
    pub enforced: bool,
    /// How it is enforced, or why it is off.
    pub detail: String,
}

/// Something that needs an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attention {
    /// `dlq` (dead letters waiting), `schedule` (its last run failed), `upstream` (unhealthy),
    /// `source` (a broker source not consuming), `sandbox` (a protection that is off).
    pub kind: String,
    /// The subscription, schedule, upstream or protection.
    pub subject: String,
    pub message: String,
}

/// `GET /gust/v1/functions/{name}`: a function's configuration and where it is wired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDetail {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    /// Instances at most.
    pub max_instances: u32,
    /// Invocations that may wait for an instance when all are busy (past that, 429).
    pub max_queue: u32,
    /// Instances kept warm.
    pub min_instances: u32,
    pub idle_timeout_s: u64,
    /// `default` (the host's) or `none` (only its Runtime API and `GUST_API`).
    pub network: String,
    pub instances: crate::Instances,
    /// Its code revision (a digest of the deployed snapshot); `null` when run in place.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub code_revision: Option<String>,
    /// What calls it.
    pub triggers: Vec<Trigger>,
    /// What it may reach: `publishes: T`, `invokes: F`, `services: S`, `secrets: N`, `aws: ...`.
    pub grants: Vec<String>,
}

/// One way a function is called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trigger {
    /// `http` (a gateway route), `topic` (a subscription to one of Gust's topics), `source`
    /// (a subscription to a broker or a DynamoDB stream), `schedule`, `authorizer`.
    pub kind: String,
    /// The route (`GET /users/{id}`), subscription, or schedule and its expression.
    pub detail: String,
}

/// `GET /gust/v1/series`: one point per step, zero-filled, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// `null`: every function summed.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub function: Option<String>,
    pub step_s: u64,
    pub points: Vec<SeriesPoint>,
}

/// One step of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesPoint {
    /// The step's start, epoch milliseconds.
    pub t_ms: i64,
    pub requests: u64,
    /// Invocations whose outcome was not `success`.
    pub errors: u64,
    pub cold_starts: u64,
    /// Median duration (from a histogram; within about 5%); `null` without requests.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub p50_ms: Option<f64>,
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub p99_ms: Option<f64>,
    /// Billed milliseconds times memory in MB.
    pub billed_mb_ms: u64,
}

/// `GET /gust/v1/stats`: per function since `since_ms`, from the rollups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsReport {
    pub since_ms: i64,
    pub functions: Vec<FunctionStats>,
}

/// One function's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionStats {
    pub function: String,
    pub requests: u64,
    pub errors: u64,
    pub cold_starts: u64,
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub p50_ms: Option<f64>,
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub p99_ms: Option<f64>,
    pub billed_mb_ms: u64,
}

/// `POST /gust/v1/console/codes`: a one-time login link for the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsoleCode {
    pub code: String,
    /// The path to open on the admin address (`/console/login?code=...`).
    pub path: String,
    pub expires_in_s: u64,
}

/// `GET /gust/v1/subscriptions/{name}/series`: a subscription's sampled backlog, one point per
/// step, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacklogSeries {
    pub subscription: String,
    pub step_s: u64,
    pub points: Vec<BacklogPoint>,
}

/// One step of a backlog series: the largest backlog and the oldest age sampled in it (Gust
/// samples once a minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacklogPoint {
    /// The step's start, epoch milliseconds.
    pub t_ms: i64,
    /// Records waiting (a broker source's lag included); `null` where nothing was sampled.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub backlog: Option<u64>,
    /// Age of the oldest waiting record, seconds; `null` when none waited or nothing was sampled.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub oldest_age_s: Option<f64>,
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub dead_letters: Option<u64>,
}
