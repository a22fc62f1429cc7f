//! What can go wrong with an invocation, said without HTTP: the gateway maps these to answers
//! (`gust_gateway::ApiError`), queues decide with [`InvokeError::retryable`] whether to try
//! again.

use crate::crashloop::{BackOff, BACKOFF_ERROR_TYPE};
use std::time::Duration;

fn init_failure(error_type: &str, message: &str, backoff: Option<&BackOff>) -> String {
    match backoff {
        None => format!("failed to initialise: {error_type}: {message}"),
        Some(b) => format!("is {b}; the last init failed with {error_type}: {message}"),
    }
}

/// Who caused a failed invocation (the gateway's error table has the same words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Caller,
    Function,
    Platform,
}

/// An invocation that produced no function answer. A handler that *returned* an error is not
/// one of these: that is a normal [`crate::InvokeOutput`] with `function_error` set.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("function `{0}` not found")]
    FunctionNotFound(String),
    #[error("function `{function}` is at its concurrency limit and its queue is full")]
    TooManyRequests { function: String, retry_after: Duration },
    #[error("function `{function}` timed out after {timeout:?}")]
    Timeout { function: String, timeout: Duration },
    #[error("function `{function}` exited during the invocation ({detail})")]
    Crashed { function: String, detail: String },
    #[error("function `{function}` used more than its {limit_mb} MB memory limit")]
    OutOfMemory { function: String, limit_mb: u32 },
    #[error("function `{function}` {}", init_failure(error_type, message, backoff.as_ref()))]
    InitFailed {
        function: String,
        error_type: String,
        message: String,
        /// Set when no start was tried: the function's inits kept failing and it is in
        /// crash-loop back-off (`crashloop.rs`); `error_type` and `message` are the last init's.
        backoff: Option<BackOff>,
    },
    #[error("function `{function}` returned a response of {size} bytes; the limit is {limit}")]
    ResponseTooLarge {
        function: String,
        size: usize,
        limit: usize,
    },
    #[error("Gust is shutting down")]
    ShuttingDown,
    #[error("platform error: {0}")]
    Platform(String),
}

impl InvokeError {
    pub fn blame(&self) -> Blame {
        match self {
            Self::FunctionNotFound(_) | Self::TooManyRequests { .. } => Blame::Caller,
            Self::Timeout { .. }
            | Self::Crashed { .. }
            | Self::OutOfMemory { .. }
            | Self::InitFailed { .. }
            | Self::ResponseTooLarge { .. } => Blame::Function,
            Self::ShuttingDown | Self::Platform(_) => Blame::Platform,
        }
    }

    /// Whether trying the same invocation again later may succeed. Queues and schedules
    /// dead-letter at once what is not; back-pressure (`TooManyRequests`, `ShuttingDown`) is
    /// retryable and is not even counted as an attempt.
    pub fn retryable(&self) -> bool {
        match self {
            // The deployment the queue was built from has no such function: every attempt
            // would fail the same way until a redeploy, which builds new queues anyway.
            Self::FunctionNotFound(_) => false,
            // The same event gives the same answer: a handler that built more than 6 MB from
            // it will again. (A handler whose answer depends on outside data may not, but
            // Lambda, too, does not retry this.)
            Self::ResponseTooLarge { .. } => false,
            // Load: an instance or the next start of Gust will take it.
            Self::TooManyRequests { .. } | Self::ShuttingDown => true,
            // A slow or crashing dependency, a memory spike, a cold start that timed out or an
            // init that could not reach a service are often transient; Lambda retries them.
            Self::Timeout { .. } | Self::Crashed { .. } | Self::OutOfMemory { .. } | Self::InitFailed { .. } => true,
            // Gust's own failure (a spawn that failed, a full disk) may pass.
            Self::Platform(_) => true,
        }
    }

    /// When trying again may succeed, if Gust knows (a `Retry-After` hint).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            Self::InitFailed { backoff: Some(b), .. } => Some(b.retry_in),
            _ => None,
        }
    }

    /// The stable code shown to clients in `{"error":{"code":...}}` and written in dead
    /// letters. The gateway's table of codes holds the same strings (a test checks it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::FunctionNotFound(_) => "FunctionNotFound",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::Timeout { .. } => "FunctionTimeout",
            Self::Crashed { .. } => "FunctionCrashed",
            Self::OutOfMemory { .. } => "FunctionOutOfMemory",
            Self::InitFailed { .. } => "FunctionInitError",
            Self::ResponseTooLarge { .. } => "FunctionResponseTooLarge",
            Self::ShuttingDown => "ShuttingDown",
            Self::Platform(_) => "PlatformError",
        }
    }

    /// Lambda's `errorType` for the same failure, for Lambda-compatible answers.
    pub fn lambda_error_type(&self) -> &str {
        match self {
            Self::Timeout { .. } => "Sandbox.Timedout",
            Self::Crashed { .. } => "Runtime.ExitError",
            Self::OutOfMemory { .. } => "Runtime.OutOfMemory",
            Self::InitFailed { backoff: Some(_), .. } => BACKOFF_ERROR_TYPE,
            Self::InitFailed { error_type, .. } => error_type,
            Self::ResponseTooLarge { .. } => "Function.ResponseSizeTooLarge",
            _ => "ServiceException",
        }
    }
}

/// A function that cannot be made ready to start (bad code path, missing interpreter).
#[derive(Debug, Clone, thiserror::Error)]
#[error("function `{function}`: {message}")]
pub struct PrepareError {
    pub function: String,
    pub message: String,
}
