//! The `Sandbox` step between [`Prepared`](crate::Prepared) and the process: every instance,
//! prewarmed spares included, starts confined, so a hostile or broken function reaches
//! nothing it was not given.
//!
//! Gust starts `gust-sandbox` (a small static C program, `bootstrap/native/gust_sandbox.c`,
//! shipped inside the binary like the bootstraps) in place of the function's program. It
//! gives the instance, before the function's first instruction:
//! - **its own user**: a uid/gid of its own from a range when Gust runs as root (per instance,
//!   so a spare has its identity before it knows its function, and instances of one function
//!   cannot touch each other either), or a user namespace when Gust is not root;
//! - **a mount namespace** with a new root: the system's read-only directories, the
//!   interpreter's installation, Gust's bootstraps and the instance's Runtime API socket
//!   read-only, the function's code read-only at `/var/task` (as Lambda), a private `/tmp` of
//!   `ephemeral_storage` MB, a minimal `/dev`, its own `/proc`; nothing of Gust's state
//!   directory (masked where it lies inside the code), other apps or other functions' code;
//! - **a pid namespace** whose init reaps zombies and whose end kills every leftover process;
//! - **a cgroup** (`cgroup.rs`): memory as a hard limit counting children, pids, CPU weight;
//!   and frozen while idle between invocations (`freezer.rs`), as Lambda freezes its
//!   execution environments;
//! - **seccomp** (`seccomp.rs`), `no_new_privs`, every capability dropped, no core dumps,
//!   `RLIMIT_NOFILE` 1,024 (Lambda's figure);
//! - **a Runtime API only its own processes can use** (`peer.rs`);
//! - for a `network = "none"` function, **a network namespace of its own** with only loopback,
//!   its Runtime API and a relay to the platform API inside (`netns.rs`).
//!
//! What is available is found once at start ([`Sandbox::new`]); each protection that is off
//! is named with its reason ([`Protection`]), and `strict` refuses to start instead.

mod cgroup;
mod freezer;
mod netns;
mod peer;
mod seccomp;

pub(crate) use cgroup::{Limits, INIT_CPU_MB};
pub use freezer::Freezer;
pub(crate) use freezer::IdleFreezer;
pub(crate) use netns::{authority, relay_platform_api, NetNs, Relay};
pub(crate) use peer::{namespace_of, tcp_peer_allowed, unix_peer_allowed};

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the function's code is inside the sandbox (as on Lambda).
pub const TASK_ROOT: &str = "/var/task";
/// Processes and threads per instance (Lambda's figure).
pub const MAX_PIDS: u32 = 1024;
/// Open files per process (Lambda's figure).
pub const MAX_OPEN_FILES: u32 = 1024;
/// The memory limit of a prewarmed spare until it is given a function.
const SPARE_MEMORY_MB: u32 = 1024;
/// How long an instance is idle, its runtime parked on `/next`, before it is frozen
/// (`freezer.rs` says why not at once).
pub const FREEZE_IDLE_AFTER: Duration = Duration::from_millis(10);

/// `--sandbox`: whether instances are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Trusted functions: no confinement.
    Off,
    /// Confine with what the host offers; name each protection that is off.
    #[default]
    Auto,
    /// Refuse to start unless every protection is in force.
    Strict,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "auto" | "on" => Ok(Self::Auto),
            "strict" => Ok(Self::Strict),
            other => Err(format!("unknown sandbox mode `{other}`: use off, auto or strict")),
        }
    }
}

/// Sandbox settings from the command line and configuration.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    /// uids (and gids) instances get when Gust runs as root: `first..first + count`.
    pub uid_first: u32,
    pub uid_count: u32,
    /// Paths no instance may see even where they lie inside a function's code (the state
    /// directory).
    pub hidden: Vec<PathBuf>,
    /// Freeze an instance once idle this long (`None`: idle instances keep running).
    pub freeze_idle_after: Option<Duration>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            mode: SandboxMode::Auto,
            uid_first: 2_000_000,
            uid_count: 65_536,
            hidden: Vec::new(),
            freeze_idle_after: Some(FREEZE_IDLE_AFTER),
        }
    }
}

