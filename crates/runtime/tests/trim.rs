//! The shared object prewarmed spares load to give back their read-only file pages
//! (`bootstrap/trim/gust_trim.c`): its rules, checked in a real process (`trim_rules.py`).
#![cfg(target_os = "linux")]

use gust_runtime::RuntimeFiles;
use std::process::Command;

#[test]
fn trim_gives_back_read_only_file_pages_and_keeps_written_ones() {
    let dir = tempfile::tempdir().unwrap();
    let files = RuntimeFiles::install(dir.path()).unwrap();
    let lib = files
        .trim_library
        .expect("Linux builds ship gust_trim.so (a C compiler is needed to link Rust here anyway)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/trim_rules.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&lib)
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "trim_rules.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
