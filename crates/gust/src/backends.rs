//! # Backends: where Gust keeps its state, built from configuration in one place
//!
//! Every durable seam the platform uses — the key-value store, the event log, secrets, API-key
//! quota counts, telemetry, blobs, deployed code and the DynamoDB tables — is opened here and nowhere else, from one
//! [`BackendsConfig`]. The composition root (`Platform::start`) receives a [`Backends`] and
//! wires its parts; no other module opens a database or picks a file name.
//!
//! Today there is one kind, [`BackendsConfig::Embedded`]: SQLite files and directories in the
//! state directory (`docs/ARCHITECTURE.md`, "State directory"). A cluster (issue #18) adds a
//! kind with its own `type` tag (PostgreSQL for the key-value store, secrets and counters,
//! NATS JetStream for the event log) that builds the same traits (`KvStore`, `EventLog`, ...);
//! the trait test bodies run against each.

use crate::revision::CodeMode;
use anyhow::{Context, Result};
use gust_events::{EventLog, SqliteLog};
use gust_store::{
    BlobStore, CodeStore, FsBlobStore, KvStore, QuotaStore, Retention, SecretStore, SqliteStore, TelemetryDb,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which backends to open, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendsConfig {
    /// One node, embedded: everything in the state directory.
    Embedded {
        state_dir: PathBuf,
        /// How much telemetry is kept (`--keep-invocations`).
        telemetry: Retention,
    },
}

impl BackendsConfig {
    /// The kind's tag, as a configuration file will name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Embedded { .. } => "embedded",
        }
    }
}

/// The opened backends.
pub struct Backends {
    pub kv: Arc<dyn KvStore>,
    pub log: Arc<dyn EventLog>,
    pub secrets: SecretStore,
    /// Where the secrets' master key lives (rotation writes beside it).
    pub master_key: PathBuf,
    pub quotas: QuotaStore,
    pub telemetry: TelemetryDb,
    pub blobs: Arc<dyn BlobStore>,
    /// Snapshots of deployed code; `None` with `--code in-place`.
    pub code: Option<Arc<CodeStore>>,
    /// The DynamoDB tables functions and operators reach through the AWS SDKs.
    pub dynamodb: Arc<gust_aws::dynamodb::DynamoDb>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backends")
    }
}

impl Backends {
    /// Opens every backend `config` names (creating what a first start needs).
    pub fn open(config: &BackendsConfig, code: CodeMode) -> Result<Self> {
        match config {
            BackendsConfig::Embedded { state_dir, telemetry } => Self::embedded(state_dir, *telemetry, code),
        }
    }

    fn embedded(state: &Path, retention: Retention, code: CodeMode) -> Result<Self> {
        // The durable state shares one SQLite file (WAL, synchronous=FULL); each seam holds its
        // own connection.
        let db = state.join("state.db");
        let kv: Arc<dyn KvStore> = Arc::new(SqliteStore::open(&db).context("cannot open the state database")?);
        let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(&db).context("cannot open the event log")?);
        let master_key = state.join("master.key");
        let secrets = crate::secrets::open_store(&db, &master_key).map_err(|e| anyhow::anyhow!("secrets: {e}"))?;
        let quotas = QuotaStore::open(&db).context("cannot open the quota counters")?;
        // Telemetry has a file of its own: its busy, disposable writes must not share a WAL (and
        // its checkpoints) with the durable state.
        let telemetry = TelemetryDb::open(&state.join("telemetry.db"), retention)
            .map_err(|e| anyhow::anyhow!("cannot open the telemetry tables: {e}"))?;
        let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(&state.join("blobs")));
        let code = match code {
            CodeMode::Snapshot => Some(Arc::new(
                CodeStore::open(&state.join("code")).map_err(|e| anyhow::anyhow!("cannot open the code store: {e}"))?,
            )),
            CodeMode::InPlace => None,
        };
        // A file of its own: table traffic is bulky and must not queue behind the event log's
        // and scheduler's small durable writes.
        let dynamodb = Arc::new(
            gust_aws::dynamodb::DynamoDb::open(&state.join("aws.db")).context("cannot open the DynamoDB database")?,
        );
        Ok(Self {
            kv,
            log,
            secrets,
            master_key,
            quotas,
            telemetry,
            blobs,
            code,
            dynamodb,
        })
    }
}