/// One protection and whether it is in force here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    pub name: &'static str,
    pub enforced: bool,
    /// How it is enforced, or why it is off.
    pub detail: String,
}

/// What every instance of this Gust is confined by.
pub struct Sandbox {
    launcher: PathBuf,
    seccomp: Option<PathBuf>,
    root_dir: PathBuf,
    as_root: bool,
    cgroups: Option<cgroup::Layout>,
    uids: Mutex<UidPool>,
    /// Read-only directories every instance gets: the system's, interpreters', bootstraps'.
    read_only: Mutex<BTreeSet<PathBuf>>,
    hidden: Vec<PathBuf>,
    /// When idle instances are frozen; `None` when they are not (turned off, or no freezer).
    freeze_idle_after: Option<Duration>,
    /// Whether an instance can get a network namespace of its own (`network = "none"`), or why
    /// not.
    network_none: Result<(), String>,
    report: Vec<Protection>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(layout) = &self.cgroups {
            layout.remove();
        }
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("report", &self.report).finish()
    }
}

const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc"];

/// The probe and the report, before any instance starts.
pub fn probe(
    settings: &SandboxSettings,
    files: &crate::RuntimeFiles,
) -> Result<Option<Arc<Sandbox>>, SandboxUnavailable> {
    if settings.mode == SandboxMode::Off {
        return Ok(None);
    }
    let off = |name: &'static str, why: String| Protection {
        name,
        enforced: false,
        detail: why,
    };
    let Some(launcher) = files.sandbox_launcher.clone() else {
        let report = vec![off(
            "sandbox",
            "gust-sandbox was not built for this platform (Linux with a C compiler is needed)".into(),
        )];
        return refuse_or_run(settings, report, None);
    };
    let as_root = nix::unistd::geteuid().is_root();
    let root_dir = files.dir.join("sandbox-root");
    let _ = std::fs::create_dir_all(&root_dir);
    let mut report = Vec::new();
    // Namespaces and the launcher itself: one confined run of /bin/true tells.
    let mut probe = std::process::Command::new(&launcher);
    probe.arg("--root").arg(&root_dir);
    for d in SYSTEM_DIRS {
        probe.args(["--ro", d]);
    }
    if as_root {
        probe.args([
            "--uid",
            &settings.uid_first.to_string(),
            "--gid",
            &settings.uid_first.to_string(),
        ]);
    } else {
        probe.arg("--userns");
    }
    probe.args(["--cwd", "/", "--", "/bin/true"]);
    probe.stdin(std::process::Stdio::null());
    let mut ran = probe.output();
    // Just written: a process forked meanwhile (by another thread) may still hold the write
    // end until it execs, and the kernel refuses to run the file until then.
    for _ in 0..100 {
        match &ran {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                ran = probe.output();
            }
            _ => break,
        }
    }
    let namespaces = match ran {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "the confined probe failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {}: {e}", launcher.display())),
    };
    if let Err(why) = namespaces {
        report.push(off("namespaces (user, mount, pid)", why));
        return refuse_or_run(settings, report, None);
    }
    report.push(Protection {
        name: "user",
        enforced: true,
        detail: if as_root {
            format!(
                "a uid of its own per instance ({}..{})",
                settings.uid_first,
                settings.uid_first as u64 + settings.uid_count as u64
            )
        } else {
            "a user namespace (Gust is not root: instances share Gust's uid outside it, and prewarmed spares are off, so every cold start starts a process)".into()
        },
    });
    report.push(Protection {
        name: "file system",
        enforced: true,
        detail: format!("a mount namespace: code read-only at {TASK_ROOT}, private /tmp, no state directory"),
    });
    report.push(Protection {
        name: "processes",
        enforced: true,
        detail: "a pid namespace with an init that reaps; leftovers end with the instance".into(),
    });
    let cgroups = match cgroup::Layout::detect() {
        Ok(layout) => {
            report.push(Protection {
                name: "resource limits",
                enforced: true,
                detail: layout.summary(MAX_PIDS),
            });
            Some(layout)
        }
        Err(why) => {
            report.push(off(
                "resource limits",
                format!(
                    "{why}; memory is sampled instead (children not counted), pids by RLIMIT_NPROC where Gust is root"
                ),
            ));
            None
        }
    };
    let freezer_missing = match (&cgroups, settings.freeze_idle_after) {
        (_, None) => Some("turned off (--freeze-idle-after off)".to_string()),
        (None, Some(_)) => Some("no cgroups (resource limits are off)".to_string()),
        (Some(layout), Some(_)) => layout.freezer_missing(),
    };
    let freeze_idle_after = match (&freezer_missing, settings.freeze_idle_after) {
        (None, Some(after)) => {
            report.push(Protection {
                name: "freezer",
                enforced: true,
                detail: format!(
                    "idle instances are frozen {} ms after an invocation (cgroup freezer); background work waits for the next one",
                    after.as_millis()
                ),
            });
            if let Some(layout) = &cgroups {
                layout.hold_freezer();
                if let Some(dir) = layout.v1_freezer_parent() {
                    crate::orphans::thaw_on_exit(dir);
                }
            }
            Some(after)
        }
        (why, _) => {
            report.push(off(
                "freezer",
                format!(
                    "{}: idle instances keep running between invocations",
                    why.as_deref().unwrap_or("unavailable")
                ),
            ));
            None
        }
    };
    let seccomp = match seccomp::programs() {
        Ok(bytes) => {
            let path = files.dir.join("lib").join("seccomp.bpf");
            match std::fs::create_dir_all(files.dir.join("lib")).and_then(|_| std::fs::write(&path, bytes)) {
                Ok(()) => {
                    report.push(Protection {
                        name: "system calls",
                        enforced: true,
                        detail: "seccomp deny list, no_new_privs, no capabilities, no core dumps".into(),
                    });
                    Some(path)
                }
                Err(e) => {
                    report.push(off("system calls", format!("cannot write {}: {e}", path.display())));
                    None
                }
            }
        }
        Err(why) => {
            report.push(off("system calls", why));
            None
        }
    };
    report.push(Protection {
        name: "runtime api",
        enforced: true,
        detail: "only the instance's own processes may connect (peer traced by SO_PEERCRED / sock_diag)".into(),
    });
    // Not a protection of every instance (a function asks for it), so not in the report:
    // where it is missing, such functions are refused at deploy.
    let network_none = if as_root {
        match network_namespace_works() {
            Ok(()) => {
                tracing::debug!("sandbox: network = \"none\" functions get a network namespace each");
                Ok(())
            }
            Err(e) => {
                tracing::warn!("sandbox: network = \"none\" functions cannot start here: {e}");
                Err(e)
            }
        }
    } else {
        Err("a network namespace per instance needs Gust to run as root (CAP_SYS_ADMIN)".to_string())
    };
    let mut read_only: BTreeSet<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    for d in [&files.node_bootstrap, &files.python_bootstrap] {
        if let Some(parent) = d.parent() {
            read_only.insert(parent.to_path_buf());
        }
    }
    if let Some(lib) = files.native_library.as_ref().and_then(|l| l.parent()) {
        read_only.insert(lib.to_path_buf());
    }
    let sandbox = Arc::new(Sandbox {
        launcher,
        seccomp,
        root_dir,
        as_root,
        cgroups,
        uids: Mutex::new(UidPool::new(settings.uid_first, settings.uid_count)),
        read_only: Mutex::new(read_only),
        hidden: settings.hidden.clone(),
        freeze_idle_after,
        network_none,
        report: report.clone(),
    });
    refuse_or_run(settings, report, Some(sandbox))
}

