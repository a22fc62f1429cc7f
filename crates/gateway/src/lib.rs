//! # gust-gateway: Gust's HTTP faces
//!
//! Owns the public API gateway (route table, API Gateway 1.0/2.0 payload mapping, body and
//! header limits, CORS, Gust's JSON error responses) and the admin address (the Lambda Invoke
//! API and the platform API functions call through `GUST_API`). Errors become HTTP responses
//! in one place ([`ApiError`]).
//!
//! Must not depend on: the binary's configuration or CLI. It receives an [`gust_runtime::Invoker`]
//! and a [`gust_store::KvStore`] and never starts processes or opens databases itself.

mod admin;
mod error;
mod gateway;
mod payload;
mod publish;
pub mod routes;
mod server;

pub use admin::{Admin, SchedulesApi};
pub use error::{ApiError, Body};
pub use gateway::{Gateway, DEFAULT_MAX_BODY_BYTES};
pub use payload::{build_event, parse_response, HttpAnswer, RequestParts, ResponseError};
pub use server::{serve, HttpHandler, ServerLimits};

/// The account id in ARNs and request contexts (Gust has no AWS account).
pub const ACCOUNT_ID: &str = "000000000000";
