//! The blob store for batch outputs (reports, exports): files under the state directory,
//! one folder per app. Keys are `/`-separated paths of safe segments, so nothing a function
//! sends can escape its folder. An S3-compatible backend implements the same trait.

use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Largest blob accepted (64 MiB).
pub const MAX_BLOB_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob key `{0}` is invalid: segments of letters, digits, '.', '-', '_' separated by '/', at most 512 bytes, no '..'")]
    BadKey(String),
    #[error("blob is {0} bytes; the limit is {MAX_BLOB_BYTES}")]
    TooLarge(usize),
    #[error("blob storage failure: {0}")]
    Storage(String),
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn put(&self, ns: &str, key: &str, data: Vec<u8>) -> Result<(), BlobError>;
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, BlobError>;
    async fn delete(&self, ns: &str, key: &str) -> Result<bool, BlobError>;
    /// Keys under `prefix`, sorted.
    async fn list(&self, ns: &str, prefix: &str) -> Result<Vec<(String, u64)>, BlobError>;
}

#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

fn check_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        });
    if ok {
        Ok(())
    } else {
        Err(BlobError::BadKey(key.chars().take(100).collect()))
    }
}

fn storage(e: impl std::fmt::Display) -> BlobError {
    BlobError::Storage(e.to_string())
}

impl FsBlobStore {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, ns: &str, key: &str) -> Result<PathBuf, BlobError> {
        check_key(ns)?;
        check_key(key)?;
        Ok(self.root.join(ns).join(key))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, ns: &str, key: &str, data: Vec<u8>) -> Result<(), BlobError> {
        if data.len() > MAX_BLOB_BYTES {
            return Err(BlobError::TooLarge(data.len()));
        }
        let path = self.path(ns, key)?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let dir = path.parent().expect("a key has a parent");
            std::fs::create_dir_all(dir).map_err(storage)?;
            // Write then rename: a reader never sees half a blob, a crash leaves the old one.
            let tmp = dir.join(format!(".{}.tmp", uuid_like()));
            let mut f = std::fs::File::create(&tmp).map_err(storage)?;
            f.write_all(&data).map_err(storage)?;
            f.sync_all().map_err(storage)?;
            std::fs::rename(&tmp, &path).map_err(storage)
        })
        .await
        .map_err(storage)?
    }

    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path(ns, key)?;
        match tokio::fs::read(&path).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if path.is_dir() => Err(BlobError::BadKey(format!("{key} is a folder: {e}"))),
            Err(e) => Err(storage(e)),
        }
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, BlobError> {
        let path = self.path(ns, key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(storage(e)),
        }
    }

    async fn list(&self, ns: &str, prefix: &str) -> Result<Vec<(String, u64)>, BlobError> {
        check_key(ns)?;
        let root = self.root.join(ns);
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let p = e.path();
                    let name = e.file_name().to_string_lossy().to_string();
                    if name.starts_with('.') {
                        continue;
                    }
                    if p.is_dir() {
                        stack.push(p);
                    } else if let Ok(rel) = p.strip_prefix(&root) {
                        let key = rel.to_string_lossy().to_string();
                        if key.starts_with(&prefix) {
                            out.push((key, e.metadata().map(|m| m.len()).unwrap_or(0)));
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(storage)?
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{n:x}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_keys_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsBlobStore::new(dir.path());
        s.put("shop", "reports/2026-11-25.json", b"{}".to_vec()).await.unwrap();
        s.put("shop", "reports/2026-11-25.csv", b"a,b\n".to_vec())
            .await
            .unwrap();
        assert_eq!(
            s.get("shop", "reports/2026-11-25.csv").await.unwrap().unwrap(),
            b"a,b\n"
        );
        assert_eq!(s.get("other", "reports/2026-11-25.csv").await.unwrap(), None);
        let keys: Vec<_> = s
            .list("shop", "reports/")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["reports/2026-11-25.csv", "reports/2026-11-25.json"]);
        assert!(s.delete("shop", "reports/2026-11-25.csv").await.unwrap());
        assert!(!s.delete("shop", "reports/2026-11-25.csv").await.unwrap());
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "a b", "", "a/./b"] {
            assert!(
                matches!(s.put("shop", bad, vec![]).await, Err(BlobError::BadKey(_))),
                "{bad}"
            );
        }
        assert!(matches!(s.get("..", "x").await, Err(BlobError::BadKey(_))));
    }
}