/// One network namespace made and let go, as an instance's would be.
fn network_namespace_works() -> Result<(), String> {
    NetNs::create_blocking()
        .map(drop)
        .map_err(|e| format!("cannot make a network namespace: {e}"))
}

/// `strict` with a protection off.
#[derive(Debug, thiserror::Error)]
#[error("--sandbox strict: {}", .0.iter().filter(|p| !p.enforced).map(|p| format!("{} is off ({})", p.name, p.detail)).collect::<Vec<_>>().join("; "))]
pub struct SandboxUnavailable(pub Vec<Protection>);

fn refuse_or_run(
    settings: &SandboxSettings,
    report: Vec<Protection>,
    sandbox: Option<Arc<Sandbox>>,
) -> Result<Option<Arc<Sandbox>>, SandboxUnavailable> {
    // A freezer the operator turned off is a choice, not a protection the host lacks.
    let chosen = |p: &Protection| p.name == "freezer" && settings.freeze_idle_after.is_none();
    let all = sandbox.is_some() && report.iter().all(|p| p.enforced || chosen(p));
    if settings.mode == SandboxMode::Strict && !all {
        return Err(SandboxUnavailable(report));
    }
    for p in report.iter().filter(|p| !p.enforced) {
        tracing::warn!("sandbox: {} is off: {}", p.name, p.detail);
    }
    match &sandbox {
        None => tracing::warn!("sandbox: functions run unconfined (use --sandbox strict to refuse this)"),
        Some(_) => {
            let on: Vec<&str> = report.iter().filter(|p| p.enforced).map(|p| p.name).collect();
            tracing::info!("sandbox: instances are confined: {}", on.join(", "));
            // Which cgroup tree, where: the one host-dependent choice an operator checks.
            if let Some(limits) = report.iter().find(|p| p.enforced && p.name == "resource limits") {
                tracing::info!("sandbox: resource limits: {}", limits.detail);
            }
        }
    }
    Ok(sandbox)
}

