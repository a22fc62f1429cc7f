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
}

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
        };
        write_if_changed(&files.node_bootstrap, NODE_BOOTSTRAP)?;
        write_if_changed(&files.python_bootstrap, PYTHON_BOOTSTRAP)?;
        Ok(files)
    }
}

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}
