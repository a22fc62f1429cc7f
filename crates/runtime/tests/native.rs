//! The bootstraps' native helper (`bootstrap/native/gust_native.c`): what spares give back
//! with it (`trim_rules.py`) and how instances set `_X_AMZN_TRACE_ID` (`native_env.py`),
//! each checked in a real process.
#![cfg(target_os = "linux")]

use gust_runtime::RuntimeFiles;
use std::process::Command;

fn run_check(script: &str, args: &[&std::path::Path]) {
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3").arg(&path).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn native_library(dir: &std::path::Path) -> std::path::PathBuf {
    let files = RuntimeFiles::install(dir).unwrap();
    files
        .native_library
        .expect("Linux builds ship gust_native.so (a C compiler is needed to link Rust here anyway)")
}

#[test]
fn trim_gives_back_read_only_file_pages_and_keeps_written_ones() {
    let dir = tempfile::tempdir().unwrap();
    let lib = native_library(dir.path());
    run_check("trim_rules.py", &[&lib, dir.path()]);
}

#[test]
fn trace_env_is_set_for_getenv_and_children_without_keeping_old_values() {
    let dir = tempfile::tempdir().unwrap();
    let lib = native_library(dir.path());
    run_check("native_env.py", &[&lib]);
}
