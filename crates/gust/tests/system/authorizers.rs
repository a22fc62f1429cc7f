//! serverless.yml and gust.toml authorizers are enforced, never ignored: Lambda authorizers
//! (real Node functions, TOKEN and REQUEST, REST and HTTP API payloads 1.0/2.0, simple and
//! IAM-policy answers) with their result cache, JWT authorizers found by OpenID discovery from
//! `issuerUrl`, and `private: true` routes with the manifest's API keys.

use crate::support::*;
use std::io::{Read, Write};
use std::path::Path;

/// Invocations of the authorizer: one line per call, written by the function itself.
fn calls(dir: &Path) -> usize {
    lines(&dir.join("calls.log")).len()
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A REST TOKEN authorizer: its answer depends on the token.
const TOKEN_AUTH: &str = r#"
const fs = require('fs');
exports.handler = async (event) => {
  fs.appendFileSync(__dirname + '/calls.log', JSON.stringify(event) + '\n');
  const token = event.authorizationToken || '';
  const policy = (effect, resource) => ({
    principalId: 'user-' + token.split(' ').pop(),
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }] },
    context: { tenant: 'acme', n: 7, admin: true },
  });
  if (token.startsWith('Bearer allow')) return policy('Allow', 'arn:aws:execute-api:*:*:*/*/GET/*');
  if (token === 'Bearer narrow') return policy('Allow', event.methodArn);
  if (token === 'Bearer deny') return policy('Deny', '*');
  if (token === 'Bearer garbage') return { allowed: 'yes please' };
  if (token === 'Bearer unauthorized') throw new Error('Unauthorized');
  throw new Error('boom');
};
"#;

const ECHO: &str = r#"
exports.handler = async (event) => ({
  statusCode: 200,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ authorizer: event.requestContext.authorizer || null, version: event.version || null }),
});
"#;

const REST_YML: &str = r#"
service: rest-auth
provider:
  name: aws
  runtime: nodejs20.x
functions:
  auth:
    handler: auth.handler
  api:
    handler: api.handler
    events:
      - http:
          path: items
          method: get
          authorizer: auth
      - http:
          path: other
          method: get
          authorizer: auth
      - http:
          path: nocache
          method: get
          authorizer:
            name: auth
            resultTtlInSeconds: 0
      - http:
          path: validated
          method: get
          authorizer:
            name: auth
            identityValidationExpression: '^Bearer [a-z0-9-]+$'
            resultTtlInSeconds: 0
"#;

