//! The typed contract (`gust-api`, `docs/openapi.json`) against a real Gust and the real CLI:
//! the admin address serves the document, its answers have the documented statuses and
//! schemas ([`conforms`], also used by `control_plane.rs` for every operator action), every
//! CLI command reads the real answers into the contract's types, and an answer that is not the
//! contract is an error naming the endpoint, never a silent default.

use crate::support::*;
use gust_api::{Endpoint, Face};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The generated document, parsed once per call (cheap: a few hundred microseconds).
fn document() -> Value {
    serde_json::from_str(&gust_api::openapi()).expect("the document is JSON")
}

/// Whether an answer of `method path` with `status` and `body` is what the document says:
/// the status is listed for the operation, and a JSON body fits the schema listed for it.
pub(crate) fn conforms(method: &str, path: &str, status: u16, body: &str) -> Result<(), String> {
    let route = Endpoint::resolve(method, path).map_err(|m| format!("not an endpoint of the contract: {m:?}"))?;
    let doc = document();
    let e = route.endpoint;
    let response = &doc["paths"][e.path()][e.method().to_ascii_lowercase()]["responses"][status.to_string()];
    if !response.is_object() {
        return Err(format!(
            "status {status} is not documented for {} {}: {body}",
            e.method(),
            e.path()
        ));
    }
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return Ok(());
    };
    let value: Value = serde_json::from_str(body).map_err(|err| format!("{status}: not JSON ({err}): {body}"))?;
    fits(&doc, schema, &value, "$").map_err(|err| format!("{status} {value}: {err}"))
}

