//! Test support: a real Gust platform on 127.0.0.1:0 in a temp dir, with function code
//! written by each test, plus polling helpers (never fixed sleeps for correctness).

#![allow(dead_code)]

use gust::{Platform, PlatformConfig};
use gust_runtime::{LogLine, LogSink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Captures function output so tests can assert on it.
#[derive(Default)]
pub struct MemorySink {
    pub lines: Mutex<Vec<LogLine>>,
}

impl LogSink for MemorySink {
    fn line(&self, line: LogLine) {
        self.lines.lock().unwrap().push(line);
    }
}

impl MemorySink {
    pub fn find(&self, needle: &str) -> Option<LogLine> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.line.contains(needle))
            .cloned()
    }
}

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub platform: Option<Platform>,
    pub logs: Arc<MemorySink>,
    pub client: reqwest::Client,
}

/// Writes `files` (path relative to the app dir, content) into a fresh temp dir.
pub fn write_app(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

impl TestApp {
    pub async fn start(files: &[(&str, &str)]) -> Self {
        Self::start_dir(write_app(files)).await
    }

    pub async fn start_dir(dir: tempfile::TempDir) -> Self {
        Self::start_dir_with(dir, 1).await
    }

    /// `prewarm`: generic runtimes kept ready per runtime (0: every cold start spawns).
    pub async fn start_dir_with(dir: tempfile::TempDir, prewarm: usize) -> Self {
        Self::start_configured(dir, |c| c.prewarm_per_runtime = prewarm).await
    }

    /// Starts with a clock the test moves.
    pub async fn start_with_clock(dir: tempfile::TempDir, clock: gust_scheduler::ManualClock) -> Self {
        Self::start_configured(dir, move |c| c.clock = Arc::new(clock)).await
    }

    /// Stops the platform and starts it again on the same app and state directory.
    pub async fn restart_with_clock(mut self, clock: gust_scheduler::ManualClock) -> Self {
        if let Some(p) = self.platform.take() {
            p.shutdown().await;
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_with_clock(dir, clock).await
    }

    pub async fn start_configured(dir: tempfile::TempDir, configure: impl FnOnce(&mut PlatformConfig)) -> Self {
        // A temp dir is 0700; sandboxed instances run as users of their own and read their
        // code as "others", as they would a deployed project.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let logs = Arc::new(MemorySink::default());
        let mut config = PlatformConfig::new(dir.path());
        // These tests observe functions from outside (host pids, files written next to the
        // code): the trusted mode. `sandbox.rs` tests confinement, with `strict`.
        config.sandbox.mode = gust_runtime::sandbox::SandboxMode::Off;
        // ... and they write next to their code: the working directory, not a snapshot.
        // `deploy.rs` tests snapshots.
        config.code = gust::revision::CodeMode::InPlace;
        configure(&mut config);
        config.gateway_addr = "127.0.0.1:0".parse().unwrap();
        config.admin_addr = "127.0.0.1:0".parse().unwrap();
        let platform = Platform::start_with_sink(config, logs.clone())
            .await
            .unwrap_or_else(|e| panic!("platform failed to start: {e:#}"));
        Self {
            dir,
            platform: Some(platform),
            logs,
            client: reqwest::Client::new(),
        }
    }

    pub fn platform(&self) -> &Platform {
        self.platform.as_ref().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.platform().gateway_addr)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.platform().admin_addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// The operator credential of the running platform (`<state>/operator.token`).
    pub fn operator_token(&self) -> String {
        self.platform().operator_token().to_string()
    }

    /// A request to the admin API with the operator token.
    pub fn op(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.admin(path))
            .bearer_auth(self.operator_token())
    }

    /// The body of a GET on the admin API (as the operator).
    pub async fn admin_text(&self, path: &str) -> String {
        self.op(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Lambda Invoke API call (with the operator token, as `gust invoke`); returns (status,
    /// X-Amz-Function-Error, body).
    pub async fn invoke(&self, function: &str, payload: &str) -> (u16, Option<String>, String) {
        let r = self
            .op(
                reqwest::Method::POST,
                &format!("/2015-03-31/functions/{function}/invocations"),
            )
            .body(payload.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let fe = r
            .headers()
            .get("x-amz-function-error")
            .map(|v| v.to_str().unwrap().to_string());
        (status, fe, r.text().await.unwrap())
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.platform.take() {
            p.shutdown().await;
        }
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; look at its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.split(") ").nth(1).is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Direct children of `pid` (function and upstream processes), found through /proc; Gust's
/// orphan watchdog is left out ([`watchdog_of`]).
pub fn children_of(pid: u32) -> Vec<i32> {
    direct_children(pid).into_iter().filter(|c| !is_watchdog(*c)).collect()
}

/// Gust's orphan watchdog process (gust_runtime::orphans), if it has one.
pub fn watchdog_of(pid: u32) -> Option<i32> {
    direct_children(pid).into_iter().find(|c| is_watchdog(*c))
}

fn is_watchdog(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(gust_runtime::WATCHDOG_NAME))
}

fn direct_children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) && fields[0] != "Z" {
            out.push(child);
        }
    }
    out
}

/// The target directory the test binary was built into (…/target/debug).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_gust")).parent().unwrap().to_path_buf()
}

/// Builds the `lambda_runtime`/`lambda_http` fixture functions once and returns the path of one.
pub fn fixture_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "gust-fixtures", "--bins"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building gust-fixtures failed");
    });
    let p = target_dir().join(name);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// An app dir whose `dir` holds a `bootstrap` that is the named fixture binary.
