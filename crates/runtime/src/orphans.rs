//! Function processes die with Gust, however Gust dies (`kill -9` included).
//!
//! One small watchdog process per Gust process, `/bin/sh` running [`SCRIPT`], reads the
//! process groups Gust supervises from a pipe (`+PGID` when one starts, `-PGID` once its leader
//! is reaped). When the pipe reaches end of file, which the kernel does when Gust's last copy of
//! the write end closes, on any exit, it kills every group still listed and exits.
//!
//! Why not `PR_SET_PDEATHSIG` in the child: setting it needs code between `fork` and `exec`,
//! and that makes the standard library fork the whole Gust process instead of using
//! `posix_spawn` (a `vfork`-style clone): about 0.4 ms per process start with Gust's 15 MB
//! resident, 1.3 ms at 60 MB, against 0.06 ms, on every cold start that starts a process
//! (`cargo bench -p gust-runtime --bench process_start`). The
//! watchdog also kills a function's whole group, where the death signal reached only its
//! first process. If the watchdog cannot be started, supervised commands fall back to the
//! death signal.
//!
//! Instances frozen between invocations (`sandbox/freezer.rs`) do not act on `SIGKILL` under
//! cgroup v1 until thawed, so the watchdog is also told Gust's freezer directories (`*DIR`):
//! after killing the groups it thaws every `DIR/i-*` cgroup, and the pending kills land.
//!
//! The watchdog sits in a process group of its own (a Ctrl-C in the terminal does not reach
//! it) and is named `gust-orphan-guard` in its command line.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The watchdog's name, its `$0` (in `/proc/<pid>/cmdline`).
pub const WATCHDOG_NAME: &str = "gust-orphan-guard";

/// The watchdog: keeps a space-separated list of groups and of freezer directories; on end
/// of input, kills the groups, then thaws the directories' instance cgroups.
const SCRIPT: &str = r#"trap '' HUP INT
groups=' '
thaw=''
while IFS= read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) p=${line#-}
        case $groups in *" $p "*) groups="${groups%%" $p "*} ${groups#*" $p "}" ;; esac ;;
    \**) thaw="$thaw ${line#?}" ;;
  esac
done
for p in $groups; do kill -KILL -"$p" 2>/dev/null; done
for d in $thaw; do
  for f in "$d"/i-*/freezer.state; do [ -f "$f" ] && echo THAWED > "$f"; done
done 2>/dev/null
"#;

struct Watchdog {
    child: Child,
    input: ChildStdin,
    /// The groups it was told about, to tell a restarted watchdog again.
    groups: HashSet<i32>,
    /// The freezer directories it thaws at the end, likewise.
    thaw: Vec<String>,
}

static WATCHDOG: OnceLock<Mutex<Option<Watchdog>>> = OnceLock::new();

fn start_watchdog() -> std::io::Result<Watchdog> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("/bin/sh")
        .args(["-c", SCRIPT, WATCHDOG_NAME])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let input = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    // Never block the caller (an async worker) on a stalled watchdog: a full pipe is an error.
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(&input, FcntlArg::F_GETFL)?);
    fcntl(&input, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(Watchdog {
        child,
        input,
        groups: HashSet::new(),
        thaw: Vec::new(),
    })
}

fn watchdog() -> &'static Mutex<Option<Watchdog>> {
    WATCHDOG.get_or_init(|| {
        Mutex::new(match start_watchdog() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the orphan watchdog (/bin/sh); function processes get PR_SET_PDEATHSIG instead");
                None
            }
        })
    })
}

/// Whether the watchdog runs (starting it on first use). When it does not, a supervised
/// command needs the death signal instead.
pub(crate) fn watchdog_running() -> bool {
    let mut guard = watchdog().lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_mut() {
        Some(w) => match w.child.try_wait() {
            Ok(None) => true,
            _ => restart(&mut guard),
        },
        None => false,
    }
}

/// Replaces a watchdog that died, telling the new one every group the old one knew.
fn restart(slot: &mut Option<Watchdog>) -> bool {
    let (groups, thaw) = slot.take().map(|w| (w.groups, w.thaw)).unwrap_or_default();
    tracing::warn!("the orphan watchdog exited; starting it again");
    match start_watchdog() {
        Ok(mut w) => {
            let mut lines: String = groups.iter().map(|g| format!("+{g}\n")).collect();
            lines.extend(thaw.iter().map(|d| format!("*{d}\n")));
            let _ = w.input.write_all(lines.as_bytes());
            w.groups = groups;
            w.thaw = thaw;
            *slot = Some(w);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot restart the orphan watchdog");
            false
        }
    }
}

/// Has the watchdog thaw `dir`'s instance cgroups (`DIR/i-*`, cgroup v1) after it has killed
/// the groups, when Gust dies. A directory whose path the script cannot take as one word
/// (white space, glob characters) is left out, with a warning.
pub(crate) fn thaw_on_exit(dir: &std::path::Path) {
    let text = dir.to_string_lossy().into_owned();
    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || "*?[]\\".contains(c)) {
        tracing::warn!(dir = %text, "the orphan watchdog cannot thaw this freezer directory: frozen instances may outlive a killed Gust");
        return;
    }
    let mut slot = watchdog().lock().unwrap_or_else(|p| p.into_inner());
    let Some(w) = slot.as_mut() else { return };
    if w.thaw.contains(&text) {
        return;
    }
    w.thaw.push(text.clone());
    send(&mut slot, format!("*{text}\n"));
}

