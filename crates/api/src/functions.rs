//! The deployed functions (`GET /gust/v1/functions`) and the health check (`GET /healthz`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /gust/v1/functions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionList {
    pub functions: Vec<Function>,
}

/// One deployed function and its instances now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Function {
    pub name: String,
    /// `nodejs20.x`, `python3.11`, `provided.al2023`, ...
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub instances: Instances,
}

/// A function's instance pool at the moment of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Instances {
    /// Instances started (busy and idle).
    pub total: u32,
    /// Started and waiting for an invocation.
    pub idle: u32,
    /// Invocations queued for an instance.
    pub waiting: u32,
}

/// `GET /healthz`: `{"status":"ok"}` while the admin address answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}
