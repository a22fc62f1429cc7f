//! The Lambda API's error answers, in AWS's shape, made in one place: the table of
//! `x-amzn-ErrorType` values with their status ([`LambdaErrorType`]), the one function that
//! builds such an answer ([`lambda_error`]), and what an invocation failure or a refused
//! signature becomes ([`invoke_failure`], `From<&SigV4Error>`).
//!
//! Lambda reports a function's own failure (timeout, crash, init error, out of memory, a
//! response too large) as a 200 with `X-Amz-Function-Error: Unhandled` and
//! `{"errorType","errorMessage"}`, and refusals by the service with `x-amzn-ErrorType`.
//! `docs/errors.md` documents the table; a test holds them together.

use super::json_response;
use crate::error::Body;
use crate::sigv4::SigV4Error;
use gust_runtime::InvokeError;
use http::{HeaderValue, Response, StatusCode};

/// Declares [`LambdaErrorType`], its list of every variant and its status table.
macro_rules! lambda_error_types {
    ($($name:ident => $status:literal;)*) => {
        /// An `x-amzn-ErrorType` value the Lambda API answers with. The wire string is the
        /// variant's name.
        // The variants are AWS's wire names, which all end in `Exception`.
        #[allow(clippy::enum_variant_names)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum LambdaErrorType {
            $($name,)*
        }

        impl LambdaErrorType {
            #[cfg(test)]
            pub const ALL: &'static [LambdaErrorType] = &[$(LambdaErrorType::$name,)*];

            pub const fn status_code(self) -> u16 {
                match self {
                    $(LambdaErrorType::$name => $status,)*
                }
            }

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(LambdaErrorType::$name => stringify!($name),)*
                }
            }
        }
    };
}

lambda_error_types! {
    InvalidRequestContentException => 400;
    InvalidParameterValueException => 400;
    MissingAuthenticationTokenException => 403;
    IncompleteSignatureException => 403;
    UnrecognizedClientException => 403;
    InvalidSignatureException => 403;
    ResourceNotFoundException => 404;
    UnknownOperationException => 404;
    RequestTooLargeException => 413;
    TooManyRequestsException => 429;
    ServiceException => 500;
}

impl LambdaErrorType {
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.status_code()).expect("the table holds valid statuses")
    }

    /// Credential refusals: AWS answers them with `{"message"}` alone.
    fn is_auth(self) -> bool {
        self.status_code() == 403
    }
}

/// A Lambda-style service error: `x-amzn-ErrorType`, and `{"Type","message"}` (which the AWS
/// SDKs turn into typed exceptions) or, for a credential refusal, `{"message"}`.
pub(crate) fn lambda_error(kind: LambdaErrorType, message: &str) -> Response<Body> {
    let mut r = if kind.is_auth() {
        json_response(
            kind.status(),
            gust_api::LambdaAuthError {
                message: message.into(),
            },
        )
    } else {
        json_response(
            kind.status(),
            gust_api::LambdaError {
                kind: if kind.status_code() < 500 { "User" } else { "Service" }.into(),
                message: message.into(),
            },
        )
    };
    r.headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(kind.as_str()));
    r
}

impl From<&SigV4Error> for LambdaErrorType {
    fn from(e: &SigV4Error) -> Self {
        match e {
            SigV4Error::Missing => Self::MissingAuthenticationTokenException,
            SigV4Error::Incomplete(_) => Self::IncompleteSignatureException,
            SigV4Error::UnknownKey => Self::UnrecognizedClientException,
            SigV4Error::Mismatch
            | SigV4Error::Expired { .. }
            | SigV4Error::NotYetCurrent { .. }
            | SigV4Error::BadScope(_) => Self::InvalidSignatureException,
        }
    }
}

/// A refused signature or credential, in AWS's words.
pub(crate) fn refused(e: &SigV4Error) -> Response<Body> {
    lambda_error(LambdaErrorType::from(e), &e.to_string())
}