impl Sandbox {
    /// Each protection and whether it is in force.
    pub fn report(&self) -> &[Protection] {
        &self.report
    }

    /// Lets every instance read `dir` (an interpreter's installation).
    pub(crate) fn allow_read(&self, dir: &Path) {
        if !dir.starts_with("/usr") && dir != Path::new("/") {
            self.read_only.lock().expect("read-only lock").insert(dir.to_path_buf());
        }
    }

    /// Refuses code the instance's own user could not read: with a uid of its own, an
    /// instance reads its code as "others" do.
    pub(crate) fn check_readable(&self, code: &Path) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        if !self.as_root {
            return Ok(());
        }
        let mode = std::fs::metadata(code)
            .map_err(|e| format!("{}: {e}", code.display()))?
            .permissions()
            .mode();
        if mode & 0o005 != 0o005 {
            return Err(format!(
                "code directory {} is not readable by sandboxed instances (mode {:o}; they run as users of their own): `chmod o+rx` it and its files, or run with --sandbox off",
                code.display(),
                mode & 0o777
            ));
        }
        Ok(())
    }

    /// The masks for `code` seen at `/var/task`: hidden paths inside it.
    pub(crate) fn masks_for(&self, code: &Path) -> Vec<String> {
        let code = std::fs::canonicalize(code).unwrap_or_else(|_| code.to_path_buf());
        self.hidden
            .iter()
            .filter_map(|h| {
                let h = std::fs::canonicalize(h).unwrap_or_else(|_| h.clone());
                let rel = h.strip_prefix(&code).ok()?;
                Some(format!("{TASK_ROOT}/{}", rel.display()))
            })
            .collect()
    }

    /// The launcher command line for one instance, and what it holds until it is reaped.
    pub(crate) fn confine(self: &Arc<Self>, plan: &Plan<'_>, instance: u64) -> std::io::Result<Confined> {
        let uid = if self.as_root {
            Some(
                self.uids
                    .lock()
                    .expect("uid lock")
                    .take()
                    .ok_or_else(|| std::io::Error::other("every sandbox uid is in use (raise --sandbox-uids)"))?,
            )
        } else {
            None
        };
        let mut confined = Confined {
            uid,
            cgroup: None,
            sandbox: self.clone(),
            args: Vec::new(),
        };
        let limits = Limits {
            memory_mb: plan.memory_mb.unwrap_or(SPARE_MEMORY_MB),
            pids: MAX_PIDS,
            cpu_mb: match plan.memory_mb {
                Some(_) => cgroup::INIT_CPU_MB,
                None => cgroup::SPARE_CPU_MB,
            },
        };
        if let Some(layout) = &self.cgroups {
            confined.cgroup = Some(layout.create(instance, limits)?);
        }
        let mut a = Args::default();
        a.opt("--root", &self.root_dir.to_string_lossy());
        for d in self.read_only.lock().expect("read-only lock").iter() {
            a.opt("--ro", &d.to_string_lossy());
        }
        if let Some(socket) = plan.socket {
            a.opt("--ro", &socket.to_string_lossy());
        }
        for path in plan.extra_read_only {
            a.opt("--ro", &path.to_string_lossy());
        }
        match plan.code {
            Some(code) => {
                a.opt("--task", &code.to_string_lossy());
                for m in self.masks_for(code) {
                    a.opt("--mask", &m);
                }
            }
            None => {
                a.flag("--control");
                if plan.exec_later {
                    a.flag("--exec-later");
                }
            }
        }
        a.opt("--tmp", &((plan.tmp_mb as u64) << 20).to_string());
        if let Some(cg) = &confined.cgroup {
            for d in cg.dirs() {
                a.opt("--cgroup", &d.to_string_lossy());
            }
        }
        match uid {
            Some(u) => {
                a.opt("--uid", &u.to_string());
                a.opt("--gid", &u.to_string());
                a.opt("--nproc", &MAX_PIDS.to_string());
            }
            None => a.flag("--userns"),
        }
        if let Some(s) = &self.seccomp {
            a.opt("--seccomp", &s.to_string_lossy());
        }
        a.opt("--nofile", &MAX_OPEN_FILES.to_string());
        if plan.netns_on_stdin {
            a.opt("--netns", "0");
        }
        a.opt("--cwd", plan.cwd);
        confined.args = a.0;
        Ok(confined)
    }

    /// Whether prewarmed spares can be confined: a spare's init holds the host root until it
    /// is given a function, out of the function's reach only under a uid of its own.
    pub(crate) fn supports_spares(&self) -> bool {
        self.as_root
    }

    /// Whether a `network = "none"` function's instances can start here, or why not.
    pub fn network_none(&self) -> Result<(), &str> {
        self.network_none.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// How long an instance is idle before it is frozen, when idle instances are frozen.
    pub(crate) fn freeze_idle_after(&self) -> Option<Duration> {
        self.freeze_idle_after
    }

    pub(crate) fn launcher(&self) -> &Path {
        &self.launcher
    }

    fn release_uid(&self, uid: u32) {
        self.uids.lock().expect("uid lock").put(uid);
    }
}

