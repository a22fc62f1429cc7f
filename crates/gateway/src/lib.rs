//! # gust-gateway: Gust's HTTP faces
//!
//! Owns the public API gateway (route table, API Gateway 1.0/2.0 payload mapping, body and
//! header limits, CORS, Gust's JSON error responses) and the admin address: the Lambda Invoke
//! API (SigV4, [`sigv4`]), the platform API functions call through `GUST_API`, and the
//! operator API, each with its own credential. Errors become HTTP responses in one place:
//! [`ErrorCode`] is the table of codes with their statuses, and [`ApiError`] maps the other
//! crates' domain errors (which know nothing of HTTP) to answers.
//!
//! Must not depend on: the binary's configuration or CLI. It receives an [`gust_runtime::Invoker`]
//! and a [`gust_store::KvStore`] and never starts processes or opens databases itself.

mod admin;
pub mod apikeys;
pub mod auth;
mod body;
pub mod codes;
mod error;
mod gateway;
mod header_case;
pub mod lambda_auth;
mod payload;
mod publish;
pub mod quotas;
pub mod ratelimit;
pub mod routes;
mod server;
pub mod sigv4;
pub mod upstream;

pub use admin::{
    AccessKeys, Admin, DeployApi, DeployApiError, HostPolicy, OperatorToken, ScheduleRunError, SchedulesApi,
    SecretsApi, StatusInfo,
};
pub use apikeys::load_api_keys;
pub use auth::{
    generate_api_key, hash_api_key, ApiKeyAuthorizer, ApiKeyHash, ApiKeyIdentity, ApiKeyPolicy, ApiKeyStore, AuthError,
    AuthFailure, JwtAlgorithm, JwtAuthorizer, JwtConfig, JwtConfigError, JwtIdentity, JwtKeys, MemoryApiKeyStore,
    API_KEY_HEADER, DEFAULT_LEEWAY, MAX_API_KEY_BYTES, MAX_TOKEN_BYTES, MIN_HMAC_SECRET_BYTES, MIN_RSA_BITS,
};
pub use codes::{Blame, ErrorCode};
pub use error::{ApiError, Body};
pub use gateway::{Gateway, GatewayAuth, DEFAULT_MAX_BODY_BYTES};
pub use header_case::ClientCase;
pub use payload::{build_event, parse_response, HttpAnswer, RequestParts, ResponseError};
pub use ratelimit::{Decision, QuotaCounter, QuotaDecision, RateLimit, RateLimiter, NO_REFILL_RETRY_AFTER};
pub use server::{serve, HttpHandler, ServerLimits};

/// The account id in ARNs and request contexts (Gust has no AWS account).
pub const ACCOUNT_ID: &str = "000000000000";
