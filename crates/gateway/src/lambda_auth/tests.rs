//! The authorizer events' shapes and the refusal bodies (the invocations themselves are
//! tested against real functions in `crates/gust/tests/system/authorizers.rs`).

use super::*;
use bytes::Bytes;
use gust_model::{FunctionName, PayloadFormat};
use http::HeaderMap;
use std::time::Duration;

fn spec(kind: LambdaAuthorizerKind, format: AuthorizerFormat, sources: Vec<IdentitySource>) -> LambdaAuthorizerSpec {
    LambdaAuthorizerSpec {
        name: FunctionName::new("auth").unwrap(),
        function: FunctionName::new("auth").unwrap(),
        kind,
        format,
        identity_sources: sources,
        ttl: Duration::from_secs(300),
        validation: Some("^Bearer ".into()),
        simple_responses: false,
    }
}

fn with_request<T>(f: impl FnOnce(&RequestParts<'_>) -> T) -> T {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer abc".parse().unwrap());
    headers.insert("x-tenant", "t1".parse().unwrap());
    let body = Bytes::from_static(b"never sent");
    let params = vec![(std::sync::Arc::<str>::from("id"), "42".to_string())];
    let r = RequestParts {
        method: "GET",
        raw_path: "/items/42",
        raw_query: "q=1&tenant=acme",
        headers: &headers,
        body: &body,
        route_key: "GET /items/{id}",
        resource: "/items/{id}",
        path_params: &params,
        request_id: "req-1",
        remote: "127.0.0.1:5000".parse().unwrap(),
        host: "localhost",
        time_epoch_ms: 0,
        authorizer: None,
        header_case: None,
    };
    f(&r)
}

const ARN: &str = "arn:aws:execute-api:eu-west-1:000000000000:gust/$default/GET/items/42";

fn event(kind: LambdaAuthorizerKind, format: AuthorizerFormat, identity: &[&str]) -> Value {
    let identity: Vec<String> = identity.iter().map(|s| s.to_string()).collect();
    with_request(|r| serde_json::from_slice(&event::build(kind, format, r, ARN, &identity)).unwrap())
}

#[test]
fn the_request_arn() {
    assert_eq!(event::request_arn("eu-west-1", "GET", "/items/42"), ARN);
}

#[test]
fn token_event() {
    let e = event(LambdaAuthorizerKind::Token, AuthorizerFormat::Rest, &["Bearer abc"]);
    assert_eq!(
        e,
        json!({"type": "TOKEN", "authorizationToken": "Bearer abc", "methodArn": ARN})
    );
}

#[test]
fn rest_request_event() {
    let e = event(LambdaAuthorizerKind::Request, AuthorizerFormat::Rest, &["Bearer abc"]);
    assert_eq!(e["type"], "REQUEST");
    assert_eq!(e["methodArn"], ARN);
    assert_eq!(e["resource"], "/items/{id}");
    assert_eq!(e["path"], "/items/42");
    assert_eq!(e["httpMethod"], "GET");
    assert_eq!(e["headers"]["x-tenant"], "t1");
    assert_eq!(e["multiValueHeaders"]["x-tenant"], json!(["t1"]));
    assert_eq!(e["queryStringParameters"]["tenant"], "acme");
    assert_eq!(e["multiValueQueryStringParameters"]["q"], json!(["1"]));
    assert_eq!(e["pathParameters"]["id"], "42");
    assert_eq!(e["stageVariables"], json!({}));
    assert_eq!(e["requestContext"]["requestId"], "req-1");
    for absent in ["body", "isBase64Encoded", "version", "identitySource"] {
        assert!(e.get(absent).is_none(), "{absent} in {e}");
    }
}

#[test]
fn http_api_v1_event() {
    let e = event(
        LambdaAuthorizerKind::Request,
        AuthorizerFormat::HttpV1,
        &["Bearer abc", "acme"],
    );
    assert_eq!(e["version"], "1.0");
    assert_eq!(e["type"], "REQUEST");
    assert_eq!(e["methodArn"], ARN);
    assert_eq!(e["identitySource"], "Bearer abc,acme");
    assert_eq!(e["authorizationToken"], "Bearer abc,acme");
    assert_eq!(e["headers"]["authorization"], "Bearer abc");
    assert!(e.get("body").is_none());
}

#[test]
fn http_api_v2_event() {
    let e = event(
        LambdaAuthorizerKind::Request,
        AuthorizerFormat::HttpV2,
        &["Bearer abc", "acme"],
    );
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["type"], "REQUEST");
    assert_eq!(e["routeArn"], ARN);
    assert_eq!(e["identitySource"], json!(["Bearer abc", "acme"]));
    assert_eq!(e["routeKey"], "GET /items/{id}");
    assert_eq!(e["rawPath"], "/items/42");
    assert_eq!(e["rawQueryString"], "q=1&tenant=acme");
    assert_eq!(e["queryStringParameters"]["tenant"], "acme");
    assert_eq!(e["pathParameters"]["id"], "42");
    assert_eq!(e["requestContext"]["http"]["method"], "GET");
    assert!(e.get("body").is_none() && e.get("isBase64Encoded").is_none());
}

