//! # gust-store: Gust's durable state
//!
//! Owns the state database and the storage seams behind it: today the key-value store that
//! functions reach through `GUST_API` ([`KvStore`]), embedded in one SQLite file
//! ([`SqliteStore`]). A PostgreSQL or Redis backend implements the same trait and is picked by
//! a `type` tag in server config; the trait's test body in `tests` runs against every backend.
//!
//! Must not depend on: HTTP, the runtime, the gateway. It stores bytes under names; who may
//! read which names is decided by its callers.

mod backlog;
mod blob;
mod code;
mod counters;
mod histogram;
mod kv;
mod rollups;
mod secrets;
mod sqlite;
mod telemetry;

pub use backlog::{BacklogPoint, BacklogSample};
pub use blob::{BlobError, BlobStore, FsBlobStore, MAX_BLOB_BYTES};
pub use code::{CodeError, CodeStore, Patterns, Snapshot, MAX_TREE_BYTES};
pub use counters::{QuotaStore, QuotaUsage};
pub use kv::{Entry, KeyPage, KvError, KvStore, Precondition, PutOutcome, MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use rollups::{check_series, FunctionStats, SeriesPoint, MAX_SERIES_POINTS};
pub use secrets::{
    is_valid_access_key_id, is_valid_secret_name, AccessKeyInfo, KeySource, MasterKey, NewAccessKey, Redactor,
    SecretError, SecretInfo, SecretStore, ACCESS_KEY_ID_PREFIX, MASTER_KEY_ENV, MAX_SECRET_BYTES,
    MAX_SECRET_NAME_BYTES, MIN_REDACTED_BYTES,
};
pub use sqlite::SqliteStore;
#[doc(hidden)]
pub use telemetry::bench_write_batch;
pub use telemetry::{InvocationQuery, LogQuery, LogRow, Retention, TelemetryDb, Usage};
/// Secrets handed out by this crate (access key secrets) are wiped from memory on drop.
pub use zeroize::Zeroizing;
