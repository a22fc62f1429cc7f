//! The system calls a function may not make, compiled once into seccomp BPF programs that
//! `gust-sandbox` loads just before it starts the function.
//!
//! A deny list, as Docker's and systemd's defaults: runtimes need a long and changing list of
//! calls (io, threads, timers, sockets), while the calls that reach past the instance are few
//! and stable. Each is refused with `EPERM`, so runtimes see an ordinary error instead of
//! being killed. `clone3` answers `ENOSYS`: its flags sit in memory seccomp cannot read, and
//! glibc falls back to `clone`, whose flags are checked (no new user namespace). The launcher
//! adds one program of its own: x86-64's x32 numbers are refused as a whole.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Calls that reach the host, other processes or the kernel's configuration.
const DENIED: &[&str] = &[
    // file systems and mounts
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "quotactl",
    "name_to_handle_at",
    "open_by_handle_at",
    // namespaces
    "unshare",
    "setns",
    // other processes' memory and state
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    // the kernel
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "fanotify_init",
    "syslog",
    "acct",
    "reboot",
    "swapon",
    "swapoff",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "vhangup",
    "iopl",
    "ioperm",
    "personality",
    // io_uring runs operations that seccomp never sees
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

const CLONE_NEWUSER: u64 = 0x1000_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn arch() -> Result<TargetArch, String> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else {
        Err("seccomp programs are built for x86_64 and aarch64 only".into())
    }
}

/// The file `gust-sandbox --seccomp` reads: each program as `[u32 count][count * 8 bytes]`.
pub(crate) fn programs() -> Result<Vec<u8>, String> {
    let arch = arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in DENIED {
        if let Some(nr) = syscall_number(name) {
            rules.insert(nr, vec![]);
        }
    }
    // clone with CLONE_NEWUSER (the flags are the first argument on both architectures).
    let new_user = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(CLONE_NEWUSER),
        CLONE_NEWUSER,
    )
    .map_err(|e| e.to_string())?;
    if let Some(nr) = syscall_number("clone") {
        rules.insert(nr, vec![SeccompRule::new(vec![new_user]).map_err(|e| e.to_string())?]);
    }
    let deny = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(EPERM), arch)
        .map_err(|e| e.to_string())?;
    let mut clone3 = BTreeMap::new();
    if let Some(nr) = syscall_number("clone3") {
        clone3.insert(nr, vec![]);
    }
    let no_clone3 = SeccompFilter::new(clone3, SeccompAction::Allow, SeccompAction::Errno(ENOSYS), arch)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for filter in [deny, no_clone3] {
        let program: BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        out.extend_from_slice(&(program.len() as u32).to_le_bytes());
        for ins in &program {
            out.extend_from_slice(&ins.code.to_le_bytes());
            out.push(ins.jt);
            out.push(ins.jf);
            out.extend_from_slice(&ins.k.to_le_bytes());
        }
    }
    Ok(out)
}

/// System call numbers of the calls above, for the architectures Gust builds for.
fn syscall_number(name: &str) -> Option<i64> {
    #[cfg(target_arch = "x86_64")]
    const TABLE: &[(&str, i64)] = &[
        ("mount", 165),
        ("umount2", 166),
        ("pivot_root", 155),
        ("chroot", 161),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("quotactl", 179),
        ("name_to_handle_at", 303),
        ("open_by_handle_at", 304),
        ("unshare", 272),
        ("setns", 308),
        ("ptrace", 101),
        ("process_vm_readv", 310),
        ("process_vm_writev", 311),
        ("kcmp", 312),
        ("pidfd_getfd", 438),
        ("kexec_load", 246),
        ("kexec_file_load", 320),
        ("init_module", 175),
        ("finit_module", 313),
        ("delete_module", 176),
        ("bpf", 321),
        ("perf_event_open", 298),
        ("keyctl", 250),
        ("add_key", 248),
        ("request_key", 249),
        ("userfaultfd", 323),
        ("fanotify_init", 300),
        ("syslog", 103),
        ("acct", 163),
        ("reboot", 169),
        ("swapon", 167),
        ("swapoff", 168),
        ("settimeofday", 164),
        ("clock_settime", 227),
        ("clock_adjtime", 305),
        ("vhangup", 153),
        ("iopl", 172),
        ("ioperm", 173),
        ("personality", 135),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("clone", 56),
        ("clone3", 435),
    ];
    #[cfg(target_arch = "aarch64")]
    const TABLE: &[(&str, i64)] = &[
        ("mount", 40),
        ("umount2", 39),
        ("pivot_root", 41),
        ("chroot", 51),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("quotactl", 60),
        ("name_to_handle_at", 264),
        ("open_by_handle_at", 265),
        ("unshare", 97),
        ("setns", 268),
        ("ptrace", 117),
        ("process_vm_readv", 270),
        ("process_vm_writev", 271),
        ("kcmp", 272),
        ("pidfd_getfd", 438),
        ("kexec_load", 104),
        ("kexec_file_load", 294),
        ("init_module", 105),
        ("finit_module", 273),
        ("delete_module", 106),
        ("bpf", 280),
        ("perf_event_open", 241),
        ("keyctl", 219),
        ("add_key", 217),
        ("request_key", 218),
        ("userfaultfd", 282),
        ("fanotify_init", 262),
        ("syslog", 116),
        ("acct", 89),
        ("reboot", 142),
        ("swapon", 224),
        ("swapoff", 225),
        ("settimeofday", 170),
        ("clock_settime", 112),
        ("clock_adjtime", 266),
        ("vhangup", 58),
        ("personality", 92),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("clone", 220),
        ("clone3", 435),
    ];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const TABLE: &[(&str, i64)] = &[];
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denied_call_has_a_number_and_the_programs_parse() {
        for name in DENIED {
            if cfg!(target_arch = "aarch64") && matches!(*name, "iopl" | "ioperm") {
                continue; // x86 only
            }
            assert!(syscall_number(name).is_some(), "{name} has no number");
        }
        let bytes = programs().unwrap();
        let mut at = 0;
        let mut count = 0;
        while at < bytes.len() {
            let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            assert!(n > 0);
            at += 4 + n * 8;
            count += 1;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(count, 2);
    }
}
