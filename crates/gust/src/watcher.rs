//! `gust up --watch`: which file changes redeploy the app.
//!
//! An inotify watch on every directory of the app's code (added as directories appear),
//! read by a thread of its own, each change sent on a channel the `up` loop debounces into
//! one [`crate::Platform::redeploy`]. The redeploy itself works out what changed (code
//! revisions, `revision.rs`), so the watcher only has to notice that something did.
//!
//! Left out, so that running the app does not redeploy it: the state directory, `.gust`,
//! `.git`, `__pycache__` (Python writes bytecode there when it imports), editors' swap and
//! backup files; and the inside of `node_modules`, where only the top level is watched: a
//! package installed or removed changes it, and `package.json`/`package-lock.json` change
//! with it, while a watch per directory of a dependency tree would exhaust the per-user
//! inotify limit. rustix's inotify (already a dependency) is used directly: a watcher crate
//! would need the same per-directory choices made by hand.

use rustix::fs::inotify;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

const EVENTS: inotify::WatchFlags = inotify::WatchFlags::CLOSE_WRITE
    .union(inotify::WatchFlags::CREATE)
    .union(inotify::WatchFlags::DELETE)
    .union(inotify::WatchFlags::MOVED_FROM)
    .union(inotify::WatchFlags::MOVED_TO)
    .union(inotify::WatchFlags::ATTRIB)
    .union(inotify::WatchFlags::MODIFY)
    .union(inotify::WatchFlags::DELETE_SELF)
    .union(inotify::WatchFlags::ONLYDIR)
    .union(inotify::WatchFlags::DONT_FOLLOW);

/// Directory names never watched (nor anything under them).
const SKIPPED_DIRS: &[&str] = &[".gust", ".git", "__pycache__"];

/// Whether a changed file's name is an editor's scratch file, not an edit.
fn scratch(name: &str) -> bool {
    name.starts_with(".#")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name == "4913"
}

struct Watcher {
    fd: OwnedFd,
    dirs: HashMap<i32, PathBuf>,
    state_dir: PathBuf,
}

impl Watcher {
    /// Watches `dir` and, unless it is `node_modules`, the directories under it.
    fn add_tree(&mut self, dir: &Path) {
        if dir == self.state_dir {
            return;
        }
        match inotify::add_watch(&self.fd, dir, EVENTS) {
            Ok(wd) => {
                self.dirs.insert(wd, dir.to_path_buf());
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "--watch: cannot watch a directory (changes under it are not seen)");
                return;
            }
        }
        if dir.file_name().is_some_and(|n| n == "node_modules") {
            return;
        }
        let Ok(read) = std::fs::read_dir(dir) else { return };
        for entry in read.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            if is_dir && !SKIPPED_DIRS.iter().any(|s| name == *s) {
                self.add_tree(&entry.path());
            }
        }
    }
}

/// Watches `roots` (and what they hold) and sends each changed path. Stops when the receiver
/// is dropped (at the next change it would have sent).
pub fn spawn(roots: Vec<PathBuf>, state_dir: PathBuf) -> std::io::Result<mpsc::Receiver<PathBuf>> {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC)?;
    let mut watcher = Watcher {
        fd,
        dirs: HashMap::new(),
        state_dir,
    };
    for root in &roots {
        watcher.add_tree(root);
    }
    let (tx, rx) = mpsc::channel(256);
    std::thread::Builder::new()
        .name("gust-watch".into())
        .spawn(move || run(watcher, tx))?;
    Ok(rx)
}