/// The launcher's command line, built up.
#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn opt(&mut self, key: &str, value: &str) {
        self.0.push(key.to_string());
        self.0.push(value.to_string());
    }

    fn flag(&mut self, key: &str) {
        self.0.push(key.to_string());
    }
}

/// What one instance is started with.
pub(crate) struct Plan<'a> {
    /// The function's code, or `None` for a prewarmed spare (bound when it is specialised).
    pub code: Option<&'a Path>,
    /// `None` for a spare (a generous limit until it is given a function).
    pub memory_mb: Option<u32>,
    pub tmp_mb: u32,
    pub socket: Option<&'a Path>,
    /// Files of this function's outside its code, at their own paths (a `bootstrap` that is
    /// a link to a build output).
    pub extra_read_only: &'a [PathBuf],
    /// A spare that is told its program later (`--exec-later`).
    pub exec_later: bool,
    /// The working directory inside.
    pub cwd: &'a str,
    /// The launcher's stdin is the instance's network namespace, to join (`network = "none"`,
    /// `netns.rs`).
    pub netns_on_stdin: bool,
}

/// What one confined instance holds: its uid and cgroup, given back when it is reaped.
pub(crate) struct Confined {
    uid: Option<u32>,
    pub cgroup: Option<cgroup::Cgroup>,
    sandbox: Arc<Sandbox>,
    /// The launcher's options, before `--` and the function's command line.
    pub args: Vec<String>,
}

