//! Redeploys on a running Gust: zero downtime under load, events delivered once across the
//! switch, unchanged functions keeping their warm instances, broken versions refused while
//! the last good one keeps serving, `gust up --watch`, the ready line, and the CLI finding
//! the running Gust from another directory.

use crate::support::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// Records each record's body (the published JSON) into `$OUT`, outside its code directory
/// (a file written under its code would be a change of its code).
const RECORDER: &str = r#"
const fs = require('fs');
exports.handler = async (event) => {
  fs.appendFileSync(process.env.OUT, event.Records.map((r) => r.body).join('\n') + '\n');
  return {};
};
"#;

fn hello(version: &str) -> String {
    format!("exports.handler = async () => ({{ statusCode: 200, body: '{version}' }});\n")
}

const STABLE: &str = "exports.handler = async () => ({ statusCode: 200, body: 'stable:' + process.pid });\n";

fn manifest(extra: &str) -> String {
    format!(
        r#"
[app]
name = "redeploy"
[functions.hello]
runtime = "nodejs20.x"
handler = "h.handler"
dir = "hello"
[functions.stable]
runtime = "nodejs20.x"
handler = "s.handler"
dir = "stable"
[functions.sink]
runtime = "nodejs20.x"
handler = "r.handler"
dir = "sink"
environment = {{ OUT = "OUT_PATH" }}
[[routes]]
route = "GET /hello"
function = "hello"
[[routes]]
route = "GET /stable"
function = "stable"
[topics.orders]
public = true
[[subscriptions]]
name = "sink-orders"
topic = "orders"
function = "sink"
{extra}
"#
    )
}

/// An app of three functions in their own directories, recording deliveries into `out`.
fn app_dir(out: &Path, extra: &str) -> tempfile::TempDir {
    write_app(&[
        (
            "gust.toml",
            &manifest(extra).replace("OUT_PATH", &out.display().to_string()),
        ),
        ("hello/h.js", &hello("v0")),
        ("stable/s.js", STABLE),
        ("sink/r.js", RECORDER),
    ])
}