pub fn provided_fixture(dir: &Path, sub: &str, bin: &str) {
    let d = dir.join(sub);
    std::fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::symlink(fixture_bin(bin), d.join("bootstrap")).unwrap();
}

/// `gust up APP` on free ports with `--state STATE`: the arguments after the program. Code
/// runs in place (functions of these tests write next to it); `deploy.rs` uses
/// [`gust_up_snapshot_args`].
pub fn gust_up_args(app: &Path, state: &Path) -> Vec<std::ffi::OsString> {
    let mut args = gust_up_snapshot_args(app, state);
    args.extend(["--code", "in-place"].map(Into::into));
    args
}

/// `gust up APP` on free ports with `--state STATE`, code from snapshots (the default).
pub fn gust_up_snapshot_args(app: &Path, state: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["up"].into_iter().map(Into::into).collect();
    args.push(app.into());
    args.extend(["--port", "0", "--admin-port", "0", "--state"].map(Into::into));
    args.push(state.into());
    args
}

/// A directory for `PYTHONPATH` in which `module` is importable: `target/<name>`, with
/// `requirement` installed there from PyPI on first use unless the machine's `python3` has
/// the module already.
pub fn python_module_dir(name: &str, requirement: &str, module: &str) -> PathBuf {
    let dir = target_dir().join("..").join(name);
    let system_has_it = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !system_has_it {
        pip_install_into(&dir, requirement, module);
    }
    dir
}

/// Installs `requirement` from PyPI into `dir` (`pip install --target`) unless `dir/module`
/// is there already; for Python packages tests need on a fresh machine.
pub fn pip_install_into(dir: &Path, requirement: &str, module: &str) {
    if dir.join(module).is_dir() {
        return;
    }
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(dir)
        .arg(requirement)
        .status()
        .expect("python3 runs");
    assert!(
        status.success(),
        "installing {requirement} into {} failed",
        dir.display()
    );
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Lines of a file functions append to (empty when it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Copies a directory tree (skipping state directories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if name == ".gust" || name == "node_modules" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A `gust up` child process on a given state directory.
pub struct GustUp {
    pub child: std::process::Child,
    pub gateway: String,
    pub admin: String,
    /// The operator token it created in its state directory.
    pub token: String,
}

impl GustUp {
    pub async fn start(app: &Path, state: &Path) -> Self {
        Self::start_with(app, state, &["--sandbox", "off"]).await
    }

    /// `gust up` with `args` added (e.g. `--sandbox strict`).
    pub async fn start_with(app: &Path, state: &Path, args: &[&str]) -> Self {
        let info = state.join("gust.json");
        // A killed Gust leaves its file behind; wait for the new one's.
        let _ = std::fs::remove_file(&info);
        let mut child = Command::new(env!("CARGO_BIN_EXE_gust"))
            .args(gust_up_args(app, state))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut v = serde_json::Value::Null;
        wait_for("gust up to write gust.json", Duration::from_secs(30), || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("gust up exited early: {status}");
            }
            v = std::fs::read_to_string(&info)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(serde_json::Value::Null);
            v["admin"].is_string()
        })
        .await;
        let token = std::fs::read_to_string(state.join("operator.token"))
            .expect("gust up writes the operator token before gust.json")
            .trim()
            .to_string();
        Self {
            child,
            gateway: v["gateway"].as_str().unwrap().to_string(),
            admin: v["admin"].as_str().unwrap().to_string(),
            token,
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// `kill -9`, then waits until Gust and every function process it had (and its watchdog)
    /// are gone.
    pub async fn kill_9(&mut self) {
        use nix::sys::signal::{kill, Signal};
        // Freeze it first so that no function process starts between the snapshot and the kill.
        kill(self.pid(), Signal::SIGSTOP).unwrap();
        let stat = format!("/proc/{}/stat", self.child.id());
        wait_for("gust to stop", Duration::from_secs(5), || {
            std::fs::read_to_string(&stat)
                .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('T')))
                .unwrap_or(true)
        })
        .await;
        let functions = direct_children(self.child.id());
        kill(self.pid(), Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
        for pid in functions {
            wait_for(
                "the killed Gust's function processes to die",
                Duration::from_secs(10),
                || !pid_alive(pid),
            )
            .await;
        }
    }
}

impl GustUp {
    pub fn terminate(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < within, "gust did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for GustUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gust ARGS` with `env` (off the runtime thread), none of the caller's own `GUST_*`
/// settings leaking in.
pub async fn gust_cli(args: Vec<String>, env: Vec<(&'static str, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
            .args(args)
            .env_remove("GUST_OPERATOR_TOKEN")
            .env_remove("GUST_ADMIN")
            .env_remove("GUST_STATE_DIR")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}
