use async_trait::async_trait;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value accepted, in bytes (1 MiB).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("key must be 1..={MAX_KEY_BYTES} bytes")]
    BadKey,
    #[error("value is {0} bytes; the limit is {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    #[error("storage failure: {0}")]
    Storage(String),
}

/// One stored value. `version` changes on every write and never repeats for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub version: u64,
}

/// What must hold for a put to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// Create only: fails if the key exists (race-free uniqueness claims).
    IfAbsent,
    /// Compare-and-set: fails unless the stored version is this one.
    IfVersion(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written { version: u64, created: bool },
    PreconditionFailed,
}

/// One page of keys in key order; `next` is the cursor for the following page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<(String, u64)>,
    pub next: Option<String>,
}

/// A namespaced key-value store. `ns` is the app: functions of one app share a namespace.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>, KvError>;
    async fn put(&self, ns: &str, key: &str, value: Vec<u8>, pre: Precondition) -> Result<PutOutcome, KvError>;
    /// Returns whether the key existed.
    async fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError>;
    /// Keys starting with `prefix`, after `after` (exclusive), at most `limit`.
    async fn list(&self, ns: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<KeyPage, KvError>;
}

pub(crate) fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::BadKey);
    }
    Ok(())
}