/// A Gust on `dir` whose functions run from snapshots of their code (the default of `gust up`).
async fn start(dir: tempfile::TempDir) -> TestApp {
    TestApp::start_configured(dir, |c| c.code = gust::revision::CodeMode::Snapshot).await
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

async fn body_of(client: &reqwest::Client, url: &str) -> (u16, String) {
    match client.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

async fn serves(app: &TestApp, path: &str, body: &str) {
    answers(&app.client, &app.url(path), body).await
}

/// Polls `url` until it answers 200 with `body` (a deadline of [`WAIT`]).
async fn answers(client: &reqwest::Client, url: &str, body: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, got) = body_of(client, url).await;
        if status == 200 && got == body {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered {body:?}: last {status} {got}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeploys_under_load_answer_every_request_and_deliver_every_event_once() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("deliveries.txt");
    let app = start(app_dir(&out, "")).await;
    let dir = app.dir.path().to_path_buf();
    serves(&app, "/hello", "v0").await;
    let (_, stable_before) = body_of(&app.client, &app.url("/stable")).await;
    let stable_pool = app.platform().invoker.pool("stable").unwrap();
    let sink_pool = app.platform().invoker.pool("sink").unwrap();

    // Clients: four loops of requests to both routes; a publisher of numbered events.
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut loops = Vec::new();
    for i in 0..4 {
        let (stop, requests, failures) = (stop.clone(), requests.clone(), failures.clone());
        let client = reqwest::Client::new();
        let url = app.url(if i % 2 == 0 { "/hello" } else { "/stable" });
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let (status, body) = body_of(&client, &url).await;
                requests.fetch_add(1, Ordering::AcqRel);
                if status != 200 {
                    failures.lock().unwrap().push(format!("{url}: {status} {body}"));
                }
            }
        }));
    }
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stop, published, failures) = (stop.clone(), published.clone(), failures.clone());
        let client = reqwest::Client::new();
        let url = app.url("/events/orders");
        tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let n = published.load(Ordering::Acquire);
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(format!("{{\"n\":{n}}}"))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        published.fetch_add(1, Ordering::AcqRel);
                    }
                    Ok(r) => failures.lock().unwrap().push(format!("publish: {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(format!("publish: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // Ten redeploys, each a new handler for `hello`; the others are unchanged.
    let mut old_hello_pids = Vec::new();
    for v in 1..=10 {
        old_hello_pids.extend(app.platform().invoker.pool("hello").unwrap().idle_pids());
        write(&dir, "hello/h.js", &hello(&format!("v{v}")));
        let report = app
            .platform()
            .redeploy()
            .await
            .unwrap_or_else(|e| panic!("redeploy {v}: {e}"));
        assert_eq!(
            report.functions.replaced,
            vec!["hello".to_string()],
            "redeploy {v}: {report:?}"
        );
        assert_eq!(report.functions.kept, vec!["sink".to_string(), "stable".to_string()]);
        assert_eq!(report.version, 1 + v);
        // The switch is done when redeploy returns: the next request gets the new version.
        let (status, body) = body_of(&app.client, &app.url("/hello")).await;
        assert_eq!((status, body.as_str()), (200, format!("v{v}").as_str()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At least 2,000 requests in all, across the redeploys.
    let deadline = Instant::now() + Duration::from_secs(120);
    while requests.load(Ordering::Acquire) < 2_000 {
        assert!(Instant::now() < deadline, "the clients did not reach 2,000 requests");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Release);
    for l in loops {
        l.await.unwrap();
    }
    publisher.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // Every event delivered once: none lost, none twice.
    let n = published.load(Ordering::Acquire);
    assert!(n > 20, "only {n} events were published");
    let counts = || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
        let mut counts: HashMap<u64, u32> = HashMap::new();
        for l in complete.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(l).unwrap();
            *counts.entry(v["n"].as_u64().unwrap()).or_default() += 1;
        }
        counts
    };
    wait_for("every event to be delivered", WAIT, || counts().len() as u64 == n).await;
    let counts = counts();
    eprintln!(
        "{} requests and {n} events across 10 redeploys",
        requests.load(Ordering::Acquire)
    );
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!((0..n).all(|i| counts.contains_key(&i)));

    // Unchanged functions kept their pools (and warm instances); the old versions of `hello`
    // drained and stopped.
    assert!(Arc::ptr_eq(
        &stable_pool,
        &app.platform().invoker.pool("stable").unwrap()
    ));
    assert!(Arc::ptr_eq(&sink_pool, &app.platform().invoker.pool("sink").unwrap()));
    let (_, stable_after) = body_of(&app.client, &app.url("/stable")).await;
    assert!(stable_before.starts_with("stable:") && stable_after.starts_with("stable:"));
    assert!(!old_hello_pids.is_empty());
    for pid in old_hello_pids {
        wait_for("an old version's instance to stop", WAIT, || !pid_alive(pid)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_version_that_does_not_validate_or_start_is_refused_and_the_last_good_one_keeps_serving() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("d.txt");
    let app = start(app_dir(&out, "")).await;
    let dir = app.dir.path().to_path_buf();
    serves(&app, "/hello", "v0").await;

    // A handler that does not compile: its first instance fails at init.
    write(
        &dir,
        "hello/h.js",
        "exports.handler = async () => { return {statusCode: 200, body: 'x' ;\n",
    );
    let e = app.platform().redeploy().await.unwrap_err().to_string();
    assert!(e.contains("hello") && e.contains("did not start"), "{e}");
    assert!(e.contains("SyntaxError"), "the init error is shown: {e}");
    serves(&app, "/hello", "v0").await;
    // Not only the warm instance: a cold start runs the deployed snapshot too, not the
    // broken file in the working directory.
    let pids = app.platform().invoker.pool("hello").unwrap().idle_pids();
    assert!(!pids.is_empty());
    for pid in pids {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        wait_for("the killed instance to be gone", WAIT, || !pid_alive(pid)).await;
    }
    serves(&app, "/hello", "v0").await;
    let code_dir = app
        .platform()
        .app()
        .functions
        .values()
        .find(|f| f.name.as_str() == "hello")
        .unwrap()
        .code_dir
        .clone();
    assert!(
        code_dir.starts_with(&app.platform().state_dir),
        "runs from a snapshot: {}",
        code_dir.display()
    );
    assert!(std::fs::read_to_string(code_dir.join("h.js")).unwrap().contains("v0"));

    // A manifest that does not parse.
    write(&dir, "hello/h.js", &hello("v1"));
    let good = std::fs::read_to_string(dir.join("gust.toml")).unwrap();
    write(
        &dir,
        "gust.toml",
        &good.replace("[functions.hello]", "[functions.hello"),
    );
    let e = app.platform().redeploy().await.unwrap_err().to_string();
    assert!(e.contains("gust.toml"), "{e}");
    serves(&app, "/hello", "v0").await;

    // A handler file that does not exist (as `gust validate` says).
    write(
        &dir,
        "gust.toml",
        &good.replace("handler = \"h.handler\"", "handler = \"nope.handler\""),
    );
    let e = app.platform().redeploy().await.unwrap_err().to_string();
    assert!(e.contains("functions.hello.handler"), "{e}");
    serves(&app, "/hello", "v0").await;
    assert_eq!(app.platform().app().functions.len(), 3);

    // Fixed, plus a new route and function, and `stable` removed.
    let fixed = good
        .replace(
            "[[routes]]\nroute = \"GET /stable\"\nfunction = \"stable\"\n",
            "[[routes]]\nroute = \"GET /added\"\nfunction = \"added\"\n",
        )
        .replace("[functions.stable]", "[functions.added]")
        .replace("dir = \"stable\"", "dir = \"added\"");
    std::fs::create_dir_all(dir.join("added")).unwrap();
    write(
        &dir,
        "added/s.js",
        "exports.handler = async () => ({ statusCode: 200, body: 'added' });\n",
    );
    write(&dir, "gust.toml", &fixed);
    let report = app.platform().redeploy().await.unwrap();
    assert_eq!(report.functions.added, vec!["added".to_string()]);
    assert_eq!(report.functions.replaced, vec!["hello".to_string()]);
    assert_eq!(report.functions.removed, vec!["stable".to_string()]);
    assert_eq!(report.version, 2, "refused versions do not count");
    serves(&app, "/hello", "v1").await;
    serves(&app, "/added", "added").await;
    let r = app.get("/stable").await;
    assert_eq!(r.status(), 404, "a removed route");
    let (status, _, _) = app.invoke("stable", "{}").await;
    assert_eq!(status, 404, "a removed function");

    // A redeploy with nothing changed changes nothing.
    let report = app.platform().redeploy().await.unwrap();
    assert_eq!(report.version, 2);
    assert!(report.functions.replaced.is_empty() && report.functions.added.is_empty());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The binary: `gust up --watch`, the ready line, the CLI from elsewhere.
// ---------------------------------------------------------------------------------------------

/// A `gust up` child whose stderr lines are collected.
struct Up {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Up {
    fn start(app: &Path, state: &Path, args: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gust"))
            .args(gust_up_snapshot_args(app, state))
            .args(["--sandbox", "off"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env_remove("GUST_ADMIN")
            .env_remove("GUST_STATE_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gust up] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    fn has(&self, needle: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    async fn wait_line(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.has(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("gust up exited ({status}) before printing {needle:?}");
            }
            assert!(Instant::now() < deadline, "gust up never printed {needle:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn gateway(state: &Path) -> String {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(state.join("gust.json")).unwrap()).unwrap();
        v["gateway"].as_str().unwrap().to_string()
    }

    async fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "gust up did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_until(url: &str, body: &str) {
    answers(&reqwest::Client::new(), url, body).await
}

#[tokio::test]
async fn watch_redeploys_a_handler_edit_and_a_manifest_edit_and_a_broken_edit_keeps_the_last_good_version() {
    let out_dir = tempfile::tempdir().unwrap();
    let app = app_dir(&out_dir.path().join("d.txt"), "");
    let state = tempfile::tempdir().unwrap();
    let dir = app.path().to_path_buf();
    let mut up = Up::start(&dir, state.path(), &["--watch"], &[]);
    up.wait_line("Gust is ready").await;
    let gateway = Up::gateway(state.path());
    get_until(&format!("{gateway}/hello"), "v0").await;

    // A handler edit: only `hello` is redeployed, within a second or so of the save.
    write(&dir, "hello/h.js", &hello("v1"));
    let saved = Instant::now();
    get_until(&format!("{gateway}/hello"), "v1").await;
    eprintln!("handler edit serving after {:?}", saved.elapsed());
    up.wait_line("redeployed hello; 2 kept warm").await;

    // A manifest edit: a new route to an existing function.
    let toml = std::fs::read_to_string(dir.join("gust.toml")).unwrap();
    write(
        &dir,
        "gust.toml",
        &toml.replace(
            "[topics.orders]",
            "[[routes]]\nroute = \"GET /again\"\nfunction = \"hello\"\n[topics.orders]",
        ),
    );
    get_until(&format!("{gateway}/again"), "v1").await;
    up.wait_line("routes updated; 3 kept warm").await;

    // A broken edit: the error is shown, and the last good version keeps serving.
    write(&dir, "hello/h.js", "exports.handler = async () => {{{\n");
    up.wait_line("was not deployed; the last good version keeps serving")
        .await;
    assert!(up.has("SyntaxError"), "the init error is shown");
    get_until(&format!("{gateway}/hello"), "v1").await;

    // Fixed again: served.
    write(&dir, "hello/h.js", &hello("v2"));
    get_until(&format!("{gateway}/hello"), "v2").await;
    up.stop().await;
}

#[tokio::test]
async fn gust_invoke_works_right_after_the_ready_line_in_20_fresh_starts() {
    let app = write_app(&[
        (
            "gust.toml",
            "[app]\nname = \"ready\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"f.handler\"\n",
        ),
        ("f.js", "exports.handler = async (e) => ({ ok: e.n });\n"),
    ]);
    let home = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let state = tempfile::tempdir().unwrap();
        let mut up = Up::start(app.path(), state.path(), &[], &[("XDG_STATE_HOME", home.path())]);
        up.wait_line("Gust is ready").await;
        let out = gust_cli(
            vec![
                "invoke".into(),
                "f".into(),
                "--data".into(),
                format!("{{\"n\":{i}}}"),
                "--state".into(),
                state.path().display().to_string(),
            ],
            vec![],
        )
        .await;
        assert!(
            out.status.success(),
            "start {i}: gust invoke failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&out.stdout).unwrap()["ok"],
            i,
            "start {i}"
        );
        up.stop().await;
    }
}

#[tokio::test]
async fn the_cli_finds_the_gust_this_user_started_last_from_any_directory() {
    let app = write_app(&[
        (
            "gust.toml",
            "[app]\nname = \"finder\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"f.handler\"\n",
        ),
        ("f.js", "exports.handler = async () => ({ found: true });\n"),
    ]);
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let cli = |home: PathBuf, cwd: PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_gust"))
                .args(["invoke", "f"])
                .current_dir(cwd)
                .env("XDG_STATE_HOME", home)
                .env_remove("GUST_ADMIN")
                .env_remove("GUST_STATE_DIR")
                .env_remove("GUST_OPERATOR_TOKEN")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };

    // Nothing running yet: the error says where it looked.
    let out = cli(home.path().into(), elsewhere.path().into()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--admin") && err.contains("gust.json") && err.contains("started last"),
        "{err}"
    );

    let mut up = Up::start(app.path(), state.path(), &[], &[("XDG_STATE_HOME", home.path())]);
    up.wait_line("Gust is ready").await;
    let out = cli(home.path().into(), elsewhere.path().into()).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["found"], true);

    // Once it has stopped, the pointer no longer leads anywhere.
    up.stop().await;
    let out = cli(home.path().into(), elsewhere.path().into()).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("none running"));
}

#[tokio::test]
async fn the_operator_api_and_gust_redeploy_switch_versions_and_refuse_broken_ones_with_a_stable_code() {
    let out_dir = tempfile::tempdir().unwrap();
    let app = start(app_dir(&out_dir.path().join("d.txt"), "")).await;
    let dir = app.dir.path().to_path_buf();

    // Without the operator's credential: refused, nothing redeployed (the warm instance of
    // v0 keeps serving).
    serves(&app, "/hello", "v0").await;
    write(&dir, "hello/h.js", &hello("v1"));
    let r = app.client.post(app.admin("/gust/v1/deployments")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    serves(&app, "/hello", "v0").await;

    let r = app
        .op(reqwest::Method::POST, "/gust/v1/deployments")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["app"], "redeploy");
    assert_eq!(d["version"], 2);
    assert_eq!(d["replaced"], serde_json::json!(["hello"]));
    assert_eq!(d["kept"], serde_json::json!(["sink", "stable"]));
    serves(&app, "/hello", "v1").await;

    // A broken handler: 422 with a stable code and the init error; v1 keeps serving.
    write(&dir, "hello/h.js", "module.exports = {{;\n");
    let r = app
        .op(reqwest::Method::POST, "/gust/v1/deployments")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "DeployRefused");
    assert!(e["error"]["message"].as_str().unwrap().contains("SyntaxError"), "{e}");
    serves(&app, "/hello", "v1").await;

    // The CLI says the same, and succeeds once the handler is fixed.
    let state = app.platform().state_dir.display().to_string();
    let out = gust_cli(vec!["redeploy".into(), "--state".into(), state.clone()], vec![]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused (422"), "{out:?}");
    write(&dir, "hello/h.js", &hello("v2"));
    let out = gust_cli(vec!["redeploy".into(), "--state".into(), state], vec![]).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("version 3 serving") && said.contains("redeployed hello"),
        "{said}"
    );
    serves(&app, "/hello", "v2").await;
    app.stop().await;
}

#[tokio::test]
async fn rollback_switches_back_to_a_kept_version_and_old_versions_beyond_the_kept_ones_are_removed() {
    let out_dir = tempfile::tempdir().unwrap();
    let app = start(app_dir(&out_dir.path().join("d.txt"), "")).await;
    let dir = app.dir.path().to_path_buf();
    let p = app.platform();
    for v in 1..=2 {
        write(&dir, "hello/h.js", &hello(&format!("v{v}")));
        assert_eq!(p.redeploy().await.unwrap().version, 1 + v);
    }
    serves(&app, "/hello", "v2").await;
    let stable = p.invoker.pool("stable").unwrap();

    // Back one version: the code deployed then, not the working directory's.
    let r = p.rollback(None).await.unwrap();
    assert_eq!(
        (r.version, r.functions.replaced.clone()),
        (2, vec!["hello".to_string()])
    );
    assert_eq!(r.functions.kept, vec!["sink".to_string(), "stable".to_string()]);
    serves(&app, "/hello", "v1").await;
    assert!(
        Arc::ptr_eq(&stable, &p.invoker.pool("stable").unwrap()),
        "unchanged functions stay warm"
    );
    assert_eq!(p.rollback(Some(1)).await.unwrap().version, 1);
    serves(&app, "/hello", "v0").await;
    // ... and forward again to a kept version.
    assert_eq!(p.rollback(Some(3)).await.unwrap().version, 3);
    serves(&app, "/hello", "v2").await;
    let e = p.rollback(Some(9)).await.unwrap_err().to_string();
    assert!(e.contains("version 9 is not kept") && e.contains("kept: "), "{e}");
    let e = p.rollback(Some(3)).await.unwrap_err().to_string();
    assert!(e.contains("the one serving"), "{e}");
    let versions = p.versions().await;
    assert_eq!(versions.iter().map(|v| v.number).collect::<Vec<_>>(), vec![3, 1, 2]);
    assert!(versions[0].running && !versions[1].running);

    // The operator API and the CLI.
    let r = app
        .op(reqwest::Method::GET, "/gust/v1/deployments")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["app"], "redeploy");
    assert_eq!(list["versions"][0]["version"], 3);
    assert_eq!(list["versions"][0]["running"], true);
    assert_eq!(list["versions"][0]["functions"], 3);
    let r = app
        .op(reqwest::Method::POST, "/gust/v1/deployments/rollback?to=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 1);
    serves(&app, "/hello", "v0").await;
    let r = app
        .op(reqwest::Method::POST, "/gust/v1/deployments/rollback?to=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .op(reqwest::Method::POST, "/gust/v1/deployments/rollback?to=42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "DeploymentNotFound");
    let state = p.state_dir.display().to_string();
    let out = gust_cli(
        vec![
            "rollback".into(),
            "--to".into(),
            "3".into(),
            "--state".into(),
            state.clone(),
        ],
        vec![],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("version 3 serving"),
        "{out:?}"
    );
    serves(&app, "/hello", "v2").await;
    let out = gust_cli(vec!["deployments".into(), "--state".into(), state], vec![]).await;
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.lines().any(|l| l.starts_with('3') && l.contains("serving")),
        "{listed}"
    );

    // Five versions are kept; an older one's code snapshot is removed from disk.
    let versions = p.versions().await;
    let oldest = versions.iter().find(|v| v.number == 1).unwrap().clone();
    let hello_tree = app
        .platform()
        .app()
        .functions
        .values()
        .find(|f| f.name.as_str() == "hello")
        .unwrap()
        .code_dir
        .clone();
    assert!(hello_tree.is_dir());
    for v in 3..=8 {
        write(&dir, "hello/h.js", &hello(&format!("v{v}")));
        p.redeploy().await.unwrap();
    }
    let versions = p.versions().await;
    assert_eq!(versions.len(), 5);
    assert!(!versions.iter().any(|v| v.number == 1));
    let gone: Vec<_> = oldest
        .code
        .iter()
        .filter(|c| !versions.iter().any(|v| v.code.contains(c)))
        .collect();
    assert!(!gone.is_empty());
    for digest in gone {
        let tree = p.state_dir.join("code/trees").join(digest);
        wait_for("an old version's snapshot to be removed", WAIT, || !tree.exists()).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn serverless_package_patterns_decide_what_is_deployed() {
    let dir = write_app(&[
        (
            "serverless.yml",
            r#"
service: packaged
provider:
  name: aws
  runtime: nodejs20.x
package:
  patterns:
    - '!tests/**'
    - '!**/*.md'
functions:
  files:
    handler: handler.list
    package:
      patterns:
        - 'docs/keep.md'
"#,
        ),
        (
            "handler.js",
            r#"
const fs = require('fs');
const path = require('path');
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? walk(path.join(d, e.name)) : [path.relative(__dirname, path.join(d, e.name))]);
exports.list = async () => walk(__dirname).sort();
"#,
        ),
        ("lib/util.js", "module.exports = 1;\n"),
        ("tests/handler.test.js", "throw new Error('not code');\n"),
        ("README.md", "# readme\n"),
        ("docs/keep.md", "kept by the function's own pattern\n"),
        ("docs/drop.md", "left out\n"),
    ]);
    let app = start(dir).await;
    let (status, _, body) = app.invoke("files", "{}").await;
    assert_eq!(status, 200, "{body}");
    let files: Vec<String> = serde_json::from_str(&body).unwrap();
    assert!(
        files.contains(&"handler.js".to_string()) && files.contains(&"lib/util.js".to_string()),
        "{files:?}"
    );
    assert!(files.contains(&"docs/keep.md".to_string()), "{files:?}");
    for gone in ["tests/handler.test.js", "README.md", "docs/drop.md"] {
        assert!(!files.iter().any(|f| f == gone), "{gone} was deployed: {files:?}");
    }
    app.stop().await;
}
