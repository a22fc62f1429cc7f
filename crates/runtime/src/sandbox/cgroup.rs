//! One cgroup per instance: memory as a hard limit (children count), pids, CPU weight in
//! proportion to memory (Lambda's model: 1,769 MB is one vCPU), and the freezer.
//!
//! Two layouts, found at start:
//! - **cgroup v1** (one hierarchy per controller, `/sys/fs/cgroup/<controller>`): Gust makes
//!   `gust-<pid>-<n>/i-<n>` under its own cgroup of each of `memory`, `pids`, `cpu`, `freezer`.
//! - **cgroup v2** (one unified tree): Gust needs a subtree it may write to (root, or one
//!   delegated to it, e.g. systemd's `Delegate=yes`) with the `memory` and `pids` controllers
//!   available (`cpu` is used where it is). A cgroup with controllers enabled for its children
//!   may hold no process itself ("no internal processes"), so Gust first moves itself into a
//!   leaf `<own>/gust`, then enables the controllers in `<own>` and makes, as under v1,
//!   `<own>/gust-<pid>-<n>/i-<n>`. The `gust` leaf, where Gust's own process is, stays when Gust
//!   exits (it cannot remove the cgroup it is in; the next start uses it again, systemd removes
//!   a unit's tree when it stops).
//!
//! Gust writes the limits before the process starts (`gust-sandbox --cgroup` joins the
//! cgroups, so every process of the instance is counted) and again when a prewarmed spare is
//! given a function. Out-of-memory kills are read from the cgroup's own counter. The freezer
//! (v1's controller, v2's `cgroup.freeze`) is `freezer.rs`'s.

use std::path::{Path, PathBuf};

/// Which cgroup layout this host has, with the parent directories instances go under.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
        freezer: Option<PathBuf>,
    },
    V2 {
        /// `<own>/gust-<pid>-<n>`: this sandbox's instances are `i-<n>` under it.
        parent: PathBuf,
        /// Whether instances get the `cpu` controller (CPU weight).
        cpu: bool,
    },
}

/// The limits of one instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub memory_mb: u32,
    pub pids: u32,
    /// The memory figure its CPU weight is taken from ([`Cgroup::set_cpu_weight`]):
    /// [`INIT_CPU_MB`] while it starts, [`SPARE_CPU_MB`] for a prewarmed spare.
    pub cpu_mb: u32,
}

/// Lambda gives 1 vCPU at 1,769 MB, in proportion below and above.
const MB_PER_VCPU: u64 = 1769;
/// The memory figure the CPU weight of an instance in its init phase is taken from: one
/// vCPU's, whatever its memory. Lambda, too, runs init with more CPU than small functions
/// get afterwards; here it keeps a 128 MB function's cold start from being starved (at its
/// own weight, 74 of 1,024 CPU shares) by Gust's and the host's other work.
pub(crate) const INIT_CPU_MB: u32 = MB_PER_VCPU as u32;
/// A prewarmed spare is background work: it is built at the smallest CPU weight, so that it
/// never takes CPU from an instance that serves (a sandboxed spare's setup is milliseconds of
/// kernel work), and gets [`INIT_CPU_MB`]'s when it is given a function.
pub(crate) const SPARE_CPU_MB: u32 = 0;

