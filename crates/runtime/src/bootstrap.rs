//! The Node and Python bootstraps Gust ships: small Lambda Runtime API clients that load a
//! handler. They are compiled into the binary and written to the state directory at start, so
//! a single `gust` file is the whole install.

use std::path::{Path, PathBuf};

const NODE_BOOTSTRAP: &str = include_str!("../bootstrap/node/bootstrap.js");
const PYTHON_BOOTSTRAP: &str = include_str!("../bootstrap/python/bootstrap.py");

/// Where the shipped bootstraps were written.
#[derive(Debug, Clone)]
pub struct RuntimeFiles {
    pub node_bootstrap: PathBuf,
    pub python_bootstrap: PathBuf,
    /// Where instances' Runtime API Unix sockets go (`None`: TCP only, e.g. when the path
    /// would not fit a socket address).
    pub sockets: Option<PathBuf>,
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
            // `.cjs`: an app's `package.json` with `"type": "module"` above the state
            // directory must not turn the bootstrap into an ES module.
            node_bootstrap: node.join("bootstrap.cjs"),
            python_bootstrap: python.join("bootstrap.py"),
            sockets: socket_dir(&dir.join("sockets")),
        };
        write_if_changed(&files.node_bootstrap, NODE_BOOTSTRAP)?;
        write_if_changed(&files.python_bootstrap, PYTHON_BOOTSTRAP)?;
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

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
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