fn run(mut watcher: Watcher, tx: mpsc::Sender<PathBuf>) {
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
    loop {
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut new_dirs: Vec<PathBuf> = Vec::new();
        {
            let mut reader = inotify::Reader::new(&watcher.fd, &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "--watch: cannot read file changes; no longer watching");
                        return;
                    }
                };
                let flags = event.events();
                if flags.contains(inotify::ReadFlags::QUEUE_OVERFLOW) {
                    // Changes were dropped: say that something changed (the redeploy finds what).
                    changed.push(PathBuf::from("."));
                } else if let Some(dir) = watcher.dirs.get(&event.wd()) {
                    match event.file_name().map(|n| n.to_string_lossy().into_owned()) {
                        Some(name) if scratch(&name) => {}
                        Some(name) => {
                            let path = dir.join(&name);
                            let inside_modules = dir.file_name().is_some_and(|n| n == "node_modules");
                            if flags.contains(inotify::ReadFlags::ISDIR)
                                && flags.intersects(inotify::ReadFlags::CREATE | inotify::ReadFlags::MOVED_TO)
                                && !inside_modules
                                && !SKIPPED_DIRS.contains(&name.as_str())
                            {
                                new_dirs.push(path.clone());
                            }
                            if !SKIPPED_DIRS.contains(&name.as_str()) && path != watcher.state_dir {
                                changed.push(path);
                            }
                        }
                        None => {}
                    }
                }
                if flags.contains(inotify::ReadFlags::IGNORED) {
                    watcher.dirs.remove(&event.wd());
                }
                if reader.is_buffer_empty() {
                    break;
                }
            }
        }
        for d in new_dirs {
            watcher.add_tree(&d);
        }
        for path in changed {
            if tx.blocking_send(path).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Collects changes into `seen` until `want` is among them (10 s at most).
    async fn until_seen(rx: &mut mpsc::Receiver<PathBuf>, want: &Path, seen: &mut Vec<PathBuf>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
                seen.push(p.clone());
                if p == want {
                    return true;
                }
            }
        }
        false
    }

    #[tokio::test]
    async fn edits_new_directories_and_node_modules_top_level_are_seen_scratch_and_state_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let state = root.join(".gust");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(root.join("node_modules/dep/lib")).unwrap();
        std::fs::create_dir_all(root.join("__pycache__")).unwrap();
        let mut rx = spawn(vec![root.clone()], state.clone()).unwrap();
        let mut seen = Vec::new();

        // Not changes of the app: state, swap files, bytecode, deep inside node_modules.
        std::fs::write(state.join("state.db"), "x").unwrap();
        std::fs::write(root.join(".handler.js.swp"), "x").unwrap();
        std::fs::write(root.join("handler.js~"), "x").unwrap();
        std::fs::write(root.join("__pycache__/h.cpython-311.pyc"), "x").unwrap();
        std::fs::write(root.join("node_modules/dep/lib/x.js"), "x").unwrap();
        // A change: the handler.
        std::fs::write(root.join("handler.js"), "x").unwrap();
        assert!(
            until_seen(&mut rx, &root.join("handler.js"), &mut seen).await,
            "{seen:?}"
        );

        // A directory made now is watched too (written until the new watch is in place).
        std::fs::create_dir_all(root.join("src")).unwrap();
        assert!(until_seen(&mut rx, &root.join("src"), &mut seen).await, "{seen:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = false;
        while !found && Instant::now() < deadline {
            std::fs::write(root.join("src/users.js"), "y").unwrap();
            found = tokio::time::timeout(Duration::from_millis(200), async {
                while let Some(p) = rx.recv().await {
                    let hit = p == root.join("src/users.js");
                    seen.push(p);
                    if hit {
                        return;
                    }
                }
            })
            .await
            .is_ok();
        }
        assert!(found, "an edit in a new directory is seen: {seen:?}");

        // A package installed: the top level of node_modules changes.
        std::fs::create_dir_all(root.join("node_modules/newdep")).unwrap();
        assert!(
            until_seen(&mut rx, &root.join("node_modules/newdep"), &mut seen).await,
            "{seen:?}"
        );

        let excluded = [
            state.join("state.db"),
            root.join(".handler.js.swp"),
            root.join("handler.js~"),
            root.join("__pycache__/h.cpython-311.pyc"),
            root.join("node_modules/dep/lib/x.js"),
        ];
        for p in &excluded {
            assert!(!seen.contains(p), "{} was reported: {seen:?}", p.display());
        }
    }
}
