//! What a function writes to stdout cannot grow Gust's memory or break its log pipe: a 200 MB
//! line and bytes that are not UTF-8 from real Node and Python functions, and a background
//! writer flooding stdout (`gust_runtime` `output.rs`). The platform runs in this process, so
//! the test process's own VmRSS and CPU time are Gust's.

use crate::support::*;
use gust_runtime::Stream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIG: usize = 200 * 1024 * 1024;

/// The tests of this file measure this process: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MANIFEST: &str = r#"
[app]
name = "output"

[functions.node-big]
runtime = "nodejs20.x"
handler = "big.handler"
memory = 2048
timeout = 120

[functions.python-big]
runtime = "python3.11"
handler = "big.handler"
memory = 2048
timeout = 120

[functions.flood]
runtime = "python3.11"
handler = "flood.handler"
timeout = 10
"#;

// One `console.log` of a 200 MB string (what took Gust to 493 MB), then a line with bytes that
// are not UTF-8 (after which Node's next `console.log` used to throw EPIPE).
const NODE: &str = r#"
exports.handler = async (e) => {
  if (e.big) console.log("x".repeat(e.big));
  if (e.bad) process.stdout.write(Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x0a]));
  console.log(`node call ${e.n}`);
  return { n: e.n, pid: process.pid };
};
"#;

const PYTHON: &str = r#"
import os, sys

def handler(event, context):
    if event.get("big"):
        print("y" * event["big"])
    if event.get("bad"):
        sys.stdout.flush()
        sys.stdout.buffer.write(b"bad\xff\xfe\n")
        sys.stdout.buffer.flush()
    print(f"python call {event['n']}")
    return {"n": event["n"], "pid": os.getpid()}
"#;

// A background writer: `yes` shares the function's stdout and writes as fast as the pipe takes.
const FLOOD: &str = r#"
import os, subprocess

started = []

def handler(event, context):
    if not started:
        started.append(subprocess.Popen(["yes", "flood"]))
    return {"pid": os.getpid()}
"#;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// CPU time this process (Gust, in-process) has used, user plus system.
fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

/// Samples VmRSS every 5 ms until dropped; `peak()` is the highest seen.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kb()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kb(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.peak.load(Ordering::Relaxed).max(rss_kb())
    }
}

async fn wait_line(app: &TestApp, function: &str, needle: &str) -> gust_runtime::LogLine {
    let mut found = None;
    wait_for(&format!("`{needle}` from {function}"), Duration::from_secs(20), || {
        found = app
            .logs
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| &*l.function == function && l.line.contains(needle))
            .cloned();
        found.is_some()
    })
    .await;
    found.unwrap()
}

