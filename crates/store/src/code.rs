//! Deployed code, immutable and content-addressed: what makes a deployment a fixed version
//! and not "whatever the working directory holds when an instance starts".
//!
//! [`CodeStore::snapshot`] copies a code directory into the store: every file's bytes once,
//! under their SHA-256 (`objects/`), and the directory as a tree of hard links to those
//! objects (`trees/<digest>/`, the digest covering every path, kind, mode and content). A
//! function runs from its tree, so an edit in the working directory reaches no instance
//! until it is deployed, and a broken edit that a deploy refused never runs. The same bytes
//! give the same tree, so an unchanged directory is the same version (its functions keep
//! their warm instances); a changed file costs one new object, its tree only links.
//!
//! Cheap to repeat: a file whose size, mtime, ctime, inode and device are what the index
//! recorded is not read again (`index.json`, kept across restarts). Objects are read-only
//! (0444, or 0555 for executables, the mode a hard link shares), so a function that could
//! write its code (trusted mode) cannot change another version's.
//!
//! Limits as Lambda's: a tree holds at most [`MAX_TREE_BYTES`] (250 MB unzipped, as a
//! Lambda deployment package); a bigger directory is refused with the largest
//! subdirectories named, so the user can leave out what is not code. Symbolic links are kept
//! as links (their targets unchanged). Left out: `.git`, `.gust`, `.serverless`,
//! `__pycache__`, paths the caller names (the state directory) and what the package
//! [`Patterns`] leave out.
//!
//! Garbage: [`CodeStore::retain`] removes the trees no kept version uses, then every object
//! no tree links to (its link count is back to 1).

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Lambda's limit for a deployment package, unzipped.
pub const MAX_TREE_BYTES: u64 = 250 * 1024 * 1024;

/// Directory names never part of deployed code.
pub const SKIPPED: &[&str] = &[".git", ".gust", ".serverless", "__pycache__"];

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir} holds {size_mb} MB of code, more than a deployment may ({limit_mb} MB, Lambda's unzipped limit); the largest parts: {largest}. Leave out what is not code (give the function its own `dir`)")]
    TooLarge {
        dir: PathBuf,
        size_mb: u64,
        limit_mb: u64,
        largest: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CodeError + '_ {
    move |source| CodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What goes into a snapshot, by path: serverless.yml's `package.patterns` (and gust.toml's
/// `package`). Every file is in unless a pattern says otherwise; patterns apply in order, the
/// last one that matches a file decides; `!glob` leaves out, `glob` brings back. Globs are
/// relative to the code directory, `*` stays within one path segment and `**` crosses them;
/// a pattern that names a directory (`!tests`) covers what is under it.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    rules: Vec<(bool, globset::GlobMatcher, globset::GlobMatcher)>,
}

impl Patterns {
    /// Compiles `patterns`; the error names the pattern that is not a glob.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let glob = |p: &str| {
            globset::GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| format!("`{p}` is not a valid pattern: {e}"))
        };
        let mut rules = Vec::new();
        for p in patterns {
            let (include, body) = match p.strip_prefix('!') {
                Some(rest) => (false, rest),
                None => (true, p.as_str()),
            };
            let body = body.trim_start_matches("./").trim_end_matches('/');
            if body.is_empty() {
                return Err(format!("`{p}` is an empty pattern"));
            }
            rules.push((include, glob(body)?, glob(&format!("{body}/**"))?));
        }
        Ok(Self { rules })
    }

    /// Whether the file at `rel` (relative to the code directory) is part of the code.
    pub fn includes(&self, rel: &str) -> bool {
        let mut included = true;
        for (include, glob, under) in &self.rules {
            if glob.is_match(rel) || under.is_match(rel) {
                included = *include;
            }
        }
        included
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A snapshot of one directory: where its tree is and its digest (the code's version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub path: PathBuf,
    pub digest: String,
    pub bytes: u64,
    pub files: usize,
}

/// What the index knows of one source file: its metadata when it was hashed, and the hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Seen {
    size: u64,
    mtime: i128,
    ctime: i128,
    ino: u64,
    dev: u64,
    sha: String,
}

/// One entry of a tree, in path order.
enum Entry {
    File { rel: String, object: PathBuf, exec: bool },
    Link { rel: String, target: PathBuf },
    Dir { rel: String },
}

pub struct CodeStore {
    root: PathBuf,
    index: Mutex<HashMap<PathBuf, Seen>>,
    /// Held by a snapshot and by [`CodeStore::retain`]: an object a snapshot has just made
    /// (or found) is not linked into its tree yet, and would look like garbage.
    busy: Mutex<()>,
}

impl std::fmt::Debug for CodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeStore").field("root", &self.root).finish()
    }
}

