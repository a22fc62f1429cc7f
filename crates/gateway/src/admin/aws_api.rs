//! The AWS service APIs face: DynamoDB's JSON 1.0 protocol (`POST /` with
//! `X-Amz-Target: DynamoDB_20120810.<Operation>`, or `DynamoDBStreams_20120810.<Operation>` for
//! its Streams API, and `Content-Type: application/x-amz-json-1.0`), so boto3, the JS SDK and
//! the AWS CLI work against the admin address with `--endpoint-url` (or `AWS_ENDPOINT_URL`).
//! What the operations mean lives in `gust_aws::dynamodb`; this module only carries the
//! protocol.
//!
//! Credentials: SigV4 with an access key Gust issued, scoped to the `dynamodb` service (which
//! DynamoDB Streams is signed as too; the same keys as the Lambda API), or the operator token
//! as a bearer token: both reach every table of the app. A function signs with the session key
//! Gust issued to its deployment (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
//! `AWS_SESSION_TOKEN`, resolved by `Invoker::caller_for_aws_key`), and may do only what its
//! manifest's statements grant (`gust_aws::dynamodb::access` says what a request needs,
//! `gust_model::iam` judges it); otherwise `AccessDeniedException` in AWS's words. Refusals are
//! DynamoDB's own: status 400 (DynamoDB answers every refused credential with 400, not 403)
//! and `__type` `com.amazon.coral.service#MissingAuthenticationTokenException`,
//! `IncompleteSignatureException`, `UnrecognizedClientException` or
//! `InvalidSignatureException`, which the SDKs raise as those error codes.

use super::{credentials::bearer, Admin};
use crate::codes::ErrorCode;
use crate::error::Body;
use crate::sigv4::{self, SigV4Error};
use gust_aws::dynamodb::{access, DynamoDb, DynamoError, STREAMS_TARGET_PREFIX, TARGET_PREFIX};
use gust_model::{iam, Decision};
use gust_runtime::{AwsSessionKey, PlatformApi};
use gust_store::Zeroizing;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;
use subtle::ConstantTimeEq;

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
        .body(Body::from(body.to_string()))
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

/// A function's request its statements do not allow: AWS's message, naming the function's
/// role session, the action and the resource.
fn access_denied(
    caller: &PlatformApi,
    needed: &access::Needed,
    decision: Decision,
    request_id: &str,
) -> Response<Body> {
    let why = match decision {
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
        _ => format!("because no identity-based policy allows the {} action", needed.action),
    };
    let user = format!(
        "arn:aws:sts::{}:assumed-role/{}-{}-role/{}",
        crate::ACCOUNT_ID,
        caller.app,
        caller.function,
        caller.function
    );
    tracing::info!(function = %caller.function, action = %needed.action, resource = %needed.resource, "DynamoDB request denied by the function's statements");
    error(
        400,
        "com.amazon.coral.service#AccessDeniedException",
        &format!(
            "User: {user} is not authorized to perform: {} on resource: {} {why}",
            needed.action, needed.resource
        ),
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
        let mut function: Option<(AwsSessionKey, PlatformApi)> = None;
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
            let secret_of = |id: &str| match self.invoker.caller_for_aws_key(id) {
                Some((key, caller)) => {
                    let secret = Zeroizing::new(key.secret_access_key.clone());
                    function = Some((key, caller));
                    Some(secret)
                }
                None => keys.and_then(|k| k.secret(id)),
            };
            match sigv4::check_head(head, SERVICE, chrono::Utc::now(), secret_of) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::info!(reason = %e, "DynamoDB request refused");
                    return refused(&e, request_id);
                }
            }
        };
        // A session key is valid only with its session token, as on AWS.
        if let Some((key, _)) = &function {
            let token = parts
                .headers
                .get("x-amz-security-token")
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !bool::from(token.ct_eq(key.session_token.as_bytes())) {
                tracing::info!("DynamoDB request refused: a function's session key without its session token");
                return error(
                    400,
                    "com.amazon.coral.service#UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                    request_id,
                );
            }
        }
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
        let mut app = face.app;
        if let Some((_, caller)) = function {
            // What the function's deployed version grants (its credentials retire with it).
            let statements = self
                .invoker
                .spec(&caller.function)
                .map(|s| s.aws.clone())
                .unwrap_or_default();
            for needed in access::required(&region, &target, &payload) {
                let decision = iam::decide(&statements, &needed.action, &needed.resource);
                if decision != Decision::Allowed {
                    return access_denied(&caller, &needed, decision, request_id);
                }
            }
            app = caller.app;
        }
        match face.db.call(app, region, target, payload.to_vec()).await {
            Ok(v) => answer(200, &v, request_id),
            Err(e) => dynamo_error(&e, request_id),
        }
    }
}