#[tokio::test]
async fn rest_token_authorizer_allows_denies_caches_and_passes_its_context() {
    let app = TestApp::start(&[("serverless.yml", REST_YML), ("auth.js", TOKEN_AUTH), ("api.js", ECHO)]).await;
    let dir = app.dir.path().to_path_buf();
    let bearer = |t: &str| format!("Bearer {t}");

    // No identity source: 401 with API Gateway's body, and no invocation.
    let (status, body) = get(&app, "/items", &[]).await;
    assert_eq!(
        (status, &body["message"]),
        (401, &serde_json::json!("Unauthorized")),
        "{body}"
    );
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert_eq!(calls(&dir), 0);

    // Allow: the handler sees principalId and the context, stringified as REST does.
    let (status, body) = get(&app, "/items", &[("authorization", &bearer("allow-1"))]).await;
    assert_eq!(status, 200, "{body}");
    let a = &body["authorizer"];
    assert_eq!(a["principalId"], "user-allow-1", "{body}");
    assert_eq!(
        (&a["tenant"], &a["n"], &a["admin"]),
        (&"acme".into(), &"7".into(), &"true".into())
    );
    assert!(a["integrationLatency"].is_number(), "{body}");
    assert_eq!(calls(&dir), 1);
    let event = json(&lines(&dir.join("calls.log"))[0]);
    assert_eq!(event["type"], "TOKEN");
    assert_eq!(event["authorizationToken"], "Bearer allow-1");
    assert_eq!(
        event["methodArn"],
        "arn:aws:execute-api:us-east-1:000000000000:gust/$default/GET/items"
    );

    // Cached by token (TTL 300 s by default): the same token does not invoke again, another does.
    let (status, _) = get(&app, "/items", &[("authorization", &bearer("allow-1"))]).await;
    assert_eq!(status, 200);
    assert_eq!(calls(&dir), 1, "the second request with the same token used the cache");
    let (status, _) = get(&app, "/items", &[("authorization", &bearer("allow-2"))]).await;
    assert_eq!(status, 200);
    assert_eq!(calls(&dir), 2, "a different token invokes the authorizer");

    // TTL 0: every request invokes.
    for _ in 0..2 {
        let (status, _) = get(&app, "/nocache", &[("authorization", &bearer("allow-1"))]).await;
        assert_eq!(status, 200);
    }
    assert_eq!(calls(&dir), 4, "resultTtlInSeconds: 0 invokes each time");

    // Deny: 403 with REST's body.
    let (status, body) = get(&app, "/items", &[("authorization", &bearer("deny"))]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["Message"],
        "User is not authorized to access this resource with an explicit deny"
    );
    assert_eq!(body["error"]["code"], "Forbidden");

    // A cached policy that names only the first route's ARN denies the other route.
    let (status, _) = get(&app, "/items", &[("authorization", &bearer("narrow"))]).await;
    assert_eq!(status, 200);
    let before = calls(&dir);
    let (status, body) = get(&app, "/other", &[("authorization", &bearer("narrow"))]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["Message"], "User is not authorized to access this resource");
    assert_eq!(calls(&dir), before, "the cached policy decided");

    // Garbage, a failure, and API Gateway's `Unauthorized` error.
    let (status, body) = get(&app, "/nocache", &[("authorization", &bearer("garbage"))]).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &"AuthorizerError".into()),
        "{body}"
    );
    assert!(
        body.get("message").is_some_and(|m| m.is_null()),
        "REST: {{\"message\": null}}: {body}"
    );
    let (status, body) = get(&app, "/nocache", &[("authorization", &bearer("crash"))]).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &"AuthorizerError".into()),
        "{body}"
    );
    let (status, body) = get(&app, "/nocache", &[("authorization", &bearer("unauthorized"))]).await;
    assert_eq!((status, &body["message"]), (401, &"Unauthorized".into()), "{body}");

    // identityValidationExpression: a token that does not match is refused without a call.
    let before = calls(&dir);
    let (status, _) = get(&app, "/validated", &[("authorization", "Token abc")]).await;
    assert_eq!(status, 401);
    assert_eq!(calls(&dir), before);
    let (status, _) = get(&app, "/validated", &[("authorization", &bearer("allow-3"))]).await;
    assert_eq!(status, 200);
    assert_eq!(calls(&dir), before + 1);
    app.stop().await;
}

/// An HTTP API REQUEST authorizer with simple responses, and one answering IAM policies.
const SIMPLE_AUTH: &str = r#"
const fs = require('fs');
exports.handler = async (event) => {
  fs.appendFileSync(__dirname + '/calls.log', JSON.stringify(event) + '\n');
  return { isAuthorized: event.headers['x-token'] === 'good', context: { tenant: event.queryStringParameters.tenant, ok: true, nested: { a: 1 } } };
};
"#;

const POLICY_AUTH: &str = r#"
const fs = require('fs');
exports.handler = async (event) => {
  fs.appendFileSync(__dirname + '/policy-calls.log', JSON.stringify(event) + '\n');
  const arn = event.routeArn || event.methodArn;
  return { principalId: 'p1', policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: event.headers['x-token'] === 'good' ? 'Allow' : 'Deny', Resource: arn }] }, context: { via: event.version } };
};
"#;

const HTTP_API_YML: &str = r#"
service: http-auth
provider:
  name: aws
  runtime: nodejs20.x
  httpApi:
    authorizers:
      simple:
        type: request
        functionName: simple
        enableSimpleResponses: true
        identitySource:
          - $request.header.X-Token
          - $request.querystring.tenant
      policy2:
        type: request
        functionName: policy
        identitySource: $request.header.X-Token
        resultTtlInSeconds: 0
      policy1:
        type: request
        functionName: policy
        payloadVersion: '1.0'
        identitySource: $request.header.X-Token
        resultTtlInSeconds: 0
