//! The web console (issue #21) end to end: Debian's Chromium driven by playwright-core (the
//! scripts in `tests/console/`, run by `support::run_console_script`) against a Gust each test
//! starts, and plain HTTP for what needs no browser (credentials refused, headers, sessions).
//!
//! Each scenario first makes, through the gateway and the operator API, what the page must
//! show (invocations, an error, a trace, a dead letter, two versions) and asserts it there, so
//! that a failure says whether the platform or the page was wrong; the browser script then
//! reports what the DOM of the console's contract says, and the assertions name the element.
//! Screenshots of every page visited: `target/console-artifacts/<scenario>/`.

use crate::support::*;
use serde_json::Value;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// The console's `Content-Security-Policy`, on every file it serves.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Files of the console that answer without a session when they exist (the login page needs
/// them), besides whatever else the login page loads.
const PUBLIC: [&str; 3] = ["/console/login", "/console/login.js", "/console/console.css"];

/// The pages a browser is sent to the login form from.
const PAGES: [&str; 2] = ["/console/", "/console/index.html"];

/// Files the contract names; more modules may exist (found from `index.html`).
const CONTRACT_FILES: [&str; 6] = [
    "/console/index.html",
    "/console/app.js",
    "/console/console.css",
    "/console/vendor/uPlot.esm.js",
    "/console/vendor/uPlot.min.css",
    "/console/vendor/uPlot.LICENSE",
];

/// The operator API calls the console makes, none of which may answer without a session.
const API_READS: [&str; 14] = [
    "/gust/v1/functions",
    "/gust/v1/functions/hits",
    "/gust/v1/invocations?function=hits&limit=10",
    "/gust/v1/logs?function=hits&limit=10",
    "/gust/v1/logs/stream?function=hits",
    "/gust/v1/traces/0af7651916cd43dd8448eb211c80319c",
    "/gust/v1/usage?since_ms=0",
    "/gust/v1/series?since_ms=0&until_ms=3600000&step_s=60",
    "/gust/v1/stats?since_ms=0",
    "/gust/v1/status",
    "/gust/v1/subscriptions",
    "/gust/v1/dlq",
    "/gust/v1/schedules",
    "/gust/v1/deployments",
];

const API_WRITES: [(&str, &str); 5] = [
    ("POST", "/gust/v1/dlq/nope/redrive"),
    ("DELETE", "/gust/v1/dlq/nope"),
    ("POST", "/gust/v1/schedules/nope/run"),
    ("POST", "/gust/v1/deployments/rollback?to=1"),
    ("POST", "/gust/v1/console/codes"),
];

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// `hits` answers; `boom` throws unless asked `?ok=1`, after a log line; `tokens` tells its
/// own `GUST_TOKEN` (a function's credential, which must not open the console).
const SHOP: &str = r#"
[app]
name = "shop"
[functions.hits]
runtime = "nodejs20.x"
handler = "hits.handler"
[functions.boom]
runtime = "nodejs20.x"
handler = "boom.handler"
[functions.tokens]
runtime = "nodejs20.x"
handler = "tokens.handler"
[[routes]]
route = "GET /hits"
function = "hits"
[[routes]]
route = "GET /boom"
function = "boom"
"#;

const HITS: &str = "exports.handler = async () => ({ statusCode: 200, body: 'hit' });\n";

const BOOM_LOG: &str = "boom: about to fail";

const BOOM: &str = r#"
exports.handler = async (event) => {
  if ((event.queryStringParameters || {}).ok) return { statusCode: 200, body: 'fine' };
  console.log('boom: about to fail');
  throw new Error('boom failed on purpose');
};
"#;

const TOKENS: &str = "exports.handler = async () => ({ token: process.env.GUST_TOKEN || null });\n";

fn shop_files() -> tempfile::TempDir {
    write_app(&[
        ("gust.toml", SHOP),
        ("hits.js", HITS),
        ("boom.js", BOOM),
        ("tokens.js", TOKENS),
    ])
}

async fn shop() -> TestApp {
    TestApp::start_dir(shop_files()).await
}

/// `checkout` (behind `POST /orders`) publishes to `orders`; `ship` is its subscriber.
const TRACED: &str = r#"
[app]
name = "traced"
[functions.checkout]
runtime = "nodejs20.x"
handler = "checkout.handler"
timeout = 10
publishes = ["orders"]
[functions.ship]
runtime = "nodejs20.x"
handler = "ship.handler"
[[routes]]
route = "POST /orders"
function = "checkout"
[[subscriptions]]
name = "ship-orders"
topic = "orders"
function = "ship"
"#;

const CHECKOUT: &str = r#"
exports.handler = async (event) => {
  const res = await fetch(`${process.env.GUST_API}/gust/v1/events/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${process.env.GUST_TOKEN}`,
               "x-amzn-trace-id": process.env._X_AMZN_TRACE_ID },
    body: event.body,
  });
  if (res.status !== 202) throw new Error(`publish failed ${res.status}`);
  return { statusCode: 200, body: "ordered" };
};
"#;

const SHIP: &str = r#"
exports.handler = async (event) => {
  console.log(`shipping ${event.Records.length} order(s)`);
  return {};
};
"#;

/// `fragile` fails until a `fixed` file exists next to it, recording every attempt.
const DLQ: &str = r#"
[app]
name = "dlq"
[functions.fragile]
runtime = "nodejs20.x"
handler = "fragile.handler"
[topics.jobs]
public = true
[[subscriptions]]
name = "fragile-jobs"
topic = "jobs"
function = "fragile"
batch_size = 1
max_attempts = 2
retry_delay = 0.2
"#;

const FRAGILE: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  for (const r of event.Records) {
    const fixed = fs.existsSync(path.join(__dirname, 'fixed'));
    fs.appendFileSync(path.join(__dirname, 'out.jsonl'), JSON.stringify({
      ceid: r.messageAttributes['ce-id'].stringValue, body: r.body, fixed,
    }) + '\n');
    if (!fixed) throw new Error('downstream unavailable');
  }
  return {};
};
"#;

/// `slow` takes one job at a time and holds it until the file `go` exists: a backlog builds.
const BACKLOG: &str = r#"
[app]
name = "backlog"
[functions.slow]
runtime = "nodejs20.x"
handler = "slow.handler"
timeout = 60
[functions.slow.scaling]
max_instances = 1
[topics.jobs]
public = true
[[subscriptions]]
name = "slow-jobs"
topic = "jobs"
function = "slow"
batch_size = 1
max_concurrency = 1
"#;

