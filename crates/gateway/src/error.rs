//! Gust's own error responses: one JSON shape, stable codes, made in one place.
//!
//! An [`ApiError`] is an [`ErrorCode`] (which fixes the status, see [`crate::codes`]) and a
//! message for people. The domain errors of the other crates ([`InvokeError`], [`EventError`],
//! [`PublishError`], [`KvError`], [`BlobError`], [`LogError`]) say what went wrong and know
//! nothing of HTTP; the `From` impls below are the one place they become answers. Storage
//! failures are logged here with their detail and answered with a message that has none.

use crate::codes::ErrorCode;
use gust_events::{EventError, LogError, PublishError};
use gust_runtime::InvokeError;
use gust_store::{BlobError, KvError};
use http::{HeaderValue, Response, StatusCode};
use std::time::Duration;

pub use crate::body::Body;

/// An error Gust itself answers with (not a function's own 4xx/5xx).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Stable, documented, machine-readable; fixes the status.
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for `Retry-After`, sent only for codes that take it (1 when unset).
    pub retry_after_secs: Option<u64>,
    /// A top-level field of API Gateway's own error body (`"message": "Unauthorized"`), sent
    /// beside `error` by the gateway's authorizers so that API Gateway clients read it.
    pub aws_field: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
            aws_field: None,
        }
    }

    /// Adds API Gateway's top-level `key: value` to the body (`error` stays as it is).
    pub fn aws_body(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.aws_field = Some((key, value));
        self
    }

    /// Sets `Retry-After` to `wait`, in whole seconds rounded up, at least 1.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after_secs = Some(wait.as_millis().div_ceil(1000).max(1) as u64);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// `{"error":{"code","message","request_id"}}` (and API Gateway's field, if set)
    pub fn body(&self, request_id: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message, "request_id": request_id }
        });
        if let Some((k, v)) = &self.aws_field {
            body[*k] = v.clone();
        }
        body
    }

    /// The `Retry-After` seconds this answer carries, if its code takes one.
    pub fn retry_after_header(&self) -> Option<u64> {
        self.code.retry_after().then(|| self.retry_after_secs.unwrap_or(1))
    }

    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let mut resp = Response::builder()
            .status(self.status())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(self.body(request_id).to_string()))
            .expect("static response parts are valid");
        if let Some(secs) = self.retry_after_header() {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The code an invocation failure is answered with. Its wire string is the runtime's
/// [`InvokeError::code`] (a test holds them together).
impl From<&InvokeError> for ErrorCode {
    fn from(e: &InvokeError) -> Self {
        match e {
            InvokeError::FunctionNotFound(_) => ErrorCode::FunctionNotFound,
            InvokeError::TooManyRequests { .. } => ErrorCode::TooManyRequests,
            InvokeError::Timeout { .. } => ErrorCode::FunctionTimeout,
            InvokeError::Crashed { .. } => ErrorCode::FunctionCrashed,
            InvokeError::OutOfMemory { .. } => ErrorCode::FunctionOutOfMemory,
            InvokeError::InitFailed { .. } => ErrorCode::FunctionInitError,
            InvokeError::ResponseTooLarge { .. } => ErrorCode::FunctionResponseTooLarge,
            InvokeError::ShuttingDown => ErrorCode::ShuttingDown,
            InvokeError::Platform(_) => ErrorCode::PlatformError,
        }
    }
}

impl From<&InvokeError> for ApiError {
    fn from(e: &InvokeError) -> Self {
        let err = ApiError::new(ErrorCode::from(e), e.to_string());
        // Sent only where the code takes `Retry-After` (a full queue); a function in crash-loop
        // back-off answers 502 as any init failure does, its message saying when the next
        // start is.
        match e.retry_after() {
            Some(wait) => err.retry_after(wait),
            None => err,
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        ApiError::from(&e)
    }
}

impl From<&EventError> for ApiError {
    fn from(e: &EventError) -> Self {
        let code = match e {
            EventError::TooLarge(_) => ErrorCode::EventTooLarge,
            EventError::NotJson(_)
            | EventError::Missing(_)
            | EventError::Invalid(..)
            | EventError::SpecVersion(_)
            | EventError::NotABatch => ErrorCode::InvalidEvent,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        ApiError::from(&e)
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        storage_failure(&e, "the event log")
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::UnknownTopic(t) => {
                ApiError::new(ErrorCode::TopicNotFound, format!("topic `{t}` does not exist"))
            }
            PublishError::UnknownFunction(f) => {
                ApiError::new(ErrorCode::FunctionNotFound, format!("function `{f}` does not exist"))
            }
            PublishError::Log(e) => storage_failure(&e, "the event log"),
        }
    }
}

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::BadKey => ApiError::new(ErrorCode::InvalidKey, e.to_string()),
            KvError::ValueTooLarge(_) => ApiError::new(ErrorCode::ValueTooLarge, e.to_string()),
            KvError::Storage(_) => storage_failure(&e, "the key-value store"),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::BadKey(_) => ApiError::new(ErrorCode::InvalidKey, e.to_string()),
            BlobError::TooLarge(_) => ApiError::new(ErrorCode::BlobTooLarge, e.to_string()),
            BlobError::Storage(_) => storage_failure(&e, "the blob store"),
        }
    }
}