/// A small JSON Schema check, for the forms the generator writes: `$ref`, `oneOf`, `type` (one
/// or a list), `required`, `properties` (no field the document does not list), `additionalProperties`
/// and `items`. A schema without `type` is any value.
fn fits(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r
            .strip_prefix("#/components/schemas/")
            .ok_or(format!("{at}: odd $ref {r}"))?;
        return fits(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(either) = schema["oneOf"].as_array() {
        let fitting = either.iter().filter(|s| fits(doc, s, value, at).is_ok()).count();
        return match fitting {
            1 => Ok(()),
            n => Err(format!("{at} fits {n} of the document's oneOf schemas, not one")),
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !types
        .iter()
        .any(|t| *t == actual || (*t == "number" && actual == "integer"))
    {
        return Err(format!("{at} is {actual}, the document says {types:?}"));
    }
    match value {
        Value::Object(map) => {
            for field in schema["required"].as_array().into_iter().flatten() {
                let field = field.as_str().unwrap_or_default();
                if !map.contains_key(field) {
                    return Err(format!("{at}.{field} is required by the document and missing"));
                }
            }
            for (k, v) in map {
                let sub = match schema["properties"].get(k) {
                    Some(s) => s,
                    None if schema["additionalProperties"].is_object() => &schema["additionalProperties"],
                    None => return Err(format!("{at}.{k} is not in the document")),
                };
                fits(doc, sub, v, &format!("{at}.{k}"))?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                fits(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn the_credential_test_covers_every_operator_endpoint() {
    let covered: BTreeSet<Endpoint> = crate::control_plane::operator_actions()
        .iter()
        .map(|(m, p, _)| {
            Endpoint::resolve(m.as_str(), p)
                .unwrap_or_else(|miss| panic!("{m} {p} is not in the contract: {miss:?}"))
                .endpoint
        })
        .collect();
    let operator: BTreeSet<Endpoint> = Endpoint::ALL
        .iter()
        .copied()
        .filter(|e| e.face() == Face::Operator && *e != Endpoint::Publish)
        .collect();
    let missing: Vec<_> = operator.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "control_plane::operator_actions() has no action for {missing:?}: add one, so that the endpoint \
         is checked to need the operator token"
    );
}

#[test]
fn the_schema_check_can_fail() {
    let ok = r#"{"removed":"x"}"#;
    assert_eq!(conforms("DELETE", "/gust/v1/secrets/x", 200, ok), Ok(()));
    for (status, body) in [
        (200, r#"{}"#),
        (200, r#"{"removed":1}"#),
        (200, r#"{"removed":"x","extra":true}"#),
        (418, ok),
    ] {
        assert!(
            conforms("DELETE", "/gust/v1/secrets/x", status, body).is_err(),
            "{status} {body}"
        );
    }
    let error = r#"{"error":{"code":"SecretNotFound","message":"m","request_id":"r"}}"#;
    assert_eq!(conforms("DELETE", "/gust/v1/secrets/x", 404, error), Ok(()));
    let nested = r#"{"access_keys":[{"access_key_id":"GKIA","created_at":null}]}"#;
    assert!(conforms("GET", "/gust/v1/access-keys", 200, nested).is_err());
}

const MANIFEST: &str = r#"
[app]
name = "contract"
[functions.ok]
runtime = "nodejs20.x"
handler = "ok.handler"
[functions.broken]
runtime = "nodejs20.x"
handler = "broken.handler"
[topics.jobs]
[[subscriptions]]
name = "broken-jobs"
topic = "jobs"
function = "broken"
batch_size = 1
max_attempts = 1
[[schedules]]
name = "nightly"
function = "ok"
expression = "rate(1 day)"
"#;

const OK: &str = r#"exports.handler = async (event) => { console.log("contract-line", JSON.stringify(event)); return { got: event }; };"#;
const BROKEN: &str = r#"exports.handler = async () => { throw new Error("contract-boom"); };"#;

/// `gust ARGS --app DIR`, off the runtime thread; its stdout, after checking it succeeded.
async fn cli(dir: &str, args: &[&str]) -> String {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--app".to_string(), dir.to_string()]);
    let out = gust_cli(all, vec![]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "gust {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} printed what is not its contract type ({e}): {text}"))
}

/// Polls a typed admin GET until `done` holds.
async fn poll<T: serde::de::DeserializeOwned>(app: &TestApp, path: &str, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: T = parse(path, &app.admin_text(path).await);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out polling {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_cli_command_reads_the_servers_answers_as_the_contract() {
    let app = TestApp::start(&[("gust.toml", MANIFEST), ("ok.js", OK), ("broken.js", BROKEN)]).await;
    let dir = app.dir.path().to_str().unwrap().to_string();
    let d = dir.as_str();

    // Functions and telemetry.
    let out = cli(d, &["invoke", "ok", "--data", r#"{"n":1}"#]).await;
    assert!(out.contains(r#""got""#), "{out}");
    let functions: gust_api::FunctionList = parse("functions", &app.admin_text("/gust/v1/functions").await);
    assert_eq!(functions.functions.len(), 2, "{functions:?}");
    let invocations: gust_api::InvocationList = poll(
        &app,
        "/gust/v1/invocations?function=ok",
        |v: &gust_api::InvocationList| !v.invocations.is_empty(),
    )
    .await;
    assert!(cli(d, &["invocations"])
        .await
        .contains(&invocations.invocations[0].request_id));
    poll(&app, "/gust/v1/logs?function=ok", |v: &gust_api::LogLines| {
        v.lines.iter().any(|l| l.line.contains("contract-line"))
    })
    .await;
    assert!(cli(d, &["logs", "ok"]).await.contains("contract-line"));
    assert!(cli(d, &["cost", "--since", "1h"]).await.contains("ok"));
    if let Some(trace) = &invocations.invocations[0].trace_id {
        let tree = cli(d, &["trace", trace]).await;
        assert!(tree.contains("spans"), "{tree}");
    }

    // Events and dead letters.
    let published: gust_api::Published = parse("publish", &cli(d, &["publish", "jobs", "--data", "{}"]).await);
    assert_eq!((published.topic.as_str(), published.events.len()), ("jobs", 1));
    let dead: gust_api::DeadLetterList = poll(
        &app,
        "/gust/v1/dlq?subscription=broken-jobs",
        |v: &gust_api::DeadLetterList| !v.dead_letters.is_empty(),
    )
    .await;
    let seq = dead.dead_letters[0].seq.to_string();
    assert!(cli(d, &["dlq", "list"]).await.contains("MaxAttemptsExceeded"));
    let shown: gust_api::DeadLetter = parse("dlq show", &cli(d, &["dlq", "show", "broken-jobs", &seq]).await);
    assert_eq!(shown.event.id, published.events[0].id);
    let purged: gust_api::Purged = parse(
        "dlq purge",
        &cli(d, &["dlq", "purge", "broken-jobs", "--seq", &seq]).await,
    );
    assert_eq!(purged.purged, 1);
    let redriven: gust_api::Redriven = parse("dlq redrive", &cli(d, &["dlq", "redrive", "broken-jobs"]).await);
    assert_eq!(redriven.redriven, 0);

    // Schedules.
    let listed = cli(d, &["schedules"]).await;
    assert!(listed.contains("nightly") && listed.contains("next: "), "{listed}");
    assert!(cli(d, &["schedules", "run", "nightly"])
        .await
        .contains("queued a run of `nightly`"));

    // Secrets, API keys, access keys.
    let value = app.dir.path().join("secret-value");
    std::fs::write(&value, "s3cret\n").unwrap();
    let value = value.to_str().unwrap();
    let set: gust_api::SecretSet = parse(
        "secrets set",
        &cli(d, &["secrets", "set", "TOKEN", "--file", value]).await,
    );
    assert_eq!((set.name.as_str(), set.version), ("TOKEN", 1));
    assert!(cli(d, &["secrets", "list"]).await.contains("TOKEN"));
    let removed: gust_api::Removed = parse("secrets rm", &cli(d, &["secrets", "rm", "TOKEN"]).await);
    assert_eq!(removed.removed, "TOKEN");
    let key = cli(d, &["apikeys", "create", "partner", "--rate", "5"]).await;
    assert!(!key.trim().is_empty());
    let keys: gust_api::ApiKeyList = parse("apikeys list", &cli(d, &["apikeys", "list"]).await);
    assert_eq!(keys.api_keys[0].rate, Some(5.0), "{keys:?}");
    assert_eq!(keys.api_keys[0].quota_per_day, None, "{keys:?}");
    let _: gust_api::Removed = parse("apikeys rm", &cli(d, &["apikeys", "rm", "partner"]).await);
    let created = cli(d, &["access-keys", "create"]).await;
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("AWS_ACCESS_KEY_ID="))
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    assert!(cli(d, &["access-keys", "list"]).await.contains(&id));
    assert!(cli(d, &["access-keys", "rm", &id]).await.contains(&id));
    app.stop().await;
}

#[tokio::test]
async fn the_admin_address_serves_its_contract_to_anyone_on_it() {
    let app = TestApp::start(&[("gust.toml", MANIFEST), ("ok.js", OK), ("broken.js", BROKEN)]).await;
    // No credential: it is the repository's docs/openapi.json, and says nothing about this Gust.
    let r = app.client.get(app.admin("/gust/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), gust_api::openapi());
    let printed = gust_cli(vec!["openapi".into()], vec![]).await;
    assert!(printed.status.success());
    assert_eq!(String::from_utf8_lossy(&printed.stdout), gust_api::openapi());
    // The health check is in it too.
    let health = app
        .client
        .get(app.admin("/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    conforms("GET", "/healthz", 200, &health).unwrap();
    // Off-contract paths and methods are refused as such.
    for (method, path, want) in [
        (reqwest::Method::PATCH, "/gust/v1/secrets", (405, "MethodNotAllowed")),
        (reqwest::Method::POST, "/gust/v1/functions", (405, "MethodNotAllowed")),
        (reqwest::Method::GET, "/gust/v1/apikeysx", (404, "NotFound")),
        (reqwest::Method::DELETE, "/gust/v1/secrets/a/b", (404, "NotFound")),
    ] {
        let r = app.op(method.clone(), path).send().await.unwrap();
        let status = r.status().as_u16();
        let v: gust_api::ErrorBody = parse(path, &r.text().await.unwrap());
        assert_eq!((status, v.error.code.as_str()), want, "{method} {path}");
    }
    app.stop().await;
}

/// An HTTP server on 127.0.0.1:0 that answers each of `bodies` once, in order, with 200: a
/// Gust of another version, as far as the CLI can tell.
fn answering(bodies: Vec<&'static str>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for body in bodies {
            let Ok((mut conn, _)) = listener.accept() else { return };
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_cli_refuses_an_answer_that_is_not_the_contract() {
    let admin = answering(vec![
        // The same answer as a current Gust's...
        r#"{"secrets":[{"name":"A","version":2,"updated_at":"2026-01-01T00:00:00+00:00","granted_to":["f"]}]}"#,
        // ...and one without `version`.
        r#"{"secrets":[{"name":"A","updated_at":"2026-01-01T00:00:00+00:00","granted_to":["f"]}]}"#,
    ]);
    let args = || -> Vec<String> {
        ["secrets", "list", "--admin", &admin, "--token", "gop_test"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let out = gust_cli(args(), vec![]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("v2"));
    let out = gust_cli(args(), vec![]).await;
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GET /gust/v1/secrets") && stderr.contains("secrets[0]") && stderr.contains("version"),
        "{stderr}"
    );
}