/// Records a group as supervised or not, and tells the watchdog, under one lock.
fn update(pgid: i32, supervised: bool) {
    let mut slot = watchdog().lock().unwrap_or_else(|p| p.into_inner());
    let Some(w) = slot.as_mut() else { return };
    let line = if supervised {
        w.groups.insert(pgid);
        format!("+{pgid}\n")
    } else {
        w.groups.remove(&pgid);
        format!("-{pgid}\n")
    };
    send(&mut slot, line);
}

/// Writes one line to the watchdog, restarting it if it died (a restarted watchdog is told
/// the whole state, this change included).
fn send(slot: &mut Option<Watchdog>, line: String) {
    let Some(w) = slot.as_mut() else { return };
    if let Err(e) = w.input.write_all(line.as_bytes()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            restart(slot);
        } else {
            tracing::warn!(error = %e, "cannot reach the orphan watchdog");
        }
    }
}

/// A process group the watchdog kills if Gust dies. Drop it once the group's leader has been
/// reaped (its id may be reused after that).
#[derive(Debug)]
pub struct OrphanGuard {
    pgid: i32,
}

impl OrphanGuard {
    /// Registers the process group led by `pgid` (a child started with `process_group(0)`).
    pub fn new(pgid: i32) -> Self {
        update(pgid, true);
        Self { pgid }
    }
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        update(self.pgid, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    fn group_of_sleepers() -> Child {
        // `sh` leads a new group and starts a second process in it: both must die.
        Command::new("/bin/sh")
            .args(["-c", "sleep 30 & exec sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn alive(pid: i32) -> bool {
        // A zombie has been killed; only the parent's wait is missing.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
            .unwrap_or(false)
    }

    fn members(pgid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) {
                out.push(pid);
            }
        }
        out
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn end_of_input_kills_the_listed_groups_and_spares_the_removed_ones() {
        let mut doomed = [group_of_sleepers(), group_of_sleepers()];
        let mut spared = group_of_sleepers();
        let ids: Vec<i32> = doomed.iter().map(|c| c.id() as i32).collect();
        let spared_id = spared.id() as i32;
        wait_until("the sleepers to start", || {
            ids.iter().chain([&spared_id]).all(|g| members(*g).len() == 2)
        });
        let doomed_members: Vec<i32> = ids.iter().flat_map(|g| members(*g)).collect();
        let spared_members = members(spared_id);

        let mut w = start_watchdog().unwrap();
        // The spared group is listed between the others and removed again: removal from the
        // middle of the list must keep its neighbours.
        let lines = format!("+{}\n+{spared_id}\n+{}\n-{spared_id}\n", ids[0], ids[1]);
        w.input.write_all(lines.as_bytes()).unwrap();
        drop(w.input);
        let status = w.child.wait().unwrap();
        assert!(status.success(), "watchdog exit: {status}");

        wait_until("every process of the listed groups to die", || {
            doomed_members.iter().all(|p| !alive(*p))
        });
        for c in &mut doomed {
            c.wait().unwrap();
        }
        assert!(spared_members.iter().all(|p| alive(*p)), "a removed group was killed");
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(spared_id), nix::sys::signal::Signal::SIGKILL).unwrap();
        spared.wait().unwrap();
    }

    #[test]
    fn end_of_input_thaws_frozen_instance_cgroups_so_their_kill_lands() {
        // cgroup v1 only (as root): a frozen task acts on SIGKILL only once thawed.
        let base = std::path::Path::new("/sys/fs/cgroup/freezer");
        if !nix::unistd::geteuid().is_root() || !base.is_dir() {
            eprintln!("skipped: no cgroup v1 freezer writable here");
            return;
        }
        let parent = base.join(format!("gust-unit-orphans-{}", std::process::id()));
        let cgroup = parent.join("i-1");
        std::fs::create_dir_all(&cgroup).unwrap();
        let mut frozen = group_of_sleepers();
        let id = frozen.id() as i32;
        wait_until("the sleepers to start", || members(id).len() == 2);
        let pids = members(id);
        for p in &pids {
            std::fs::write(cgroup.join("cgroup.procs"), p.to_string()).unwrap();
        }
        std::fs::write(cgroup.join("freezer.state"), "FROZEN").unwrap();
        wait_until("the group to freeze", || {
            std::fs::read_to_string(cgroup.join("freezer.state")).unwrap().trim() == "FROZEN"
        });

        let mut w = start_watchdog().unwrap();
        let lines = format!("+{id}\n*{}\n", parent.display());
        w.input.write_all(lines.as_bytes()).unwrap();
        drop(w.input);
        assert!(w.child.wait().unwrap().success());
        wait_until("the frozen group to die", || pids.iter().all(|p| !alive(*p)));
        frozen.wait().unwrap();
        wait_until("the cgroups to be removable", || {
            std::fs::remove_dir(&cgroup).is_ok() || !cgroup.exists()
        });
        std::fs::remove_dir(&parent).unwrap();
    }

    #[test]
    fn the_watchdog_runs_in_a_group_of_its_own_and_is_told_about_guards() {
        assert!(watchdog_running());
        let pid = watchdog().lock().unwrap().as_ref().expect("watchdog").child.id() as i32;
        assert_eq!(
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
                .unwrap()
                .as_raw(),
            pid
        );
        // `posix_spawn` returns once the child has switched to its new program's memory,
        // which is before the kernel has written its arguments there: until then
        // /proc/PID/cmdline reads empty.
        let cmdline = || std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        wait_until("the watchdog to finish its exec", || !cmdline().is_empty());
        let cmdline = cmdline();
        assert!(cmdline.contains(WATCHDOG_NAME), "{cmdline:?}");
        let guard = OrphanGuard::new(424_242);
        assert!(watchdog().lock().unwrap().as_ref().unwrap().groups.contains(&424_242));
        drop(guard);
        assert!(!watchdog().lock().unwrap().as_ref().unwrap().groups.contains(&424_242));
    }
}