/// A storage failure: the detail goes to the log, the answer says only what failed.
pub(crate) fn storage_failure(e: &dyn std::fmt::Display, what: &str) -> ApiError {
    tracing::error!(error = %e, "{what} failed");
    ApiError::new(ErrorCode::StorageError, format!("{what} failed; see the Gust log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_invoke_error() -> Vec<InvokeError> {
        let function = "f".to_string();
        vec![
            InvokeError::FunctionNotFound(function.clone()),
            InvokeError::TooManyRequests {
                function: function.clone(),
                retry_after: Duration::from_millis(1500),
            },
            InvokeError::Timeout {
                function: function.clone(),
                timeout: Duration::from_secs(3),
            },
            InvokeError::Crashed {
                function: function.clone(),
                detail: "exit 1".into(),
            },
            InvokeError::OutOfMemory {
                function: function.clone(),
                limit_mb: 128,
            },
            InvokeError::InitFailed {
                function: function.clone(),
                error_type: "Runtime.ImportModuleError".into(),
                message: "no".into(),
                backoff: None,
            },
            InvokeError::ResponseTooLarge {
                function,
                size: 7_000_000,
                limit: 6_291_456,
            },
            InvokeError::ShuttingDown,
            InvokeError::Platform("boom".into()),
        ]
    }

    #[test]
    fn invoke_errors_keep_their_runtime_code_and_blame() {
        for e in every_invoke_error() {
            let code = ErrorCode::from(&e);
            assert_eq!(code.as_str(), e.code(), "{e:?}");
            assert_eq!(code.blame(), e.blame().into(), "{e:?}");
        }
    }

    #[test]
    fn retry_after_is_sent_only_where_the_table_says() {
        let busy = every_invoke_error().remove(1);
        let r = ApiError::from(&busy).into_response("r");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "2", "1.5 s rounds up");
        let r = ApiError::new(ErrorCode::UpstreamUnavailable, "open").into_response("r");
        assert_eq!(
            (r.status().as_u16(), &r.headers()[http::header::RETRY_AFTER]),
            (503, &HeaderValue::from(1))
        );
        let r = ApiError::new(ErrorCode::ShuttingDown, "bye")
            .retry_after(Duration::from_secs(5))
            .into_response("r");
        assert_eq!(r.status(), 503);
        assert!(r.headers().get(http::header::RETRY_AFTER).is_none());
    }

    #[test]
    fn the_body_has_the_code_message_and_request_id() {
        let v = ApiError::new(ErrorCode::KeyNotFound, "no value under `k`").body("req-1");
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "KeyNotFound", "message": "no value under `k`", "request_id": "req-1"}})
        );
    }
}
