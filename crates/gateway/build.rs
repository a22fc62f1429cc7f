//! Embeds the web console's files (`console/`) in the library: writes the table
//! `console_assets.rs` (path, bytes) that `admin/console.rs` serves, so that every file added
//! there is part of the binary with no list to keep by hand, and nothing is fetched or built
//! with npm.

use std::path::Path;

/// File kinds served; anything else in the directory (notes, editor files) is left out.
const SERVED: &[&str] = &["html", "js", "css", "LICENSE", "svg", "png", "ico"];

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    collect(&dir, &dir, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for rel in &files {
        println!("cargo:rerun-if-changed={}", dir.join(rel).display());
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?}) as &[u8]),\n",
            dir.join(rel).display().to_string()
        ));
    }
    out.push(']');
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("console_assets.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
        if SERVED.contains(&ext) {
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            files.push(rel);
        }
    }
}