impl Layout {
    /// Finds a writable layout, or says why there is none.
    pub(crate) fn detect() -> Result<Self, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let mount = Path::new("/sys/fs/cgroup");
        let v1_path = |controller: &str| -> Option<PathBuf> {
            let rel = own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| path.trim_start_matches('/').to_string())
            })?;
            let dir = mount.join(controller).join(rel);
            dir.is_dir().then_some(dir)
        };
        if let (Some(memory), Some(pids)) = (v1_path("memory"), v1_path("pids")) {
            let gust = sandbox_dir_name();
            let make = |dir: &Path| -> Result<PathBuf, String> {
                let d = dir.join(&gust);
                std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
                Ok(d)
            };
            let memory = make(&memory)?;
            let pids = make(&pids)?;
            let cpu = v1_path("cpu").and_then(|d| make(&d).ok());
            let freezer = v1_path("freezer").and_then(|d| make(&d).ok());
            for parent in v1_dirs(&memory, &pids, &cpu, &freezer) {
                remove_stale_siblings(parent);
            }
            return Ok(Layout::V1 {
                memory,
                pids,
                cpu,
                freezer,
            });
        }
        if mount.join("cgroup.controllers").is_file() {
            return detect_v2(mount, &own);
        }
        Err("no writable cgroup hierarchy with the memory and pids controllers (cgroup v1 under /sys/fs/cgroup/<controller>, or a delegated cgroup v2 subtree)".into())
    }

    /// What instances are confined by, for the report ("cgroup v2 (DIR): memory ...").
    pub(crate) fn summary(&self, max_pids: u32) -> String {
        let (version, dir, cpu) = match self {
            Layout::V1 { memory, cpu, .. } => ("v1", memory, cpu.is_some()),
            Layout::V2 { parent, cpu } => ("v2", parent, *cpu),
        };
        format!(
            "cgroup {version} ({}): memory (children count), {max_pids} pids{}",
            dir.display(),
            if cpu {
                ", CPU weight by memory"
            } else {
                "; no CPU weight (no `cpu` controller)"
            }
        )
    }

    /// Why instances cannot be frozen here, or `None` when they can.
    pub(crate) fn freezer_missing(&self) -> Option<String> {
        match self {
            Layout::V1 { freezer: Some(_), .. } => None,
            Layout::V1 { freezer: None, .. } => {
                Some("cgroup v1 without a writable `freezer` controller for Gust's cgroup".into())
            }
            // This sandbox's parent has the same files as an instance's will.
            Layout::V2 { parent, .. } => (!parent.join("cgroup.freeze").is_file())
                .then(|| "cgroup v2 without `cgroup.freeze` (Linux before 5.2)".into()),
        }
    }

    /// The directory whose `i-*/freezer.state` the orphan watchdog thaws after killing
    /// Gust's instances (cgroup v1 only: v2 lets `SIGKILL` through to frozen tasks).
    pub(crate) fn v1_freezer_parent(&self) -> Option<&Path> {
        match self {
            Layout::V1 { freezer, .. } => freezer.as_deref(),
            Layout::V2 { .. } => None,
        }
    }

    /// Keeps the kernel's freezer switched on while instances are frozen and thawed
    /// ([`hold_freezer_on`]); cgroup v1 only.
    pub(crate) fn hold_freezer(&self) {
        if let Some(dir) = self.v1_freezer_parent() {
            hold_freezer_on(dir);
        }
    }

    /// Creates the cgroup of instance `id` with `limits`.
    pub(crate) fn create(&self, id: u64, limits: Limits) -> std::io::Result<Cgroup> {
        let name = format!("i-{id}");
        let group = match self {
            Layout::V1 {
                memory,
                pids,
                cpu,
                freezer,
            } => Cgroup::V1 {
                memory: memory.join(&name),
                pids: pids.join(&name),
                cpu: cpu.as_ref().map(|d| d.join(&name)),
                freezer: freezer.as_ref().map(|d| d.join(&name)),
            },
            Layout::V2 { parent, .. } => Cgroup::V2(parent.join(&name)),
        };
        for d in group.dirs() {
            match std::fs::create_dir(&d) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        group.set_limits(limits)?;
        Ok(group)
    }
}

