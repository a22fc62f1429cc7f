//! The admin address's three faces and their credentials, against a real Gust over real HTTP:
//! operator actions only with the operator token (never a function's), a function only with
//! what it was granted, the Lambda API with SigV4 (boto3) or the operator token, and `Host` /
//! `Origin` checked before any of them.

use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;

const MANIFEST: &str = r#"
[app]
name = "ctl"
[upstreams.svc]
targets = ["http://127.0.0.1:9"]
[topics.news]
[functions.granted]
runtime = "nodejs20.x"
handler = "who.handler"
secrets = ["GRANTED_SECRET"]
invokes = ["plain"]
services = ["svc"]
publishes = ["news"]
[functions.plain]
runtime = "nodejs20.x"
handler = "who.handler"
"#;

/// Answers with its own token, so the test can act as that function.
const WHO: &str = "exports.handler = async (event) => ({ token: process.env.GUST_TOKEN, event });";

async fn app() -> TestApp {
    TestApp::start(&[("gust.toml", MANIFEST), ("who.js", WHO)]).await
}

/// A function's `GUST_TOKEN`, from the function itself.
async fn token_of(app: &TestApp, function: &str) -> String {
    let (status, _, body) = app.invoke(function, "{}").await;
    assert_eq!(status, 200, "{body}");
    json(&body)["token"].as_str().unwrap().to_string()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, headers)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Every operator action: (method, path, body). One per operator endpoint of the contract but
