//! Integration with existing microservices: upstreams (round robin, failover, health checks,
//! circuit breaker, retries only when safe), a route moved from an upstream to a function,
//! services and functions reached by name with the trace continued, secrets, and gateway
//! authorizers and rate limits.

use crate::support::*;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A tiny HTTP service on 127.0.0.1:0: answers `{"id", "path", "traceparent", "xff"}`, counts
/// hits, can fail the next N requests with 503, and reports /health per a switch.
#[derive(Clone)]
struct Service {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicU32>,
    fail_next: Arc<AtomicU32>,
    always_500: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
    task: Arc<tokio::task::JoinHandle<()>>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Service {
    async fn start(id: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU32::new(0));
        let fail_next = Arc::new(AtomicU32::new(0));
        let always_500 = Arc::new(AtomicBool::new(false));
        let healthy = Arc::new(AtomicBool::new(true));
        let (h, f, a, ok) = (hits.clone(), fail_next.clone(), always_500.clone(), healthy.clone());
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tracked = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, f, a, ok) = (h.clone(), f.clone(), a.clone(), ok.clone());
                let conn = tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (h, f, a, ok) = (h.clone(), f.clone(), a.clone(), ok.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            let status = if path == "/health" {
                                if ok.load(Ordering::SeqCst) {
                                    200
                                } else {
                                    503
                                }
                            } else {
                                h.fetch_add(1, Ordering::SeqCst);
                                if a.load(Ordering::SeqCst) {
                                    500
                                } else if f.load(Ordering::SeqCst) > 0 {
                                    f.fetch_sub(1, Ordering::SeqCst);
                                    503
                                } else {
                                    200
                                }
                            };
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string()
                            };
                            let body = serde_json::json!({
                                "id": id, "path": req.uri().to_string(), "method": req.method().as_str(),
                                "traceparent": header("traceparent"), "xff": header("x-forwarded-for"),
                                "request_id": header("x-request-id"),
                            });
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(Bytes::from(body.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
                tracked.lock().unwrap().push(conn.abort_handle());
            }
        });
        Self {
            addr,
            hits,
            fail_next,
            always_500,
            healthy,
            task: Arc::new(task),
            conns,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Dies: stops listening and drops every open connection.
    fn stop(&self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn get_json(app: &TestApp, path: &str) -> (u16, serde_json::Value) {
    let r = app.get(path).await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test]
async fn round_robin_failover_and_health_checks() {
    let (a, b) = (Service::start("a").await, Service::start("b").await);
    let manifest = format!(
        "[app]\nname = \"up\"\n[upstreams.svc]\ntargets = [\"{}\", \"{}\"]\nhealth_interval = 0.1\nretries = 1\n[[routes]]\nroute = \"ANY /svc/{{proxy+}}\"\nupstream = \"svc\"\nstrip_prefix = \"/svc\"\n",
        a.url(),
        b.url()
    );
    let app = TestApp::start(&[("gust.toml", &manifest)]).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, v) = get_json(&app, "/svc/items/1?x=y").await;
        assert_eq!(status, 200);
        assert_eq!(v["path"], "/items/1?x=y", "prefix stripped, query kept");
        assert_eq!(v["xff"], "127.0.0.1");
        assert!(v["traceparent"].as_str().unwrap().starts_with("00-"));
        assert_eq!(v["request_id"].as_str().unwrap().len(), 36);
        seen.push(v["id"].as_str().unwrap().to_string());
    }
    assert!(
        seen.contains(&"a".into()) && seen.contains(&"b".into()),
        "round robin: {seen:?}"
    );
    assert_ne!(seen[0], seen[1]);

    // Health check takes b out, then brings it back.
    b.healthy.store(false, Ordering::SeqCst);
    let upstream = app.platform().upstreams().await[0].clone();
    let up = || upstream.health();
    wait_for("b to be marked unhealthy", Duration::from_secs(5), || {
        up().iter().any(|(_, ok)| !ok)
    })
    .await;
    let before = b.hits.load(Ordering::SeqCst);
    for _ in 0..4 {
        assert_eq!(get_json(&app, "/svc/x").await.1["id"], "a");
    }
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        before,
        "an unhealthy target gets no traffic"
    );
    b.healthy.store(true, Ordering::SeqCst);
    wait_for("b to be healthy again", Duration::from_secs(5), || {
        up().iter().all(|(_, ok)| *ok)
    })
    .await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..4 {
        ids.insert(get_json(&app, "/svc/x").await.1["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 2, "b is back in rotation");

    // Failover: a dies; GETs are retried on b and succeed.
    a.stop();
    for _ in 0..4 {
        let (status, v) = get_json(&app, "/svc/x").await;
        assert_eq!((status, v["id"].as_str()), (200, Some("b")));
    }
    app.stop().await;
}

#[tokio::test]
async fn retries_only_for_idempotent_methods_and_the_circuit_breaker() {
    let s = Service::start("s").await;
    let manifest = format!(
        "[app]\nname = \"cb\"\n[upstreams.svc]\ntargets = [\"{}\", \"{}\"]\nretries = 1\nbreaker_failures = 3\nbreaker_cooldown = 0.5\nhealth_interval = 60\n[[routes]]\nroute = \"ANY /{{proxy+}}\"\nupstream = \"svc\"\n",
        s.url(),
        s.url()
    );
    let app = TestApp::start(&[("gust.toml", &manifest)]).await;
    // GET: the 503 is retried (on the next target) and succeeds.
    s.fail_next.store(1, Ordering::SeqCst);
    let h0 = s.hits.load(Ordering::SeqCst);
    assert_eq!(app.get("/a").await.status(), 200);
    assert_eq!(s.hits.load(Ordering::SeqCst) - h0, 2, "one failure, one retry");
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        s.fail_next.store(1, Ordering::SeqCst);
        assert_eq!(
            app.client.request(method, app.url("/a")).send().await.unwrap().status(),
            200
        );
    }
    // POST: never retried; the caller sees the failure.
    s.fail_next.store(1, Ordering::SeqCst);
    let h0 = s.hits.load(Ordering::SeqCst);
    assert_eq!(app.post("/a", "{}").await.status(), 503);
    assert_eq!(s.hits.load(Ordering::SeqCst) - h0, 1, "POST is not retried");

    // Breaker: three failures in a row open it; then 503 at once without calling the service.
    assert_eq!(
        app.post("/a", "{}").await.status(),
        200,
        "a success resets the failure count"
    );
    s.always_500.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(app.post("/a", "{}").await.status(), 500);
    }
    let h0 = s.hits.load(Ordering::SeqCst);
    let r = app.post("/a", "{}").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json(&r.text().await.unwrap())["error"]["code"], "UpstreamUnavailable");
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        h0,
        "an open circuit does not call the service"
    );
    assert!(app.platform().upstreams().await[0].circuit_open());
    // Half-open after the cooldown: one trial; it succeeds and closes the circuit.
    s.always_500.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.post("/a", "{}").await.status(), 200);
    assert!(!app.platform().upstreams().await[0].circuit_open());
    assert_eq!(app.post("/a", "{}").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_route_moves_from_the_upstream_to_a_function_with_one_line() {
    let s = Service::start("legacy").await;
    let manifest = |target: &str| {
        format!(
            "[app]\nname = \"move\"\n[upstreams.legacy]\ntargets = [\"{}\"]\n[functions.modern]\nruntime = \"nodejs20.x\"\nhandler = \"m.handler\"\n[[routes]]\nroute = \"GET /orders/{{id}}\"\n{target}\n",
            s.url()
        )
    };
    let dir = write_app(&[
        ("gust.toml", &manifest("upstream = \"legacy\"")),
        (
            "m.js",
            "exports.handler = async (e) => ({ id: 'function', order: e.pathParameters.id });",
        ),
    ]);
    let app = TestApp::start_dir(dir).await;
    assert_eq!(get_json(&app, "/orders/7").await.1["id"], "legacy");
    std::fs::write(app.dir.path().join("gust.toml"), manifest("function = \"modern\"")).unwrap();
    let clock = gust_scheduler::ManualClock::new(chrono::Utc::now());
    let app = app.restart_with_clock(clock).await;
    let (status, v) = get_json(&app, "/orders/7").await;
    assert_eq!(
        (status, v["id"].as_str(), v["order"].as_str()),
        (200, Some("function"), Some("7"))
    );
    app.stop().await;
}

const CALLER: &str = r#"
exports.handler = async (event) => {
  const trace = { "x-amzn-trace-id": process.env._X_AMZN_TRACE_ID };
  const svc = await fetch(`${process.env.GUST_SERVICE_ORDERS_SVC_URL}/orders/9`, { headers: trace });
  const fn = await fetch(`${process.env.GUST_API}/gust/v1/functions/helper/invoke`, {
    method: "POST",
    headers: { ...trace, authorization: `Bearer ${process.env.GUST_TOKEN}` },
    body: JSON.stringify({ q: 1 }),
  });
  const denied = await fetch(`${process.env.GUST_API}/gust/v1/functions/caller/invoke`, {
    method: "POST", headers: { authorization: `Bearer ${process.env.GUST_TOKEN}` }, body: "{}",
  });
  return { service: await svc.json(), helper: await fn.json(), denied: denied.status, own: process.env._X_AMZN_TRACE_ID };
};
"#;

#[tokio::test]
async fn functions_reach_services_and_functions_by_name_with_the_trace() {
    let s = Service::start("orders").await;
    let manifest = format!(
        r#"
[app]
name = "disc"
[upstreams.orders-svc]
targets = ["{}"]
[functions.caller]
runtime = "nodejs20.x"
handler = "caller.handler"
services = ["orders-svc"]
invokes = ["helper"]
timeout = 10
[functions.helper]
runtime = "python3.11"
handler = "helper.main"
[functions.outsider]
runtime = "nodejs20.x"
handler = "outsider.handler"
"#,
        s.url()
    );
    let app = TestApp::start(&[
        ("gust.toml", &manifest),
        ("caller.js", CALLER),
        ("helper.py", "import os\n\ndef main(event, context):\n    return {'helped': event, 'trace': os.environ.get('_X_AMZN_TRACE_ID')}\n"),
        (
            "outsider.js",
            "exports.handler = async () => { const r = await fetch(`${process.env.GUST_API}/gust/v1/services/orders-svc/orders/1`, { headers: { authorization: `Bearer ${process.env.GUST_TOKEN}` } }); return { status: r.status, env: Object.keys(process.env).filter(k => k.startsWith('GUST_SERVICE_')) }; };",
        ),
    ])
    .await;
    let (status, fe, body) = app.invoke("caller", "{}").await;
    assert_eq!((status, fe), (200, None), "{body}");
    let v = json(&body);
    assert_eq!(v["service"]["id"], "orders");
    assert_eq!(v["service"]["path"], "/orders/9");
    assert_eq!(v["helper"]["helped"]["q"], 1);
    assert_eq!(v["denied"], 403, "invoking a function that was not granted is refused");
    // One trace: the caller's, continued into the service call and the helper function.
    let own = gust_model::TraceParent::from_xray(v["own"].as_str().unwrap()).unwrap();
    let svc_tp = gust_model::TraceParent::parse(v["service"]["traceparent"].as_str().unwrap()).unwrap();
    assert_eq!(svc_tp.trace_id, own.trace_id);
    let helper_tp = gust_model::TraceParent::from_xray(v["helper"]["trace"].as_str().unwrap()).unwrap();
    assert_eq!(helper_tp.trace_id, own.trace_id);
    let db = app.platform().telemetry.clone();
    db.flush().await;
    let spans = db.trace(own.trace_id.clone()).await.unwrap();
    let call = spans.iter().find(|s| s.name == "call orders-svc").expect("call span");
    assert_eq!(call.parent_id.as_deref(), Some(own.span_id.as_str()));
    let helper = spans.iter().find(|s| s.name == "invoke helper").expect("helper span");
    assert_eq!(helper.parent_id.as_deref(), Some(own.span_id.as_str()));

    // A function without the grant gets neither the variable nor the proxy.
    let (_, _, body) = app.invoke("outsider", "{}").await;
    let v = json(&body);
    assert_eq!(v["status"], 403);
    assert_eq!(v["env"], serde_json::json!([]));
    app.stop().await;
}

const SECRET_FN: &str = r#"
exports.handler = async (event) => {
  if (event.print) console.log(`the key is ${process.env.API_SECRET}`);
  const viaApi = await fetch(`${process.env.GUST_API}/gust/v1/secrets/API_SECRET`, { headers: { authorization: `Bearer ${process.env.GUST_TOKEN}` } });
  return { env: process.env.API_SECRET || null, api: viaApi.status === 200 ? await viaApi.text() : viaApi.status, pid: process.pid };
};
"#;

#[tokio::test]
async fn secrets_are_encrypted_scoped_rotated_and_redacted() {
    let app = TestApp::start(&[
        (
            "gust.toml",
            "[app]\nname = \"sec\"\n[functions.granted]\nruntime = \"nodejs20.x\"\nhandler = \"s.handler\"\nsecrets = [\"API_SECRET\"]\n[functions.other]\nruntime = \"nodejs20.x\"\nhandler = \"s.handler\"\n",
        ),
        ("s.js", SECRET_FN),
    ])
    .await;
    let put = |v: &'static str| {
        let req = app.op(reqwest::Method::PUT, "/gust/v1/secrets/API_SECRET");
        async move { req.body(v).send().await.unwrap().status() }
    };
    assert_eq!(put("first-Value-7f3a9c").await, 200);
    let (_, _, body) = app.invoke("granted", "{}").await;
    let v1 = json(&body);
    assert_eq!(v1["env"], "first-Value-7f3a9c");
    assert_eq!(v1["api"], "first-Value-7f3a9c");
    // Scoped: an ungranted function sees neither.
    let (_, _, body) = app.invoke("other", "{}").await;
    let v = json(&body);
    assert_eq!(
        (v["env"].clone(), v["api"].clone()),
        (serde_json::Value::Null, serde_json::json!(403))
    );
    // Listing never shows values.
    let list = app.admin_text("/gust/v1/secrets").await;
    assert!(list.contains("API_SECRET") && !list.contains("first-Value"), "{list}");

    // Rotation: the warm instance is retired; a new one sees the new value.
    assert_eq!(put("second-Value-1b2c3d").await, 200);
    let (_, _, body) = app.invoke("granted", r#"{"print":true}"#).await;
    let v2 = json(&body);
    assert_eq!(v2["env"], "second-Value-1b2c3d");
    assert_ne!(v2["pid"], v1["pid"], "a new instance after rotation");

    // Redacted from stored function output.
    let db = app.platform().telemetry.clone();
    let mut lines = Vec::new();
    for _ in 0..200 {
        db.flush().await;
        lines = db
            .logs(gust_store::LogQuery {
                function: Some("granted".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        if lines.iter().any(|l| l.line.contains("the key is")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = lines
        .iter()
        .find(|l| l.line.contains("the key is"))
        .expect("the printed line");
    assert!(!line.line.contains("second-Value"), "{}", line.line);
    assert!(line.line.contains("[REDACTED:API_SECRET]"), "{}", line.line);

    // Encrypted at rest: the values are nowhere in the database files.
    app.platform().telemetry.flush().await;
    let state = app.platform().state_dir.clone();
    for f in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(state.join(f)) {
            for needle in ["first-Value-7f3a9c", "second-Value-1b2c3d"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} found in {f}"
                );
            }
        }
    }
    // Master key rotation re-wraps; values still readable.
    let r = app
        .op(reqwest::Method::POST, "/gust/v1/secrets/master/rotate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, _, body) = app.invoke("granted", "{}").await;
    assert_eq!(json(&body)["api"], "second-Value-1b2c3d");
    app.stop().await;
}

fn hs256(claims: serde_json::Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test]
async fn api_keys_jwt_and_rate_limits_at_the_gateway() {
    let key = b"an-hs256-key-of-at-least-32-bytes!!";
    let dir = write_app(&[
        (
            "gust.toml",
            r#"
[app]
name = "authz"
[functions.echo]
runtime = "nodejs20.x"
handler = "e.handler"
[authorizers.main]
issuer = "https://issuer.test/"
audiences = ["shop"]
hs256_secret = "JWT_KEY"
[[routes]]
route = "GET /keyed"
function = "echo"
api_key = true
[[routes]]
route = "GET /jwt"
function = "echo"
jwt = "main"
[[routes]]
route = "GET /limited"
function = "echo"
rate_limit = 1
burst = 1
"#,
        ),
        (
            "e.js",
            "exports.handler = async (e) => ({ auth: e.requestContext.authorizer || null });",
        ),
    ]);
    // The HS256 key is a Gust secret: set it before start through the store the platform uses.
    let state = dir.path().join(".gust");
    let store = gust::secrets::open_store(&state.join("state.db"), &state.join("master.key")).unwrap();
    store.set("JWT_KEY", key).unwrap();
    drop(store);
    let app = TestApp::start_dir(dir).await;

    // API keys: none, wrong, right.
    let created = app
        .op(reqwest::Method::POST, "/gust/v1/apikeys")
        .json(&serde_json::json!({"name": "mobile"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let api_key = json(&created.text().await.unwrap())["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.get("/keyed").await;
    assert_eq!(r.status(), 401);
    let body_missing = r.text().await.unwrap();
    let r = app
        .client
        .get(app.url("/keyed"))
        .header("x-api-key", "gk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body_wrong = r.text().await.unwrap();
    let strip = |s: &str| json(s)["error"]["message"].as_str().unwrap().to_string();
    assert_eq!(
        strip(&body_missing),
        strip(&body_wrong),
        "401 bodies never say what was wrong"
    );
    let r = app
        .client
        .get(app.url("/keyed"))
        .header("x-api-key", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // JWT: valid, and each rejection.
    let now = chrono::Utc::now().timestamp();
    let good = serde_json::json!({"iss": "https://issuer.test/", "aud": "shop", "sub": "ann", "exp": now + 300, "scope": "orders:read"});
    let r = app
        .client
        .get(app.url("/jwt"))
        .bearer_auth(hs256(good.clone(), key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(&r.text().await.unwrap());
    assert_eq!(
        v["auth"]["jwt"]["claims"]["sub"], "ann",
        "claims reach the function as API Gateway puts them: {v}"
    );
    let mut messages = std::collections::HashSet::new();
    let bad = |token: String| {
        let c = app.client.clone();
        let url = app.url("/jwt");
        async move {
            let r = c.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let mut expired = good.clone();
    expired["exp"] = serde_json::json!(now - 3600);
    let mut audience = good.clone();
    audience["aud"] = serde_json::json!("other");
    let none_alg = {
        use base64::Engine;
        let b = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b(serde_json::json!({"alg": "none", "typ": "JWT"})),
            b(good.clone())
        )
    };
    for token in [
        hs256(expired, key),
        hs256(audience, key),
        hs256(good.clone(), b"another-key-that-is-32-bytes-long!!"),
        none_alg,
    ] {
        let (status, body) = bad(token).await;
        assert_eq!(status, 401, "{body}");
        messages.insert(strip(&body));
    }
    assert_eq!(messages.len(), 1, "every rejection reads the same: {messages:?}");

    // Rate limit: 1 per second with a burst of 1.
    assert_eq!(app.get("/limited").await.status(), 200);
    let r = app.get("/limited").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    app.stop().await;
}

#[tokio::test]
async fn an_open_circuit_says_when_to_retry_from_its_cooldown() {
    let s = Service::start("s").await;
    let manifest = format!(
        "[app]\nname = \"cb2\"\n[upstreams.svc]\ntargets = [\"{}\"]\nretries = 0\nbreaker_failures = 2\nbreaker_cooldown = 30\nhealth_interval = 60\n[[routes]]\nroute = \"ANY /{{proxy+}}\"\nupstream = \"svc\"\n",
        s.url()
    );
    let app = TestApp::start(&[("gust.toml", &manifest)]).await;
    s.always_500.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(app.post("/a", "{}").await.status(), 500);
    }
    let r = app.post("/a", "{}").await;
    assert_eq!(r.status(), 503);
    let secs: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // What is left of the 30 s cooldown (rounded up), with a wide margin for a busy machine.
    assert!((20..=30).contains(&secs), "Retry-After {secs}");
    app.stop().await;
}
