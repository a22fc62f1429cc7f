//! Builds `bootstrap/trim/gust_trim.c` into the shared object that prewarmed spares load to
//! give back their read-only file pages (see that file and `src/bootstrap.rs`).
//!
//! The C compiler is the one `cc` finds (`CC`, else the platform's `cc`, which Rust already
//! needs on Linux to link). Off Linux, or if the compiler fails, an empty file is embedded
//! instead and spares simply keep their pages; a failure is printed as a cargo warning.

use std::path::PathBuf;

fn main() {
    let src = "bootstrap/trim/gust_trim.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("gust_trim.so");
    let _ = std::fs::remove_file(&out);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let compiler = cc::Build::new().opt_level(2).cargo_metadata(false).get_compiler();
        let mut cmd = compiler.to_command();
        cmd.args(["-shared", "-fPIC", "-s", "-Wall", "-Wextra", "-o"])
            .arg(&out)
            .arg(src);
        match cmd.status() {
            Ok(s) if s.success() => return,
            Ok(s) => println!("cargo:warning=building {src} failed ({s}); prewarmed spares will keep their file pages"),
            Err(e) => println!(
                "cargo:warning=cannot run the C compiler for {src} ({e}); prewarmed spares will keep their file pages"
            ),
        }
    }
    std::fs::write(&out, b"").expect("write an empty gust_trim.so");
}