functions:
  simple:
    handler: simple.handler
  policy:
    handler: policy.handler
  api:
    handler: api.handler
    events:
      - httpApi:
          method: GET
          path: /simple
          authorizer:
            name: simple
      - httpApi:
          method: GET
          path: /v2
          authorizer:
            name: policy2
      - httpApi:
          method: GET
          path: /v1
          authorizer: policy1
"#;

#[tokio::test]
async fn http_api_request_authorizers_simple_and_policy_payloads_1_and_2() {
    let app = TestApp::start(&[
        ("serverless.yml", HTTP_API_YML),
        ("simple.js", SIMPLE_AUTH),
        ("policy.js", POLICY_AUTH),
        ("api.js", ECHO),
    ])
    .await;
    let dir = app.dir.path().to_path_buf();

    // Each identity source is required: a missing one is 401 without an invocation.
    let (status, body) = get(&app, "/simple", &[("x-token", "good")]).await;
    assert_eq!((status, &body["message"]), (401, &"Unauthorized".into()), "{body}");
    let (status, _) = get(&app, "/simple?tenant=acme", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(calls(&dir), 0);

    // Allowed: the 2.0 event carries the context as answered under `lambda`.
    let (status, body) = get(&app, "/simple?tenant=acme", &[("x-token", "good")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["authorizer"],
        serde_json::json!({"lambda": {"tenant": "acme", "ok": true, "nested": {"a": 1}}})
    );
    let event = json(&lines(&dir.join("calls.log"))[0]);
    assert_eq!((&event["version"], &event["type"]), (&"2.0".into(), &"REQUEST".into()));
    assert_eq!(event["identitySource"], serde_json::json!(["good", "acme"]));
    assert_eq!(
        event["routeArn"],
        "arn:aws:execute-api:us-east-1:000000000000:gust/$default/GET/simple"
    );
    assert_eq!(event["routeKey"], "GET /simple");
    // The same identity values: cached (TTL 300 by default). Other values: invoked.
    let (status, _) = get(&app, "/simple?tenant=acme", &[("x-token", "good")]).await;
    assert_eq!(status, 200);
    assert_eq!(calls(&dir), 1);
    let (status, body) = get(&app, "/simple?tenant=acme", &[("x-token", "bad")]).await;
    assert_eq!((status, &body["message"]), (403, &"Forbidden".into()), "{body}");
    assert_eq!(calls(&dir), 2);

    // IAM policies with payload 2.0 and 1.0.
    let (status, body) = get(&app, "/v2", &[("x-token", "good")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorizer"], serde_json::json!({"lambda": {"via": "2.0"}}));
    let (status, body) = get(&app, "/v2", &[("x-token", "nope")]).await;
    assert_eq!((status, &body["message"]), (403, &"Forbidden".into()), "{body}");
    let (status, body) = get(&app, "/v1", &[("x-token", "good")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorizer"]["lambda"]["via"], "1.0");
    let v1 = json(lines(&dir.join("policy-calls.log")).last().unwrap());
    assert_eq!((&v1["version"], &v1["type"]), (&"1.0".into(), &"REQUEST".into()));
    assert_eq!(v1["identitySource"], "good");
    assert_eq!(v1["authorizationToken"], "good");
    assert_eq!(
        v1["methodArn"],
        "arn:aws:execute-api:us-east-1:000000000000:gust/$default/GET/v1"
    );
    app.stop().await;
}

#[tokio::test]
async fn gust_toml_route_authorizer() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            r#"
[app]
name = "toml-auth"
[functions.simple]
runtime = "nodejs20.x"
handler = "simple.handler"
[functions.api]
runtime = "nodejs20.x"
handler = "api.handler"
[[routes]]
route = "GET /items"
function = "api"
payload = "1.0"
authorizer = { function = "simple", simple_responses = true, identity_source = ["$request.header.X-Token", "$request.querystring.tenant"], ttl = 0 }
"#,
        ),
        ("simple.js", SIMPLE_AUTH),
        ("api.js", ECHO),
    ])
    .await;
    let dir = app.dir.path().to_path_buf();
    let (status, _) = get(&app, "/items", &[("x-token", "good")]).await;
    assert_eq!(status, 401);
    let (status, body) = get(&app, "/items?tenant=t9", &[("x-token", "good")]).await;
    assert_eq!(status, 200, "{body}");
    // A 1.0 route event: the context flat and stringified, as REST.
    assert_eq!(body["version"], "1.0");
    assert_eq!(body["authorizer"]["tenant"], "t9");
    assert_eq!(body["authorizer"]["ok"], "true");
    let (status, _) = get(&app, "/items?tenant=t9", &[("x-token", "bad")]).await;
    assert_eq!(status, 403);
    let (status, _) = get(&app, "/items?tenant=t9", &[("x-token", "good")]).await;
    assert_eq!(status, 200);
    assert_eq!(calls(&dir), 3, "ttl = 0: every request invokes");
    app.stop().await;
}

// ------------------------------------------------------------------ JWT and API keys

/// The test issuer's P-256 key (PKCS#8 DER, base64) and its public point.
const EC_KEY_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+UZLFydjei2xZv2mvT+9rwLXqhNT+CwHr3vwGHMYTQ+hRANCAARgF8UY8ApWKjT85jmMfES2WarS+cjWYQ4M/btLTwmDm/9R3Et+mKoMuRt98bE4UA4KSODMSMIJwUnn3rZDAsFT";
const EC_X: &str = "YBfFGPAKVio0_OY5jHxEtlmq0vnI1mEODP27S08Jg5s";
const EC_Y: &str = "_1HcS36Yqgy5G33xsThQDgpI4MxIwgnBSefetkMCwVM";

/// A minimal OpenID issuer on 127.0.0.1:0: its configuration and its JWKS. Returns its URL.
fn start_issuer() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let config = serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")}).to_string();
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "k1", "use": "sig", "alg": "ES256"}]}).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let body = if head.starts_with("GET /.well-known/openid-configuration") {
                &config
            } else {
                &jwks
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    issuer
}

