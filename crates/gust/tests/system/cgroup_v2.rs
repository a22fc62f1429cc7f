//! The sandbox on cgroup v2. This project's machines mount the memory, pids and freezer
//! controllers as cgroup v1, so the v2 path (`sandbox/cgroup.rs`'s `Layout::V2`, the
//! `cgroup.freeze` freezer) cannot run on the host: `scripts/cgroup2-vm-test.sh` boots a VM
//! (QEMU under TCG) whose only cgroup tree is v2 and runs `gust up --sandbox strict` there,
//! with the `lambda-sh` fixture as a hostile function. This test runs it with the binaries
//! cargo built and asserts on each check the guest reported.
//!
//! It is never skipped: without QEMU (and no way to install it) the script fails, and so
//! does this test, saying why.

use crate::support::*;
use std::path::Path;

/// The checks the guest runs for each Gust (the script's `CHECKS`): once as root in the root
/// cgroup, once as an unprivileged user in a subtree delegated to it (`-delegated`, systemd's
/// `Delegate=yes` model). Each must say ok.
const CHECKS: &[&str] = &[
    "doctor",
    "startup",
    "memory-max",
    "freezer",
    "memory-child",
    "memory-oom",
    "pids",
    "leftovers",
    "shutdown",
];

#[test]
fn the_sandbox_enforces_its_limits_and_freezes_on_a_cgroup_v2_host() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cgroup2-vm-test.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_gust"))
        .arg(fixture_bin("lambda-sh"))
        .arg(fixture_bin("lambda-echo"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("exit {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
    assert!(
        !stderr.contains("cannot install") && !stderr.contains("could not install"),
        "the cgroup v2 VM test needs qemu-system-x86, linux-image-amd64 and busybox-static: {report}"
    );
    let expected = std::iter::once("vm-cgroup2-only".to_string())
        .chain(CHECKS.iter().map(|c| c.to_string()))
        .chain(CHECKS.iter().map(|c| format!("{c}-delegated")));
    for check in expected {
        let line = format!("GUSTVM CHECK {check} ok");
        assert!(
            stdout.lines().any(|l| l == line),
            "cgroup v2 check `{check}` did not pass: {report}"
        );
    }
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("every check passed"), "{report}");
}