/// The 200 MB line and the bad bytes, then 20 more invocations on the same instance.
async fn big_line_then_twenty_calls(app: &TestApp, function: &str, prefix: &str, fill: char) {
    let (status, fe, _) = app.invoke(function, r#"{"n": 0}"#).await;
    assert_eq!((status, fe), (200, None));
    let first = wait_line(app, function, &format!("{prefix} call 0")).await;

    let before = rss_kb();
    let cpu = cpu_time();
    let sampler = RssSampler::start();
    let started = Instant::now();
    let (status, fe, body) = app.invoke(function, &format!(r#"{{"n": 1, "big": {BIG}}}"#)).await;
    assert_eq!((status, fe.as_deref()), (200, None), "{body}");
    // Node may still be writing after its handler returned: measure until the line that follows
    // the big one has been read. The big line is stored cut to 16 KiB and counts that much
    // against the invocation's 256 KiB of stored output, so the next line is stored as printed.
    wait_line(app, function, &format!("{prefix} call 1")).await;
    let took = started.elapsed();
    let cpu = cpu_time() - cpu;
    let peak = sampler.finish();
    let grew_mb = peak.saturating_sub(before) as f64 / 1024.0;
    println!(
        "{function}: a {} MB line: Gust's RSS {:.1} MB before, peak {:.1} MB (+{grew_mb:.1} MB); \
         written and read in {took:.2?}, Gust's CPU {cpu:.2?}",
        BIG / (1024 * 1024),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    assert!(grew_mb < 64.0, "{function}: Gust grew by {grew_mb:.1} MB for one line");

    // The line arrived cut (by the runtime at 256 KiB, then by the log store at 16 KiB).
    let cut = wait_line(app, function, &fill.to_string().repeat(64)).await;
    assert!(cut.line.len() < 20 * 1024, "{} bytes kept", cut.line.len());
    assert!(
        cut.line.contains("cut at"),
        "the cut is marked: …{}",
        &cut.line[cut.line.len() - 60..]
    );
    assert_eq!(cut.instance, first.instance);

    // Bytes that are not UTF-8 arrive as U+FFFD, and the next line after them.
    let (status, fe, body) = app.invoke(function, r#"{"n": 2, "bad": true}"#).await;
    assert_eq!((status, fe.as_deref()), (200, None), "{body}");
    let bad = wait_line(app, function, "bad").await;
    assert_eq!(bad.line, "bad\u{FFFD}\u{FFFD}");
    wait_line(app, function, &format!("{prefix} call 2")).await;

    // The pipe still works: 20 more invocations, each line arrives, from the same instance.
    for n in 3..23 {
        let (status, fe, body) = app.invoke(function, &format!(r#"{{"n": {n}}}"#)).await;
        assert_eq!((status, fe.as_deref()), (200, None), "call {n}: {body}");
        let line = wait_line(app, function, &format!("{prefix} call {n}")).await;
        assert_eq!(line.instance, first.instance, "call {n} ran on the same instance");
        assert_eq!(line.stream, Stream::Stdout);
        assert!(line.request_id.is_some());
    }
}

#[tokio::test]
async fn a_200_mb_line_and_bytes_that_are_not_utf8_leave_gust_bounded_and_the_instance_working() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::start(&[
        ("gust.toml", MANIFEST),
        ("big.js", NODE),
        ("big.py", PYTHON),
        ("flood.py", FLOOD),
    ])
    .await;
    big_line_then_twenty_calls(&app, "node-big", "node", 'x').await;
    big_line_then_twenty_calls(&app, "python-big", "python", 'y').await;
    app.stop().await;
}

#[tokio::test]
async fn a_background_writer_flooding_stdout_is_cut_to_a_budget_and_summarised() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::start(&[("gust.toml", MANIFEST), ("flood.py", FLOOD)]).await;
    let (status, fe, _) = app.invoke("flood", "{}").await;
    assert_eq!((status, fe), (200, None));
    wait_line(&app, "flood", "flood").await;
    // Lines of a new invocation: the log store's own per-invocation limit starts again, so
    // what reaches the sink is what the runtime let through.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let count = |app: &TestApp| {
        app.logs
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| &*l.function == "flood")
            .count()
    };
    let (status, fe, _) = app.invoke("flood", "{}").await;
    assert_eq!((status, fe), (200, None));
    let (before, started) = (count(&app), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (lines, elapsed) = (count(&app) - before, started.elapsed());
    println!("flood: {lines} lines reached the sink in {elapsed:.2?}");
    // 1 MiB a second at 128 bytes of overhead per line is at most 7,900 short lines a second.
    let most = (elapsed.as_secs_f64() + 1.0) * (1024.0 * 1024.0 / (128.0 + 5.0));
    assert!((lines as f64) < most, "{lines} lines in {elapsed:?}");
    let summary = wait_line(&app, "flood", "[gust] dropped").await;
    println!("flood: {}", summary.line);
    // The function still answers, promptly.
    let started = Instant::now();
    let (status, fe, _) = app.invoke("flood", "{}").await;
    assert_eq!((status, fe), (200, None));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    app.stop().await;
}

/// CPU time (user + system) of process `pid` alone, not its children.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    // utime and stime (fields 14 and 15 of stat(5)), in USER_HZ ticks: 100 a second on Linux.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// A `gust up` process (its own CPU time is then Gust's alone) whose output goes nowhere.
struct GustProcess {
    child: std::process::Child,
    admin: String,
    token: String,
}

impl GustProcess {
    async fn start(app: &std::path::Path) -> Self {
        let state = app.join(".gust");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
            .args(["up", app.to_str().unwrap(), "--port", "0", "--admin-port", "0"])
            .args(["--sandbox", "off", "--prewarm", "0", "--state"])
            .arg(&state)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut admin = String::new();
        wait_for("gust up to write gust.json", Duration::from_secs(30), || {
            assert!(child.try_wait().unwrap().is_none(), "gust up exited early");
            let info = std::fs::read_to_string(state.join("gust.json")).unwrap_or_default();
            admin = serde_json::from_str::<serde_json::Value>(&info).unwrap_or_default()["admin"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            !admin.is_empty()
        })
        .await;
        let token = std::fs::read_to_string(state.join("operator.token")).unwrap();
        Self {
            child,
            admin,
            token: token.trim().to_string(),
        }
    }

    async fn invoke(&self, function: &str) -> (u16, Option<String>) {
        let r = reqwest::Client::new()
            .post(format!("{}/2015-03-31/functions/{function}/invocations", self.admin))
            .bearer_auth(&self.token)
            .body("{}")
            .send()
            .await
            .unwrap();
        let fe = r
            .headers()
            .get("x-amz-function-error")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), fe)
    }
}

impl Drop for GustProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_background_writer_flooding_stdout_is_not_paid_for_with_a_core() {
    let dir = write_app(&[("gust.toml", MANIFEST), ("flood.py", FLOOD)]);
    let gust = GustProcess::start(dir.path()).await;
    assert_eq!(gust.invoke("flood").await, (200, None));
    // `yes` is writing; let it settle, then measure Gust's own CPU time (its log output, at
    // the default level, goes to /dev/null: formatted and written, as in `gust up`).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = gust.child.id();
    let (cpu, started) = (process_cpu(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (cpu, elapsed) = (process_cpu(pid) - cpu, started.elapsed());
    let share = cpu.as_secs_f64() / elapsed.as_secs_f64();
    println!(
        "flood: `gust up` used {cpu:.2?} of CPU in {elapsed:.2?} ({:.0}% of a core)",
        share * 100.0
    );
    // While lines are dropped, reading is paced at 8 MiB a second and a dropped line costs
    // neither a lock nor a look at it; an unoptimised build pays several times what a release
    // build does.
    let limit = if cfg!(debug_assertions) { 0.5 } else { 0.2 };
    assert!(share < limit, "Gust used {:.0}% of a core on a flood", share * 100.0);
    let started = Instant::now();
    assert_eq!(gust.invoke("flood").await, (200, None));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
