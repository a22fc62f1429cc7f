//! The Node and Python bootstraps Gust ships: small Lambda Runtime API clients that load a
//! handler. They are compiled into the binary and written to the state directory at start, so
//! a single `gust` file is the whole install.
//!
//! With them goes `gust_native.so` (built from `bootstrap/native/gust_native.c` by `build.rs`),
//! which both bootstraps load at start. A prewarmed spare, once ready, gives back the resident
//! pages of its read-only file mappings with it (the interpreter's executable and libraries,
//! which stay in the page cache): a Node spare idles at about 13 MB instead of 40 MB, and the
//! pages come back as minor faults when it is given a function. Every instance sets
//! `_X_AMZN_TRACE_ID` through it, since glibc's setenv keeps every distinct value for good.

use std::path::{Path, PathBuf};

const NODE_BOOTSTRAP: &str = include_str!("../bootstrap/node/bootstrap.js");
const PYTHON_BOOTSTRAP: &str = include_str!("../bootstrap/python/bootstrap.py");
/// Empty where it could not be built (not Linux, no C compiler): the bootstraps then do without.
const NATIVE_LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gust_native.so"));
/// The instance launcher (`sandbox/mod.rs`); empty where it could not be built.
const SANDBOX_LAUNCHER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gust-sandbox"));

/// Where the shipped bootstraps were written.
#[derive(Debug, Clone)]
pub struct RuntimeFiles {
    /// The directory they were written to.
    pub dir: PathBuf,
    pub node_bootstrap: PathBuf,
    pub python_bootstrap: PathBuf,
    /// The bootstraps' native helper, `gust_native.so` (`None` where this build has none).
    pub native_library: Option<PathBuf>,
    /// Where instances' Runtime API Unix sockets go (`None`: TCP only, e.g. when the path
    /// would not fit a socket address).
    pub sockets: Option<PathBuf>,
    /// `gust-sandbox`, which starts instances confined (`None` where this build has none).
    pub sandbox_launcher: Option<PathBuf>,
}

/// A Unix socket path must fit in `sun_path` (108 bytes with its NUL); leave room for names.
const MAX_SOCKET_DIR_BYTES: usize = 90;

impl RuntimeFiles {
    /// Writes the bootstraps under `dir` (replacing older copies) and returns their paths.
    pub fn install(dir: &Path) -> std::io::Result<Self> {
        let node = dir.join("node");
        let python = dir.join("python");
        std::fs::create_dir_all(&node)?;
        std::fs::create_dir_all(&python)?;
        let files = Self {
            dir: std::path::absolute(dir)?,
            // `.cjs`: an app's `package.json` with `"type": "module"` above the state
            // directory must not turn the bootstrap into an ES module.
            node_bootstrap: node.join("bootstrap.cjs"),
            python_bootstrap: python.join("bootstrap.py"),
            native_library: (!NATIVE_LIBRARY.is_empty()).then(|| dir.join("lib").join("gust_native.so")),
            sockets: socket_dir(&dir.join("sockets")),
            sandbox_launcher: (!SANDBOX_LAUNCHER.is_empty()).then(|| dir.join("lib").join("gust-sandbox")),
        };
        write_if_changed(&files.node_bootstrap, NODE_BOOTSTRAP.as_bytes())?;
        write_if_changed(&files.python_bootstrap, PYTHON_BOOTSTRAP.as_bytes())?;
        if let Some(lib) = &files.native_library {
            std::fs::create_dir_all(dir.join("lib"))?;
            write_if_changed(lib, NATIVE_LIBRARY)?;
        }
        if let Some(launcher) = &files.sandbox_launcher {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(dir.join("lib"))?;
            write_if_changed(launcher, SANDBOX_LAUNCHER)?;
            std::fs::set_permissions(launcher, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(files)
    }
}

/// A fresh, empty socket directory (sockets left by a Gust that was killed are removed; one
/// Gust runs per state directory), or `None` when it cannot be used.
fn socket_dir(dir: &Path) -> Option<PathBuf> {
    let dir = std::path::absolute(dir).ok()?;
    if dir.as_os_str().len() > MAX_SOCKET_DIR_BYTES {
        return None;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Writes through a temporary file and a rename, so a process that has the old file open or
/// mapped keeps a whole copy.
fn write_if_changed(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_makes_an_empty_socket_directory_and_skips_paths_too_long_for_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let sockets = dir.path().join("runtime").join("sockets");
        std::fs::create_dir_all(&sockets).unwrap();
        std::fs::write(sockets.join("7.sock"), "left by a killed Gust").unwrap();
        let files = RuntimeFiles::install(&dir.path().join("runtime")).unwrap();
        let got = files.sockets.expect("a short state path gets a socket directory");
        assert_eq!(std::fs::read_dir(&got).unwrap().count(), 0, "stale sockets are removed");
        assert!(files.node_bootstrap.is_file());

        let long = dir.path().join("x".repeat(MAX_SOCKET_DIR_BYTES));
        let files = RuntimeFiles::install(&long).unwrap();
        assert!(
            files.sockets.is_none(),
            "a socket path over sun_path's size means TCP only"
        );
        assert!(files.node_bootstrap.is_file());
    }
}