impl CodeStore {
    /// Opens (or creates) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, CodeError> {
        for d in ["objects", "trees"] {
            std::fs::create_dir_all(root.join(d)).map_err(io(root))?;
        }
        // The store's directories are traversable: sandboxed instances (users of their own)
        // read their code from a tree.
        for d in [root.to_path_buf(), root.join("objects"), root.join("trees")] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).map_err(io(&d))?;
        }
        let index = std::fs::read(root.join("index.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(PathBuf, Seen)>>(&b).ok())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        Ok(Self {
            root: root.to_path_buf(),
            index: Mutex::new(index),
            busy: Mutex::new(()),
        })
    }

    /// Snapshots `dir`, leaving out [`SKIPPED`] names and the paths in `exclude`.
    pub fn snapshot(&self, dir: &Path, exclude: &[PathBuf]) -> Result<Snapshot, CodeError> {
        self.snapshot_with(dir, exclude, &Patterns::default())
    }

    /// [`CodeStore::snapshot`] with only the files `patterns` include.
    pub fn snapshot_with(&self, dir: &Path, exclude: &[PathBuf], patterns: &Patterns) -> Result<Snapshot, CodeError> {
        let _busy = self.busy.lock().expect("code store lock");
        let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
        let exclude: Vec<PathBuf> = exclude
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .chain([self.root.clone()])
            .collect();
        let mut entries = Vec::new();
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        let mut bytes = 0u64;
        self.walk(&dir, &dir, &exclude, patterns, &mut entries, &mut sizes, &mut bytes)?;
        // Directories whose every file was left out by the patterns are left out too.
        let used: HashSet<String> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::File { rel, .. } | Entry::Link { rel, .. } => Some(rel.clone()),
                Entry::Dir { .. } => None,
            })
            .flat_map(|rel| {
                let mut parents = Vec::new();
                let mut p = Path::new(&rel).parent();
                while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                    parents.push(d.to_string_lossy().into_owned());
                    p = d.parent();
                }
                parents
            })
            .collect();
        if !patterns.is_empty() {
            entries.retain(|e| !matches!(e, Entry::Dir { rel } if !used.contains(rel)));
        }
        if bytes > MAX_TREE_BYTES {
            let mut largest: Vec<(&String, &u64)> = sizes.iter().collect();
            largest.sort_by(|a, b| b.1.cmp(a.1));
            let largest = largest
                .iter()
                .take(3)
                .map(|(name, size)| format!("{name} ({} MB)", *size >> 20))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CodeError::TooLarge {
                dir,
                size_mb: bytes >> 20,
                limit_mb: MAX_TREE_BYTES >> 20,
                largest,
            });
        }
        let files = entries.iter().filter(|e| matches!(e, Entry::File { .. })).count();
        let mut h = Sha256::new();
        for e in &entries {
            match e {
                Entry::File { rel, object, exec } => {
                    h.update(format!("f\0{rel}\0{exec}\0{}\n", object.display()).as_bytes());
                }
                Entry::Link { rel, target } => h.update(format!("l\0{rel}\0{}\n", target.display()).as_bytes()),
                Entry::Dir { rel } => h.update(format!("d\0{rel}\n").as_bytes()),
            }
        }
        let digest = hex(&h.finalize())[..32].to_string();
        let path = self.root.join("trees").join(&digest);
        if !path.is_dir() {
            self.build(&path, &entries)?;
        }
        self.save_index();
        Ok(Snapshot {
            path,
            digest,
            bytes,
            files,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        root: &Path,
        dir: &Path,
        exclude: &[PathBuf],
        patterns: &Patterns,
        out: &mut Vec<Entry>,
        sizes: &mut BTreeMap<String, u64>,
        bytes: &mut u64,
    ) -> Result<(), CodeError> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(Result::ok)
            .collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let path = entry.path();
            let name = entry.file_name();
            if SKIPPED.iter().any(|s| name == *s) || exclude.iter().any(|x| x == &path) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            let top = rel.split('/').next().unwrap_or_default().to_string();
            if !meta.is_dir() && !patterns.includes(&rel) {
                continue;
            }
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                out.push(Entry::Link { rel, target });
            } else if meta.is_dir() {
                out.push(Entry::Dir { rel });
                self.walk(root, &path, exclude, patterns, out, sizes, bytes)?;
            } else if meta.is_file() {
                *bytes += meta.len();
                *sizes.entry(top).or_default() += meta.len();
                if *bytes > MAX_TREE_BYTES {
                    // Keep counting sizes without hashing: the error names the largest parts.
                    continue;
                }
                let exec = meta.permissions().mode() & 0o111 != 0;
                let sha = self.hash_of(&path, &meta)?;
                let object = self.object(&path, &sha, exec)?;
                out.push(Entry::File { rel, object, exec });
            }
            // Sockets, fifos and devices are not code.
        }
        Ok(())
    }

    /// The file's SHA-256, from the index when its metadata did not change.
    fn hash_of(&self, path: &Path, meta: &std::fs::Metadata) -> Result<String, CodeError> {
        let seen = Seen {
            size: meta.len(),
            mtime: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
            dev: meta.dev(),
            sha: String::new(),
        };
        if let Some(known) = self.index.lock().expect("index lock").get(path) {
            let unchanged = (known.size, known.mtime, known.ctime, known.ino, known.dev)
                == (seen.size, seen.mtime, seen.ctime, seen.ino, seen.dev);
            if unchanged {
                return Ok(known.sha.clone());
            }
        }
        let mut file = std::fs::File::open(path).map_err(io(path))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io(path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let sha = hex(&h.finalize());
        self.index.lock().expect("index lock").insert(
            path.to_path_buf(),
            Seen {
                sha: sha.clone(),
                ..seen
            },
        );
        Ok(sha)
    }

    /// The object for `sha` (copied from `path` if the store lacks it), read-only.
    fn object(&self, path: &Path, sha: &str, exec: bool) -> Result<PathBuf, CodeError> {
        let name = if exec { format!("{sha}.x") } else { sha.to_string() };
        let dir = self.root.join("objects").join(&sha[..2]);
        let object = dir.join(name);
        if object.is_file() {
            return Ok(object);
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
        std::fs::copy(path, &tmp).map_err(io(path))?;
        let mode = if exec { 0o555 } else { 0o444 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
        // The bytes copied may not be the bytes hashed if the file changed in between: check.
        if hash_file(&tmp).map_err(io(&tmp))? != sha {
            let _ = std::fs::remove_file(&tmp);
            self.index.lock().expect("index lock").remove(path);
            return Err(CodeError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("the file changed while it was being deployed; deploy again"),
            });
        }
        std::fs::rename(&tmp, &object).map_err(io(&object))?;
        Ok(object)
    }

    /// Builds a tree at `path` from `entries` (in a temporary directory renamed into place).
    fn build(&self, path: &Path, entries: &[Entry]) -> Result<(), CodeError> {
        let tmp = self
            .root
            .join("trees")
            .join(format!(".tmp-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
        let result = (|| {
            for e in entries {
                match e {
                    Entry::Dir { rel } => {
                        let d = tmp.join(rel);
                        std::fs::create_dir(&d).map_err(io(&d))?;
                        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).map_err(io(&d))?;
                    }
                    Entry::File { rel, object, .. } => {
                        let f = tmp.join(rel);
                        std::fs::hard_link(object, &f).map_err(io(&f))?;
                    }
                    Entry::Link { rel, target } => {
                        let f = tmp.join(rel);
                        std::os::unix::fs::symlink(target, &f).map_err(io(&f))?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match std::fs::rename(&tmp, path) {
            Ok(()) => Ok(()),
            // Another snapshot of the same content got there first: the same tree.
            Err(_) if path.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(io(path)(e))
            }
        }
    }

    fn save_index(&self) {
        let list: Vec<(PathBuf, Seen)> = self
            .index
            .lock()
            .expect("index lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let tmp = self.root.join(format!(".index-{}", std::process::id()));
        if let Ok(bytes) = serde_json::to_vec(&list) {
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, self.root.join("index.json"));
            }
        }
    }

    /// Removes every tree whose digest is not in `keep`, then every object no tree links to.
    pub fn retain(&self, keep: &HashSet<String>) -> Result<(), CodeError> {
        let _busy = self.busy.lock().expect("code store lock");
        let trees = self.root.join("trees");
        for entry in std::fs::read_dir(&trees).map_err(io(&trees))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let objects = self.root.join("objects");
        for bucket in std::fs::read_dir(&objects).map_err(io(&objects))?.flatten() {
            for o in std::fs::read_dir(bucket.path()).into_iter().flatten().flatten() {
                if std::fs::symlink_metadata(o.path()).is_ok_and(|m| m.nlink() <= 1) {
                    let _ = std::fs::remove_file(o.path());
                }
            }
        }
        Ok(())
    }
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut HashWriter(&mut h))?;
    Ok(hex(&h.finalize()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn a_snapshot_is_immutable_and_content_addressed() {
        let src = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let store = CodeStore::open(&state.path().join("code")).unwrap();
        write(src.path(), "h.js", "v1");
        write(src.path(), "lib/util.js", "u");
        write(src.path(), ".git/HEAD", "x");
        write(src.path(), ".gust/state.db", "secret");
        write(src.path(), "__pycache__/h.pyc", "b");
        write(src.path(), "bootstrap", "#!/bin/sh\n");
        std::fs::set_permissions(src.path().join("bootstrap"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("lib/util.js", src.path().join("alias.js")).unwrap();

        let a = store.snapshot(src.path(), &[]).unwrap();
        assert_eq!(std::fs::read_to_string(a.path.join("h.js")).unwrap(), "v1");
        assert_eq!(std::fs::read_to_string(a.path.join("lib/util.js")).unwrap(), "u");
        assert_eq!(
            std::fs::read_to_string(a.path.join("alias.js")).unwrap(),
            "u",
            "links are kept"
        );
        assert!(
            !a.path.join(".git").exists() && !a.path.join(".gust").exists() && !a.path.join("__pycache__").exists()
        );
        let mode = std::fs::metadata(a.path.join("bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o555, "executables stay executable, read-only");
        assert_eq!(
            std::fs::metadata(a.path.join("h.js")).unwrap().permissions().mode() & 0o777,
            0o444
        );
        assert_eq!((a.files, a.bytes), (3, 2 + 1 + 10));

        // The same content is the same version.
        assert_eq!(store.snapshot(src.path(), &[]).unwrap(), a);
        // An edit in the working directory does not reach the snapshot; it is a new version.
        write(src.path(), "h.js", "v2 broken");
        assert_eq!(std::fs::read_to_string(a.path.join("h.js")).unwrap(), "v1");
        let b = store.snapshot(src.path(), &[]).unwrap();
        assert_ne!(a.digest, b.digest);
        assert_eq!(std::fs::read_to_string(b.path.join("h.js")).unwrap(), "v2 broken");
        // Back to the first content: the first version's tree again (a rollback is free).
        write(src.path(), "h.js", "v1");
        assert_eq!(store.snapshot(src.path(), &[]).unwrap().digest, a.digest);

        // The index survives a reopen; retain drops unused trees and their objects.
        let store = CodeStore::open(&state.path().join("code")).unwrap();
        store.retain(&[a.digest.clone()].into_iter().collect()).unwrap();
        assert!(a.path.is_dir() && !b.path.exists());
        let objects: usize = std::fs::read_dir(state.path().join("code/objects"))
            .unwrap()
            .flatten()
            .map(|d| std::fs::read_dir(d.path()).unwrap().count())
            .sum();
        assert_eq!(objects, 3, "the broken version's object is gone");
    }

    #[test]
    fn package_patterns_apply_in_order_and_a_directory_pattern_covers_its_contents() {
        let src = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let store = CodeStore::open(&state.path().join("code")).unwrap();
        for f in [
            "h.js",
            "README.md",
            "docs/a.md",
            "tests/t.js",
            "node_modules/a/i.js",
            "node_modules/b/i.js",
            "lib/x.js",
        ] {
            write(src.path(), f, "x");
        }
        let p = Patterns::new(&[
            "!**/*.md".to_string(),
            "!tests".to_string(),
            "!node_modules/**".to_string(),
            "node_modules/a/**".to_string(),
        ])
        .unwrap();
        assert!(p.includes("h.js") && p.includes("lib/x.js") && p.includes("node_modules/a/i.js"));
        assert!(!p.includes("README.md") && !p.includes("docs/a.md") && !p.includes("tests/t.js"));
        assert!(!p.includes("node_modules/b/i.js"));
        let s = store.snapshot_with(src.path(), &[], &p).unwrap();
        assert!(s.path.join("h.js").is_file() && s.path.join("node_modules/a/i.js").is_file());
        assert!(
            !s.path.join("README.md").exists() && !s.path.join("tests").exists(),
            "empty directories go too"
        );
        assert!(!s.path.join("docs").exists() && !s.path.join("node_modules/b").exists());
        assert_ne!(
            s.digest,
            store.snapshot(src.path(), &[]).unwrap().digest,
            "other files, another version"
        );
        let e = Patterns::new(&["a[".to_string()]).unwrap_err();
        assert!(e.contains("`a[`"), "{e}");
    }

    #[test]
    fn excluded_paths_are_left_out_and_a_directory_over_the_limit_is_refused_naming_its_parts() {
        let src = tempfile::tempdir().unwrap();
        let state = src.path().join("state");
        let store = CodeStore::open(&state.join("code")).unwrap();
        write(src.path(), "h.js", "x");
        write(&state, "master.key", "k");
        let s = store.snapshot(src.path(), std::slice::from_ref(&state)).unwrap();
        assert!(!s.path.join("state").exists(), "the state directory is not code");

        let big = std::fs::File::create(src.path().join("huge.bin")).unwrap();
        big.set_len(MAX_TREE_BYTES + 1).unwrap();
        let e = store.snapshot(src.path(), &[state]).unwrap_err().to_string();
        assert!(e.contains("huge.bin") && e.contains("250 MB"), "{e}");
    }
}
