//! Authorizers and API keys in both manifest formats: each mapping, and each refusal (a
//! refusal names the file and the key and says what Gust supports; nothing is served open).

use crate::{
    parse, ApiKeySpec, AuthorizerFormat, FunctionName, IdentitySource, LambdaAuthorizerKind, LoadOptions, Loaded,
    ManifestError, RouteAuth,
};
use std::path::Path;
use std::time::Duration;

fn yml(text: &str) -> Result<Loaded, ManifestError> {
    parse(
        Path::new("/svc/serverless.yml"),
        text,
        Path::new("/svc"),
        &LoadOptions::from_env_map([("UNUSED", "")]),
    )
}

fn toml(text: &str) -> Result<Loaded, ManifestError> {
    parse(
        Path::new("/app/gust.toml"),
        text,
        Path::new("/app"),
        &LoadOptions::from_env_map([("UNUSED", "")]),
    )
}

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

/// A serverless.yml with an `auth` function and `api` whose one event is `event`.
fn sls(provider: &str, event: &str) -> String {
    format!(
        "service: svc\nprovider:\n  name: aws\n  runtime: nodejs20.x\n{provider}functions:\n  auth:\n    handler: auth.handler\n  api:\n    handler: api.handler\n    events:\n{event}"
    )
}

fn route_auth(l: &Loaded) -> &RouteAuth {
    &l.app.routes[0].auth
}

/// The refusal's key, and its message must contain every one of `words`.
fn refused(r: Result<Loaded, ManifestError>, key: &str, words: &[&str]) {
    let e = match r {
        Ok(l) => panic!("loaded, expected a refusal of `{key}`: {:?}", l.app.routes),
        Err(e) => e,
    };
    assert_eq!(e.key, key, "{e}");
    assert!(
        e.to_string().contains("serverless.yml") || e.to_string().contains("gust.toml"),
        "{e}"
    );
    for w in words {
        assert!(e.message.contains(w), "`{w}` missing from: {e}");
    }
}

// ------------------------------------------------------------------ REST (`http`) events

#[test]
fn rest_token_authorizer_by_function_name() {
    let l = yml(&sls(
        "",
        "      - http:\n          path: items\n          method: get\n          authorizer: auth\n",
    ))
    .unwrap();
    assert_eq!(route_auth(&l).lambda, Some(name("auth")));
    let a = &l.app.lambda_authorizers[&name("auth")];
    assert_eq!(a.function, name("auth"));
    assert_eq!(a.kind, LambdaAuthorizerKind::Token);
    assert_eq!(a.format, AuthorizerFormat::Rest);
    assert_eq!(a.identity_sources, [IdentitySource::Header("authorization".into())]);
    assert_eq!(a.ttl, Duration::from_secs(300), "API Gateway's default");
    assert!(
        l.warnings.is_empty(),
        "authorizers are mapped, not warned about: {:?}",
        l.warnings
    );
}

#[test]
fn rest_request_authorizer_with_every_setting() {
    let l = yml(&sls(
        "",
        "      - http:\n          path: items\n          method: get\n          authorizer:\n            name: auth\n            type: request\n            identitySource: method.request.header.X-Token, method.request.querystring.tenant\n            resultTtlInSeconds: 0\n",
    ))
    .unwrap();
    let a = &l.app.lambda_authorizers[&name("auth")];
    assert_eq!(a.kind, LambdaAuthorizerKind::Request);
    assert_eq!(
        a.identity_sources,
        [
            IdentitySource::Header("x-token".into()),
            IdentitySource::Query("tenant".into())
        ]
    );
    assert_eq!(a.ttl, Duration::ZERO);
}