const SLOW: &str = r#"
const fs = require('fs');
const path = require('path');
exports.handler = async (event) => {
  while (!fs.existsSync(path.join(__dirname, 'go'))) await new Promise((r) => setTimeout(r, 20));
  for (const r of event.Records) fs.appendFileSync(path.join(__dirname, 'done.txt'), r.body + '\n');
  return {};
};
"#;

const VERSIONS: &str = r#"
[app]
name = "versions"
[functions.hello]
runtime = "nodejs20.x"
handler = "h.handler"
[[routes]]
route = "GET /hello"
function = "hello"
"#;

fn hello(version: &str) -> String {
    format!("exports.handler = async () => ({{ statusCode: 200, body: '{version}' }});\n")
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `check` until it returns `Some`, for [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A GET on the operator API after the telemetry buffer is written out.
async fn api(app: &TestApp, path: &str) -> Value {
    app.platform().telemetry.flush().await;
    let r = app.op(reqwest::Method::GET, path).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    json(&body)
}

/// The invocation records of `function` once there are `n`.
async fn invocations(app: &TestApp, function: &str, n: usize) -> Vec<Value> {
    let path = format!("/gust/v1/invocations?function={function}&limit=100");
    let list = eventually(&format!("{n} invocation records of {function}"), || async {
        let v = api(app, &path).await;
        let list = v["invocations"].as_array().unwrap().clone();
        (list.len() >= n).then_some(list)
    })
    .await;
    assert_eq!(list.len(), n, "{list:#?}");
    list
}

/// Polls `url` until it answers 200 with `body`.
async fn answers(url: &str, body: &str) {
    let client = reqwest::Client::new();
    eventually(&format!("{url} to answer {body:?}"), || async {
        let r = client.get(url).send().await.ok()?;
        (r.status() == 200 && r.text().await.ok()? == body).then_some(())
    })
    .await
}

fn env<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn browser(script: &str, test: &str, app: &TestApp, pairs: &[(&str, String)]) -> Value {
    run_console_script(script, test, &app.admin(""), &app.operator_token(), &env(pairs)).await
}

/// An HTTP client that shows redirects instead of following them.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path and query a redirect points to (its `Location` may be absolute).
    fn location(&self) -> Option<String> {
        let loc = self.header("location")?;
        Some(match loc.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/".to_string(), |i| rest[i..].to_string()),
            None => loc.to_string(),
        })
    }

    /// The error code of an API error body.
    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// `gust_console=VALUE` when the reply sets a session cookie with a value.
    fn session(&self) -> Option<String> {
        self.set_cookie().and_then(|c| {
            let pair = c.split(';').next()?.trim();
            let (_, value) = pair.split_once('=')?;
            (!value.is_empty()).then(|| pair.to_string())
        })
    }

    /// The whole `Set-Cookie` line for `gust_console`, if any.
    fn set_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.trim_start().starts_with("gust_console="))
            .map(str::to_string)
    }
}

async fn fetch(req: reqwest::RequestBuilder) -> Reply {
    let r = req.send().await.unwrap();
    Reply {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap_or_default(),
    }
}

/// A request to the admin address carrying `cookie` (`name=value`) when there is one.
fn with_cookie(client: &reqwest::Client, method: &str, url: String, cookie: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req
}

/// `application/x-www-form-urlencoded` for one value.
fn form_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Submits the login form with `token`, as a browser would.
async fn post_login(client: &reqwest::Client, admin: &str, token: &str) -> Reply {
    fetch(
        client
            .post(format!("{admin}/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", form_value(token))),
    )
    .await
}

/// Logs in with the operator token and returns the session cookie (`gust_console=...`).
async fn log_in(client: &reqwest::Client, admin: &str, token: &str) -> String {
    let r = post_login(client, admin, token).await;
    assert_eq!(
        (r.status, r.location().as_deref()),
        (303, Some("/console/")),
        "POST /console/login with the operator token: {}",
        r.body
    );
    let set = r
        .set_cookie()
        .unwrap_or_else(|| panic!("the login sets no gust_console cookie: {:?}", r.headers));
    let attrs: Vec<String> = set.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
    assert!(
        attrs.iter().any(|a| a == "httponly"),
        "the session cookie is not HttpOnly: {set}"
    );
    assert!(
        attrs.iter().any(|a| a == "samesite=strict"),
        "the session cookie is not SameSite=Strict: {set}"
    );
    r.session()
        .unwrap_or_else(|| panic!("the session cookie has no value: {set}"))
}

/// Every file a page of the console loads: `page` itself, what it references, and the modules
/// those import, found by reading them with a session.
async fn console_files(client: &reqwest::Client, admin: &str, cookie: &str, page: &str) -> Vec<String> {
    let mut seen: Vec<String> = vec![page.into()];
    let mut i = 0;
    while i < seen.len() {
        let path = seen[i].clone();
        i += 1;
        let r = fetch(with_cookie(client, "GET", format!("{admin}{path}"), Some(cookie))).await;
        assert_eq!(r.status, 200, "GET {path} with a session: {}", r.body);
        for reference in references(&path, &r.body) {
            if let Some(p) = resolve(&path, &reference) {
                if !seen.contains(&p) {
                    seen.push(p);
                }
            }
        }
    }
    seen
}

