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

/// A function as Lambda's `GetFunctionConfiguration` describes it (and each entry of
/// `ListFunctions`, and `Configuration` of `GetFunction`). Gust fills what it has: there are
/// no versions (always `$LATEST`), no IAM role, no package to download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub function_arn: String,
    /// The runtime as written in the manifest (`nodejs20.x`, `python3.12`, `provided.al2023`).
    pub runtime: String,
    /// `arn:aws:iam::<account>:role/gust` (Gust has no IAM roles; SDKs expect the field).
    pub role: String,
    pub handler: String,
    /// Bytes of the function's code directory.
    pub code_size: u64,
    pub description: String,
    /// Seconds.
    pub timeout: u64,
    /// MB.
    pub memory_size: u32,
    /// When this Gust deployed the function (`2026-12-07T15:29:25.000+0000`).
    pub last_modified: String,
    /// Base64 SHA-256 of the function's name and settings (Gust does not hash the code).
    pub code_sha256: String,
    /// Always `$LATEST`.
    pub version: String,
    pub environment: FunctionEnvironment,
    pub tracing_config: TracingConfig,
    /// Always `Active`.
    pub state: String,
    /// Always `Successful`.
    pub last_update_status: String,
    /// Always `Zip`.
    pub package_type: String,
    /// The host's architecture (`x86_64` or `arm64`).
    pub architectures: Vec<String>,
    pub ephemeral_storage: EphemeralStorage,
}

/// The function's environment variables as the manifest sets them (granted secrets are not
/// listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionEnvironment {
    pub variables: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfig {
    /// `PassThrough`: Gust joins the caller's trace context and starts one when there is none.
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    /// MB of `/tmp`.
    pub size: u32,
}

/// Lambda's `ListFunctions` answer: every function on one page (`NextMarker` is never set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LambdaFunctionList {
    pub functions: Vec<FunctionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// Lambda's `GetFunction` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LambdaFunction {
    pub configuration: FunctionConfiguration,
    pub code: FunctionCodeLocation,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// Where the code is: for Gust a `file://` URL of the code directory on the Gust host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionCodeLocation {
    /// `FileSystem`.
    pub repository_type: String,
    pub location: String,
}

/// Lambda's `GetAccountSettings` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AccountSettings {
    pub account_limit: AccountLimit,
    pub account_usage: AccountUsage,
}

/// Gust's limits in Lambda's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AccountLimit {
    /// Bytes; Gust sets no limit on code storage and answers Lambda's default (75 GB).
    pub total_code_size: u64,
    /// Bytes (Lambda's 250 MB; Gust does not enforce it).
    pub code_size_unzipped: u64,
    /// Bytes (Lambda's 50 MB; Gust does not enforce it).
    pub code_size_zipped: u64,
    /// The sum of the functions' `max_instances`.
    pub concurrent_executions: u64,
    /// The same: Gust reserves no concurrency.
    pub unreserved_concurrent_executions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AccountUsage {
    /// Bytes of every function's code directory.
    pub total_code_size: u64,
    pub function_count: u64,
}