#[test]
fn rest_token_validation_expression_and_two_configurations_of_one_function() {
    let l = yml(&sls(
        "",
        "      - http:\n          path: a\n          method: get\n          authorizer:\n            name: auth\n            identityValidationExpression: '^Bearer [a-z]+$'\n      - http:\n          path: b\n          method: get\n          authorizer:\n            name: auth\n            resultTtlInSeconds: 10\n      - http:\n          path: c\n          method: get\n          authorizer:\n            name: auth\n            identityValidationExpression: '^Bearer [a-z]+$'\n",
    ))
    .unwrap();
    let names: Vec<_> = l.app.routes.iter().map(|r| r.auth.lambda.clone().unwrap()).collect();
    assert_eq!(
        names,
        [name("auth"), name("auth-2"), name("auth")],
        "same settings share one"
    );
    assert_eq!(
        l.app.lambda_authorizers[&name("auth")].validation.as_deref(),
        Some("^Bearer [a-z]+$")
    );
    assert_eq!(l.app.lambda_authorizers[&name("auth-2")].ttl, Duration::from_secs(10));
}

#[test]
fn private_routes_and_api_keys_with_a_usage_plan() {
    let l = yml(&sls(
        "  apiGateway:\n    apiKeys:\n      - generated-key\n      - name: given-key\n        value: abcdefghijklmnopqrstuvwxyz\n      - name: off-key\n        enabled: false\n    usagePlan:\n      quota:\n        limit: 5000\n        period: DAY\n      throttle:\n        rateLimit: 10\n        burstLimit: 20\n",
        "      - http:\n          path: items\n          method: get\n          private: true\n",
    ))
    .unwrap();
    assert!(route_auth(&l).api_key);
    assert_eq!(
        l.app.api_keys,
        [
            ApiKeySpec {
                name: "generated-key".into(),
                value: None,
                rate: Some(10.0),
                burst: Some(20),
                quota_per_day: Some(5000),
            },
            ApiKeySpec {
                name: "given-key".into(),
                value: Some("abcdefghijklmnopqrstuvwxyz".into()),
                rate: Some(10.0),
                burst: Some(20),
                quota_per_day: Some(5000),
            },
        ],
        "a disabled key is not created"
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn api_keys_grouped_by_named_usage_plans_and_the_older_provider_keys() {
    let l = yml(&sls(
        "  apiKeys:\n    - free:\n        - free-key\n    - paid:\n        - name: paid-key\n          value: paidpaidpaidpaidpaidpaid\n  usagePlan:\n    - free:\n        throttle:\n          rateLimit: 1\n    - paid:\n        quota:\n          limit: 100\n",
        "      - http: GET items\n",
    ))
    .unwrap();
    let by_name = |n: &str| l.app.api_keys.iter().find(|k| k.name == n).unwrap().clone();
    assert_eq!(
        (by_name("free-key").rate, by_name("free-key").quota_per_day),
        (Some(1.0), None)
    );
    assert_eq!(
        (by_name("paid-key").rate, by_name("paid-key").quota_per_day),
        (None, Some(100))
    );
}

#[test]
fn api_key_refusals() {
    let ev = "      - http: GET items\n";
    refused(
        yml(&sls(
            "  apiGateway:\n    apiKeys:\n      - name: k\n        value: short\n",
            ev,
        )),
        "provider.apiGateway.apiKeys[0].value",
        &["20"],
    );
    refused(
        yml(&sls(
            "  apiGateway:\n    apiKeys:\n      - k\n    usagePlan:\n      quota:\n        limit: 10\n        period: MONTH\n",
            ev,
        )),
        "provider.apiGateway.usagePlan.quota.period",
        &["MONTH", "per UTC day"],
    );
    refused(
        yml(&sls("  apiGateway:\n    apiKeys:\n      - gold:\n          - k\n", ev)),
        "provider.apiGateway.apiKeys[0].gold[0]",
        &["no usage plan `gold`"],
    );
    refused(
        yml(&sls("  apiGateway:\n    apiKeySourceType: AUTHORIZER\n", ev)),
        "provider.apiGateway.apiKeySourceType",
        &["x-api-key"],
    );
    refused(
        yml(&sls("  apiGateway:\n    apiKeys:\n      - k\n      - k\n", ev)),
        "provider.apiGateway.apiKeys[1]",
        &["twice"],
    );
}

#[test]
fn rest_refusals_name_the_key_and_what_is_supported() {
    let ev =
        |a: &str| format!("      - http:\n          path: items\n          method: get\n          authorizer:{a}\n");
    refused(
        yml(&sls("", &ev(" aws_iam"))),
        "functions.api.events[0].http.authorizer",
        &["aws_iam", "Gust supports Lambda authorizers"],
    );
    refused(
        yml(&sls(
            "",
            &ev("\n            arn: arn:aws:cognito-idp:us-east-1:123:userpool/us-east-1_abc"),
        )),
        "functions.api.events[0].http.authorizer.arn",
        &["Cognito", "Gust supports"],
    );
    refused(
        yml(&sls(
            "",
            &ev("\n            name: auth\n            type: COGNITO_USER_POOLS"),
        )),
        "functions.api.events[0].http.authorizer.type",
        &["cognito_user_pools", "Gust supports"],
    );
    refused(
        yml(&sls(
            "",
            &ev("\n            authorizerId: abc\n            type: CUSTOM"),
        )),
        "functions.api.events[0].http.authorizer.authorizerId",
        &["outside this file"],
    );
    refused(
        yml(&sls("", &ev(" nosuchfn"))),
        "functions.api.events[0].http.authorizer.name",
        &["no function named `nosuchfn`"],
    );
    refused(
        yml(&sls("", &ev("\n            name: auth\n            claims: [email]"))),
        "functions.api.events[0].http.authorizer.claims",
        &["never ignored"],
    );
    refused(
        yml(&sls(
            "",
            &ev("\n            name: auth\n            identitySource: stageVariables.token"),
        )),
        "functions.api.events[0].http.authorizer.identitySource",
        &["header or a query string"],
    );
    refused(
        yml(&sls(
            "",
            &ev("\n            name: auth\n            type: request\n            identityValidationExpression: x"),
        )),
        "functions.api.events[0].http.authorizer.identityValidationExpression",
        &["TOKEN"],
    );
}

// ----------------------------------------------------------------- HTTP API (`httpApi`)

const HTTP_API_AUTHORIZERS: &str = "  httpApi:\n    authorizers:\n      idp:\n        type: jwt\n        identitySource: $request.header.Authorization\n        issuerUrl: https://idp.example.com/\n        audience:\n          - shop\n      custom:\n        type: request\n        functionName: auth\n        identitySource:\n          - $request.header.Authorization\n          - $request.querystring.tenant\n        enableSimpleResponses: true\n        resultTtlInSeconds: 60\n      custom1:\n        type: request\n        functionName: auth\n        payloadVersion: '1.0'\n";

#[test]
fn http_api_jwt_authorizer_with_scopes() {
    let l = yml(&sls(
        HTTP_API_AUTHORIZERS,
        "      - httpApi:\n          method: GET\n          path: /items\n          authorizer:\n            name: idp\n            scopes: [items.read]\n",
    ))
    .unwrap();
    let auth = route_auth(&l);
    assert_eq!(auth.jwt, Some(name("idp")));
    assert_eq!(auth.scopes, ["items.read"]);
    let j = &l.app.authorizers[&name("idp")];
    assert_eq!(j.issuer, "https://idp.example.com/");
    assert_eq!(j.audiences, ["shop"]);
    assert!(j.openid_discovery, "issuerUrl: the JWKS is found by OpenID discovery");
    assert!(j.jwks_url.is_none() && j.jwks_file.is_none() && j.hs256_secret.is_none());
}

#[test]
fn http_api_lambda_authorizers_v2_simple_and_v1() {
    let l = yml(&sls(
        HTTP_API_AUTHORIZERS,
        "      - httpApi:\n          method: GET\n          path: /a\n          authorizer:\n            name: custom\n      - httpApi:\n          method: GET\n          path: /b\n          authorizer: custom1\n",
    ))
    .unwrap();
    assert_eq!(l.app.routes[0].auth.lambda, Some(name("custom")));
    assert_eq!(l.app.routes[1].auth.lambda, Some(name("custom1")));
    let v2 = &l.app.lambda_authorizers[&name("custom")];
    assert_eq!(
        (v2.function.as_str(), v2.kind, v2.format, v2.simple_responses, v2.ttl),
        (
            "auth",
            LambdaAuthorizerKind::Request,
            AuthorizerFormat::HttpV2,
            true,
            Duration::from_secs(60)
        )
    );
    assert_eq!(v2.identity_sources.len(), 2);
    let v1 = &l.app.lambda_authorizers[&name("custom1")];
    assert_eq!(v1.format, AuthorizerFormat::HttpV1);
    assert!(v1.identity_sources.is_empty());
    assert_eq!(v1.ttl, Duration::ZERO, "no identity source: nothing to cache by");
}

#[test]
fn http_api_refusals() {
    let ev =
        |a: &str| format!("      - httpApi:\n          method: GET\n          path: /a\n          authorizer:{a}\n");
    refused(
        yml(&sls("", &ev("\n            type: aws_iam"))),
        "functions.api.events[0].httpApi.authorizer.type",
        &["aws_iam", "Gust supports"],
    );
    refused(
        yml(&sls("", &ev("\n            id: abc123"))),
        "functions.api.events[0].httpApi.authorizer.id",
        &["outside this file"],
    );
    refused(
        yml(&sls("", &ev("\n            name: missing"))),
        "functions.api.events[0].httpApi.authorizer.name",
        &["provider.httpApi.authorizers"],
    );
    refused(
        yml(&sls(
            HTTP_API_AUTHORIZERS,
            &ev("\n            name: custom\n            scopes: [a]"),
        )),
        "functions.api.events[0].httpApi.authorizer.scopes",
        &["JWT"],
    );
    let with = |a: &str| format!("  httpApi:\n    authorizers:\n      x:\n{a}");
    refused(
        yml(&sls(
            &with("        type: request\n        functionArn: arn:aws:lambda:us-east-1:1:function:other\n"),
            &ev(" x"),
        )),
        "provider.httpApi.authorizers.x.functionArn",
        &["ARN"],
    );
    refused(
        yml(&sls(
            &with("        type: request\n        functionName: nope\n"),
            &ev(" x"),
        )),
        "provider.httpApi.authorizers.x.functionName",
        &["no function named `nope`"],
    );
    refused(
        yml(&sls(
            &with(
                "        issuerUrl: https://i/\n        audience: a\n        identitySource: $request.header.X-Token\n",
            ),
            &ev(" x"),
        )),
        "provider.httpApi.authorizers.x.identitySource",
        &["Authorization"],
    );
    refused(
        yml(&sls(&with("        issuerUrl: https://i/\n"), &ev(" x"))),
        "provider.httpApi.authorizers.x.audience",
        &["audience"],
    );
    refused(
        yml(&sls(
            &with("        type: request\n        functionName: auth\n        payloadVersion: '1.0'\n        enableSimpleResponses: true\n"),
            &ev(" x"),
        )),
        "provider.httpApi.authorizers.x.enableSimpleResponses",
        &["2.0"],
    );
    refused(
        yml(&sls(&with("        type: cognito\n"), &ev(" x"))),
        "provider.httpApi.authorizers.x.type",
        &["jwt", "request"],
    );
}

#[test]
fn a_bare_string_event_is_refused_with_the_supported_types() {
    refused(
        yml(&sls("", "      - alexaSkill\n")),
        "functions.api.events[0]",
        &["alexaSkill", "http, httpApi, schedule, sqs, sns"],
    );
}

// ------------------------------------------------------------------------------ gust.toml

const TOML_BASE: &str =
    "[app]\nname = \"a\"\n[functions.auth]\nruntime = \"nodejs20.x\"\nhandler = \"auth.handler\"\n[functions.api]\nruntime = \"nodejs20.x\"\nhandler = \"api.handler\"\n";

#[test]
fn gust_toml_route_lambda_authorizers() {
    let l = toml(&format!(
        "{TOML_BASE}[[routes]]\nroute = \"GET /a\"\nfunction = \"api\"\nauthorizer = {{ function = \"auth\" }}\n\
         [[routes]]\nroute = \"GET /b\"\nfunction = \"api\"\nauthorizer = {{ function = \"auth\", type = \"token\", identity_source = \"method.request.header.X-Token\", ttl = 0, validation = \"^t\" }}\n\
         [[routes]]\nroute = \"GET /c\"\nfunction = \"api\"\nauthorizer = {{ function = \"auth\", simple_responses = true, identity_source = [\"$request.header.Authorization\", \"$request.querystring.t\"] }}\n"
    ))
    .unwrap();
    let names: Vec<_> = l.app.routes.iter().map(|r| r.auth.lambda.clone().unwrap()).collect();
    assert_eq!(names, [name("auth"), name("auth-2"), name("auth-3")]);
    let a = &l.app.lambda_authorizers;
    let first = &a[&name("auth")];
    assert_eq!(
        (first.kind, first.format, first.ttl, first.simple_responses),
        (
            LambdaAuthorizerKind::Request,
            AuthorizerFormat::HttpV2,
            Duration::from_secs(300),
            false
        )
    );
    assert_eq!(first.identity_sources, [IdentitySource::Header("authorization".into())]);
    let token = &a[&name("auth-2")];
    assert_eq!(
        (token.kind, token.format, token.ttl, token.validation.as_deref()),
        (
            LambdaAuthorizerKind::Token,
            AuthorizerFormat::Rest,
            Duration::ZERO,
            Some("^t")
        )
    );
    assert_eq!(token.identity_sources, [IdentitySource::Header("x-token".into())]);
    assert!(a[&name("auth-3")].simple_responses);
}

#[test]
fn gust_toml_scopes_and_openid_discovery() {
    let l = toml(&format!(
        "{TOML_BASE}[authorizers.idp]\nissuer = \"https://idp/\"\naudiences = [\"x\"]\nopenid_discovery = true\n\
         [[routes]]\nroute = \"GET /a\"\nfunction = \"api\"\njwt = \"idp\"\nscopes = [\"read\"]\n"
    ))
    .unwrap();
    assert_eq!(route_auth(&l).scopes, ["read"]);
    assert!(l.app.authorizers[&name("idp")].openid_discovery);
}

#[test]
fn gust_toml_authorizer_refusals() {
    let route = |a: &str| format!("{TOML_BASE}[[routes]]\nroute = \"GET /a\"\nfunction = \"api\"\n{a}\n");
    let cases: [(&str, &str, &str); 7] = [
        (
            "authorizer = { function = \"nope\" }",
            "routes[0].authorizer.function",
            "no function named `nope`",
        ),
        (
            "authorizer = { function = \"auth\", type = \"iam\" }",
            "routes[0].authorizer.type",
            "request",
        ),
        (
            "authorizer = { function = \"auth\", type = \"token\", format = \"2.0\" }",
            "routes[0].authorizer.format",
            "REST",
        ),
        (
            "authorizer = { function = \"auth\", format = \"1.0\", simple_responses = true }",
            "routes[0].authorizer.simple_responses",
            "2.0",
        ),
        (
            "authorizer = { function = \"auth\", ttl = 4000 }",
            "routes[0].authorizer.ttl",
            "3600",
        ),
        (
            "authorizer = { function = \"auth\", identity_source = \"$context.x\" }",
            "routes[0].authorizer.identity_source",
            "header",
        ),
        ("scopes = [\"a\"]", "routes[0].scopes", "jwt"),
    ];
    for (line, key, word) in cases {
        let e = match toml(&route(line)) {
            Ok(_) => panic!("{line} loaded"),
            Err(e) => e,
        };
        assert_eq!(e.key, key, "{line}: {e}");
        assert!(e.message.contains(word), "{line}: {e}");
    }
}
