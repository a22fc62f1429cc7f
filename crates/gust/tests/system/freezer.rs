//! Idle instances are frozen between invocations (`sandbox/freezer.rs`), as Lambda freezes its
//! execution environments: a finished invocation's background work waits for the next one,
//! an idle instance uses no CPU, and every way an instance ends still ends a frozen one.
//!
//! What the tests read, as root, from the host's side: the instance's cgroup v1
//! `freezer.state`, the CPU time of each of its threads (`/proc/TID/schedstat`), and the
//! counter its timer writes in its private `/tmp` (`/proc/PID/root/tmp/ticks`).

use crate::support::*;
use gust_runtime::sandbox::SandboxMode;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// On its first call starts a 5 ms timer that counts into /tmp/ticks; `holdMs` keeps the
/// invocation open that long; `alloc` MB are allocated. Answers the count.
const TICKER: &str = r#"
const fs = require('fs');
let timer = null;
exports.handler = async (event) => {
  if (!timer) {
    let n = 0;
    fs.writeFileSync('/tmp/ticks', '0');
    timer = setInterval(() => { n += 1; fs.writeFileSync('/tmp/ticks', String(n)); }, 5);
  }
  if (event.holdMs) await new Promise((r) => setTimeout(r, event.holdMs));
  if (event.alloc) { const b = Buffer.alloc(event.alloc << 20, 1); event.n = b.length; }
  return { ticks: Number(fs.readFileSync('/tmp/ticks', 'utf8')) };
};
"#;

const MANIFEST: &str = r#"
[app]
name = "freezer"

[functions.ticker]
runtime = "nodejs20.x"
handler = "ticker.handler"
memory = 128
timeout = 3

[functions.brief]
runtime = "nodejs20.x"
handler = "ticker.handler"
scaling = { idle_timeout = 1.5 }
"#;

/// How long a frozen instance is watched for progress it must not make: 100 periods of its
/// timer.
const WATCH: Duration = Duration::from_millis(500);

async fn start(freeze: bool) -> TestApp {
    let dir = write_app(&[("gust.toml", MANIFEST), ("ticker.js", TICKER)]);
    TestApp::start_configured(dir, |c| {
        c.sandbox.mode = SandboxMode::Strict;
        if !freeze {
            c.sandbox.freeze_idle_after = None;
        }
    })
    .await
}

async fn ticks(app: &TestApp, function: &str, event: serde_json::Value) -> u64 {
    let (status, fe, body) = app.invoke(function, &event.to_string()).await;
    assert_eq!((status, fe), (200, None), "{function} {event}: {body}");
    json(&body)["ticks"].as_u64().unwrap_or_else(|| panic!("{body}"))
}

/// The cgroup v1 freezer directory of process `pid`.
pub fn freezer_dir(pid: i32) -> PathBuf {
    let dir = cgroup_freezer_dir(pid).expect("a freezer cgroup");
    assert!(
        dir.file_name().unwrap().to_string_lossy().starts_with("i-"),
        "{pid} is in an instance's cgroup: {}",
        dir.display()
    );
    dir
}

/// The instance freezer cgroup of `pid`, if it is in one yet (a launcher joins its cgroup
/// just after it starts).
pub fn instance_freezer_dir(pid: i32) -> Option<PathBuf> {
    cgroup_freezer_dir(pid).filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("i-")))
}

fn cgroup_freezer_dir(pid: i32) -> Option<PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == "freezer").then(|| path.to_string())
    })?;
    Some(Path::new("/sys/fs/cgroup/freezer").join(rel.trim_start_matches('/')))
}

pub fn frozen(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
}

