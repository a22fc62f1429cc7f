//! What freezing and thawing an idle instance costs (`sandbox/freezer.rs`): the cgroup
//! freezer's `freeze` (write `FROZEN`, then read `freezer.state` until it says `FROZEN`) and
//! `thaw` (write `THAWED`), as Gust does them, on a cgroup of its own holding an idle Node
//! process (`node -e 'setInterval(...)'`: the interpreter's threads, parked in `epoll` and
//! futexes, as an instance waiting on `/next`) or a single `sleep`. Each is measured twice
//! under cgroup v1: alone (every freeze and thaw switches the kernel's freezer static key,
//! which patches code on every CPU), and with another, empty cgroup held frozen, as Gust
//! holds one (`sandbox/cgroup.rs`, `hold_freezer_on`).
//!
//! Needs root and a cgroup v1 `freezer` hierarchy (or a cgroup v2 tree Gust may write to);
//! elsewhere it says so and measures nothing.
//!
//! Run: `cargo bench -p gust-runtime --bench freezer`

use criterion::Criterion;
use gust_runtime::sandbox::Freezer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh freezer cgroup under the bench's own, or why there is none.
fn cgroup() -> Result<(PathBuf, Freezer), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root".into());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let v1 = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls
            .split(',')
            .any(|c| c == "freezer")
            .then(|| path.trim_start_matches('/').to_string())
    });
    let (dir, v2) = match v1 {
        Some(rel) => (Path::new("/sys/fs/cgroup/freezer").join(rel), false),
        None => {
            let rel = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or("no freezer cgroup")?;
            (Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')), true)
        }
    };
    let dir = dir.join(format!("gust-bench-freezer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let freezer = if v2 { Freezer::v2(&dir) } else { Freezer::v1(&dir) };
    freezer
        .map(|f| (dir.clone(), f))
        .ok_or_else(|| format!("{} has no freezer", dir.display()))
}

fn start(program: &str, args: &[&str], dir: &Path) -> Child {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).expect("joins the cgroup");
    child
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let (dir, freezer) = match cgroup() {
        Ok(found) => found,
        Err(why) => {
            eprintln!("freezer bench skipped: {why}");
            return;
        }
    };
    let node = which("node");
    let mut subjects: Vec<(&str, String, Vec<&str>)> = vec![("sleep (1 task)", "/bin/sleep".into(), vec!["600"])];
    if let Some(node) = &node {
        subjects.push((
            "idle node (its threads parked)",
            node.clone(),
            vec!["-e", "setInterval(() => {}, 60000)"],
        ));
    }
    let hold = dir.with_file_name(format!("gust-bench-hold-{}", std::process::id()));
    for (held, (name, program, args)) in [false, true]
        .into_iter()
        .flat_map(|h| subjects.iter().map(move |s| (h, s)))
    {
        let hold_freezer = if held {
            let _ = std::fs::create_dir_all(&hold);
            match Freezer::v1(&hold) {
                Some(f) => {
                    f.request_freeze().expect("holds an empty cgroup frozen");
                    Some(f)
                }
                None => continue,
            }
        } else {
            None
        };
        let mut child = start(program, args, &dir);
        // Node's threads start in the first moments; measure the settled process.
        std::thread::sleep(Duration::from_millis(300));
        let tasks = std::fs::read_to_string(dir.join("tasks"))
            .or_else(|_| std::fs::read_to_string(dir.join("cgroup.threads")))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let with = if held { "another cgroup held frozen" } else { "alone" };
        let mut group = c.benchmark_group(format!("freezer, {name}, {tasks} threads, {with}"));
        group.measurement_time(Duration::from_secs(3));
        group.bench_function("freeze (until FROZEN)", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    spent += freezer.freeze(Duration::from_secs(5)).expect("freezes");
                    freezer.thaw().expect("thaws");
                }
                spent
            })
        });
        group.bench_function("thaw", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    freezer.freeze(Duration::from_secs(5)).expect("freezes");
                    let start = Instant::now();
                    freezer.thaw().expect("thaws");
                    spent += start.elapsed();
                }
                spent
            })
        });
        group.finish();
        let _ = child.kill();
        let _ = child.wait();
        if let Some(f) = hold_freezer {
            let _ = f.thaw();
            let _ = std::fs::remove_dir(&hold);
        }
    }
    for _ in 0..100 {
        if std::fs::remove_dir(&dir).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    c.final_summary();
}

fn which(program: &str) -> Option<String> {
    std::env::var("PATH").ok()?.split(':').find_map(|d| {
        let p = Path::new(d).join(program);
        p.is_file().then(|| p.to_string_lossy().into_owned())
    })
}
