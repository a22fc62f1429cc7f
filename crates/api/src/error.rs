//! Gust's own error body, for every answer of the admin address but the Lambda API's (which
//! has Lambda's shape, [`crate::lambda`]) and for the public gateway: a stable `code` to act
//! on, a `message` for people, and the `request_id` to find the request in the log. The codes
//! are listed in `docs/errors.md`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error":{"code","message","request_id"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`SecretNotFound`, `OperatorTokenRequired`, ...): what a
    /// client matches on. Listed in `docs/errors.md`.
    pub code: String,
    /// For people; its wording may change.
    pub message: String,
    /// The request's id, as logged by Gust.
    pub request_id: String,
}
