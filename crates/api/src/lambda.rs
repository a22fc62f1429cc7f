//! The Lambda Invoke API's bodies other than the function's own answer. They have Lambda's
//! shapes, not Gust's, because the AWS CLI and SDKs read them: an error's kind is in the
//! `x-amzn-ErrorType` header (`ResourceNotFoundException`, `InvalidSignatureException`, ...)
//! and the body carries its message.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A service error (4xx/5xx other than authentication): `{"Type","message"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LambdaError {
    /// `User` for a 4xx (the request is at fault), `Service` for a 5xx.
    #[serde(rename = "Type")]
    pub kind: String,
    pub message: String,
}

/// An authentication refusal (403): `{"message"}`, as AWS answers before the service runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LambdaAuthError {
    pub message: String,
}

/// The body of a 200 with `X-Amz-Function-Error: Unhandled` when the function failed
/// without answering (timeout, crash, out of memory, init failure, answer too large).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    /// `Sandbox.Timedout`, `Runtime.ExitError`, ...
    pub error_type: String,
    pub error_message: String,
}
