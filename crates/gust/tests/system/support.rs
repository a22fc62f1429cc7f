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

// ---------------------------------------------------------------------------------------------
// browser: Debian's Chromium and playwright-core, installed on first use, and a harness that
// runs one Playwright script of `crates/gust/tests/console/` against a running Gust.
// ---------------------------------------------------------------------------------------------

/// Debian's Chromium, the browser the console tests drive.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one browser script may run before it is killed.
pub const CONSOLE_SCRIPT_DEADLINE: Duration = Duration::from_secs(90);

/// Holds an exclusive lock on `path` (created if missing) while it lives: serialises installs
/// between the tests of this binary and any other process on the machine doing the same.
struct InstallLock(std::fs::File);

impl InstallLock {
    fn take(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open the lock file {}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        Self(file)
    }
}

/// `/usr/bin/chromium`, installed from Debian's packages on first use (`apt-get install -y
/// chromium`, tried again after an `apt-get update` when the package lists do not have it
/// yet); a no-op when it is there. Fails saying what to install when it cannot.
pub fn chromium() -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let bin = PathBuf::from(CHROMIUM);
        if is_executable(&bin) {
            return bin;
        }
        // Machine-wide: two worktrees' tests must not run apt-get at once either.
        let _lock = InstallLock::take(&std::env::temp_dir().join("gust-chromium-install.lock"));
        if is_executable(&bin) {
            return bin;
        }
        let advice = "the console's browser tests need Debian's Chromium: run `apt-get install chromium` as root";
        let apt = |args: &[&str]| {
            eprintln!("installing Chromium: apt-get {}", args.join(" "));
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let install = ["install", "-y", "chromium"];
        let ok = apt(&install) || (apt(&["update"]) && apt(&install));
        assert!(ok, "apt-get could not install chromium; {advice}");
        assert!(
            is_executable(&bin),
            "apt-get installed chromium but there is no {}; {advice}",
            bin.display()
        );
        bin
    })
    .clone()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directory of the console's browser scripts (`package.json`, `package-lock.json`,
/// `lib.mjs` and one `*.mjs` per scenario).
pub fn console_scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("console")
}

/// `node_modules` with playwright-core at the version of `tests/console/package-lock.json`,
/// installed with `npm ci` into `target/console-node` on first use (again whenever the lock
/// file changes). Never `playwright install`: the browser is Debian's.
pub fn playwright_modules() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().parent().unwrap().join("console-node");
        std::fs::create_dir_all(&dir).unwrap();
        let modules = dir.join("node_modules");
        let src = console_scripts_dir();
        let lock = std::fs::read(src.join("package-lock.json")).expect("tests/console/package-lock.json");
        // Written after a successful `npm ci`: the lock file it installed.
        let installed = dir.join("installed-lock.json");
        let current = || {
            std::fs::read(&installed).is_ok_and(|l| l == lock)
                && modules.join("playwright-core").join("package.json").is_file()
        };
        if current() {
            return modules;
        }
        let _lock = InstallLock::take(&dir.join("install.lock"));
        if current() {
            return modules;
        }
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
        let _ = std::fs::remove_file(&installed);
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .stdin(Stdio::null())
            .status()
            .expect("npm runs");
        assert!(
            status.success(),
            "npm ci of tests/console/package-lock.json (playwright-core) into {} failed",
            dir.display()
        );
        std::fs::write(&installed, &lock).unwrap();
        modules
    })
    .clone()
}

/// Where a test's screenshots and failure dumps go: `target/console-artifacts/<test>`.
pub fn console_artifacts(test: &str) -> PathBuf {
    target_dir().parent().unwrap().join("console-artifacts").join(test)
}

/// Runs `node tests/console/<script>.mjs` against the admin address `admin` (with the
/// operator `token` for the login form and `env` for the scenario), killed after
/// [`CONSOLE_SCRIPT_DEADLINE`]. Returns the JSON line it printed; fails with its stderr when
/// it exits non-zero. Its screenshots are in [`console_artifacts`]`(test)`, emptied first.
pub async fn run_console_script(
    script: &str,
    test: &str,
    admin: &str,
    token: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let (chromium, modules) = tokio::task::spawn_blocking(|| (chromium(), playwright_modules()))
        .await
        .unwrap();
    let artifacts = console_artifacts(test);
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::Builder::new().prefix("gust-chromium-").tempdir().unwrap();
    let path = console_scripts_dir().join(format!("{script}.mjs"));
    assert!(path.is_file(), "no browser script {}", path.display());
    // The script's own deadline comes first, so that it can say where it was.
    let inner = CONSOLE_SCRIPT_DEADLINE - Duration::from_secs(8);
    let mut child = tokio::process::Command::new("node")
        .arg(&path)
        .env("GUST_ADMIN", admin)
        .env("GUST_TOKEN", token)
        .env("GUST_CONSOLE_ARTIFACTS", &artifacts)
        .env("GUST_CONSOLE_PROFILE", profile.path())
        .env("GUST_PLAYWRIGHT", &modules)
        .env("GUST_CHROMIUM", &chromium)
        .env("GUST_CONSOLE_DEADLINE_MS", inner.as_millis().to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stdout = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut out, &mut s).await;
        s
    });
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut s).await;
        s
    });
    let status = tokio::time::timeout(CONSOLE_SCRIPT_DEADLINE, child.wait()).await;
    if status.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    // Playwright starts Chromium in a process group of its own: whatever survives the script
    // is found by its profile directory, which is this run's alone.
    kill_processes_using(profile.path());
    let (stdout, stderr) = (stdout.await.unwrap(), stderr.await.unwrap());
    if !stderr.trim().is_empty() {
        let tag = format!("[{script}.mjs] ");
        eprintln!("{tag}{}", stderr.trim_end().replace('\n', &format!("\n{tag}")));
    }
    let status = match status {
        Ok(s) => s.unwrap(),
        Err(_) => panic!(
            "browser script {script}.mjs did not finish within {CONSOLE_SCRIPT_DEADLINE:?} (killed); artifacts in {}\n{stderr}",
            artifacts.display()
        ),
    };
    assert!(
        status.success(),
        "browser script {script}.mjs failed ({status}); artifacts in {}:\n{stderr}",
        artifacts.display()
    );
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("browser script {script}.mjs printed no JSON line ({e}): {stdout}"))
}

/// Kills (by pid) every process whose command line names `dir`.
fn kill_processes_using(dir: &Path) {
    let needle = dir.display().to_string();
    let own = std::process::id() as i32;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}