/// What a file of the console loads: `src`/`href` attributes of HTML, the specifiers of
/// JavaScript's `import ... from "x"`, `import "x"` and `import("x")`, CSS's `url(x)` and
/// `@import "x"`.
fn references(path: &str, text: &str) -> Vec<String> {
    let starts: &[&str] = if path.ends_with(".html") || path.ends_with('/') {
        &["src=", "href="]
    } else if path.ends_with(".js") {
        &["from", "import", "import("]
    } else if path.ends_with(".css") {
        &["url(", "@import"]
    } else {
        &[]
    };
    // Comments name things too ("parents from `parent_id`"): leave out JavaScript's and CSS's.
    let code: String = if path.ends_with(".js") || path.ends_with(".css") {
        text.lines()
            .filter(|l| {
                let t = l.trim_start();
                !(t.starts_with("//") || t.starts_with("/*") || t.starts_with('*'))
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        text.to_string()
    };
    let text = code.as_str();
    let mut out = Vec::new();
    for start in starts {
        for (at, _) in text.match_indices(start) {
            let rest = text[at + start.len()..].trim_start();
            let Some(quote) = rest.chars().next().filter(|c| matches!(c, '"' | '\'' | '`')).or(
                // `url(x)` may go unquoted.
                (*start == "url(").then_some(')'),
            ) else {
                continue;
            };
            let body = if quote == ')' { rest } else { &rest[1..] };
            let Some(len) = body.find(quote) else {
                continue;
            };
            let value = body[..len].trim();
            let local = !value.is_empty()
                && !value.contains("://")
                && !value.starts_with("data:")
                && !value.starts_with('#')
                && !value.contains(char::is_whitespace);
            if local {
                out.push(value.to_string());
            }
        }
    }
    out
}

/// `reference` seen in the file at `from`, as an absolute path under `/console/`.
fn resolve(from: &str, reference: &str) -> Option<String> {
    let mut parts: Vec<&str> = if reference.starts_with('/') {
        Vec::new()
    } else {
        let dir = &from[..from.rfind('/').unwrap()];
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    let reference = reference.split(['?', '#']).next().unwrap_or_default();
    for part in reference.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let path = format!("/{}", parts.join("/"));
    path.starts_with("/console/").then_some(path)
}

#[test]
fn the_console_file_finder_reads_sources_imports_and_urls() {
    let html = r##"<link rel="stylesheet" href="/console/console.css"><script type="module" src='app.js'></script>
<a href="#/events">Events</a><a href="https://example.org/x.js">x</a>"##;
    assert_eq!(
        references("/console/index.html", html),
        ["app.js", "/console/console.css"]
    );
    let js = r#"import uPlot from './vendor/uPlot.esm.js';
import { a } from "../console/charts.js";
import './side.js';
const later = () => import(`./lazy.js`);
const important = fromage("not.js");"#;
    let mut found = references("/console/app.js", js);
    found.sort();
    assert_eq!(
        found,
        [
            "../console/charts.js",
            "./lazy.js",
            "./side.js",
            "./vendor/uPlot.esm.js"
        ]
    );
    assert_eq!(
        references(
            "/console/console.css",
            "a { background: url(img/x.png) } @import 'more.css';"
        ),
        ["img/x.png", "more.css"]
    );
    assert_eq!(
        resolve("/console/app.js", "./vendor/uPlot.esm.js").as_deref(),
        Some("/console/vendor/uPlot.esm.js")
    );
    assert_eq!(
        resolve("/console/vendor/uPlot.esm.js", "../app.js?v=1").as_deref(),
        Some("/console/app.js")
    );
    assert_eq!(resolve("/console/app.js", "../../etc/passwd"), None);
}

/// The headers the contract puts on every file of the console.
fn assert_console_headers(r: &Reply, path: &str) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "Cache-Control of {path}");
    assert_eq!(
        r.header("content-security-policy"),
        Some(CSP),
        "Content-Security-Policy of {path}"
    );
    let want = if path.ends_with(".js") {
        "javascript"
    } else if path.ends_with(".css") {
        "text/css"
    } else if path.ends_with(".LICENSE") {
        "text/plain"
    } else {
        "text/html"
    };
    let got = r.header("content-type").unwrap_or_default();
    assert!(got.contains(want), "Content-Type of {path} is {got:?}, not {want}");
}

// ---------------------------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_harness_starts_chromium_on_a_real_gust_and_writes_screenshots() {
    // Both installs are no-ops where they have been done; on a fresh machine they install.
    let chromium = tokio::task::spawn_blocking(chromium).await.unwrap();
    assert_eq!(chromium, Path::new(CHROMIUM));
    let app = shop_files();
    let state = tempfile::tempdir().unwrap();
    let up = GustUp::start(app.path(), state.path()).await;
    let seen = run_console_script("smoke", "smoke", &up.admin, &up.token, &[]).await;
    assert_eq!(seen["healthz"]["status"], 200, "{seen}");
    assert_eq!(
        json(seen["healthz"]["body"].as_str().unwrap())["status"],
        "ok",
        "{seen}"
    );
    assert_eq!(seen["openapi"]["status"], 200, "{seen}");
    let doc =
        json(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")).unwrap());
    assert_eq!(seen["openapi"]["version"], doc["openapi"], "{seen}");
    assert_eq!(seen["openapi"]["title"], doc["info"]["title"], "{seen}");
    assert_eq!(
        seen["openapi"]["paths"].as_u64(),
        Some(doc["paths"].as_object().unwrap().len() as u64),
        "{seen}"
    );
    let ua = seen["user_agent"].as_str().unwrap();
    assert!(ua.contains("HeadlessChrome/"), "not headless Chromium: {ua}");
    for shot in ["01-healthz.png", "02-openapi.png"] {
        let png = std::fs::read(console_artifacts("smoke").join(shot))
            .unwrap_or_else(|e| panic!("no screenshot {shot}: {e}"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{shot} is not a PNG"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Without a session
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn without_a_session_every_console_file_and_api_call_is_refused() {
    let app = shop().await;
    let admin = app.admin("");
    let client = http();
    // A function's own credential, to be tried as a session.
    let (status, _, body) = app.invoke("tokens", "{}").await;
    assert_eq!(status, 200, "{body}");
    let function_token = json(&body)["token"]
        .as_str()
        .expect("functions get a GUST_TOKEN")
        .to_string();
    assert!(!function_token.is_empty());
    let forged = format!("gust_console={}", "a1".repeat(32));
    let as_cookie = format!("gust_console={function_token}");
    let strangers: [(&str, Option<&str>); 3] = [
        ("no cookie", None),
        ("a forged cookie", Some(&forged)),
        ("a function's GUST_TOKEN as cookie", Some(&as_cookie)),
    ];

    // The operator API refuses all of them (it did before the console too).
    for (who, cookie) in strangers {
        for path in API_READS {
            let r = fetch(with_cookie(&client, "GET", format!("{admin}{path}"), cookie)).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (401, "OperatorTokenRequired"),
                "GET {path} with {who}: {}",
                r.body
            );
        }
        for (method, path) in API_WRITES {
            let req = with_cookie(&client, method, format!("{admin}{path}"), cookie).header("x-gust-console", "1");
            let r = fetch(req).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (401, "OperatorTokenRequired"),
                "{method} {path} with {who}: {}",
                r.body
            );
        }
    }

    // The login page needs no credential.
    let r = fetch(client.get(format!("{admin}/console/login"))).await;
    assert_eq!(r.status, 200, "GET /console/login: {}", r.body);
    assert_console_headers(&r, "/console/login");
    assert!(
        r.body.contains("login-form"),
        "GET /console/login is not the login page: {}",
        r.body
    );

    // A wrong token: back to the form with ?error=1, and no session.
    let r = post_login(&client, &admin, "not-the-operator-token").await;
    assert_eq!(
        (r.status, r.location().as_deref()),
        (303, Some("/console/login?error=1")),
        "POST /console/login with a wrong token: {}",
        r.body
    );
    assert_eq!(r.session(), None, "a wrong token got a session cookie");
    let r = post_login(&client, &admin, &function_token).await;
    assert_eq!(
        (r.status, r.location().as_deref(), r.session()),
        (303, Some("/console/login?error=1"), None),
        "POST /console/login with a function's GUST_TOKEN"
    );

    // The operator token: a session; with it, every file of the console is served with the
    // contract's headers, and nothing else under /console/ is.
    let cookie = log_in(&client, &admin, &app.operator_token()).await;
    let files = console_files(&client, &admin, &cookie, "/console/index.html").await;
    let login_files = console_files(&client, &admin, &cookie, "/console/login").await;
    let public = |path: &str| PUBLIC.contains(&path) || login_files.iter().any(|f| f == path);
    for f in CONTRACT_FILES.iter().filter(|f| !f.ends_with("LICENSE")) {
        assert!(
            files.iter().any(|s| s == f),
            "{f} is not loaded by the console: {files:?}"
        );
    }
    let mut all: Vec<String> = files.iter().chain(&login_files).cloned().collect();
    all.extend(PAGES.iter().map(|s| s.to_string()));
    // Served though no page loads it: the chart library's license, beside the library.
    all.push("/console/vendor/uPlot.LICENSE".into());
    all.sort();
    all.dedup();
    for path in &all {
        let r = fetch(with_cookie(&client, "GET", format!("{admin}{path}"), Some(&cookie))).await;
        assert_eq!(r.status, 200, "GET {path} with a session: {}", r.body);
        assert_console_headers(&r, path);
    }
    for path in [
        "/console/nope.js",
        "/console/vendor/nope.css",
        "/console/index.htm",
        "/console/../gust.toml",
    ] {
        let r = fetch(with_cookie(&client, "GET", format!("{admin}{path}"), Some(&cookie))).await;
        assert_eq!(r.status, 404, "GET {path} with a session: {}", r.body);
    }
    let r = fetch(with_cookie(
        &client,
        "GET",
        format!("{admin}/gust/v1/functions"),
        Some(&cookie),
    ))
    .await;
    assert_eq!(
        r.status, 200,
        "GET /gust/v1/functions with the session cookie: {}",
        r.body
    );

    // Without a session: pages send to the login form, other files are refused, the login
    // page's own files are served.
    for (who, cookie) in strangers {
        for path in &all {
            let r = fetch(with_cookie(&client, "GET", format!("{admin}{path}"), cookie)).await;
            if public(path) {
                assert_eq!(r.status, 200, "GET {path} with {who} (the login page needs it)");
            } else if PAGES.contains(&path.as_str()) {
                assert_eq!(
                    (r.status, r.location().as_deref()),
                    (303, Some("/console/login")),
                    "GET {path} with {who}"
                );
            } else {
                assert_eq!(r.status, 401, "GET {path} with {who}: {}", r.body);
                assert!(!r.body.contains("import "), "GET {path} with {who} showed the file");
            }
        }
    }

    // A cookie alone does not authorise a change: the header the page sends must be there.
    for (method, path) in [("POST", "/gust/v1/dlq/nope/redrive"), ("DELETE", "/gust/v1/dlq/nope")] {
        let r = fetch(with_cookie(&client, method, format!("{admin}{path}"), Some(&cookie))).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "ConsoleHeaderRequired"),
            "{method} {path} with the session cookie but no X-Gust-Console: {}",
            r.body
        );
        let req = with_cookie(&client, method, format!("{admin}{path}"), Some(&cookie)).header("x-gust-console", "1");
        let r = fetch(req).await;
        // With the header the action is taken (and finds nothing): redrive names the unknown
        // subscription, purge removes no dead letter.
        let taken = match method {
            "POST" => r.status == 404 && r.code() == "SubscriptionNotFound",
            _ => r.status == 200 && r.body.contains("\"purged\":0"),
        };
        assert!(
            taken,
            "{method} {path} with the cookie and X-Gust-Console: 1: {} {}",
            r.status, r.body
        );
    }

    // Logging out ends the session.
    let req =
        with_cookie(&client, "POST", format!("{admin}/console/logout"), Some(&cookie)).header("x-gust-console", "1");
    let r = fetch(req).await;
    assert!(
        (200..400).contains(&r.status),
        "POST /console/logout with the session: {} {}",
        r.status,
        r.body
    );
    let r = fetch(with_cookie(
        &client,
        "GET",
        format!("{admin}/gust/v1/functions"),
        Some(&cookie),
    ))
    .await;
    assert_eq!(r.status, 401, "the session still works after logout");
    let r = fetch(with_cookie(&client, "GET", format!("{admin}/console/"), Some(&cookie))).await;
    assert_eq!(
        (r.status, r.location().as_deref()),
        (303, Some("/console/login")),
        "GET /console/ after logout"
    );
    for (who, cookie) in strangers {
        let r = fetch(with_cookie(&client, "POST", format!("{admin}/console/logout"), cookie)).await;
        let refused = r.status == 401 || (r.status == 303 && r.location().as_deref() == Some("/console/login"));
        assert!(
            refused,
            "POST /console/logout with {who}: {} {:?}",
            r.status,
            r.location()
        );
    }

    // In the browser: the form, and a wrong token's message.
    let seen = browser("login_error", "login-error", &app, &[]).await;
    let form = &seen["form"];
    assert_eq!(
        form["method"].as_str().map(str::to_ascii_lowercase).as_deref(),
        Some("post"),
        "form#login-form method: {seen}"
    );
    assert_eq!(form["action"], "/console/login", "form#login-form action: {seen}");
    assert_eq!(form["token_type"], "password", "input#token type: {seen}");
    assert_eq!(form["token_name"], "token", "input#token name: {seen}");
    assert_eq!(
        form["autocomplete"], "current-password",
        "input#token autocomplete: {seen}"
    );
    assert!(
        form["label"].as_str().is_some_and(|l| !l.is_empty()),
        "input#token has no <label>: {seen}"
    );
    assert_eq!(form["submit"], 1, "#login-submit: {seen}");
    assert_eq!(
        form["error_visible_before"], false,
        "#login-error shows before any attempt: {seen}"
    );
    assert_eq!(seen["after"]["path"], "/console/login", "after a wrong token: {seen}");
    assert_eq!(seen["after"]["search"], "?error=1", "after a wrong token: {seen}");
    assert_eq!(
        seen["error_visible"], true,
        "#login-error is not visible after a wrong token: {seen}"
    );
    assert!(
        seen["error_text"].as_str().is_some_and(|t| !t.is_empty()),
        "#login-error says nothing: {seen}"
    );
    assert!(
        !seen["cookies"].as_array().unwrap().iter().any(|c| c == "gust_console"),
        "a wrong token left a session cookie in the browser: {seen}"
    );
    app.stop().await;
}

#[tokio::test]
async fn at_most_64_sessions_live_at_once_and_the_oldest_goes() {
    let app = shop().await;
    let (admin, client) = (app.admin(""), http());
    let mut cookies = Vec::new();
    for _ in 0..65 {
        cookies.push(log_in(&client, &admin, &app.operator_token()).await);
    }
    let works = |cookie: String| {
        let (client, admin) = (client.clone(), admin.clone());
        async move {
            fetch(with_cookie(
                &client,
                "GET",
                format!("{admin}/gust/v1/functions"),
                Some(&cookie),
            ))
            .await
            .status
        }
    };
    assert_eq!(
        works(cookies[0].clone()).await,
        401,
        "the oldest of 65 sessions still works"
    );
    for (i, c) in cookies.iter().enumerate().skip(1) {
        assert_eq!(works(c.clone()).await, 200, "session {i} of 65 no longer works");
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. The overview
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_overview_shows_the_requests_the_gateway_served() {
    let app = shop().await;
    for i in 0..7 {
        let r = app.get("/hits").await;
        assert_eq!(r.status(), 200, "request {i} to /hits");
    }
    let list = invocations(&app, "hits", 7).await;
    assert!(
        list.iter().all(|r| r["trigger"] == "http" && r["outcome"] == "success"),
        "{list:#?}"
    );
    let cold = list.iter().filter(|r| r["cold_start"] == true).count().to_string();

    let seen = browser(
        "overview",
        "overview",
        &app,
        &[
            ("GUST_FUNCTION", "hits".into()),
            ("GUST_EXPECT_REQUESTS", "7".into()),
            ("GUST_EXPECT_COLD", cold.clone()),
        ],
    )
    .await;
    let status = seen["app_status"].as_str().unwrap_or_default();
    assert!(status.contains("shop"), "#app-status does not name the app: {status:?}");
    assert!(status.contains('1'), "#app-status does not say version 1: {status:?}");
    assert_eq!(
        seen["requests"], "7",
        "tr[data-function=hits] td[data-col=requests]: {seen}"
    );
    assert_eq!(
        seen["errors"], "0",
        "tr[data-function=hits] td[data-col=errors]: {seen}"
    );
    assert_eq!(
        seen["cold"],
        cold.as_str(),
        "tr[data-function=hits] td[data-col=cold]: {seen}"
    );
    for col in ["p50", "p99", "instances"] {
        assert!(
            seen[col].as_str().is_some_and(|t| !t.is_empty()),
            "td[data-col={col}] is empty or missing: {seen}"
        );
    }
    assert!(
        seen["link"].as_str().is_some_and(|h| h.ends_with("#/functions/hits")),
        "the function name cell does not link to #/functions/hits: {seen}"
    );
    assert_eq!(seen["chart_requests"], "7", "#chart-requests[data-total]: {seen}");
    assert_eq!(
        seen["unnamed_controls"],
        serde_json::json!([]),
        "controls without a name: {seen}"
    );
    let tabbed: Vec<&str> = seen["tab_order"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tabbed.iter().any(|t| t.starts_with("a[data-nav=")),
        "Tab does not reach the navigation: {tabbed:?}"
    );
    assert!(
        tabbed.iter().all(|t| *t != "body"),
        "Tab fell out of the page: {tabbed:?}"
    );
    assert_eq!(seen["chart_errors"], "0", "#chart-errors[data-total]: {seen}");
    if !seen["chart_cold"].is_null() {
        assert_eq!(seen["chart_cold"], cold.as_str(), "#chart-cold[data-total]: {seen}");
    }
    let charts: Vec<&str> = seen["charts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for id in ["chart-requests", "chart-errors"] {
        assert!(charts.contains(&id), "no figure.chart#{id} on the overview: {seen}");
    }
    assert_eq!(
        seen["chart_captions"].as_array().map(Vec::len),
        Some(charts.len()),
        "a figure.chart without its figcaption: {seen}"
    );
    assert_eq!(
        seen["chart_summaries"].as_u64(),
        Some(charts.len() as u64),
        "a figure.chart without its .sr-only summary: {seen}"
    );
    assert!(
        !seen["attention"].as_array().unwrap().is_empty(),
        "#attention has no li (an item or li.empty): {seen}"
    );
    assert!(seen["cost"].as_str().is_some_and(|t| !t.is_empty()), "#cost: {seen}");
    assert_eq!(seen["range"], "1h", "select#range's default: {seen}");
    assert_eq!(
        seen["range_options"],
        serde_json::json!(["1h", "24h"]),
        "select#range options: {seen}"
    );
    let nav: Vec<&str> = seen["nav"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in ["overview", "events", "schedules", "deployments"] {
        assert!(nav.contains(&n), "no nav a[data-nav={n}]: {seen}");
    }
    assert_eq!(seen["logout"], 1, "#logout: {seen}");
    let narrow = &seen["narrow"];
    assert_eq!(narrow["viewport"], 360, "{seen}");
    assert!(
        narrow["document_width"].as_u64().is_some_and(|w| w <= 360),
        "at 360 px the overview is wider than the screen (tables must scroll in their wrapper): {narrow}"
    );
    let narrow_shots = std::fs::read_dir(console_artifacts("overview"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("overview-360px"))
        .count();
    assert!(narrow_shots >= 1, "no 360 px screenshot of the overview");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. An error
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_error_shows_on_the_chart_in_the_filtered_list_and_with_its_logs() {
    let app = shop().await;
    for _ in 0..2 {
        assert_eq!(app.get("/boom?ok=1").await.status(), 200);
    }
    let r = app.get("/boom").await;
    assert!(
        r.status().is_server_error(),
        "a throwing function answered {}",
        r.status()
    );
    let list = invocations(&app, "boom", 3).await;
    let failed: Vec<&Value> = list.iter().filter(|r| r["outcome"] == "error").collect();
    assert_eq!(failed.len(), 1, "{list:#?}");
    let id = failed[0]["request_id"].as_str().unwrap().to_string();
    let trace = failed[0]["trace_id"].as_str().map(str::to_string);
    let logs = eventually("the failed invocation's log line", || async {
        let v = api(&app, &format!("/gust/v1/logs?request={id}&limit=100")).await;
        let lines = v["lines"].as_array().cloned().unwrap_or_default();
        lines
            .iter()
            .any(|l| l["line"].as_str().is_some_and(|t| t.contains(BOOM_LOG)))
            .then_some(lines)
    })
    .await;
    assert!(!logs.is_empty());

    let seen = browser(
        "errors",
        "errors",
        &app,
        &[
            ("GUST_FUNCTION", "boom".into()),
            ("GUST_REQUEST_ID", id.clone()),
            ("GUST_LOG_NEEDLE", BOOM_LOG.into()),
            ("GUST_EXPECT_INVOCATIONS", "3".into()),
            ("GUST_GATEWAY", app.url("")),
        ],
    )
    .await;
    assert!(
        seen["tail_status"].as_u64().is_some_and(|s| s >= 500),
        "the live tail's call of /boom did not fail: {seen}"
    );
    assert!(
        seen["tail"]
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t.as_str().is_some_and(|t| t.contains(BOOM_LOG)))),
        "ol#tail-lines: {seen}"
    );
    assert!(
        seen["overview_chart_errors"]
            .as_str()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|n| n >= 1.0),
        "#chart-errors[data-total] on the overview: {seen}"
    );
    let mut charts: Vec<&str> = seen["function_charts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    charts.sort();
    assert_eq!(
        charts,
        ["chart-cold", "chart-duration", "chart-errors", "chart-requests"],
        "the function page's figure.chart ids: {seen}"
    );
    assert!(
        seen["function_charts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["total"].is_string()),
        "a figure.chart on the function page has no data-total: {seen}"
    );
    assert_eq!(
        seen["function_chart_errors"], "1",
        "#chart-errors[data-total] on #/functions/boom: {seen}"
    );
    assert!(
        !seen["config"].as_array().unwrap().is_empty(),
        "dl#function-config has no dt: {seen}"
    );
    let ids = |rows: &Value| -> Vec<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut all = ids(&seen["all"]);
    all.sort();
    let mut want: Vec<String> = list
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(
        all, want,
        "table#invocations tr[data-request-id] before filtering: {seen}"
    );
    assert_eq!(
        ids(&seen["filtered"]),
        vec![id.clone()],
        "table#invocations with select#filter-outcome = error: {seen}"
    );
    let row = &seen["filtered"][0];
    assert_eq!(
        row["outcome"], "error",
        "td[data-col=outcome] of the failed invocation: {seen}"
    );
    assert_eq!(
        row["trigger"], "http",
        "td[data-col=trigger] of the failed invocation: {seen}"
    );
    let detail = seen["detail_logs"].as_str().unwrap_or_default();
    assert!(detail.contains(BOOM_LOG), "pre#invocation-logs: {detail:?}");
    if let Some(trace) = trace {
        assert!(
            seen["trace_link"]
                .as_str()
                .is_some_and(|h| h.ends_with(&format!("#/traces/{trace}"))),
            "a#trace-link of an invocation with trace {trace}: {seen}"
        );
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. A trace
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_trace_page_shows_every_span_from_the_gateway_to_the_subscriber() {
    let app = TestApp::start(&[("gust.toml", TRACED), ("checkout.js", CHECKOUT), ("ship.js", SHIP)]).await;
    let r = app.post("/orders", r#"{"order":1}"#).await;
    assert_eq!(r.status(), 200);
    let trace = r.headers()["x-gust-trace-id"].to_str().unwrap().to_string();
    let names = [
        "POST /orders",
        "invoke checkout",
        "queue ship-orders",
        "deliver ship-orders",
        "invoke ship",
    ];
    let spans = eventually("every span of the trace", || async {
        let v = api(&app, &format!("/gust/v1/traces/{trace}")).await;
        let spans = v["spans"].as_array().unwrap().clone();
        names
            .iter()
            .all(|n| spans.iter().any(|s| s["name"] == *n))
            .then_some(spans)
    })
    .await;
    let by = |n: &str| spans.iter().find(|s| s["name"] == n).unwrap();
    let id = |n: &str| by(n)["span_id"].as_str().unwrap().to_string();
    let parent = |n: &str| by(n)["parent_id"].as_str().map(str::to_string);
    assert_eq!(parent("POST /orders"), None, "the gateway's span is the root");
    assert_eq!(parent("invoke checkout"), Some(id("POST /orders")));
    assert_eq!(parent("queue ship-orders"), Some(id("invoke checkout")));
    assert_eq!(parent("deliver ship-orders"), Some(id("invoke checkout")));
    assert_eq!(parent("invoke ship"), Some(id("deliver ship-orders")));

    let clicked = by("invoke ship");
    let seen = browser(
        "trace",
        "trace",
        &app,
        &[
            ("GUST_TRACE_ID", trace.clone()),
            ("GUST_EXPECT_SPANS", spans.len().to_string()),
            ("GUST_CLICK_SPAN", id("invoke ship")),
        ],
    )
    .await;
    let shown = seen["spans"].as_array().unwrap();
    assert_eq!(shown.len(), spans.len(), "#waterfall div.span count: {seen}");
    for s in &spans {
        let sid = s["span_id"].as_str().unwrap();
        let el = shown
            .iter()
            .find(|e| e["id"] == sid)
            .unwrap_or_else(|| panic!("no div.span[data-span-id={sid}] ({}) in #waterfall: {seen}", s["name"]));
        assert_eq!(el["name"], s["name"], "data-name of div.span[data-span-id={sid}]");
        let dom_parent = el["parent"].as_str().filter(|p| !p.is_empty());
        assert_eq!(
            dom_parent,
            s["parent_id"].as_str(),
            "data-parent-id of div.span[data-name={}]",
            s["name"]
        );
    }
    let attrs = seen["attrs_text"].as_str().unwrap_or_default();
    for key in clicked["attributes"].as_object().unwrap().keys() {
        assert!(
            attrs.contains(key.as_str()),
            "dl#span-attrs of invoke ship lacks {key}: {attrs:?}"
        );
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. A dead letter redriven
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_dead_letter_is_redriven_from_the_events_page_and_delivered() {
    let app = TestApp::start(&[("gust.toml", DLQ), ("fragile.js", FRAGILE)]).await;
    let event = r#"{"specversion":"1.0","id":"job-7","source":"/tests","type":"job.requested","data":{"job":7}}"#;
    let r = app
        .client
        .post(app.url("/events/jobs"))
        .header("content-type", "application/cloudevents+json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "publishing: {}", r.text().await.unwrap());
    let dead = eventually("the event to be dead-lettered", || async {
        let v = api(&app, "/gust/v1/dlq?subscription=fragile-jobs").await;
        let list = v["dead_letters"].as_array().unwrap().clone();
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["event"]["id"], "job-7");
    assert_eq!(dead[0]["attempts"], 2);
    let seq = dead[0]["seq"].to_string();
    let out = app.dir.path().join("out.jsonl");
    let attempts = || lines(&out).into_iter().map(|l| json(&l)).collect::<Vec<Value>>();
    assert_eq!(attempts().len(), 2, "max_attempts tries: {:?}", attempts());
    assert!(attempts().iter().all(|a| a["fixed"] == false));

    // The cause fixed, the operator redrives from the page.
    std::fs::write(app.dir.path().join("fixed"), "").unwrap();
    let seen = browser(
        "dlq",
        "dlq",
        &app,
        &[("GUST_SUBSCRIPTION", "fragile-jobs".into()), ("GUST_SEQ", seq.clone())],
    )
    .await;
    assert_eq!(
        seen["topic"], "jobs",
        "tr[data-subscription=fragile-jobs] td[data-col=topic]: {seen}"
    );
    assert_eq!(
        seen["function"], "fragile",
        "tr[data-subscription=fragile-jobs] td[data-col=function]: {seen}"
    );
    assert_eq!(
        seen["dead_letters"], "1",
        "tr[data-subscription=fragile-jobs] td[data-col=dead_letters]: {seen}"
    );
    assert_eq!(
        seen["before"],
        serde_json::json!([seq]),
        "table.dlq[data-subscription=fragile-jobs] tr[data-seq]: {seen}"
    );
    let entry = seen["entry"].as_str().unwrap_or_default();
    assert!(
        entry.contains("job-7") && entry.contains("downstream unavailable"),
        "the dead letter's row does not show its event id and last error: {entry:?}"
    );
    assert!(
        seen["question"].as_str().is_some_and(|q| !q.is_empty()),
        "#confirm-text: {seen}"
    );
    assert!(
        seen["toast"].as_str().is_some_and(|t| t.contains("Redriven 1")),
        "#toast: {seen}"
    );

    // The function ran with that event, and the dead letter is gone.
    let dir = app.dir.path().to_path_buf();
    wait_for("the redriven event to be delivered", WAIT, || {
        lines(&dir.join("out.jsonl"))
            .iter()
            .any(|l| json(l)["ceid"] == "job-7" && json(l)["fixed"] == true)
    })
    .await;
    let delivered: Vec<Value> = attempts().into_iter().filter(|a| a["fixed"] == true).collect();
    assert_eq!(delivered.len(), 1, "delivered once: {delivered:?}");
    assert_eq!(json(delivered[0]["body"].as_str().unwrap())["job"], 7);
    let left = api(&app, "/gust/v1/dlq?subscription=fragile-jobs").await;
    assert_eq!(left["dead_letters"], serde_json::json!([]), "{left}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. A rollback
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rollback_from_the_deployments_page_serves_the_old_version_again() {
    let dir = write_app(&[("gust.toml", VERSIONS), ("h.js", &hello("v1"))]);
    let app = TestApp::start_configured(dir, |c| c.code = gust::revision::CodeMode::Snapshot).await;
    answers(&app.url("/hello"), "v1").await;
    std::fs::write(app.dir.path().join("h.js"), hello("v2")).unwrap();
    let r = app
        .op(reqwest::Method::POST, "/gust/v1/deployments")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 2);
    answers(&app.url("/hello"), "v2").await;
    let d = api(&app, "/gust/v1/deployments").await;
    let running: Vec<u64> = d["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["running"] == true)
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(running, vec![2], "{d}");

    let seen = browser(
        "rollback",
        "rollback",
        &app,
        &[("GUST_ROLLBACK_TO", "1".into()), ("GUST_RUNNING", "2".into())],
    )
    .await;
    let before = seen["before"].as_array().unwrap();
    let row = |rows: &[Value], v: &str| {
        rows.iter()
            .find(|r| r["version"] == v)
            .cloned()
            .unwrap_or_else(|| panic!("no tr[data-version={v}] in table#deployments: {seen}"))
    };
    assert_eq!(
        row(before, "2")["state"],
        "running",
        "td[data-col=state] of version 2 before: {seen}"
    );
    assert_eq!(
        row(before, "2")["rollback"],
        false,
        "the running version has a rollback button: {seen}"
    );
    assert_eq!(
        row(before, "1")["rollback"],
        true,
        "no rollback button on version 1: {seen}"
    );
    assert!(
        row(before, "2")["changed"]
            .as_str()
            .is_some_and(|c| c.contains("replaced: hello")),
        "td[data-col=changed] of version 2 does not say hello was replaced: {seen}"
    );
    assert!(
        seen["question"].as_str().is_some_and(|q| q.contains('1')),
        "#confirm-text does not name version 1: {seen}"
    );
    assert!(
        seen["toast"]
            .as_str()
            .is_some_and(|t| t.contains("Rolled back to version 1")),
        "#toast: {seen}"
    );

    answers(&app.url("/hello"), "v1").await;
    let d = api(&app, "/gust/v1/deployments").await;
    let running: Vec<u64> = d["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["running"] == true)
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(running, vec![1], "{d}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. `gust console`
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_gust_console_link_logs_in_once() {
    let app = shop_files();
    let state = tempfile::tempdir().unwrap();
    let up = GustUp::start(app.path(), state.path()).await;
    let out = gust_cli(
        vec!["console".into(), "--state".into(), state.path().display().to_string()],
        vec![],
    )
    .await;
    assert!(
        out.status.success(),
        "gust console failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let link = stdout.lines().last().unwrap_or_default().trim().to_string();
    let prefix = format!("{}/console/login?code=", up.admin);
    assert!(
        link.starts_with(&prefix) && link.len() > prefix.len(),
        "the last line of gust console is not {prefix}CODE: {stdout:?}"
    );

    let seen = run_console_script("link", "link", &up.admin, &up.token, &[("GUST_LINK", &link)]).await;
    assert_eq!(
        seen["first"]["path"], "/console/",
        "the first visit of the link did not log in: {seen}"
    );
    assert!(
        seen["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "gust_console" && c["httpOnly"] == true && c["sameSite"] == "Strict"),
        "no HttpOnly, SameSite=Strict gust_console cookie after the link: {seen}"
    );
    assert_eq!(
        seen["second"]["path"], "/console/login",
        "the second visit of the link: {seen}"
    );
    assert_eq!(
        seen["second"]["search"], "?error=1",
        "the second visit of the link: {seen}"
    );
    assert_eq!(
        seen["second_error_visible"], true,
        "#login-error after a used link: {seen}"
    );

    // And once more without a browser: a used code is refused, a made-up one too.
    let client = http();
    for url in [link.clone(), format!("{prefix}made-up")] {
        let r = fetch(client.get(&url)).await;
        assert_eq!(
            (r.status, r.location().as_deref(), r.session()),
            (303, Some("/console/login?error=1"), None),
            "GET {url}"
        );
    }
}

#[tokio::test]
async fn a_backlog_shows_over_time_on_the_events_page() {
    let dir = write_app(&[("gust.toml", BACKLOG), ("slow.js", SLOW)]);
    let app = TestApp::start_configured(dir, |c| c.backlog_sample_every = Duration::from_millis(100)).await;
    for i in 0..5 {
        let r = app
            .client
            .post(app.url("/events/jobs"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"job":{i}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "publishing job {i}");
    }
    // One job is held by `slow`; the sampler sees the others waiting, and their age.
    let now = chrono::Utc::now().timestamp_millis();
    let path = format!(
        "/gust/v1/subscriptions/slow-jobs/series?since_ms={}&until_ms={}&step_s=60",
        now - 120_000,
        now + 60_000
    );
    let point = eventually("a sampled backlog of at least 4", || async {
        let v = api(&app, &path).await;
        v["points"]
            .as_array()?
            .iter()
            .find(|p| {
                p["backlog"].as_u64().is_some_and(|b| b >= 4) && p["oldest_age_s"].as_f64().is_some_and(|a| a > 0.0)
            })
            .cloned()
    })
    .await;
    assert_eq!(point["dead_letters"], 0, "{point}");
    let unknown = app
        .client
        .get(app.admin("/gust/v1/subscriptions/nope/series"))
        .bearer_auth(app.operator_token())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let seen = browser(
        "backlog",
        "backlog",
        &app,
        &[
            ("GUST_SUBSCRIPTION", "slow-jobs".into()),
            ("GUST_EXPECT_BACKLOG", "4".into()),
        ],
    )
    .await;
    assert!(
        seen["backlog"]
            .as_str()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|n| n >= 4.0),
        "#chart-backlog[data-total]: {seen}"
    );
    assert!(
        seen["age"]
            .as_str()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|n| n > 0.0),
        "#chart-age[data-total]: {seen}"
    );

    // Released, the backlog drains: every job is done once.
    std::fs::write(app.dir.path().join("go"), "").unwrap();
    let done = app.dir.path().join("done.txt");
    wait_for("the five jobs to be done", Duration::from_secs(30), || {
        lines(&done).len() >= 5
    })
    .await;
    assert_eq!(lines(&done).len(), 5, "{:?}", lines(&done));
}

/// The session cookie is the operator on the operator API only: the Lambda API, the platform
/// API and DynamoDB's API take their own credentials and refuse a browser holding the cookie.
#[tokio::test]
async fn a_console_session_is_no_credential_for_the_other_faces() {
    let app = shop().await;
    let admin = app.admin("");
    let client = http();
    let cookie = log_in(&client, &admin, &app.operator_token()).await;
    let r = fetch(with_cookie(
        &client,
        "GET",
        format!("{admin}/gust/v1/functions"),
        Some(&cookie),
    ))
    .await;
    assert_eq!(r.status, 200, "the cookie works on the operator API: {}", r.body);
    let cases = [
        ("POST", "/2015-03-31/functions/hits/invocations", "{}"),
        ("GET", "/2015-03-31/functions", ""),
        ("GET", "/gust/v1/kv/some-key", ""),
        ("POST", "/gust/v1/functions/hits/invoke", "{}"),
    ];
    for (method, path, body) in cases {
        let req = with_cookie(&client, method, format!("{admin}{path}"), Some(&cookie))
            .header("x-gust-console", "1")
            .body(body);
        let r = fetch(req).await;
        assert!(
            r.status == 401 || r.status == 403,
            "{method} {path} with the console cookie: {} {}",
            r.status,
            r.body
        );
    }
    let dynamo = with_cookie(&client, "POST", format!("{admin}/"), Some(&cookie))
        .header("x-amz-target", "DynamoDB_20120810.ListTables")
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-gust-console", "1")
        .body("{}");
    let r = fetch(dynamo).await;
    assert!(
        r.status == 400 || r.status == 401 || r.status == 403,
        "DynamoDB with the cookie: {} {}",
        r.status,
        r.body
    );
    assert!(!r.body.contains("TableNames"), "DynamoDB answered a cookie: {}", r.body);
    // The invocation did not happen.
    let v = api(&app, "/gust/v1/invocations?function=hits").await;
    assert_eq!(v["invocations"], serde_json::json!([]), "{v}");
}