fn es256(claims: serde_json::Value) -> String {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(EC_KEY_DER).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&der)).unwrap()
}

#[tokio::test]
async fn jwt_by_issuer_url_and_private_routes_with_the_manifest_api_keys() {
    let issuer = start_issuer();
    let yml = format!(
        r#"
service: keys-and-jwt
provider:
  name: aws
  runtime: nodejs20.x
  httpApi:
    authorizers:
      idp:
        type: jwt
        identitySource: $request.header.Authorization
        issuerUrl: {issuer}
        audience: shop
  apiGateway:
    apiKeys:
      - name: mobile
        value: mobile-key-from-the-manifest-0001
      - generated
    usagePlan:
      throttle:
        rateLimit: 100
        burstLimit: 200
functions:
  api:
    handler: api.handler
    events:
      - httpApi:
          method: GET
          path: /jwt
          authorizer:
            name: idp
            scopes: [items.read]
      - http:
          path: private
          method: get
          private: true
"#
    );
    let app = TestApp::start(&[("serverless.yml", &yml), ("api.js", ECHO)]).await;
    let exp = (std::time::SystemTime::now() + std::time::Duration::from_secs(600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |scope: &str| {
        format!(
            "Bearer {}",
            es256(serde_json::json!({"iss": issuer, "aud": "shop", "exp": exp, "sub": "u1", "scope": scope}))
        )
    };

    let (status, body) = get(&app, "/jwt", &[]).await;
    assert_eq!((status, &body["message"]), (401, &"Unauthorized".into()), "{body}");
    let (status, body) = get(&app, "/jwt", &[("authorization", &token("items.read profile"))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorizer"]["jwt"]["claims"]["sub"], "u1");
    let (status, body) = get(&app, "/jwt", &[("authorization", &token("profile"))]).await;
    assert_eq!(
        (status, &body["message"]),
        (403, &"Forbidden".into()),
        "a token without the route's scope"
    );

    // private: true takes the manifest's key in x-api-key, and refuses others.
    let (status, _) = get(&app, "/private", &[]).await;
    assert_eq!(status, 401);
    let (status, _) = get(&app, "/private", &[("x-api-key", "not-a-key-of-this-app-000000")]).await;
    assert_eq!(status, 401);
    let (status, body) = get(&app, "/private", &[("x-api-key", "mobile-key-from-the-manifest-0001")]).await;
    assert_eq!(status, 200, "{body}");
    // The key without a value was generated at this start, handed over once.
    let generated = &app.platform().new_api_keys;
    assert_eq!(generated.len(), 1, "{generated:?}");
    assert_eq!(generated[0].0, "generated");
    let (status, _) = get(&app, "/private", &[("x-api-key", &generated[0].1)]).await;
    assert_eq!(status, 200);
    // Listed with the usage plan's limits, by hash only.
    let list = app.admin_text("/gust/v1/apikeys").await;
    assert!(list.contains("mobile") && list.contains("generated"), "{list}");
    assert!(!list.contains("mobile-key-from-the-manifest"), "{list}");
    let listed = json(&list);
    assert!(
        listed["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["managed"] == true),
        "both are the manifest's: {list}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unmappable_authorizer_refuses_to_start() {
    let dir = write_app(&[
        (
            "serverless.yml",
            "service: s\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  api:\n    handler: api.handler\n    events:\n      - http:\n          path: x\n          method: get\n          authorizer:\n            arn: arn:aws:cognito-idp:us-east-1:1:userpool/p\n",
        ),
        ("api.js", ECHO),
    ]);
    let out = gust_cli(vec!["validate".into(), dir.path().display().to_string()], Vec::new()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serverless.yml"), "{err}");
    assert!(err.contains("functions.api.events[0].http.authorizer.arn"), "{err}");
    assert!(err.contains("Cognito"), "{err}");

    // A validation expression that is no regular expression is found before any request.
    let dir = write_app(&[
        (
            "serverless.yml",
            "service: s\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  auth:\n    handler: auth.handler\n  api:\n    handler: api.handler\n    events:\n      - http:\n          path: x\n          method: get\n          authorizer:\n            name: auth\n            identityValidationExpression: '^Bearer (['\n",
        ),
        ("api.js", ECHO),
        ("auth.js", TOKEN_AUTH),
    ]);
    let out = gust_cli(validate_args(dir.path()), Vec::new()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serverless.yml") && err.contains("identityValidationExpression"),
        "{err}"
    );
}

fn validate_args(dir: &Path) -> Vec<String> {
    vec!["validate".into(), dir.display().to_string()]
}

/// `gust up` with `state`: waits until it serves, calls `check` with its gateway URL, stops
/// it with SIGTERM and returns what it printed on stdout.
async fn gust_up_stdout(app: &Path, state: &Path, check: impl AsyncFnOnce(String)) -> String {
    let info = state.join("gust.json");
    let _ = std::fs::remove_file(&info);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(gust_up_args(app, state))
        .args(["--sandbox", "off"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut gateway = String::new();
    wait_for("gust up to write gust.json", std::time::Duration::from_secs(30), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("gust up exited early: {status}");
        }
        let v: serde_json::Value = std::fs::read_to_string(&info)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        gateway = v["gateway"].as_str().unwrap_or_default().to_string();
        !gateway.is_empty()
    })
    .await;
    check(gateway).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_generated_api_key_is_printed_once_and_kept_across_restarts() {
    let dir = write_app(&[
        (
            "serverless.yml",
            "service: gen\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  apiGateway:\n    apiKeys:\n      - partner\nfunctions:\n  api:\n    handler: api.handler\n    events:\n      - http:\n          path: private\n          method: get\n          private: true\n",
        ),
        ("api.js", ECHO),
    ]);
    let state = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let first = gust_up_stdout(dir.path(), state.path(), async |_| {}).await;
    let keys: Vec<&str> = first.lines().filter(|l| l.starts_with("gk_")).collect();
    assert_eq!(keys.len(), 1, "the generated key, once: {first}");
    let key = keys[0].to_string();
    // A restart on the same state: the key is not shown again, and still works.
    let second = gust_up_stdout(dir.path(), state.path(), async |gateway| {
        let ok = client
            .get(format!("{gateway}/private"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let refused = client.get(format!("{gateway}/private")).send().await.unwrap();
        assert_eq!(refused.status(), 401);
    })
    .await;
    assert!(!second.contains("gk_"), "shown at the first start only: {second}");
}