impl Layout {
    /// Removes this Gust's own parent directories (at shutdown; instances' are gone by then,
    /// or are removed at the next start as a dead Gust's).
    pub(crate) fn remove(&self) {
        let dirs: Vec<&PathBuf> = match self {
            Layout::V1 {
                memory,
                pids,
                cpu,
                freezer,
            } => v1_dirs(memory, pids, cpu, freezer).collect(),
            Layout::V2 { parent, .. } => {
                // The last instances' cgroups may still be going (`Cgroup::remove` runs on a
                // thread of its own): this is the last chance before Gust exits.
                if let Ok(entries) = std::fs::read_dir(parent) {
                    for e in entries.flatten().filter(|e| e.path().is_dir()) {
                        Cgroup::V2(e.path()).remove();
                    }
                }
                Cgroup::V2(parent.clone()).remove();
                return;
            }
        };
        for d in dirs {
            if let Some(f) = super::Freezer::v1(&d.join(HOLD)) {
                let _ = f.thaw();
                let _ = std::fs::remove_dir(d.join(HOLD));
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `gust-<pid>-<n>`: one parent per sandbox (tests run several Gusts in one process), named by
/// pid so that a dead Gust's can be told apart.
fn sandbox_dir_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("gust-{}-{n}", std::process::id())
}

/// The cgroup v2 directory this process was started in, once Gust has moved itself out of it
/// into its `gust` leaf: later sandboxes of the same process (tests) use the same one.
static V2_OWN: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// The cgroup v2 layout under the cgroup Gust was started in (`own`: /proc/self/cgroup).
fn detect_v2(mount: &Path, own: &str) -> Result<Layout, String> {
    let mut moved = V2_OWN.lock().unwrap_or_else(|p| p.into_inner());
    let base = match &*moved {
        Some(base) => base.clone(),
        None => {
            let rel = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
            mount.join(rel.trim().trim_start_matches('/'))
        }
    };
    let controllers = std::fs::read_to_string(base.join("cgroup.controllers"))
        .map_err(|e| format!("cgroup v2: cannot read {}/cgroup.controllers: {e}", base.display()))?;
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    for c in ["memory", "pids"] {
        if !has(c) {
            return Err(format!(
                "cgroup v2: the `{c}` controller is not available in {} (it has: {}); enable it in the parent's cgroup.subtree_control, or run Gust in a subtree delegated with it (systemd: Delegate=yes)",
                base.display(),
                controllers.trim()
            ));
        }
    }
    if moved.is_none() {
        // No internal processes: Gust leaves its cgroup for a leaf of its own first.
        let leaf = base.join("gust");
        std::fs::create_dir_all(&leaf).map_err(|e| {
            format!(
                "cgroup v2: cannot create {}: {e} (Gust needs {} writable: root, or a subtree delegated to its user)",
                leaf.display(),
                base.display()
            )
        })?;
        std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
            .map_err(|e| format!("cgroup v2: cannot move Gust into {}: {e}", leaf.display()))?;
        *moved = Some(base.clone());
    }
    drop(moved);
    let enable = |dir: &Path, what: &str| {
        std::fs::write(dir.join("cgroup.subtree_control"), what).map_err(|e| {
            let why = if e.raw_os_error() == Some(nix::libc::EBUSY) {
                " (other processes are in it: cgroup v2 lets only leaves hold processes, so Gust needs a cgroup of its own, e.g. a systemd service with Delegate=yes)"
            } else {
                ""
            };
            format!(
                "cgroup v2: cannot enable `{what}` in {}: {e}{why}",
                dir.display()
            )
        })
    };
    enable(&base, "+memory +pids")?;
    // CPU weight where the host lets it be enabled (not with realtime tasks under
    // CONFIG_RT_GROUP_SCHED, for one); memory and pids are what the sandbox cannot do without.
    let cpu = has("cpu") && enable(&base, "+cpu").is_ok();
    let parent = base.join(sandbox_dir_name());
    std::fs::create_dir_all(&parent).map_err(|e| format!("cgroup v2: cannot create {}: {e}", parent.display()))?;
    enable(&parent, if cpu { "+memory +pids +cpu" } else { "+memory +pids" })?;
    remove_stale_siblings(&parent);
    Ok(Layout::V2 { parent, cpu })
}

/// The empty cgroup Gust keeps frozen beside its instances' (cgroup v1).
const HOLD: &str = "hold";

/// Keeps one empty cgroup of Gust's frozen for as long as Gust runs. The v1 freezer turns a
/// kernel-wide static key on while any cgroup is frozen and off when none is, and that
/// switch patches kernel code on every CPU: a freeze or a thaw that turns it cost 65 us
/// here, against 4.5 us (freeze until `FROZEN`) and 2.3 us (thaw) while another cgroup is
/// frozen (`cargo bench -p gust-runtime --bench freezer`). With this one held, freezing the
/// first idle instance and thawing the last never switch it. What it costs the rest of the
/// host: the kernel's freezing checks (at signal delivery, in kernel threads' loops) take
/// their slow path, as they do whenever anything on the host is frozen.
fn hold_freezer_on(parent: &Path) {
    let hold = parent.join(HOLD);
    let held = std::fs::create_dir_all(&hold).and_then(|_| std::fs::write(hold.join("freezer.state"), "FROZEN"));
    if let Err(e) = held {
        tracing::debug!(cgroup = %hold.display(), error = %e, "cannot hold a frozen cgroup; freezes cost more");
    }
}

/// The directories of cgroup v1's controllers, those in use.
fn v1_dirs<'a>(
    memory: &'a PathBuf,
    pids: &'a PathBuf,
    cpu: &'a Option<PathBuf>,
    freezer: &'a Option<PathBuf>,
) -> impl Iterator<Item = &'a PathBuf> {
    [Some(memory), Some(pids), cpu.as_ref(), freezer.as_ref()]
        .into_iter()
        .flatten()
}

/// Removes empty instance cgroups left by Gusts that were killed (their pid is gone).
fn remove_stale_siblings(own: &Path) {
    let Some(parent) = own.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("gust-")
            .and_then(|p| p.split('-').next()?.parse::<u32>().ok());
        let Some(pid) = pid else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(children) = std::fs::read_dir(e.path()) {
            for c in children.flatten() {
                if c.path().is_dir() {
                    // A frozen leftover (cgroup v1) cannot die of its pending kill until thawed.
                    if let Some(f) = super::Freezer::v1(&c.path()) {
                        let _ = f.thaw();
                    }
                    let _ = std::fs::remove_dir(c.path());
                }
            }
        }
        let _ = std::fs::remove_dir(e.path());
    }
}

