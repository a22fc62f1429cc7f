//! What starting a function process costs Gust, by how the child is made: `posix_spawn` (what
//! Gust uses: a `vfork`-style clone that shares the parent's memory until `exec`) against
//! `fork` + `exec` (what the standard library falls back to as soon as a command has code to
//! run between the two, as `PR_SET_PDEATHSIG` needs). A fork copies the parent's page tables,
//! so its cost grows with the parent's resident memory; the bench holds 15 MB (an idle `gust
//! up`) and 60 MB resident. The child is `/bin/true`, and the figure is `spawn()` alone (it
//! returns once the child has called `exec`); reaping is outside the timing.
//!
//! Run: `cargo bench -p gust-runtime --bench process_start`

use criterion::Criterion;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

fn command(with_code_before_exec: bool) -> Command {
    let mut c = Command::new("/bin/true");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if with_code_before_exec {
        // SAFETY: prctl is async-signal-safe and touches no memory shared with the parent.
        #[allow(unsafe_code)]
        unsafe {
            c.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
    }
    c
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut resident: Vec<u8> = Vec::new();
    for mb in [15usize, 60] {
        // Touch every page so it is resident (and has a page-table entry a fork must copy).
        resident.resize(mb << 20, 0);
        for i in (0..resident.len()).step_by(4096) {
            resident[i] = 1;
        }
        let mut group = c.benchmark_group(format!("process start, parent {mb} MB resident"));
        group.measurement_time(Duration::from_secs(4));
        for (name, pre_exec) in [("posix_spawn (Gust)", false), ("fork + exec (pre_exec)", true)] {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let mut cmd = command(pre_exec);
                        let start = std::time::Instant::now();
                        let mut child = cmd.spawn().expect("/bin/true starts");
                        spent += start.elapsed();
                        child.wait().expect("reaped");
                    }
                    spent
                })
            });
        }
        group.finish();
    }
    std::hint::black_box(&resident);
    c.final_summary();
}
