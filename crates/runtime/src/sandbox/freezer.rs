//! Freezing idle instances (the cgroup freezer), as Lambda freezes an execution environment
//! between invocations: once an invocation is over and the runtime waits on `/next`, every
//! process of the instance is stopped by the kernel until the next event is handed over. A
//! finished invocation's background work (a timer, a child process) does not run on, and an
//! idle instance costs no CPU.
//!
//! [`Freezer`] is one cgroup's control: cgroup v1's `freezer.state` (`FROZEN` / `THAWED`; the
//! state reads `FREEZING` until every task has stopped) or cgroup v2's `cgroup.freeze` (`1` /
//! `0`; `cgroup.events` says `frozen 1` once done). [`IdleFreezer`] is one instance's policy:
//! it freezes after the instance has been idle for a grace period with its runtime parked on
//! `/next`, and thaws before work is handed over.
//!
//! Why a grace period and not a freeze at every `/next`: under load an instance is handed its
//! next event within microseconds of its response, and a freeze would be undone at once (a
//! freeze until `FROZEN` and a thaw cost 4.5 us and 2.3 us here while Gust holds its frozen
//! cgroup, 65 us each without it; `BENCHMARKS.md`, "Freezing idle instances"). With the
//! grace, a busy instance is never frozen and the warm path costs two uncontended lock
//! operations; an instance idle for longer than the grace is frozen, so background work runs
//! on for at most the grace after an invocation.
//!
//! **Kills and a frozen cgroup.** Under cgroup v1 a frozen task does not act on `SIGKILL`
//! until it is thawed: it stays in the kernel's refrigerator with the signal pending. Every
//! kill of an instance therefore goes through [`IdleFreezer::end`] (signal first, then thaw,
//! so the frozen work never runs again), and the orphan watchdog thaws Gust's instance
//! cgroups after it has killed their groups (`orphans.rs`), for a Gust killed with `kill -9`.
//! cgroup v2 lets fatal signals through to frozen tasks; the thaw is done there as well.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One cgroup's freezer.
#[derive(Debug, Clone)]
pub enum Freezer {
    /// A cgroup v1 directory of the `freezer` controller.
    V1(PathBuf),
    /// A cgroup v2 directory (the freezer is part of the core since Linux 5.2).
    V2(PathBuf),
}

impl Freezer {
    /// The freezer of cgroup v1 directory `dir`, if it is one.
    pub fn v1(dir: &Path) -> Option<Self> {
        dir.join("freezer.state").is_file().then(|| Self::V1(dir.to_path_buf()))
    }

    /// The freezer of cgroup v2 directory `dir`, if the kernel has one there.
    pub fn v2(dir: &Path) -> Option<Self> {
        dir.join("cgroup.freeze").is_file().then(|| Self::V2(dir.to_path_buf()))
    }

    /// Asks the kernel to freeze every process of the cgroup. Returns at once: each task
    /// stops when it next reaches a safe point ([`is_frozen`](Self::is_frozen) says when all
    /// have).
    pub fn request_freeze(&self) -> std::io::Result<()> {
        match self {
            Self::V1(d) => std::fs::write(d.join("freezer.state"), "FROZEN"),
            Self::V2(d) => std::fs::write(d.join("cgroup.freeze"), "1"),
        }
    }