/// What a failed synchronous invocation answers.
pub(crate) fn invoke_failure(e: &InvokeError) -> Response<Body> {
    match e {
        // The function's own failure: a 200 that says so.
        InvokeError::Timeout { .. }
        | InvokeError::Crashed { .. }
        | InvokeError::OutOfMemory { .. }
        | InvokeError::InitFailed { .. }
        | InvokeError::ResponseTooLarge { .. } => {
            let mut r = json_response(
                StatusCode::OK,
                gust_api::FunctionError {
                    error_type: e.lambda_error_type().to_string(),
                    error_message: e.to_string(),
                },
            );
            r.headers_mut()
                .insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
            r
        }
        InvokeError::TooManyRequests { retry_after, .. } => {
            let mut r = lambda_error(LambdaErrorType::TooManyRequestsException, &e.to_string());
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_millis().div_ceil(1000).max(1) as u64),
            );
            r
        }
        InvokeError::FunctionNotFound(n) => lambda_error(
            LambdaErrorType::ResourceNotFoundException,
            &format!("Function not found: {n}"),
        ),
        // Lambda has no 503: the SDKs retry a ServiceException (500) as they would a 503.
        InvokeError::ShuttingDown | InvokeError::Platform(_) => {
            lambda_error(LambdaErrorType::ServiceException, &e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::doc_tables;
    use std::collections::{BTreeSet, HashMap};
    use std::time::Duration;

    /// The table above against the `x-amzn-ErrorType` table of `docs/errors.md`.
    #[test]
    fn error_types_match_docs() {
        let text = doc_tables::read("errors.md");
        let rows = doc_tables::rows(&text, "x-amzn-ErrorType");
        let documented: HashMap<&str, u16> = rows
            .iter()
            .flat_map(|r| r.codes.iter().map(move |c| (c.as_str(), r.status)))
            .collect();
        let mut problems = Vec::new();
        let mut names = BTreeSet::new();
        for &t in LambdaErrorType::ALL {
            assert!(names.insert(t.as_str()), "{} twice", t.as_str());
            match documented.get(t.as_str()) {
                None => problems.push(format!("{} is not documented", t.as_str())),
                Some(&s) if s != t.status_code() => problems.push(format!(
                    "{} is documented as {s}, answers {}",
                    t.as_str(),
                    t.status_code()
                )),
                Some(_) => {}
            }
        }
        for name in documented.keys() {
            if !names.contains(name) {
                problems.push(format!("{name} is documented but not answered"));
            }
        }
        assert!(
            problems.is_empty(),
            "docs/errors.md and lambda_errors.rs disagree:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn answers_carry_the_type_status_and_shape() {
        let r = lambda_error(LambdaErrorType::UnknownOperationException, "no");
        assert_eq!(
            (r.status().as_u16(), &r.headers()["x-amzn-errortype"]),
            (404, &HeaderValue::from_static("UnknownOperationException"))
        );
        let r = refused(&SigV4Error::Missing);
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-amzn-errortype"], "MissingAuthenticationTokenException");
        let r = invoke_failure(&InvokeError::ShuttingDown);
        assert_eq!(
            (r.status().as_u16(), &r.headers()["x-amzn-errortype"]),
            (500, &HeaderValue::from_static("ServiceException"))
        );
        let r = invoke_failure(&InvokeError::TooManyRequests {
            function: "f".into(),
            retry_after: Duration::from_millis(200),
        });
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "1");
        let r = invoke_failure(&InvokeError::ResponseTooLarge {
            function: "f".into(),
            size: 7,
            limit: 6,
        });
        assert_eq!(
            (r.status().as_u16(), &r.headers()["x-amz-function-error"]),
            (200, &HeaderValue::from_static("Unhandled"))
        );
        assert!(r.headers().get("x-amzn-errortype").is_none());
    }
}
