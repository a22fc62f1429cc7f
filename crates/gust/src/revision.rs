//! Code revisions: what tells a redeploy that a function's code changed.
//!
//! Functions run from their code directory as it is on disk, so a warm instance keeps the
//! code it loaded while the files under it change. A redeploy gives a function a new pool
//! when its spec, its secrets or its code directory's revision changed, and keeps its warm
//! instances otherwise.
//!
//! The revision is a digest of every file's path, size and modification time under the code
//! directory (symbolic links not followed; `.gust`, `.git`, `__pycache__` and the state directory left out),
//! so a handler edit, a new dependency under `node_modules` or a rebuilt `bootstrap` is a new
//! revision. It is per directory, not per file: a function may import any file of its
//! directory (another function's handler module included), so any change there redeploys
//! every function that runs from it, and functions in other directories keep their warm
//! instances. Reading metadata, not contents, keeps it cheap (a directory of 10,000 files is a
//! few milliseconds of `stat`s); a content digest is what a deployed bundle will carry.

use gust_model::App;
use gust_store::CodeStore;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where deployed functions run from (`--code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CodeMode {
    /// From an immutable snapshot of their code taken at each deploy
    /// (`gust_store::CodeStore`), as Lambda runs a package: an edit reaches instances only
    /// when it is deployed, and a refused version never runs.
    #[default]
    Snapshot,
    /// From the working directory as it is: a cold start loads the files as they are on disk
    /// at that moment (a redeploy still replaces warm instances whose code changed).
    InPlace,
}

/// An app made ready to deploy: its functions' code directories (snapshot trees, or the
/// working directory in place), each function's code revision, and what to keep.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub app: App,
    pub revisions: HashMap<String, String>,
    /// The snapshot trees this version runs from (empty in place).
    pub trees: HashSet<String>,
}

/// Resolves `app`'s code: in place, revisions from metadata (`of_app`); with a store, a
/// snapshot per distinct code directory, the function's `code_dir` pointed at its tree and
/// the tree's digest as its revision. Blocking file work: call it off the async threads.
pub fn resolve(
    mut app: App,
    store: Option<&Arc<CodeStore>>,
    state_dir: &Path,
) -> Result<Resolved, gust_store::CodeError> {
    let Some(store) = store else {
        let revisions = of_app(&app, state_dir);
        return Ok(Resolved {
            app,
            revisions,
            trees: HashSet::new(),
        });
    };
    let mut by_dir: HashMap<(PathBuf, Vec<String>), gust_store::Snapshot> = HashMap::new();
    let mut revisions = HashMap::new();
    let mut trees = HashSet::new();
    for f in app.functions.values_mut() {
        let key = (f.code_dir.clone(), f.package.clone());
        let snap = match by_dir.get(&key) {
            Some(s) => s.clone(),
            None => {
                let patterns = gust_store::Patterns::new(&f.package).map_err(|e| gust_store::CodeError::Io {
                    path: f.code_dir.clone(),
                    source: std::io::Error::other(format!("function `{}`: package: {e}", f.name)),
                })?;
                let s = store.snapshot_with(&f.code_dir, &[state_dir.to_path_buf()], &patterns)?;
                by_dir.insert(key, s.clone());
                s
            }
        };
        f.code_dir = snap.path.clone();
        revisions.insert(f.name.to_string(), snap.digest.clone());
        trees.insert(snap.digest);
    }
    Ok(Resolved { app, revisions, trees })
}

/// Directory names never part of a revision.
const SKIPPED: &[&str] = &[".gust", ".git", "__pycache__"];

/// Each function's code revision, by function name (one walk per distinct code directory).
pub fn of_app(app: &App, state_dir: &Path) -> HashMap<String, String> {
    let mut by_dir: HashMap<PathBuf, String> = HashMap::new();
    let mut out = HashMap::new();
    for f in app.functions.values() {
        let revision = by_dir
            .entry(f.code_dir.clone())
            .or_insert_with(|| of_dir(&f.code_dir, state_dir))
            .clone();
        out.insert(f.name.to_string(), revision);
    }
    out
}

/// The revision of one directory (see the module docs).
pub fn of_dir(dir: &Path, state_dir: &Path) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut entries = Vec::new();
    walk(dir, dir, state_dir, &mut entries);
    entries.sort();
    for e in &entries {
        e.hash(&mut hasher);
    }
    format!("{:016x}-{}", hasher.finish(), entries.len())
}

fn walk(root: &Path, dir: &Path, state_dir: &Path, out: &mut Vec<(String, u64, i128)>) {
    let Ok(read) = std::fs::read_dir(dir) else { return };
    for entry in read.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
        if meta.is_dir() {
            let name = entry.file_name();
            if SKIPPED.iter().any(|s| name == *s) || path == state_dir {
                continue;
            }
            walk(root, &path, state_dir, out);
        } else {
            use std::os::unix::fs::MetadataExt;
            let mtime = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
            out.push((rel, meta.len(), mtime));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_a_new_file_or_a_removal_is_a_new_revision_and_state_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".gust");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(dir.path().join("a.js"), "one").unwrap();
        let first = of_dir(dir.path(), &state);
        assert_eq!(first, of_dir(dir.path(), &state), "same files, same revision");

        std::fs::write(state.join("state.db"), "busy").unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/index"), "x").unwrap();
        assert_eq!(first, of_dir(dir.path(), &state), "state and .git are not code");

        std::fs::write(dir.path().join("a.js"), "two!").unwrap();
        let edited = of_dir(dir.path(), &state);
        assert_ne!(first, edited, "an edit");

        std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
        std::fs::write(dir.path().join("node_modules/x/index.js"), "").unwrap();
        let added = of_dir(dir.path(), &state);
        assert_ne!(edited, added, "a new dependency");

        std::fs::remove_file(dir.path().join("node_modules/x/index.js")).unwrap();
        assert_ne!(added, of_dir(dir.path(), &state), "a removal");
    }
}
