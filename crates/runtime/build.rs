//! Builds `bootstrap/native/gust_native.c` into the shared object Gust's Node and Python
//! bootstraps load (see that file and `src/bootstrap.rs`): spares give back their read-only
//! file pages with it, and every instance sets `_X_AMZN_TRACE_ID` without glibc's setenv leak.
//!
//! The C compiler is the one `cc` finds (`CC`, else the platform's `cc`, which Rust already
//! needs on Linux to link). Off Linux, or if the compiler fails, an empty file is embedded
//! instead and the bootstraps fall back to what they can do alone; a failure is printed as a cargo warning.

use std::path::PathBuf;

fn main() {
    build_sandbox_launcher();
    let src = "bootstrap/native/gust_native.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("gust_native.so");
    let _ = std::fs::remove_file(&out);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let compiler = cc::Build::new().opt_level(2).cargo_metadata(false).get_compiler();
        let mut cmd = compiler.to_command();
        cmd.args(["-shared", "-fPIC", "-s", "-Wall", "-Wextra", "-o"])
            .arg(&out)
            .arg(src);
        match cmd.status() {
            Ok(s) if s.success() => return,
            Ok(s) => println!("cargo:warning=building {src} failed ({s}); the bootstraps will run without it"),
            Err(e) => {
                println!("cargo:warning=cannot run the C compiler for {src} ({e}); the bootstraps will run without it")
            }
        }
    }
    std::fs::write(&out, b"").expect("write an empty gust_native.so");
}

/// Builds `bootstrap/native/gust_sandbox.c` into `gust-sandbox`, statically linked where the
/// C library allows (no dynamic loader on every cold start), else dynamically. Off Linux, or
/// if the compiler fails, an empty file is embedded and Gust runs functions unconfined
/// (saying so at start; `--sandbox strict` refuses).
fn build_sandbox_launcher() {
    let src = "bootstrap/native/gust_sandbox.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("gust-sandbox");
    let _ = std::fs::remove_file(&out);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let compiler = cc::Build::new().opt_level(2).cargo_metadata(false).get_compiler();
        for link in [&["-static"][..], &[][..]] {
            let mut cmd = compiler.to_command();
            cmd.args(["-s", "-Wall", "-Wextra", "-o"]).arg(&out).arg(src).args(link);
            match cmd.output() {
                Ok(o) if o.status.success() => return,
                Ok(o) => println!(
                    "cargo:warning=building {src} {link:?} failed: {}",
                    String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("")
                ),
                Err(e) => println!("cargo:warning=cannot run the C compiler for {src} ({e})"),
            }
        }
    }
    std::fs::write(&out, b"").expect("write an empty gust-sandbox");
}