#[test]
fn identity_sources_and_validation() {
    let a = LambdaAuthorizer::new(spec(
        LambdaAuthorizerKind::Request,
        AuthorizerFormat::HttpV2,
        vec![
            IdentitySource::Header("x-tenant".into()),
            IdentitySource::Query("tenant".into()),
        ],
    ))
    .unwrap();
    assert_eq!(with_request(|r| a.identity(r)), Some(vec!["t1".into(), "acme".into()]));
    let missing = LambdaAuthorizer::new(spec(
        LambdaAuthorizerKind::Request,
        AuthorizerFormat::HttpV2,
        vec![IdentitySource::Query("absent".into())],
    ))
    .unwrap();
    assert_eq!(with_request(|r| missing.identity(r)), None);
    let mut bad = spec(LambdaAuthorizerKind::Token, AuthorizerFormat::Rest, vec![]);
    bad.validation = Some("(unclosed".into());
    assert!(LambdaAuthorizer::new(bad)
        .unwrap_err()
        .contains("identityValidationExpression"));
}

#[test]
fn the_handler_sees_principal_and_context_as_api_gateway_puts_them() {
    let answer = answer::parse(
        br#"{"principalId": "u-1", "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}]}, "context": {"tenant": "t1", "n": 3, "admin": true}}"#,
        AuthorizerFormat::Rest,
        false,
    )
    .unwrap();
    let allowed = Allowed {
        answer: Arc::new(answer),
        cached: false,
        latency_ms: 7,
    };
    assert_eq!(
        allowed.request_context(PayloadFormat::V1),
        json!({"principalId": "u-1", "integrationLatency": 7, "tenant": "t1", "n": "3", "admin": "true"}),
        "REST stringifies context values"
    );
    assert_eq!(
        allowed.request_context(PayloadFormat::V2),
        json!({"lambda": {"tenant": "t1", "n": 3, "admin": true}})
    );
}

#[test]
fn refusal_bodies_as_api_gateway() {
    let body = |error: AuthError, format| {
        let e = refusal(&Refused { error, format });
        (e.status().as_u16(), e.body("r"))
    };
    let (status, b) = body(
        AuthError::unauthorized(AuthFailure::MissingCredentials),
        AuthorizerFormat::Rest,
    );
    assert_eq!(
        (status, &b["message"], &b["error"]["code"]),
        (401, &json!("Unauthorized"), &json!("Unauthorized"))
    );
    let deny = |explicit| AuthError::Forbidden {
        reason: AuthFailure::AuthorizerDenied { explicit },
    };
    let (status, b) = body(deny(true), AuthorizerFormat::Rest);
    assert_eq!(status, 403);
    assert_eq!(
        b["Message"],
        "User is not authorized to access this resource with an explicit deny"
    );
    let (_, b) = body(deny(false), AuthorizerFormat::Rest);
    assert_eq!(b["Message"], "User is not authorized to access this resource");
    let (_, b) = body(deny(true), AuthorizerFormat::HttpV2);
    assert_eq!(b["message"], "Forbidden");
    let failed = || AuthError::AuthorizerFailed {
        reason: AuthFailure::AuthorizerFailed("x".into()),
    };
    let (status, b) = body(failed(), AuthorizerFormat::HttpV2);
    assert_eq!(
        (status, &b["message"], &b["error"]["code"]),
        (500, &json!("Internal Server Error"), &json!("AuthorizerError"))
    );
    let (_, b) = body(failed(), AuthorizerFormat::Rest);
    assert!(
        b["message"].is_null() && b.get("message").is_some(),
        "REST answers {{\"message\": null}}"
    );
}

#[test]
fn cache_keys_of_different_identities_differ() {
    let k = |v: &[&str]| cache_key(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_ne!(k(&["a\0b", "c"]), k(&["a", "b\0c"]));
    assert_ne!(k(&["a,b"]), k(&["a", "b"]));
    assert_ne!(k(&["1:a"]), k(&["1", "a"]));
    assert_eq!(k(&["tok"]), k(&["tok"]));
}
