//! The Lambda API face: `POST /2015-03-31/functions/{name}/invocations` as AWS Lambda answers
//! it, so the AWS CLI and SDKs work with `--endpoint-url`.
//!
//! Credentials: AWS Signature Version 4 with an access key Gust issued
//! (`gust access-keys create`), or the operator token as a bearer token (`gust invoke`).
//! Refusals have Lambda's shape: 403, `x-amzn-ErrorType` (`MissingAuthenticationTokenException`,
//! `IncompleteSignatureException`, `UnrecognizedClientException`, `InvalidSignatureException`)
//! and `{"message"}`. Every error answer is made in [`super::lambda_errors`]. A function's `GUST_TOKEN` is not a credential here: functions invoke
//! what they were granted through the platform API.

use super::lambda_errors::{invoke_failure, lambda_error, refused, LambdaErrorType};
use super::{credentials::bearer, empty, trace_of, Admin, MAX_INVOKE_PAYLOAD};
use crate::codes::ErrorCode;
use crate::error::Body;
use crate::sigv4::{self, SigV4Error};
use bytes::Bytes;
use gust_runtime::{Invocation, Trigger};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

/// The signing name of the Lambda API.
const SERVICE: &str = "lambda";

fn too_large(limit: usize, what: &str) -> Response<Body> {
    lambda_error(
        LambdaErrorType::RequestTooLargeException,
        &format!("Request must be smaller than {limit} bytes for {what}"),
    )
}

impl Admin {
    pub(super) async fn lambda_api(&self, req: Request<Incoming>, request_id: &str) -> Response<Body> {
        let mut resp = self.lambda_api_inner(req, request_id).await;
        if let Ok(v) = HeaderValue::from_str(request_id) {
            resp.headers_mut().entry("x-amzn-requestid").or_insert(v);
        }
        resp
    }

    async fn lambda_api_inner(&self, req: Request<Incoming>, request_id: &str) -> Response<Body> {
        let (parts, body) = req.into_parts();
        // Refuse what can be refused before reading the body.
        let pending = if bearer(&parts.headers).is_some() {
            if !self.is_operator(&parts.headers) {
                return refused(&SigV4Error::UnknownKey);
            }
            None
        } else {
            let head = sigv4::RequestHead {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
            };
            let keys = self.access_keys.as_ref();
            match sigv4::check_head(head, SERVICE, chrono::Utc::now(), |id| keys.and_then(|k| k.secret(id))) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::info!(reason = %e, "Lambda API request refused");
                    return refused(&e);
                }
            }
        };
        let payload = match crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await {
            Ok(p) => p,
            Err(e) if e.code == ErrorCode::PayloadTooLarge => {
                return too_large(MAX_INVOKE_PAYLOAD, "the InvokeFunction operation")
            }
            Err(e) => return e.into_response(request_id),
        };
        // The access key the request was signed with (`None`: the operator token).
        let access_key = match pending {
            None => None,
            Some(p) => match p.verify(&payload) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::info!(reason = %e, "Lambda API request refused");
                    return refused(&e);
                }
            },
        };
        tracing::debug!(
            caller = access_key.as_deref().unwrap_or("operator token"),
            "Lambda API request"
        );
        let path = parts.uri.path();
        match gust_api::Endpoint::resolve(parts.method.as_str(), path) {
            Ok(route) if route.endpoint == gust_api::Endpoint::Invoke => {
                self.invoke(route.param("name"), &parts.headers, payload, request_id)
                    .await
            }
            _ => lambda_error(
                LambdaErrorType::UnknownOperationException,
                &format!("no Lambda API operation {} {path}", parts.method),
            ),
        }
    }

    async fn invoke(&self, name: &str, headers: &http::HeaderMap, payload: Bytes, request_id: &str) -> Response<Body> {
        let name = crate::routes::percent_decode(name);
        // Lambda accepts a name, a partial or a full ARN; the function name is the last part.
        let name = name.rsplit(':').next().unwrap_or(&name).to_string();
        let kind = headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("RequestResponse");
        if self.invoker.spec(&name).is_none() {
            return lambda_error(
                LambdaErrorType::ResourceNotFoundException,
                &format!("Function not found: {name}"),
            );
        }
        match kind {
            "DryRun" => return empty(StatusCode::NO_CONTENT),
            "RequestResponse" => {}
            "Event" => return self.invoke_async(&name, headers, payload).await,
            other => {
                return lambda_error(
                    LambdaErrorType::InvalidParameterValueException,
                    &format!("unknown InvocationType `{other}`"),
                )
            }
        }
        let client_context = headers
            .get("x-amz-client-context")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(payload) = json_payload(payload) else {
            return not_json();
        };
        let mut inv = Invocation::new(name.clone(), payload, Trigger::Direct);
        inv.request_id = Some(request_id.to_string());
        if let Some(parent) = trace_of(headers) {
            inv.parent_span = Some(parent.span_id.clone());
            inv.trace = Some(parent.child());
        }
        inv.client_context = client_context;
        match self.invoker.invoke(inv).await {
            Ok(out) => {
                let mut r = Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header("x-amz-executed-version", "$LATEST")
                    .body(Full::new(out.payload))
                    .expect("static response parts are valid");
                if out.function_error.is_some() {
                    r.headers_mut()
                        .insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
                }
                r
            }
            Err(e) => invoke_failure(&e),
        }
    }

    /// `InvocationType: Event`: durable first, then 202; the function runs from the queue with
    /// Lambda's retry policy and ends in the function's DLQ if every attempt fails.
    async fn invoke_async(&self, name: &str, headers: &http::HeaderMap, payload: Bytes) -> Response<Body> {
        let Some(events) = &self.events else {
            return lambda_error(
                LambdaErrorType::InvalidParameterValueException,
                "asynchronous invocation needs events enabled",
            );
        };
        if payload.len() > gust_events::MAX_EVENT_BYTES {
            return too_large(gust_events::MAX_EVENT_BYTES, "asynchronous invocation");
        }
        let Some(payload) = json_payload(payload) else {
            return not_json();
        };
        let trace = trace_of(headers).map(|t| t.to_string());
        match events.invoke_async(name, payload, trace).await {
            Ok(id) => {
                let mut r = empty(StatusCode::ACCEPTED);
                if let Ok(v) = HeaderValue::from_str(&id) {
                    r.headers_mut().insert("x-amzn-requestid", v);
                }
                r
            }
            Err(gust_events::PublishError::UnknownFunction(n)) => lambda_error(
                LambdaErrorType::ResourceNotFoundException,
                &format!("Function not found: {n}"),
            ),
            Err(e) => {
                tracing::error!(error = %e, "queueing an asynchronous invocation failed");
                lambda_error(LambdaErrorType::ServiceException, "the invocation could not be queued")
            }
        }
    }
}

/// An Invoke payload: `{}` when empty; `None` when it is not JSON (Lambda refuses it).
fn json_payload(payload: Bytes) -> Option<Bytes> {
    let payload = if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(&payload).ok()?;
    Some(payload)
}

fn not_json() -> Response<Body> {
    lambda_error(
        LambdaErrorType::InvalidRequestContentException,
        "Could not parse request body into json",
    )
}
