//! The events a Lambda authorizer receives, in API Gateway's shapes:
//!
//! - REST TOKEN: `{type: "TOKEN", authorizationToken, methodArn}`.
//! - REST REQUEST: `{type: "REQUEST", methodArn, resource, path, httpMethod, headers,
//!   multiValueHeaders, queryStringParameters, multiValueQueryStringParameters,
//!   pathParameters, stageVariables, requestContext}`.
//! - HTTP API payload 1.0: the REST REQUEST shape with `version: "1.0"`, `identitySource` and
//!   `authorizationToken` (the identity values joined with commas).
//! - HTTP API payload 2.0: `{version: "2.0", type: "REQUEST", routeArn, identitySource: [...],
//!   routeKey, rawPath, rawQueryString, cookies, headers, queryStringParameters,
//!   requestContext, pathParameters, stageVariables}`.
//!
//! The request parts are those of the route's own event (`crate::payload`), without the body:
//! API Gateway does not send it to authorizers.

use crate::payload::{v1_event, v2_event, RequestParts};
use gust_model::{AuthorizerFormat, LambdaAuthorizerKind};
use serde_json::{json, Value};

/// The ARN an authorizer's policy is checked against:
/// `arn:aws:execute-api:REGION:ACCOUNT:gust/$default/METHOD/PATH` (`methodArn`, `routeArn`).
pub fn request_arn(region: &str, method: &str, path: &str) -> String {
    format!(
        "arn:aws:execute-api:{region}:{}:gust/$default/{method}/{}",
        crate::ACCOUNT_ID,
        path.trim_start_matches('/')
    )
}

pub fn build(
    kind: LambdaAuthorizerKind,
    format: AuthorizerFormat,
    r: &RequestParts<'_>,
    arn: &str,
    identity: &[String],
) -> Vec<u8> {
    let event = match (kind, format) {
        (LambdaAuthorizerKind::Token, _) => json!({
            "type": "TOKEN",
            "authorizationToken": identity.first().map(String::as_str).unwrap_or(""),
            "methodArn": arn,
        }),
        (LambdaAuthorizerKind::Request, AuthorizerFormat::Rest | AuthorizerFormat::HttpV1) => {
            let mut e = v1_event(r);
            let o = e.as_object_mut().expect("the 1.0 event is an object");
            o.remove("body");
            o.remove("isBase64Encoded");
            o.insert("type".into(), json!("REQUEST"));
            o.insert("methodArn".into(), json!(arn));
            if format == AuthorizerFormat::HttpV1 {
                let joined = identity.join(",");
                o.insert("identitySource".into(), json!(joined));
                o.insert("authorizationToken".into(), json!(joined));
            } else {
                o.remove("version");
                if o.get("stageVariables").is_some_and(Value::is_null) {
                    o.insert("stageVariables".into(), json!({}));
                }
                if o.get("pathParameters").is_some_and(Value::is_null) {
                    o.insert("pathParameters".into(), json!({}));
                }
            }
            e
        }
        (LambdaAuthorizerKind::Request, AuthorizerFormat::HttpV2) => {
            let mut e: Value = serde_json::from_slice(&v2_event(r)).expect("the 2.0 event is JSON");
            let o = e.as_object_mut().expect("the 2.0 event is an object");
            o.remove("body");
            o.remove("isBase64Encoded");
            o.insert("type".into(), json!("REQUEST"));
            o.insert("routeArn".into(), json!(arn));
            o.insert("identitySource".into(), json!(identity));
            o.entry("stageVariables").or_insert_with(|| json!({}));
            e
        }
    };
    serde_json::to_vec(&event).expect("a JSON value serialises")
}
