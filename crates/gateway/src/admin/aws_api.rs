//! The AWS service APIs face: DynamoDB's JSON 1.0 protocol (`POST /` with
//! `X-Amz-Target: DynamoDB_20120810.<Operation>`, or `DynamoDBStreams_20120810.<Operation>` for
//! its Streams API, and `Content-Type: application/x-amz-json-1.0`), so boto3, the JS SDK and
//! the AWS CLI work against the admin address with `--endpoint-url` (or `AWS_ENDPOINT_URL`).
//! What the operations mean lives in `gust_aws::dynamodb`; this module only carries the
//! protocol.
//!
//! Credentials: SigV4 with an access key Gust issued, scoped to the `dynamodb` service (which
//! DynamoDB Streams is signed as too; the same keys as the Lambda API), or the operator token as a bearer token. Refusals are
//! DynamoDB's own: status 400 (DynamoDB answers every refused credential with 400, not 403)
//! and `__type` `com.amazon.coral.service#MissingAuthenticationTokenException`,
//! `IncompleteSignatureException`, `UnrecognizedClientException` or
//! `InvalidSignatureException`, which the SDKs raise as those error codes.

use super::{credentials::bearer, Admin};
use crate::codes::ErrorCode;
use crate::error::Body;
use crate::sigv4::{self, SigV4Error};
use bytes::Bytes;
use gust_aws::dynamodb::{DynamoDb, DynamoError, STREAMS_TARGET_PREFIX, TARGET_PREFIX};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::Arc;

/// The signing name of DynamoDB.
const SERVICE: &str = "dynamodb";
/// DynamoDB's largest request (a full BatchWriteItem is 16 MB).
const MAX_REQUEST: usize = 16 * 1024 * 1024;
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const DEFAULT_REGION: &str = "us-east-1";

/// DynamoDB, and the app whose tables it serves.
#[derive(Debug, Clone)]
pub(super) struct DynamoFace {
    pub db: Arc<DynamoDb>,
    pub app: String,
}

/// Whether `X-Amz-Target` names a DynamoDB or DynamoDB Streams operation.
pub(super) fn is_dynamodb(target: Option<&str>) -> bool {
    target.is_some_and(|t| t.starts_with(TARGET_PREFIX) || t.starts_with(STREAMS_TARGET_PREFIX))
}

fn answer(status: u16, body: &serde_json::Value, request_id: &str) -> Response<Body> {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid");
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

fn error(status: u16, type_name: &str, message: &str, request_id: &str) -> Response<Body> {
    answer(
        status,
        &serde_json::json!({ "__type": type_name, "message": message }),
        request_id,
    )
}

fn refused(e: &SigV4Error, request_id: &str) -> Response<Body> {
    let code = match e {
        SigV4Error::Missing => "MissingAuthenticationTokenException",
        SigV4Error::Incomplete(_) => "IncompleteSignatureException",
        SigV4Error::UnknownKey => "UnrecognizedClientException",
        SigV4Error::Mismatch
        | SigV4Error::Expired { .. }
        | SigV4Error::NotYetCurrent { .. }
        | SigV4Error::BadScope(_) => "InvalidSignatureException",
    };
    error(
        400,
        &format!("com.amazon.coral.service#{code}"),
        &e.to_string(),
        request_id,
    )
}

fn dynamo_error(e: &DynamoError, request_id: &str) -> Response<Body> {
    if let DynamoError::Internal(detail) = e {
        tracing::error!(%detail, "DynamoDB request failed");
    }
    answer(e.status(), &e.body(), request_id)
}

impl Admin {
    pub(super) async fn aws_api(&self, req: Request<Incoming>, request_id: &str) -> Response<Body> {
        let Some(face) = self.dynamodb.clone() else {
            return error(
                400,
                "com.amazon.coral.service#UnknownOperationException",
                "DynamoDB is not enabled on this Gust",
                request_id,
            );
        };
        let (parts, body) = req.into_parts();
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let region = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| sigv4::parse_authorization(v).ok())
            .map(|a| a.region.to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        // Refuse what can be refused before reading the body.
        let pending = if bearer(&parts.headers).is_some() {
            if !self.is_operator(&parts.headers) {
                return refused(&SigV4Error::UnknownKey, request_id);
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
                    tracing::info!(reason = %e, "DynamoDB request refused");
                    return refused(&e, request_id);
                }
            }
        };
        let payload = match crate::gateway::read_limited(&parts.headers, body, MAX_REQUEST).await {
            Ok(p) => p,
            Err(e) if e.code == ErrorCode::PayloadTooLarge => {
                return error(
                    413,
                    "com.amazon.coral.service#RequestEntityTooLargeException",
                    &format!("Request must be smaller than {MAX_REQUEST} bytes"),
                    request_id,
                )
            }
            Err(e) => return e.into_response(request_id),
        };
        if let Some(p) = pending {
            if let Err(e) = p.verify(&payload) {
                tracing::info!(reason = %e, "DynamoDB request refused");
                return refused(&e, request_id);
            }
        }
        match face.db.call(face.app, region, target, payload.to_vec()).await {
            Ok(v) => answer(200, &v, request_id),
            Err(e) => dynamo_error(&e, request_id),
        }
    }
}