/// publishing, which is both faces and checked on its own (`contract.rs` holds the two together).
pub(crate) fn operator_actions() -> Vec<(Method, &'static str, &'static str)> {
    vec![
        (Method::GET, "/gust/v1/secrets", ""),
        (Method::PUT, "/gust/v1/secrets/GRANTED_SECRET", "overwritten"),
        (Method::DELETE, "/gust/v1/secrets/GRANTED_SECRET", ""),
        (Method::POST, "/gust/v1/secrets/master/rotate", ""),
        (Method::GET, "/gust/v1/apikeys", ""),
        (Method::POST, "/gust/v1/apikeys", r#"{"name":"minted"}"#),
        (Method::DELETE, "/gust/v1/apikeys/minted", ""),
        (Method::GET, "/gust/v1/access-keys", ""),
        (Method::POST, "/gust/v1/access-keys", ""),
        (Method::DELETE, "/gust/v1/access-keys/GKIAAAAAAAAAAAAAAAAA", ""),
        (Method::GET, "/gust/v1/subscriptions", ""),
        (Method::GET, "/gust/v1/dlq", ""),
        (Method::GET, "/gust/v1/dlq/gust.async.plain/1", ""),
        (Method::POST, "/gust/v1/dlq/gust.async.plain/redrive", ""),
        (Method::DELETE, "/gust/v1/dlq/gust.async.plain", ""),
        (Method::GET, "/gust/v1/schedules", ""),
        (Method::POST, "/gust/v1/schedules/nightly/run", ""),
        (Method::GET, "/gust/v1/invocations", ""),
        (Method::GET, "/gust/v1/logs", ""),
        (Method::GET, "/gust/v1/usage", ""),
        (Method::GET, "/gust/v1/traces/0af7651916cd43dd8448eb211c80319c", ""),
        (Method::GET, "/gust/v1/functions", ""),
        (Method::GET, "/metrics", ""),
        (Method::POST, "/gust/v1/deployments", ""),
        (Method::GET, "/gust/v1/deployments", ""),
        (Method::POST, "/gust/v1/deployments/rollback", ""),
        (Method::GET, "/gust/v1/functions/plain", ""),
        (Method::GET, "/gust/v1/status", ""),
        (Method::GET, "/gust/v1/series", ""),
        (Method::GET, "/gust/v1/stats", ""),
        (Method::GET, "/gust/v1/subscriptions/gust.async.plain/series", ""),
        (Method::GET, "/gust/v1/logs/stream", ""),
        (Method::POST, "/gust/v1/console/codes", ""),
    ]
}

/// The list above is every operator endpoint of the contract's table, so a new one cannot be
/// left out of the credential test.
#[test]
fn operator_actions_cover_every_operator_endpoint() {
    let listed: std::collections::HashSet<_> = operator_actions()
        .iter()
        .map(|(m, p, _)| {
            gust_api::Endpoint::resolve(m.as_str(), p)
                .expect("listed paths resolve")
                .endpoint
        })
        .collect();
    for &e in gust_api::Endpoint::ALL {
        if e.face() == gust_api::Face::Operator && e != gust_api::Endpoint::Publish {
            assert!(
                listed.contains(&e),
                "{} {} is not in operator_actions()",
                e.method(),
                e.path()
            );
        }
    }
}

#[tokio::test]
async fn every_operator_action_needs_the_operator_token() {
    let app = app().await;
    let set = app
        .op(Method::PUT, "/gust/v1/secrets/GRANTED_SECRET")
        .body("the-original-value")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let function_token = token_of(&app, "granted").await;
    let master_before = std::fs::read(app.platform().state_dir.join("master.key")).unwrap();

    for (method, path, body) in operator_actions() {
        let req = || {
            app.client
                .request(method.clone(), app.admin(path))
                .body(body.to_string())
        };
        let (status, v, _) = send(req()).await;
        assert_eq!(
            (status, code(&v)),
            (401, "OperatorTokenRequired"),
            "{method} {path}: {v}"
        );
        let (status, v, _) = send(req().bearer_auth("gop_not-the-operator-token-0123456789abcdef")).await;
        assert_eq!(
            (status, code(&v)),
            (401, "OperatorTokenRequired"),
            "{method} {path}: {v}"
        );
        let (status, v, _) = send(req().bearer_auth(&function_token)).await;
        assert_eq!((status, code(&v)), (403, "OperatorOnly"), "{method} {path}: {v}");
    }
    // The Lambda API refuses a function's token too (functions invoke through their grants).
    let invoke = app.admin("/2015-03-31/functions/plain/invocations");
    for req in [
        app.client.post(&invoke),
        app.client.post(&invoke).bearer_auth(&function_token),
    ] {
        let (status, v, h) = send(req.body("{}")).await;
        assert_eq!(status, 403, "{v}");
        assert!(v["message"].is_string(), "{v}");
        assert!(h.contains_key("x-amzn-errortype"), "{h:?}");
        crate::contract::conforms(
            "POST",
            "/2015-03-31/functions/plain/invocations",
            status,
            &v.to_string(),
        )
        .unwrap_or_else(|e| panic!("a refused invoke: {e}"));
    }

    // Nothing of that happened: the secret, the keys and the master key are as they were.
    assert_eq!(
        std::fs::read(app.platform().state_dir.join("master.key")).unwrap(),
        master_before
    );
    let secrets = json(&app.admin_text("/gust/v1/secrets").await);
    assert_eq!(secrets["secrets"][0]["version"], 1, "{secrets}");
    assert_eq!(json(&app.admin_text("/gust/v1/apikeys").await)["api_keys"], json!([]));
    assert_eq!(
        json(&app.admin_text("/gust/v1/access-keys").await)["access_keys"],
        json!([])
    );
    let (_, _, body) = app.invoke("granted", "{}").await;
    assert!(body.contains("token"), "{body}");

    // With the operator token every one of them is served (whatever its own answer), as the
    // contract documents it: a status `docs/openapi.json` lists, a body of its schema.
    for (method, path, body) in operator_actions() {
        let r = app
            .op(method.clone(), path)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if path == "/gust/v1/logs/stream" {
            // A stream does not end: its answer is the status and the content type.
            assert_eq!(status, 200, "{method} {path} as the operator");
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            continue;
        }
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        assert!(
            status != 401 && status != 403 && code(&v) != "NotFound",
            "{method} {path} as the operator: {status} {v}"
        );
        crate::contract::conforms(method.as_str(), path, status, &text)
            .unwrap_or_else(|e| panic!("{method} {path} as the operator: {e}"));
    }
    // Publishing is both: `gust publish` (operator) and a function granted the topic (its
    // token, `publishes`); nobody else, and not a function without the grant.
    // (Setting the secret above redeployed `granted`, with a new token.)
    let granted_token = token_of(&app, "granted").await;
    let plain_token = token_of(&app, "plain").await;
    let news = app.admin("/gust/v1/events/news");
    let (status, v, _) = send(app.client.post(&news).body("{}")).await;
    assert_eq!((status, code(&v)), (401, "Unauthorized"), "{v}");
    let (status, v, _) = send(app.op(Method::POST, "/gust/v1/events/news").body("{}")).await;
    assert_eq!(status, 202, "{v}");
    crate::contract::conforms("POST", "/gust/v1/events/news", status, &v.to_string())
        .unwrap_or_else(|e| panic!("gust publish: {e}"));
    let (status, v, _) = send(app.client.post(&news).bearer_auth(&granted_token).body("{}")).await;
    assert_eq!(status, 202, "{v}");
    let (status, v, _) = send(app.client.post(&news).bearer_auth(&plain_token).body("{}")).await;
    assert_eq!(
        (status, code(&v)),
        (403, "Forbidden"),
        "a function without `publishes`: {v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("to publish to `news`"),
        "{v}"
    );
    // The gateway takes no publishes for a topic that is not public, and says no more than
    // it would for an unknown one.
    let (status, v, _) = send(app.client.post(app.url("/events/news")).body("{}")).await;
    assert_eq!((status, code(&v)), (404, "TopicNotFound"), "{v}");
    // The health check stays open.
    let (status, _, _) = send(app.client.get(app.admin("/healthz"))).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_function_gets_only_its_own_grants_and_the_operator_token_is_not_a_function() {
    let app = app().await;
    let set = app
        .op(Method::PUT, "/gust/v1/secrets/GRANTED_SECRET")
        .body("granted-value-42")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let granted = token_of(&app, "granted").await;
    let plain = token_of(&app, "plain").await;
    assert_ne!(granted, plain);

    // The granted function: its secret and the function it may invoke.
    let (status, v, _) = send(
        app.client
            .get(app.admin("/gust/v1/secrets/GRANTED_SECRET"))
            .bearer_auth(&granted),
    )
    .await;
    assert_eq!((status, v), (200, Value::String("granted-value-42".into())));
    let (status, v, _) = send(
        app.client
            .post(app.admin("/gust/v1/functions/plain/invoke"))
            .bearer_auth(&granted)
            .body(r#"{"from":"granted"}"#),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["event"]["from"], "granted");

    // The other function, with its own token, gets none of the first one's grants.
    for (method, path) in [
        (Method::GET, "/gust/v1/secrets/GRANTED_SECRET".to_string()),
        (Method::POST, "/gust/v1/functions/plain/invoke".to_string()),
        (Method::GET, "/gust/v1/services/svc/anything".to_string()),
    ] {
        let (status, v, _) = send(app.client.request(method.clone(), app.admin(&path)).bearer_auth(&plain)).await;
        assert_eq!((status, code(&v)), (403, "Forbidden"), "{method} {path}: {v}");
    }
    let (status, v, _) = send(
        app.client
            .get(app.admin(&format!("/gust/v1/fn/{plain}/services/svc/x"))),
    )
    .await;
    assert_eq!((status, code(&v)), (403, "Forbidden"), "{v}");

    // The operator token is not a function's token: the platform API refuses it.
    for (method, path) in [
        (Method::GET, "/gust/v1/kv/x"),
        (Method::GET, "/gust/v1/blobs/x"),
        (Method::GET, "/gust/v1/secrets/GRANTED_SECRET"),
        (Method::POST, "/gust/v1/functions/plain/invoke"),
        (Method::GET, "/gust/v1/services/svc/x"),
    ] {
        let (status, v, _) = send(app.op(method.clone(), path)).await;
        assert_eq!((status, code(&v)), (403, "FunctionOnly"), "{method} {path}: {v}");
    }
    // And no token, or a made-up one, is nobody.
    for token in [None, Some("forged")] {
        let mut req = app.client.get(app.admin("/gust/v1/kv/x"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let (status, v, _) = send(req).await;
        assert_eq!((status, code(&v)), (401, "Unauthorized"), "{v}");
    }
    app.stop().await;
}

const BOTO3: &str = r#"
import json, sys, boto3, botocore
from botocore.config import Config
endpoint, key_id, secret = sys.argv[1:4]
def attempt(k, s):
    c = boto3.client("lambda", endpoint_url=endpoint, region_name="eu-central-1",
                     aws_access_key_id=k, aws_secret_access_key=s,
                     config=Config(retries={"max_attempts": 1}))
    try:
        r = c.invoke(FunctionName="plain", Payload=json.dumps({"signed": True}))
        return {"status": r["StatusCode"], "payload": json.loads(r["Payload"].read())}
    except botocore.exceptions.ClientError as e:
        return {"status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                "code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}
wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
print(json.dumps({
    "good": attempt(key_id, secret),
    "wrong_secret": attempt(key_id, wrong),
    "unknown_key": attempt("GKIAAAAAAAAAAAAAAAAA", secret),
}))
"#;

/// Runs `script` with boto3 (off the runtime thread: the platform under test runs on it).
async fn python(script: &'static str, args: Vec<String>, env: Vec<(&'static str, String)>) -> Value {
    let deps = crate::aws_sdk::pydeps();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .env("PYTHONPATH", deps)
            // Only what the test gives: no profile or credentials of the machine's user.
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json(String::from_utf8_lossy(&out.stdout).trim())
}

fn contains_bytes(dir: &Path, needle: &str) -> bool {
    ["state.db", "state.db-wal"]
        .iter()
        .any(|f| std::fs::read(dir.join(f)).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())))
}

#[tokio::test]
async fn sigv4_from_boto3_is_accepted_with_an_issued_key_and_refused_otherwise() {
    let app = app().await;
    let dir = app.dir.path().to_str().unwrap().to_string();
    // `gust access-keys create` finds the running Gust and its operator token in the app's
    // state directory, and prints the two variables the AWS CLI and SDKs read.
    let out = gust_cli(
        vec!["access-keys".into(), "create".into(), "--app".into(), dir.clone()],
        vec![],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let var = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {printed}"))
            .to_string()
    };
    let (id, secret) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"));
    assert!(id.starts_with("GKIA") && secret.len() == 40, "{printed}");
    // Stored encrypted; listed by id only.
    assert!(!contains_bytes(&app.platform().state_dir, &secret));
    let out = gust_cli(
        vec!["access-keys".into(), "list".into(), "--app".into(), dir.clone()],
        vec![],
    )
    .await;
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && listed.contains(&id) && !listed.contains(&secret),
        "{listed}"
    );

    let v = python(BOTO3, vec![app.admin(""), id.clone(), secret.clone()], vec![]).await;
    assert_eq!(v["good"]["status"], 200, "{v}");
    assert_eq!(v["good"]["payload"]["event"], json!({"signed": true}), "{v}");
    assert_eq!(
        (v["wrong_secret"]["status"].clone(), v["wrong_secret"]["code"].clone()),
        (json!(403), json!("InvalidSignatureException")),
        "{v}"
    );
    assert_eq!(
        (v["unknown_key"]["status"].clone(), v["unknown_key"]["code"].clone()),
        (json!(403), json!("UnrecognizedClientException")),
        "{v}"
    );
    assert_eq!(
        v["unknown_key"]["message"],
        "The security token included in the request is invalid."
    );

    // The same key from the environment, as README tells (`AWS_ACCESS_KEY_ID`/`..._SECRET_...`).
    let from_env = r#"
import json, sys, boto3
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1")
r = c.invoke(FunctionName="plain", InvocationType="DryRun")
print(json.dumps({"status": r["StatusCode"]}))
"#;
    let v = python(
        from_env,
        vec![app.admin("")],
        vec![
            ("AWS_ACCESS_KEY_ID", id.clone()),
            ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ],
    )
    .await;
    assert_eq!(v["status"], 204, "{v}");

    // A removed key is refused from the next request on.
    let out = gust_cli(
        vec![
            "access-keys".into(),
            "rm".into(),
            id.clone(),
            "--app".into(),
            dir.clone(),
        ],
        vec![],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = python(BOTO3, vec![app.admin(""), id.clone(), secret.clone()], vec![]).await;
    assert_eq!(v["good"]["code"], "UnrecognizedClientException", "{v}");
    app.stop().await;
}

/// A request signed by Gust's own signer (independent of boto3) at a chosen time; with
/// `sign_host` false, an `Authorization` whose signed headers leave `host` out.
fn signed(
    app: &TestApp,
    id: &str,
    secret: &str,
    at: chrono::DateTime<chrono::Utc>,
    sign_host: bool,
) -> reqwest::RequestBuilder {
    let path = "/2015-03-31/functions/plain/invocations";
    let date = at.format("%Y%m%dT%H%M%SZ").to_string();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("host", app.platform().admin_addr.to_string().parse().unwrap());
    h.insert("x-amz-date", date.parse().unwrap());
    let head = gust_gateway::sigv4::RequestHead {
        method: "POST",
        path,
        query: None,
        headers: &h,
    };
    let auth = if sign_host {
        gust_gateway::sigv4::sign(secret, id, "us-east-1", "lambda", head, b"{}")
    } else {
        format!(
            "AWS4-HMAC-SHA256 Credential={id}/{}/us-east-1/lambda/aws4_request, SignedHeaders=x-amz-date, Signature=00",
            &date[..8]
        )
    };
    app.client
        .post(app.admin(path))
        .header("x-amz-date", date)
        .header("authorization", auth)
        .body("{}")
}

#[tokio::test]
async fn signatures_are_bound_to_the_clock_and_the_host() {
    let app = app().await;
    let (_, key, _) = send(app.op(Method::POST, "/gust/v1/access-keys")).await;
    let id = key["access_key_id"].as_str().unwrap().to_string();
    let secret = key["secret_access_key"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    let (status, v, _) = send(signed(&app, &id, &secret, now, true)).await;
    assert_eq!(status, 200, "{v}");
    for (at, sign_host, want, message) in [
        (
            now - chrono::Duration::minutes(20),
            true,
            "InvalidSignatureException",
            "Signature expired",
        ),
        (
            now + chrono::Duration::minutes(20),
            true,
            "InvalidSignatureException",
            "not yet current",
        ),
        (now, false, "IncompleteSignatureException", "'Host'"),
    ] {
        let (status, v, h) = send(signed(&app, &id, &secret, at, sign_host)).await;
        assert_eq!(status, 403, "{v}");
        assert_eq!(h["x-amzn-errortype"], want, "{v}");
        assert!(v["message"].as_str().unwrap().contains(message), "{v}");
    }
    let (status, v, h) = send(app.client.post(app.admin("/2015-03-31/functions/plain/invocations"))).await;
    assert_eq!(status, 403);
    assert_eq!(h["x-amzn-errortype"], "MissingAuthenticationTokenException");
    assert_eq!(v, json!({ "message": "Missing Authentication Token" }));
    app.stop().await;
}

/// One HTTP/1.1 request as raw bytes, so the `Host` header is exactly what the test says.
async fn raw(addr: SocketAddr, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let app = app().await;
    let addr = app.platform().admin_addr;
    let token = app.operator_token();
    let get = |host: &str, extra: &str, path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n"
        )
    };
    // DNS rebinding: the operator's own token, sent by a browser to a name that resolves to
    // loopback, is refused for the name.
    for host in [
        "evil.example",
        &format!("evil.example:{}", addr.port()),
        "127.0.0.1.nip.io",
    ] {
        for path in [
            "/healthz",
            "/gust/v1/functions",
            "/2015-03-31/functions/plain/invocations",
        ] {
            let (status, text) = raw(addr, get(host, "", path)).await;
            assert_eq!(status, 403, "{host} {path}: {text}");
            assert!(text.contains("HostNotAllowed"), "{text}");
        }
    }
    for host in [
        addr.to_string(),
        format!("localhost:{}", addr.port()),
        "127.0.0.1".to_string(),
    ] {
        let (status, text) = raw(addr, get(&host, "", "/gust/v1/functions")).await;
        assert_eq!(status, 200, "{host}: {text}");
    }
    // CSRF: a page of another origin is refused, the admin's own origin is not.
    let own = addr.to_string();
    for origin in [
        "http://evil.example",
        "null",
        &format!("http://localhost:{}", addr.port()),
    ] {
        let (status, text) = raw(addr, get(&own, &format!("Origin: {origin}\r\n"), "/gust/v1/functions")).await;
        assert_eq!(status, 403, "{origin}: {text}");
        assert!(text.contains("OriginNotAllowed"), "{text}");
    }
    let (status, text) = raw(
        addr,
        get(&own, &format!("Origin: http://{own}\r\n"), "/gust/v1/functions"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // A cross-origin POST (what a form or fetch from a web page sends) changes nothing.
    let post = format!(
        "POST /gust/v1/apikeys HTTP/1.1\r\nHost: {own}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/plain\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{{\"name\":\"csrf\"}}  "
    );
    let (status, _) = raw(addr, post).await;
    assert_eq!(status, 403);
    assert_eq!(json(&app.admin_text("/gust/v1/apikeys").await)["api_keys"], json!([]));
    // The public gateway is not the admin address: it takes any Host.
    let (status, _) = raw(
        app.platform().gateway_addr,
        "GET /nothing HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_operator_token_is_a_private_file_the_cli_reads() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = app().await;
    let path = app.platform().state_dir.join("operator.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), app.operator_token());
    let dir = app.dir.path().to_str().unwrap().to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let admin = app.admin("");
    let remote = |extra: Vec<&str>| {
        let mut args: Vec<String> = vec!["invocations".into(), "--admin".into(), admin.clone(), "--state".into()];
        args.push(elsewhere.path().to_str().unwrap().into());
        args.extend(extra.into_iter().map(String::from));
        args
    };
    // From the app directory: found by itself.
    let out = gust_cli(vec!["invocations".into(), "--app".into(), dir], vec![]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // From elsewhere: --token or GUST_OPERATOR_TOKEN, and nothing works without one.
    let out = gust_cli(remote(vec![]), vec![]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no operator token"));
    let out = gust_cli(
        remote(vec!["--token", "gop_wrong-token-0123456789abcdef0123456789"]),
        vec![],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gust_cli(remote(vec!["--token", &app.operator_token()]), vec![]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = gust_cli(remote(vec![]), vec![("GUST_OPERATOR_TOKEN", app.operator_token())]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same token across restarts (the file is kept).
    let token = app.operator_token();
    let dir = {
        let mut app = app;
        let p = app.platform.take().unwrap();
        p.shutdown().await;
        std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap())
    };
    let again = TestApp::start_dir(dir).await;
    assert_eq!(again.operator_token(), token);
    again.stop().await;
}

#[tokio::test]
async fn a_public_topic_takes_gateway_publishes_behind_its_checks_and_a_private_one_none() {
    let manifest = r#"
[app]
name = "pub"
[topics.news]
public = true
api_key = true
[topics.ticks]
public = true
rate_limit = 1
burst = 1
[topics.internal]
"#;
    let app = TestApp::start(&[("gust.toml", manifest)]).await;
    let (status, v, _) = send(app.op(Method::POST, "/gust/v1/apikeys").body(r#"{"name":"publisher"}"#)).await;
    assert_eq!(status, 201, "{v}");
    let key = v["api_key"].as_str().unwrap().to_string();
    let news = app.url("/events/news");
    let (status, v, _) = send(app.client.post(&news).body("{}")).await;
    assert_eq!((status, code(&v)), (401, "Unauthorized"), "no key: {v}");
    let (status, v, _) = send(app.client.post(&news).header("x-api-key", "wrong").body("{}")).await;
    assert_eq!((status, code(&v)), (401, "Unauthorized"), "a wrong key: {v}");
    let (status, v, _) = send(app.client.post(&news).header("x-api-key", &key).body(r#"{"n":1}"#)).await;
    assert_eq!(status, 202, "with the key: {v}");
    assert_eq!(v["events"].as_array().map(Vec::len), Some(1), "{v}");

    // A rate-limited public topic: the second publish at once is 429 with Retry-After.
    let ticks = app.url("/events/ticks");
    let (status, v, _) = send(app.client.post(&ticks).body("{}")).await;
    assert_eq!(status, 202, "{v}");
    let (status, v, headers) = send(app.client.post(&ticks).body("{}")).await;
    assert_eq!((status, code(&v)), (429, "TooManyRequests"), "{v}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    // A topic without `public` is not reachable from the gateway, whatever the credential,
    // and looks like one that does not exist; the operator still publishes to it.
    let (status, private, _) = send(
        app.client
            .post(app.url("/events/internal"))
            .header("x-api-key", &key)
            .body("{}"),
    )
    .await;
    assert_eq!((status, code(&private)), (404, "TopicNotFound"), "{private}");
    let (status, unknown, _) = send(app.client.post(app.url("/events/nope")).body("{}")).await;
    assert_eq!((status, code(&unknown)), (404, "TopicNotFound"), "{unknown}");
    let (status, v, _) = send(app.op(Method::POST, "/gust/v1/events/internal").body("{}")).await;
    assert_eq!(status, 202, "the operator: {v}");
    app.stop().await;
}

/// A client of the admin address's Unix socket.
fn socket_client(path: &Path) -> reqwest::Client {
    reqwest::Client::builder().unix_socket(path).build().unwrap()
}

#[tokio::test]
async fn the_admin_socket_is_private_to_gusts_user_and_still_asks_for_the_token() {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let dir = write_app(&[("gust.toml", MANIFEST), ("who.js", WHO)]);
    let socket = dir.path().join("admin.sock");
    // A socket file left by a Gust that was killed: nobody listens on it, so it is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let path = socket.clone();
    let app = TestApp::start_configured(dir, move |c| c.admin_socket = Some(path)).await;
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{:o}",
        meta.permissions().mode()
    );

    let client = socket_client(&socket);
    let (status, v, _) = send(client.get("http://localhost/gust/v1/functions")).await;
    assert_eq!(
        (status, code(&v)),
        (401, "OperatorTokenRequired"),
        "no token on the socket: {v}"
    );
    let (status, v, _) = send(
        client
            .get("http://localhost/gust/v1/functions")
            .bearer_auth(app.operator_token()),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["functions"].as_array().is_some_and(|f| f.len() == 2), "{v}");
    // Host is checked there too.
    let (status, v, _) = send(
        client
            .get("http://evil.example/gust/v1/functions")
            .bearer_auth(app.operator_token()),
    )
    .await;
    assert_eq!((status, code(&v)), (403, "HostNotAllowed"), "{v}");
    // The CLI reaches it with `--admin unix:PATH`.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = gust_cli(
        vec![
            "invocations".into(),
            "--admin".into(),
            format!("unix:{}", socket.display()),
            "--state".into(),
            elsewhere.path().to_str().unwrap().into(),
            "--token".into(),
            app.operator_token(),
        ],
        vec![],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Another local user cannot even connect (the socket is 0600, in a directory anyone may
    // enter).
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::process::CommandExt as _;
        let script = format!(
            "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({:?})\n    print('connected')\nexcept PermissionError:\n    print('refused')\n",
            socket.to_str().unwrap()
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "refused",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    app.stop().await;
    assert!(!socket.exists(), "the socket is removed at shutdown");
}

#[tokio::test]
async fn an_admin_socket_path_that_is_not_a_stale_socket_is_refused_at_start() {
    let dir = write_app(&[("gust.toml", MANIFEST), ("who.js", WHO)]);
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let mut config = gust::PlatformConfig::new(dir.path());
    config.sandbox.mode = gust_runtime::sandbox::SandboxMode::Off;
    config.gateway_addr = "127.0.0.1:0".parse().unwrap();
    config.admin_addr = "127.0.0.1:0".parse().unwrap();
    config.admin_socket = Some(file.clone());
    let err = gust::Platform::start(config.clone()).await.unwrap_err();
    assert!(format!("{err:#}").contains("is not a socket"), "{err:#}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me", "nothing deleted");
    // A socket another process listens on is not taken over either.
    let busy = dir.path().join("busy.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&busy).unwrap();
    config.admin_socket = Some(busy);
    let err = gust::Platform::start(config).await.unwrap_err();
    assert!(format!("{err:#}").contains("in use"), "{err:#}");
}
