//! Gust's own error responses: one JSON shape, stable codes, made in one place.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

pub type Body = Full<Bytes>;

/// An error Gust itself answers with (not a function's own 4xx/5xx).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, documented, machine-readable (`RouteNotFound`, `PayloadTooLarge`, ...).
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn from_invoke(e: &gust_runtime::InvokeError) -> Self {
        let mut err = Self::new(e.http_status(), e.code(), e.to_string());
        if let gust_runtime::InvokeError::TooManyRequests { retry_after, .. } = e {
            err.retry_after_secs = Some(retry_after.as_secs().max(1));
        }
        err
    }

    /// `{"error":{"code","message","request_id"}}`
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "request_id": request_id }
        });
        let mut resp = Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("static response parts are valid");
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