    /// Lets every process of the cgroup run again (also cancels a freeze in progress).
    pub fn thaw(&self) -> std::io::Result<()> {
        let done = match self {
            Self::V1(d) => std::fs::write(d.join("freezer.state"), "THAWED"),
            Self::V2(d) => std::fs::write(d.join("cgroup.freeze"), "0"),
        };
        match done {
            // The cgroup is gone with its processes: nothing is frozen.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Whether every process of the cgroup is frozen.
    pub fn is_frozen(&self) -> std::io::Result<bool> {
        Ok(match self {
            Self::V1(d) => std::fs::read_to_string(d.join("freezer.state"))?.trim() == "FROZEN",
            Self::V2(d) => std::fs::read_to_string(d.join("cgroup.events"))?
                .lines()
                .any(|l| l.trim() == "frozen 1"),
        })
    }

    /// Freezes and waits until every process is frozen, for at most `within`; returns how
    /// long it took. Thaws again and fails if they were not all frozen in time.
    pub fn freeze(&self, within: Duration) -> std::io::Result<Duration> {
        let start = Instant::now();
        self.request_freeze()?;
        let mut spins = 0u32;
        loop {
            if self.is_frozen()? {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                self.thaw()?;
                return Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    format!("the cgroup did not freeze within {within:?}"),
                ));
            }
            // Tasks freeze within microseconds unless one is in an uninterruptible sleep.
            spins += 1;
            if spins < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

/// One instance's freezing policy: frozen while idle past the grace with its runtime parked
/// on `/next`, thawed before work is handed over, thawed for good when the instance ends.
pub(crate) struct IdleFreezer {
    freezer: Freezer,
    grace: Duration,
    state: Mutex<IdleState>,
    changed: tokio::sync::Notify,
}

#[derive(Debug)]
struct IdleState {
    /// Not idle: running an invocation, or not yet an instance (a spare, a start).
    busy: bool,
    frozen: bool,
    /// Killed or exited: never frozen again.
    ended: bool,
    /// Bumped at every change of `busy`, so a grace that saw another idle period is void.
    generation: u64,
}

impl IdleFreezer {
    /// Starts the policy for `freezer`; `at_next` says whether the runtime is parked on
    /// `/next`. The instance starts busy (not frozen until [`idle`](Self::idle)).
    pub(crate) fn start(freezer: Freezer, grace: Duration, at_next: tokio::sync::watch::Receiver<bool>) -> Arc<Self> {
        let this = Arc::new(Self {
            freezer,
            grace,
            state: Mutex::new(IdleState {
                busy: true,
                frozen: false,
                ended: false,
                generation: 0,
            }),
            changed: tokio::sync::Notify::new(),
        });
        tokio::spawn(this.clone().run(at_next));
        this
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before work is handed over: thaws the instance if it is frozen.
    pub(crate) fn busy(&self) {
        let mut s = self.lock();
        s.busy = true;
        s.generation += 1;
        if s.frozen {
            let started = Instant::now();
            if let Err(e) = self.freezer.thaw() {
                tracing::warn!(error = %e, "cannot thaw an instance");
            }
            s.frozen = false;
            tracing::trace!(thaw_us = started.elapsed().as_micros() as u64, "instance thawed");
        }
        drop(s);
        self.changed.notify_one();
    }

    /// The invocation (or init) is over: the instance may be frozen after the grace.
    pub(crate) fn idle(&self) {
        let mut s = self.lock();
        if s.ended {
            return;
        }
        s.busy = false;
        s.generation += 1;
        drop(s);
        self.changed.notify_one();
    }

    /// The instance is being killed or has exited: thaw it so that a pending `SIGKILL` takes
    /// effect (cgroup v1), and never freeze it again. Call after the signal is sent.
    pub(crate) fn end(&self) {
        let mut s = self.lock();
        s.ended = true;
        if s.frozen {
            if let Err(e) = self.freezer.thaw() {
                tracing::warn!(error = %e, "cannot thaw an instance being killed");
            }
            s.frozen = false;
        }
        drop(s);
        self.changed.notify_one();
    }

    /// Whether the instance was frozen (the freeze requested; the kernel may still be
    /// stopping its tasks).
    #[cfg(test)]
    pub(crate) fn is_frozen(&self) -> bool {
        self.lock().frozen
    }

    async fn run(self: Arc<Self>, mut at_next: tokio::sync::watch::Receiver<bool>) {
        loop {
            // Wait to be idle.
            let generation = {
                let s = self.lock();
                if s.ended {
                    return;
                }
                (!s.busy && !s.frozen).then_some(s.generation)
            };
            let Some(generation) = generation else {
                self.changed.notified().await;
                continue;
            };
            // The runtime may post its response a moment before it calls `/next` again.
            tokio::select! {
                r = at_next.wait_for(|parked| *parked) => if r.is_err() { return },
                _ = self.changed.notified() => continue,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.grace) => {}
                _ = self.changed.notified() => continue,
            }
            let mut s = self.lock();
            if s.ended || s.busy || s.generation != generation || !*at_next.borrow() {
                continue;
            }
            match self.freezer.request_freeze() {
                Ok(()) => s.frozen = true,
                Err(e) => {
                    // Left running: a freezer that cannot be written to is not retried.
                    tracing::debug!(error = %e, "cannot freeze an idle instance");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A freezer cgroup of its own with a `sleep` in it (cgroup v1, as root), or `None` where
    /// the host has none.
    fn sleeper() -> Option<(Freezer, std::process::Child, PathBuf)> {
        let base = Path::new("/sys/fs/cgroup/freezer");
        if !nix::unistd::geteuid().is_root() || !base.is_dir() {
            return None;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = base.join(format!(
            "gust-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).ok()?;
        let child = std::process::Command::new("/bin/sleep").arg("30").spawn().unwrap();
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        Some((Freezer::v1(&dir).expect("a v1 freezer"), child, dir))
    }

    fn state_of(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(") ").unwrap().1.chars().next().unwrap()
    }

    #[test]
    fn a_frozen_task_ignores_sigkill_until_thawed() {
        let Some((freezer, mut child, dir)) = sleeper() else {
            eprintln!("skipped: no cgroup v1 freezer writable here");
            return;
        };
        freezer.freeze(Duration::from_secs(5)).unwrap();
        assert!(freezer.is_frozen().unwrap());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // The signal is pending; the task stays in the refrigerator (D) while frozen.
        std::thread::sleep(Duration::from_millis(100));
        assert!(child.try_wait().unwrap().is_none(), "killed while frozen");
        assert_eq!(state_of(child.id()), 'D');
        freezer.thaw().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        std::fs::remove_dir(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_policy_freezes_after_the_grace_thaws_for_work_and_on_end() {
        let Some((freezer, mut child, dir)) = sleeper() else {
            eprintln!("skipped: no cgroup v1 freezer writable here");
            return;
        };
        let (parked, at_next) = tokio::sync::watch::channel(false);
        let policy = IdleFreezer::start(freezer.clone(), Duration::from_millis(5), at_next);
        policy.idle();
        // Not parked on /next: not frozen, however long it is idle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!policy.is_frozen());
        parked.send_replace(true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !freezer.is_frozen().unwrap() {
            assert!(Instant::now() < deadline, "not frozen after the grace");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        policy.busy();
        assert!(!freezer.is_frozen().unwrap(), "work is handed to a thawed instance");
        assert_eq!(state_of(child.id()), 'S');
        policy.idle();
        while !freezer.is_frozen().unwrap() {
            assert!(Instant::now() < deadline, "not frozen again");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.kill().unwrap();
        policy.end();
        child.wait().unwrap();
        policy.idle();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!policy.is_frozen(), "an ended instance is never frozen again");
        std::fs::remove_dir(&dir).unwrap();
    }
}
