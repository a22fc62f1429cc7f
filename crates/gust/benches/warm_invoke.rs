//! Micro-benchmarks of the warm invoke hot path: pool acquire of an idle instance, the Runtime
//! API round trip (`/next` answered with the event, `/response` received) and the release,
//! through a real [`gust::Platform`] with one `provided.al2023` function (the `lambda-echo`
//! fixture, official `lambda_runtime`); and the pool's acquire + release of that warm instance
//! alone.
//!
//! Run: `cargo bench -p gust --bench warm_invoke`
//!
//! The `lambda-echo` binary: the path in `GUST_BENCH_ECHO` if set; else this bench runs
//! `cargo build --release -p gust-fixtures --bin lambda-echo` (same `CARGO_TARGET_DIR`, a no-op
//! when up to date) and takes `lambda-echo` from the directory of this build's `gust` binary
//! (`<target>/release/`).

use criterion::Criterion;
use gust::{Platform, PlatformConfig};
use gust_runtime::{Invocation, Trigger};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"[app]
name = "bench-warm-invoke"

[functions.echo]
runtime = "provided.al2023"
dir = "echo"
memory = 128
timeout = 5
scaling = { min_instances = 0, max_instances = 1, idle_timeout = 3600, max_queue = 100 }
"#;

fn echo_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("GUST_BENCH_ECHO") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "GUST_BENCH_ECHO={} is not a file", p.display());
        return p;
    }
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "--release",
            "-p",
            "gust-fixtures",
            "--bin",
            "lambda-echo",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the lambda-echo fixture failed");
    let p = std::path::Path::new(env!("CARGO_BIN_EXE_gust"))
        .parent()
        .expect("the gust binary is in a directory")
        .join("lambda-echo");
    assert!(p.is_file(), "{} was not built; set GUST_BENCH_ECHO", p.display());
    p
}

fn invocation() -> Invocation {
    Invocation::new("echo", "{}", Trigger::Direct)
}

fn warm_invoke(c: &mut Criterion, rt: &tokio::runtime::Runtime, platform: &Platform) {
    let mut group = c.benchmark_group("invoker");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("warm invoke, provided.al2023 lambda-echo", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let out = platform.invoker.invoke(invocation()).await.expect("invoke");
                    debug_assert!(out.function_error.is_none());
                    black_box(out);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Pool acquire + release alone: lending the warm instance and taking it back, no invocation.
fn pool_acquire_release(c: &mut Criterion, rt: &tokio::runtime::Runtime, platform: &Platform) {
    let pool = platform.invoker.pool("echo").expect("the echo function is deployed");
    let mut group = c.benchmark_group("pool");
    group.bench_function("acquire + release, one warm instance", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let lease = pool
                        .acquire(Instant::now() + Duration::from_secs(1))
                        .await
                        .expect("acquire");
                    debug_assert!(!lease.cold, "the instance is warm");
                    pool.release(black_box(lease.instance));
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn main() {
    let echo = echo_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("gust.toml"), MANIFEST).expect("manifest written");
    std::fs::create_dir(dir.path().join("echo")).expect("function dir");
    std::os::unix::fs::symlink(&echo, dir.path().join("echo").join("bootstrap")).expect("bootstrap symlink");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let platform = rt.block_on(async {
        let mut config = PlatformConfig::new(dir.path());
        config.state_dir = Some(dir.path().join(".gust"));
        config.gateway_addr = "127.0.0.1:0".parse().unwrap();
        config.admin_addr = "127.0.0.1:0".parse().unwrap();
        config.prewarm_per_runtime = 0;
        Platform::start(config).await.expect("platform starts")
    });
    // Warm: the first invoke spawns the instance (a cold start); the next ones reuse it.
    rt.block_on(async {
        for _ in 0..100 {
            let out = platform.invoker.invoke(invocation()).await.expect("invoke");
            assert!(
                out.function_error.is_none(),
                "echo failed: {}",
                String::from_utf8_lossy(&out.payload)
            );
        }
    });
    let stats = platform.invoker.pool_stats("echo").expect("echo is deployed");
    assert_eq!(stats.total, 1, "one warm instance");

    let mut c = Criterion::default().configure_from_args();
    warm_invoke(&mut c, &rt, &platform);
    pool_acquire_release(&mut c, &rt, &platform);
    c.final_summary();

    rt.block_on(platform.shutdown());
}