impl Confined {
    /// The instance's own uid (when Gust runs as root).
    pub(crate) fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// The cgroup's freezer and the grace before an idle instance is frozen, when idle
    /// instances are frozen.
    pub(crate) fn freezer(&self) -> Option<(Freezer, Duration)> {
        let after = self.sandbox.freeze_idle_after()?;
        Some((self.cgroup.as_ref()?.freezer()?, after))
    }

    /// Out-of-memory kills the cgroup recorded.
    pub(crate) fn oom_kills(&self) -> u64 {
        self.cgroup.as_ref().map_or(0, |c| c.oom_kills())
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            // Removal may wait for the kernel to finish tearing the namespace down.
            std::thread::spawn(move || cg.remove());
        }
        if let Some(uid) = self.uid {
            self.sandbox.release_uid(uid);
        }
    }
}

/// The uids of the range not in use, handed out round-robin so a uid is reused as late as
/// possible.
struct UidPool {
    first: u32,
    count: u32,
    next: u32,
    used: HashSet<u32>,
}

impl UidPool {
    fn new(first: u32, count: u32) -> Self {
        Self {
            first,
            count: count.max(1),
            next: 0,
            used: HashSet::new(),
        }
    }

    fn take(&mut self) -> Option<u32> {
        for _ in 0..self.count {
            let uid = self.first + self.next;
            self.next = (self.next + 1) % self.count;
            if self.used.insert(uid) {
                return Some(uid);
            }
        }
        None
    }

    fn put(&mut self, uid: u32) {
        self.used.remove(&uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_while_in_use_and_reused_last() {
        let mut pool = UidPool::new(100, 3);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        let c = pool.take().unwrap();
        assert_eq!([a, b, c], [100, 101, 102]);
        assert_eq!(pool.take(), None, "the range is exhausted");
        pool.put(b);
        assert_eq!(pool.take(), Some(101));
    }

    #[test]
    fn a_protection_that_is_unavailable_is_named_and_strict_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = crate::RuntimeFiles::install(dir.path()).unwrap();
        // Simulated: a launcher that cannot confine anything.
        files.sandbox_launcher = Some("/bin/false".into());
        let strict = SandboxSettings {
            mode: SandboxMode::Strict,
            ..Default::default()
        };
        let err = probe(&strict, &files).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("--sandbox strict: namespaces (user, mount, pid) is off"),
            "{text}"
        );
        assert!(text.contains("the confined probe failed"), "{text}");
        let auto = SandboxSettings::default();
        assert!(
            probe(&auto, &files).unwrap().is_none(),
            "auto runs unconfined, saying so"
        );
        // No launcher at all (a platform it was not built for).
        files.sandbox_launcher = None;
        let err = probe(&strict, &files).unwrap_err().to_string();
        assert!(err.contains("gust-sandbox was not built"), "{err}");
        let off = SandboxSettings {
            mode: SandboxMode::Off,
            ..Default::default()
        };
        assert!(probe(&off, &files).unwrap().is_none());
    }

    #[test]
    fn modes_parse() {
        assert_eq!("strict".parse::<SandboxMode>(), Ok(SandboxMode::Strict));
        assert_eq!("off".parse::<SandboxMode>(), Ok(SandboxMode::Off));
        assert!("maybe".parse::<SandboxMode>().is_err());
    }
}