fn numbers(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// CPU time every thread of the cgroup has run, in nanoseconds.
fn cpu_ns(dir: &Path) -> u64 {
    numbers(&dir.join("tasks"))
        .iter()
        .filter_map(|tid| {
            let s = std::fs::read_to_string(format!("/proc/{tid}/schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// The counter the function's timer wrote, read through its own root.
fn ticks_file(dir: &Path) -> u64 {
    numbers(&dir.join("cgroup.procs"))
        .iter()
        .find_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/root/tmp/ticks")).ok()?;
            text.trim().parse().ok()
        })
        .expect("the function's /tmp/ticks")
}

/// The only idle instance of `function`: its launcher's pid and its freezer cgroup.
fn idle_instance(app: &TestApp, function: &str) -> (i32, PathBuf) {
    let pids = app.platform().invoker.pool(function).unwrap().idle_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    (pids[0], freezer_dir(pids[0]))
}

async fn wait_frozen(dir: &Path) {
    wait_for("the idle instance to be frozen", Duration::from_secs(10), || {
        frozen(dir)
    })
    .await;
}

async fn wait_gone(what: &str, pids: &[i32]) {
    wait_for(what, Duration::from_secs(10), || pids.iter().all(|p| !pid_alive(*p))).await;
}

#[tokio::test]
async fn an_idle_instance_is_frozen_until_its_next_invocation_and_every_kill_still_ends_it() {
    let app = start(true).await;
    // While busy, the timer runs.
    let busy = ticks(&app, "ticker", serde_json::json!({"holdMs": 200})).await;
    assert!(busy >= 5, "the timer ran during the invocation: {busy}");
    let (_, dir) = idle_instance(&app, "ticker");
    wait_frozen(&dir).await;

    // Idle and frozen: no tick, no CPU for any thread.
    let (before, cpu_before) = (ticks_file(&dir), cpu_ns(&dir));
    tokio::time::sleep(WATCH).await;
    assert!(frozen(&dir), "still frozen");
    assert_eq!(ticks_file(&dir), before, "background work ran while idle");
    assert_eq!(cpu_ns(&dir), cpu_before, "an idle instance used CPU");

    // The next invocation thaws it: the work resumes (same instance), then freezes again.
    let resumed = ticks(&app, "ticker", serde_json::json!({"holdMs": 300})).await;
    assert!(resumed >= before + 5, "resumed from {before}: {resumed}");
    assert_eq!(idle_instance(&app, "ticker").1, dir, "the same instance served");
    wait_frozen(&dir).await;

    // A memory-limit kill of a frozen instance's next invocation: thawed, killed, reported.
    let pids = numbers(&dir.join("cgroup.procs"));
    assert!(pids.len() >= 3, "launcher, init and node: {pids:?}");
    let (status, fe, body) = app.invoke("ticker", r#"{"alloc": 300}"#).await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")), "{body}");
    assert_eq!(json(&body)["errorType"], "Runtime.OutOfMemory", "{body}");
    wait_gone("the out-of-memory instance to end", &pids).await;

    // A timeout on a frozen instance's next invocation: thawed, then killed at the deadline.
    ticks(&app, "ticker", serde_json::json!({})).await;
    let (_, dir) = idle_instance(&app, "ticker");
    wait_frozen(&dir).await;
    let pids = numbers(&dir.join("cgroup.procs"));
    let (status, fe, body) = app.invoke("ticker", r#"{"holdMs": 10000}"#).await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")), "{body}");
    assert_eq!(json(&body)["errorType"], "Sandbox.Timedout", "{body}");
    wait_gone("the timed-out instance to end", &pids).await;

    // Scale-down of a frozen instance after its idle timeout.
    ticks(&app, "brief", serde_json::json!({})).await;
    let (_, brief) = idle_instance(&app, "brief");
    wait_frozen(&brief).await;
    let brief_pids = numbers(&brief.join("cgroup.procs"));
    let invoker = app.platform().invoker.clone();
    wait_for(
        "the idle timeout to stop the frozen instance",
        Duration::from_secs(10),
        || invoker.pool_stats("brief").unwrap().total == 0,
    )
    .await;
    wait_gone(
        "the frozen instance's processes to end at its idle timeout",
        &brief_pids,
    )
    .await;
    wait_for("its cgroup to be removed", Duration::from_secs(10), || !brief.exists()).await;

    // Shutdown with a frozen instance.
    ticks(&app, "ticker", serde_json::json!({})).await;
    let (_, dir) = idle_instance(&app, "ticker");
    wait_frozen(&dir).await;
    let pids = numbers(&dir.join("cgroup.procs"));
    app.stop().await;
    wait_gone("the frozen instance's processes to end at shutdown", &pids).await;
}

#[tokio::test]
async fn with_freezing_off_an_idle_instance_runs_on() {
    // The control for the test above: the same watch sees the timer and the CPU move.
    let app = start(false).await;
    ticks(&app, "ticker", serde_json::json!({"holdMs": 50})).await;
    let (_, dir) = idle_instance(&app, "ticker");
    let (before, cpu_before) = (ticks_file(&dir), cpu_ns(&dir));
    tokio::time::sleep(WATCH).await;
    assert!(!frozen(&dir));
    assert!(ticks_file(&dir) > before + 5, "the timer ran while idle");
    assert!(cpu_ns(&dir) > cpu_before, "the idle instance used CPU");
    app.stop().await;
}