/// One instance's cgroup (a directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub(crate) enum Cgroup {
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
        freezer: Option<PathBuf>,
    },
    V2(PathBuf),
}

impl Cgroup {
    /// The directories `gust-sandbox --cgroup` joins.
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V1 {
                memory,
                pids,
                cpu,
                freezer,
            } => v1_dirs(memory, pids, cpu, freezer).cloned().collect(),
            Cgroup::V2(d) => vec![d.clone()],
        }
    }

    /// Sets memory (hard, swap included where the host accounts swap), pids and the CPU
    /// weight; [`Cgroup::set_cpu_weight`] sets the function's own once its init is over.
    pub(crate) fn set_limits(&self, limits: Limits) -> std::io::Result<()> {
        let bytes = ((limits.memory_mb as u64) << 20).to_string();
        match self {
            Cgroup::V2(d) => {
                std::fs::write(d.join("memory.max"), &bytes)?;
                let _ = std::fs::write(d.join("memory.swap.max"), "0");
                std::fs::write(d.join("pids.max"), limits.pids.to_string())?;
            }
            Cgroup::V1 { memory, pids, .. } => {
                // With swap accounting, memory+swap may not be below memory: write the pair
                // in the order that keeps that true whether the limit grows or shrinks.
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                let memsw = memsw.exists().then_some(memsw);
                if let Some(sw) = &memsw {
                    let _ = std::fs::write(sw, &bytes);
                }
                std::fs::write(memory.join("memory.limit_in_bytes"), &bytes)?;
                if let Some(sw) = &memsw {
                    std::fs::write(sw, &bytes)?;
                }
                std::fs::write(pids.join("pids.max"), limits.pids.to_string())?;
            }
        }
        self.set_cpu_weight(limits.cpu_mb);
        Ok(())
    }

    /// CPU weight in proportion to `memory_mb` (Lambda's model: 1,769 MB is one vCPU, that is
    /// the default weight of a process of the host). Best effort: a host without the CPU
    /// controller has no weights.
    pub(crate) fn set_cpu_weight(&self, memory_mb: u32) {
        match self {
            Cgroup::V2(d) => {
                let weight = (memory_mb as u64 * 100 / MB_PER_VCPU).clamp(1, 10_000);
                let _ = std::fs::write(d.join("cpu.weight"), weight.to_string());
            }
            Cgroup::V1 { cpu: Some(cpu), .. } => {
                let shares = (memory_mb as u64 * 1024 / MB_PER_VCPU).max(2);
                let _ = std::fs::write(cpu.join("cpu.shares"), shares.to_string());
            }
            Cgroup::V1 { cpu: None, .. } => {}
        }
    }

    /// The cgroup's freezer, where the host has one (`freezer.rs`).
    pub(crate) fn freezer(&self) -> Option<super::Freezer> {
        match self {
            Cgroup::V1 { freezer, .. } => freezer.as_deref().and_then(super::Freezer::v1),
            Cgroup::V2(d) => super::Freezer::v2(d),
        }
    }

    /// The most memory the cgroup's processes have used at once, in bytes (page cache and
    /// the `/tmp` tmpfs included, as the limit counts them).
    pub(crate) fn peak_memory_bytes(&self) -> Option<u64> {
        let file = match self {
            Cgroup::V1 { memory, .. } => memory.join("memory.max_usage_in_bytes"),
            Cgroup::V2(d) => d.join("memory.peak"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// How many times the kernel's out-of-memory killer acted in this cgroup.
    pub(crate) fn oom_kills(&self) -> u64 {
        let file = match self {
            Cgroup::V1 { memory, .. } => memory.join("memory.oom_control"),
            Cgroup::V2(d) => d.join("memory.events"),
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == "oom_kill").then(|| v.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    }

    /// Removes the directories, retrying briefly while the kernel finishes tearing down the
    /// instance's last processes.
    pub(crate) fn remove(&self) {
        for d in self.dirs() {
            for attempt in 0..50 {
                match std::fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if attempt < 49 => std::thread::sleep(std::time::Duration::from_millis(10)),
                    Err(e) => tracing::debug!(cgroup = %d.display(), error = %e, "cannot remove an instance cgroup"),
                }
            }
        }
    }
}
