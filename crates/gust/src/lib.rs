//! # gust: the composition root
//!
//! Owns wiring, not behaviour: it reads the manifest, opens the state directory, builds the
//! runtime (executor, invoker), the store and the gateway, binds the listeners, and shuts them
//! down in the right order. The `gust` binary (`main.rs`) is a thin CLI over [`Platform`];
//! tests start the same [`Platform`] on 127.0.0.1:0.
//!
//! Must not contain: request handling, process management or storage logic; those belong to
//! the library crates so that every trigger shares them.

pub mod auth;
pub mod backends;
pub mod backlog;
pub mod cost;
pub mod handlers;
pub mod operator;
pub mod otlp;
pub mod revision;
pub mod schedules;
pub mod secrets;
pub mod telemetry;
pub mod upstreams;
pub mod watcher;

use anyhow::{bail, Context, Result};
use gust_events::Events;
use gust_gateway::{serve, Admin, Gateway, ServerLimits, DEFAULT_MAX_BODY_BYTES};
use gust_runtime::{Executor, ExecutorConfig, Invoker, LogSink, RuntimeFiles, TracingLogSink};
use gust_store::{KvStore, TelemetryDb};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How `gust up` (or a test) wants the platform started.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// A directory with `gust.toml`/`serverless.yml`, or the manifest file itself.
    pub app: PathBuf,
    /// Where the state database and runtime files live (default `<app dir>/.gust`).
    pub state_dir: Option<PathBuf>,
    pub gateway_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Also serve the admin address on this Unix socket (mode 0600; `--admin-socket`).
    pub admin_socket: Option<PathBuf>,
    pub max_body_bytes: usize,
    pub limits: ServerLimits,
    /// Generic Node/Python processes kept ready per runtime in use (0: off).
    pub prewarm_per_runtime: usize,
    /// Bytes of `provided` executables kept mapped between cold starts, over all functions
    /// (0: off).
    pub resident_code_bytes: u64,
    /// The time schedules follow; tests move a `ManualClock`.
    pub clock: Arc<dyn gust_scheduler::Clock>,
    /// Export spans over OTLP (from the standard `OTEL_EXPORTER_OTLP_*` variables in `gust up`).
    pub otlp: Option<otlp::OtlpConfig>,
    /// `Host` names the admin address answers to besides IP addresses and `localhost`
    /// (`--admin-host`; DNS rebinding protection).
    pub admin_hosts: Vec<String>,
    /// `--stage`: the manifest's `[stages.NAME]` overlay, `${opt:stage}`/`${sls:stage}` in
    /// serverless.yml, and `GUST_STAGE` in functions. `None`: the manifest's own default.
    pub stage: Option<String>,
    /// `--sandbox`: how function instances are confined (`gust_runtime::sandbox`).
    pub sandbox: gust_runtime::sandbox::SandboxSettings,
    /// When a function whose inits keep failing is started again (tests shorten it).
    pub crash_loop: gust_runtime::CrashLoopPolicy,
    /// `--code`: functions run from a snapshot of their code per deploy (the default) or from
    /// the working directory in place.
    pub code: revision::CodeMode,
    /// How often subscription backlogs are sampled for the console (tests shorten it).
    pub backlog_sample_every: Duration,
    /// How much telemetry is kept (`--keep-invocations`; 7 days, 200,000 records by default).
    pub telemetry: gust_store::Retention,
}

impl PlatformConfig {
    pub fn new(app: impl Into<PathBuf>) -> Self {
        Self {
            app: app.into(),
            state_dir: None,
            gateway_addr: ([127, 0, 0, 1], 8080).into(),
            admin_addr: ([127, 0, 0, 1], 8081).into(),
            admin_socket: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            limits: ServerLimits::default(),
            prewarm_per_runtime: 1,
            resident_code_bytes: gust_runtime::DEFAULT_RESIDENT_CODE_BYTES,
            clock: Arc::new(gust_scheduler::SystemClock),
            otlp: None,
            admin_hosts: Vec::new(),
            stage: None,
            sandbox: Default::default(),
            crash_loop: Default::default(),
            code: Default::default(),
            backlog_sample_every: backlog::SAMPLE_EVERY,
            telemetry: Default::default(),
        }
    }
}

/// A running Gust: gateway, admin API, functions.
pub struct Platform {
    pub gateway_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The admin address's Unix socket, when one was asked for (removed at shutdown).
    pub admin_socket: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// The manifest's warnings at start.
    pub warnings: Vec<String>,
    /// API keys the manifest declares without a value, generated at this start:
    /// `(name, key)`. The only time their plaintext exists; `gust up` prints them once.
    pub new_api_keys: Vec<(String, String)>,
    pub invoker: Arc<Invoker>,
    pub events: Arc<Events>,
    /// Held for the platform's lifetime: the state directory is this Gust's alone.
    _lock: std::fs::File,
    pub telemetry: TelemetryDb,
    /// Everything a redeploy switches, and the running version.
    deployer: Arc<Deployer>,
    /// The operator credential (also in `<state>/operator.token`).
    operator_token: String,
    /// API-key quota counts, written behind to the state database (saved at shutdown).
    quotas: Arc<gust_gateway::quotas::DurableQuotas>,
    stop_gateway: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    gateway_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    admin_socket_task: Option<JoinHandle<()>>,
    backlog_sampler: JoinHandle<()>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("gateway_addr", &self.gateway_addr)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

/// What a redeploy switches besides the invoker's pools: kept from the start.
struct Deployer {
    /// The app directory or manifest the platform runs (read again at every redeploy).
    manifest: PathBuf,
    options: gust_model::LoadOptions,
    state_dir: PathBuf,
    kv: Arc<dyn KvStore>,
    api_keys: Arc<gust_gateway::auth::MemoryApiKeyStore>,
    secret_store: gust_store::SecretStore,
    platform_secrets: Arc<secrets::PlatformSecrets>,
    quota_counter: Arc<gust_gateway::ratelimit::QuotaCounter>,
    gateway: Arc<Gateway>,
    admin: Arc<Admin>,
    schedules: Arc<schedules::SchedulesInfo>,
    firer: Arc<schedules::EventsFirer>,
    clock: Arc<dyn gust_scheduler::Clock>,
    addresses: upstreams::GustAddresses,
    invoker: Arc<Invoker>,
    events: Arc<Events>,
    /// Where the manifest's DynamoDB tables live (`provision_tables`).
    dynamodb: Arc<gust_aws::dynamodb::DynamoDb>,
    /// The running version's app as deployed (functions' `code_dir` at their snapshot
    /// trees), for readers (cheap to clone).
    app: std::sync::RwLock<Arc<gust_model::App>>,
    /// The same version as the manifest describes it (code in the working directory).
    source: std::sync::RwLock<Arc<gust_model::App>>,
    /// Snapshots of deployed code (`None`: `--code in-place`).
    code_store: Option<Arc<gust_store::CodeStore>>,
    /// The running version; the lock also makes redeploys one at a time. `None` after
    /// shutdown began.
    current: tokio::sync::Mutex<Option<Current>>,
    /// The running version's number, for readers that must not wait for a redeploy.
    running_number: std::sync::atomic::AtomicU64,
}

/// The running version, the ones kept before it, and its own tasks and processes.
struct Current {
    running: Version,
    /// Earlier versions, newest first (at most `KEPT_VERSIONS - 1`): what a rollback can go
    /// back to; their code snapshots are kept, and instances still draining run from them.
    history: std::collections::VecDeque<Version>,
    /// The number the next changed version gets.
    next_number: u64,
    schedule_tasks: Vec<JoinHandle<()>>,
    upstreams: upstreams::RunningUpstreams,
}

/// One deployed version of the app.
#[derive(Debug, Clone)]
struct Version {
    number: u64,
    at: std::time::SystemTime,
    /// As deployed (functions' `code_dir` at their snapshot trees).
    app: Arc<gust_model::App>,
    /// As its manifest described it.
    source: Arc<gust_model::App>,
    revisions: std::collections::HashMap<String, String>,
    trees: std::collections::HashSet<String>,
    manifest_file: PathBuf,
    /// What it changed against the version it replaced when it was first deployed
    /// (`added: f`, `replaced: g`, `removed: h`, `routes`, ...); empty for the first.
    changes: Vec<String>,
}

/// A version about to be switched to.
struct Candidate {
    version: Version,
    warnings: Vec<String>,
}

/// What a redeploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployReport {
    /// The version now serving (starts at 1 with the platform; +1 per redeploy that changed
    /// something).
    pub version: u64,
    pub functions: gust_runtime::Redeployed,
    /// The manifest's warnings.
    pub warnings: Vec<String>,
    /// API keys the new manifest declares without a value, generated now: `(name, key)`.
    pub new_api_keys: Vec<(String, String)>,
    /// Whether the upstream services were restarted (their specs changed).
    pub upstreams_restarted: bool,
    /// The parts of the manifest besides functions that changed (`routes`, `schedules`...).
    pub manifest: Vec<&'static str>,
}

/// A deployed version as `gust deployments` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub number: u64,
    pub running: bool,
    pub at: std::time::SystemTime,
    pub functions: usize,
    /// The code snapshots it runs from (empty with `--code in-place`).
    pub code: Vec<String>,
    /// What it changed when first deployed (empty for the first version).
    pub changes: Vec<String>,
}

/// Why a redeploy was refused; the running version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The manifest does not load or validate, or a handler is missing (as `gust validate`).
    #[error("{0}")]
    Invalid(String),
    /// A new or changed function could not be prepared or its first instance did not start.
    #[error("{0}")]
    Function(#[from] gust_runtime::PrepareError),
    #[error("Gust is shutting down")]
    ShuttingDown,
    /// A rollback to a version that is not kept (or is the one serving).
    #[error("{0}")]
    NoSuchVersion(String),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// Versions whose code snapshots are kept (the running one included).
const KEPT_VERSIONS: usize = 5;

fn spawn_schedules(
    compiled: &[(gust_model::ScheduleSpec, gust_scheduler::Schedule)],
    clock: &Arc<dyn gust_scheduler::Clock>,
    firer: &Arc<schedules::EventsFirer>,
) -> Vec<JoinHandle<()>> {
    compiled
        .iter()
        .filter(|(s, _)| s.enabled)
        .map(|(spec, schedule)| {
            gust_scheduler::spawn_runner(spec.clone(), schedule.clone(), clock.clone(), firer.clone())
        })
        .collect()
}

impl Deployer {
    fn app(&self) -> Arc<gust_model::App> {
        self.app.read().expect("app lock").clone()
    }

    /// Reads the manifest again and switches the running app to it (see
    /// [`Platform::redeploy`]).
    async fn redeploy(&self) -> Result<DeployReport, DeployError> {
        let mut guard = self.current.lock().await;
        let Some(current) = guard.as_mut() else {
            return Err(DeployError::ShuttingDown);
        };
        let candidate = self.load().await?;
        self.switch(current, candidate, None).await
    }

    /// Switches back to a kept version: `to`, or the one before the running one.
    async fn rollback(&self, to: Option<u64>) -> Result<DeployReport, DeployError> {
        let mut guard = self.current.lock().await;
        let Some(current) = guard.as_mut() else {
            return Err(DeployError::ShuttingDown);
        };
        let kept = || {
            current
                .history
                .iter()
                .map(|v| v.number.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let target = match to {
            Some(n) if n == current.running.number => {
                return Err(DeployError::NoSuchVersion(format!("version {n} is the one serving")));
            }
            Some(n) => current.history.iter().find(|v| v.number == n),
            None => current.history.front(),
        };
        let Some(target) = target.cloned() else {
            let what = to.map_or("no earlier version".to_string(), |n| format!("version {n} is not kept"));
            return Err(DeployError::NoSuchVersion(if current.history.is_empty() {
                format!("{what}: nothing to roll back to yet")
            } else {
                format!("{what}; kept: {}", kept())
            }));
        };
        let number = target.number;
        let candidate = Candidate {
            version: target,
            warnings: Vec::new(),
        };
        self.switch(current, candidate, Some(number)).await
    }

    /// Reads the manifest and code again: the candidate for the next version.
    async fn load(&self) -> Result<Candidate, DeployError> {
        let loaded =
            gust_model::load_with(&self.manifest, &self.options).map_err(|e| DeployError::Invalid(format!("{e:#}")))?;
        let file = loaded.file.display().to_string();
        let app = loaded.app;
        let old = self.app();
        if app.name != old.name {
            return Err(DeployError::Invalid(format!(
                "{file}: the app's name changed from `{}` to `{}`; a running Gust keeps its app's name (restart it to rename the app)",
                old.name, app.name
            )));
        }
        let mut problems = Vec::new();
        for f in app.functions.values() {
            if let handlers::Finding::Error(why) = handlers::check_files(f) {
                problems.push(format!("{file}: `functions.{}.handler`: {why}", f.name));
            }
        }
        if !problems.is_empty() {
            return Err(DeployError::Invalid(problems.join("\n")));
        }
        // Declared tables first (created or extended, never dropped): a changed key schema
        // refuses the version before anything switches.
        provision_tables(&self.dynamodb, &app)
            .await
            .map_err(|e| DeployError::Invalid(format!("{file}: {e:#}")))?;
        let source = app.clone();
        let resolved = {
            let (app, store, state) = (app, self.code_store.clone(), self.state_dir.clone());
            tokio::task::spawn_blocking(move || revision::resolve(app, store.as_ref(), &state))
                .await
                .map_err(|e| DeployError::Other(anyhow::anyhow!("the code snapshot task failed: {e}")))?
                .map_err(|e| DeployError::Invalid(e.to_string()))?
        };
        Ok(Candidate {
            version: Version {
                number: 0,
                at: std::time::SystemTime::now(),
                app: Arc::new(resolved.app),
                source: Arc::new(source),
                revisions: resolved.revisions,
                trees: resolved.trees,
                manifest_file: loaded.file,
                changes: Vec::new(),
            },
            warnings: loaded.warnings,
        })
    }

    /// Makes `candidate` the running version (see [`Platform::redeploy`]): numbered `number`
    /// (a rollback), or the next number if anything changed.
    async fn switch(
        &self,
        current: &mut Current,
        candidate: Candidate,
        number: Option<u64>,
    ) -> Result<DeployReport, DeployError> {
        let Candidate { mut version, warnings } = candidate;
        let app = version.app.clone();
        let file = version.manifest_file.display().to_string();
        let old = self.app();
        let compiled = schedules::compile(&app, &file).map_err(|e| DeployError::Invalid(format!("{e:#}")))?;
        let gateway_auth = auth::gateway_auth(
            &app,
            &self.secret_store,
            self.api_keys.clone(),
            self.quota_counter.clone(),
        )
        .await
        .map_err(|e| DeployError::Invalid(format!("{file}: {e:#}")))?;
        // The secrets' view of the app first: the environment of new instances comes from it.
        let previous_secrets_app = (*old).clone();
        self.platform_secrets.set_app((*app).clone());
        let secret_env = match self.platform_secrets.env_for_functions() {
            Ok(env) => env,
            Err(e) => {
                self.platform_secrets.set_app(previous_secrets_app);
                return Err(DeployError::Other(anyhow::anyhow!("secrets: {e}")));
            }
        };
        // New and changed functions are prepared and their first instance started before
        // anything switches: a version that cannot start is refused here.
        let functions = match self.invoker.redeploy(&app, &secret_env, &version.revisions, true).await {
            Ok(r) => r,
            Err(e) => {
                self.platform_secrets.set_app(previous_secrets_app);
                return Err(e.into());
            }
        };
        // From here on the new version is serving functions; the rest follows it.
        let new_api_keys = gust_gateway::apikeys::sync_manifest_keys(self.kv.as_ref(), &self.api_keys, &app.api_keys)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "{file}: API keys not updated");
                Vec::new()
            });
        let upstreams_restarted = app.upstreams != old.upstreams;
        if upstreams_restarted {
            // A changed upstream's command is stopped before the new one starts (it may listen
            // on the same port): requests to it fail for that moment.
            std::mem::take(&mut current.upstreams).stop().await;
            current.upstreams = upstreams::start(&app, &self.addresses).await?;
            self.admin.set_upstreams(&current.upstreams.upstreams);
        }
        self.gateway.set_auth(gateway_auth);
        self.gateway.deploy(&app, &current.upstreams.upstreams);
        let grace = app.functions.values().map(|f| f.timeout).max().unwrap_or_default() + Duration::from_secs(1);
        let store = self.secret_store.clone();
        self.events
            .redeploy(&app, &move |name| broker_secret(&store, name), grace);
        for t in current.schedule_tasks.drain(..) {
            t.abort();
        }
        current.schedule_tasks = spawn_schedules(&compiled, &self.clock, &self.firer);
        self.schedules.set(compiled);
        let manifest = manifest_changes(&old, &app);
        let changed = !manifest.is_empty()
            || !functions.added.is_empty()
            || !functions.replaced.is_empty()
            || !functions.removed.is_empty();
        *self.app.write().expect("app lock") = app;
        *self.source.write().expect("source lock") = version.source.clone();
        match number {
            Some(n) => version.number = n,
            None if changed => {
                version.number = current.next_number;
                current.next_number += 1;
                let mut changes = Vec::new();
                for (what, names) in [
                    ("added", &functions.added),
                    ("replaced", &functions.replaced),
                    ("removed", &functions.removed),
                ] {
                    changes.extend(names.iter().map(|n| format!("{what}: {n}")));
                }
                changes.extend(manifest.iter().map(|m| m.to_string()));
                version.changes = changes;
            }
            // Nothing changed: the running version stays (with what it was deployed from).
            None => version.number = current.running.number,
        }
        if version.number != current.running.number {
            let previous = std::mem::replace(&mut current.running, version);
            current.history.retain(|v| v.number != current.running.number);
            current.history.push_front(previous);
            current.history.truncate(KEPT_VERSIONS - 1);
        } else {
            current.running = version;
        }
        self.running_number
            .store(current.running.number, std::sync::atomic::Ordering::Relaxed);
        if let Some(store) = &self.code_store {
            let keep: std::collections::HashSet<String> = current
                .history
                .iter()
                .chain([&current.running])
                .flat_map(|v| v.trees.iter().cloned())
                .collect();
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.retain(&keep) {
                    tracing::warn!(error = %e, "cannot remove old code snapshots");
                }
            });
        }
        Ok(DeployReport {
            version: current.running.number,
            functions,
            warnings,
            new_api_keys,
            upstreams_restarted,
            manifest,
        })
    }
}

/// Creates the DynamoDB tables `app` declares, or adds what their declarations gained
/// (`gust_aws::dynamodb::provision`), before any function of the version runs.
async fn provision_tables(db: &Arc<gust_aws::dynamodb::DynamoDb>, app: &gust_model::App) -> Result<()> {
    if app.dynamodb_tables.is_empty() {
        return Ok(());
    }
    let (db, app) = (db.clone(), app.clone());
    tokio::task::spawn_blocking(move || {
        for t in app.dynamodb_tables.values() {
            let done = db
                .ensure_table(app.name.as_str(), &app.region, &t.create, t.ttl_attribute.as_deref())
                .map_err(|e| anyhow::anyhow!("DynamoDB: {e}"))?;
            match done {
                gust_aws::dynamodb::provision::Provisioned::Created => tracing::info!(table = %t.name, "created a DynamoDB table the manifest declares"),
                gust_aws::dynamodb::provision::Provisioned::Updated(added) => {
                    tracing::info!(table = %t.name, added = %added.join(", "), "updated a DynamoDB table the manifest declares")
                }
                gust_aws::dynamodb::provision::Provisioned::Unchanged => {}
            }
        }
        Ok(())
    })
    .await
    .context("the table provisioning task failed")?
}

/// Which parts of the manifest besides functions differ between two versions.
fn manifest_changes(old: &gust_model::App, new: &gust_model::App) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |what: &'static str, differs: bool| {
        if differs {
            out.push(what);
        }
    };
    check("routes", old.routes != new.routes);
    check("cors", old.cors != new.cors);
    check(
        "topics",
        old.topics != new.topics || old.public_topics != new.public_topics,
    );
    check("subscriptions", old.subscriptions != new.subscriptions);
    check("schedules", old.schedules != new.schedules);
    check("upstreams", old.upstreams != new.upstreams);
    check(
        "authorizers",
        old.authorizers != new.authorizers || old.lambda_authorizers != new.lambda_authorizers,
    );
    check("api keys", old.api_keys != new.api_keys);
    check("region", old.region != new.region);
    check("dynamodb tables", old.dynamodb_tables != new.dynamodb_tables);
    out
}

/// The admin API's way to the deployment (`POST /gust/v1/deployments`); weak, since the
/// deployment holds the admin API.
struct DeployHandle(std::sync::Weak<Deployer>);

type DeployFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl DeployHandle {
    /// Runs `op` (a redeploy or a rollback) and answers it as the contract's `Deployment`.
    async fn answer(
        &self,
        op: impl for<'d> FnOnce(&'d Deployer) -> DeployFuture<'d, Result<DeployReport, DeployError>>,
    ) -> Result<gust_api::Deployment, gust_gateway::DeployApiError> {
        use gust_gateway::DeployApiError as E;
        let deployer = self.0.upgrade().ok_or(E::ShuttingDown)?;
        let started = std::time::Instant::now();
        let report = match op(&deployer).await {
            Ok(r) => r,
            Err(DeployError::ShuttingDown) => return Err(E::ShuttingDown),
            Err(DeployError::NoSuchVersion(why)) => return Err(E::NoSuchVersion(why)),
            Err(e) => {
                tracing::warn!(error = %e, "deploy refused; the running version keeps serving");
                return Err(E::Refused(e.to_string()));
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(version = report.version, duration_ms, "deployed");
        Ok(gust_api::Deployment {
            app: deployer.app().name.to_string(),
            version: report.version,
            added: report.functions.added,
            replaced: report.functions.replaced,
            kept: report.functions.kept,
            removed: report.functions.removed,
            manifest_changes: report.manifest.iter().map(|s| s.to_string()).collect(),
            upstreams_restarted: report.upstreams_restarted,
            warnings: report.warnings,
            new_api_keys: report
                .new_api_keys
                .into_iter()
                .map(|(name, key)| gust_api::GeneratedApiKey { name, key })
                .collect(),
            duration_ms,
        })
    }
}

impl gust_gateway::DeployApi for DeployHandle {
    fn running(&self) -> Option<(Arc<gust_model::App>, u64)> {
        let d = self.0.upgrade()?;
        let app = d.source.read().expect("source lock").clone();
        Some((app, d.running_number.load(std::sync::atomic::Ordering::Relaxed)))
    }

    fn redeploy(&self) -> DeployFuture<'_, Result<gust_api::Deployment, gust_gateway::DeployApiError>> {
        Box::pin(self.answer(|d| Box::pin(d.redeploy())))
    }

    fn rollback(
        &self,
        to: Option<u64>,
    ) -> DeployFuture<'_, Result<gust_api::Deployment, gust_gateway::DeployApiError>> {
        Box::pin(self.answer(move |d| Box::pin(d.rollback(to))))
    }

    fn list(&self) -> DeployFuture<'_, gust_api::DeploymentList> {
        Box::pin(async move {
            let Some(deployer) = self.0.upgrade() else {
                return gust_api::DeploymentList {
                    app: String::new(),
                    versions: Vec::new(),
                };
            };
            let versions = deployer
                .versions()
                .await
                .into_iter()
                .map(|v| gust_api::DeployedVersion {
                    version: v.number,
                    running: v.running,
                    deployed_at: chrono::DateTime::<chrono::Utc>::from(v.at)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    functions: v.functions as u64,
                    code: v.code,
                    changes: v.changes,
                })
                .collect();
            gust_api::DeploymentList {
                app: deployer.app().name.to_string(),
                versions,
            }
        })
    }
}

/// A broker source's password from Gust secrets (`password_secret`); a missing one is
/// reported as the source's state, and Gust still starts.
fn broker_secret(store: &gust_store::SecretStore, name: &str) -> Option<String> {
    match store.get(name) {
        Ok(Some((value, _))) => Some(String::from_utf8_lossy(&value).into_owned()),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(secret = name, error = %e, "cannot read a broker source's secret");
            None
        }
    }
}

/// The file `gust up` writes so that `gust invoke` finds the running platform.
pub const RUNTIME_INFO_FILE: &str = "gust.json";

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Platform {
    pub async fn start(config: PlatformConfig) -> Result<Self> {
        Self::start_with_sink(config, Arc::new(TracingLogSink)).await
    }

    pub async fn start_with_sink(config: PlatformConfig, sink: Arc<dyn LogSink>) -> Result<Self> {
        let options = gust_model::LoadOptions {
            stage: config.stage.clone(),
            ..gust_model::LoadOptions::from_process_env()
        };
        let loaded = gust_model::load_with(&config.app, &options)?;
        let app = loaded.app;
        let compiled = schedules::compile(&app, &loaded.file.display().to_string())?;
        let state_dir = config.state_dir.clone().unwrap_or_else(|| app.root.join(".gust"));
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
        // One Gust per state directory: two would both deliver every event and fire every tick.
        let lock = std::fs::File::create(state_dir.join("lock"))
            .with_context(|| format!("cannot create {}", state_dir.join("lock").display()))?;
        if lock.try_lock().is_err() {
            anyhow::bail!(
                "another Gust is running with the state directory {} (stop it, or use --state for a separate one)",
                state_dir.display()
            );
        }
        let runtime_files =
            RuntimeFiles::install(&state_dir.join("runtime")).context("cannot write the runtime bootstraps")?;
        // No instance may see the state directory (keys, databases), wherever it lies.
        let mut sandbox_settings = config.sandbox.clone();
        sandbox_settings.hidden.push(state_dir.clone());
        let sandbox = gust_runtime::sandbox::probe(&sandbox_settings, &runtime_files)?;
        let status_info = gust_gateway::StatusInfo {
            started_at: std::time::SystemTime::now(),
            sandbox: sandbox
                .as_ref()
                .map(|s| {
                    s.report()
                        .iter()
                        .map(|p| gust_api::Protection {
                            protection: p.name.to_string(),
                            enforced: p.enforced,
                            detail: p.detail.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        // Every durable seam, from one configuration (`backends.rs`).
        let backends = backends::Backends::open(
            &backends::BackendsConfig::Embedded {
                state_dir: state_dir.clone(),
                telemetry: config.telemetry,
            },
            config.code,
        )?;
        let code_store = backends.code.clone();
        let secret_store = backends.secrets.clone();
        let kv = backends.kv.clone();
        let telemetry_db = backends.telemetry.clone();
        // Deployed code: a snapshot per code directory (or the working directory in place).
        let source_app = app;
        let resolved = {
            let (source, store, state) = (source_app.clone(), code_store.clone(), state_dir.clone());
            tokio::task::spawn_blocking(move || revision::resolve(source, store.as_ref(), &state))
                .await
                .context("the code snapshot task failed")?
                .map_err(|e| anyhow::anyhow!("{e}"))?
        };
        let app = resolved.app;
        let exporter = config.otlp.clone().map(otlp::OtlpExporter::start);
        // The Lambda API's `LogType: Tail` reads what the telemetry sink passes on: redacted
        // and within the per-invocation budget, as `gust logs` shows it.
        let tail = gust_runtime::Tail::new(sink);
        let telemetry =
            telemetry::PlatformTelemetry::new(telemetry_db.clone(), tail.clone(), telemetry::LOG_LIMIT_BYTES, exporter);

        let gateway_listener = TcpListener::bind(config.gateway_addr)
            .await
            .with_context(|| format!("cannot listen on {} for the gateway", config.gateway_addr))?;
        let admin_listener = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| format!("cannot listen on {} for the admin API", config.admin_addr))?;
        let gateway_addr = gateway_listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let admin_socket_listener = config.admin_socket.as_deref().map(bind_admin_socket).transpose()?;

        let executor = Executor::new(
            ExecutorConfig {
                runtime_files,
                platform_api: Some(format!("http://{admin_addr}")),
                region: app.region.clone(),
                account_id: gust_gateway::ACCOUNT_ID.into(),
                prewarm_per_runtime: config.prewarm_per_runtime,
                resident_code_bytes: config.resident_code_bytes,
                sandbox,
                crash_loop: config.crash_loop,
            },
            telemetry.clone(),
        );
        let invoker = Invoker::new(executor, telemetry.clone());
        // The admin address's credentials: the operator's, and access keys for the Lambda API.
        let operator_token = operator::load_or_create(&state_dir)?;
        let operator_credential =
            gust_gateway::OperatorToken::new(&operator_token).context("the operator token is too short")?;
        let access_keys =
            gust_gateway::AccessKeys::load(secret_store.clone()).map_err(|e| anyhow::anyhow!("access keys: {e}"))?;
        let platform_secrets = secrets::PlatformSecrets::new(
            secret_store.clone(),
            app.clone(),
            invoker.clone(),
            backends.master_key.clone(),
        );
        let secret_env = platform_secrets
            .env_for_functions()
            .map_err(|e| anyhow::anyhow!("secrets: {e}"))?;
        provision_tables(&backends.dynamodb, &app)
            .await
            .with_context(|| loaded.file.display().to_string())?;
        invoker.redeploy(&app, &secret_env, &resolved.revisions, false).await?;
        let events = Events::start(
            backends.log.clone(),
            invoker.clone(),
            &app,
            gust_gateway::ACCOUNT_ID,
            &|name| broker_secret(&secret_store, name),
            Some(backends.dynamodb.clone()),
        );
        let api_keys = Arc::new(gust_gateway::auth::MemoryApiKeyStore::new());
        gust_gateway::load_api_keys(kv.as_ref(), &api_keys)
            .await
            .map_err(|e| anyhow::anyhow!("api keys: {e}"))?;
        // The manifest's keys (serverless.yml apiKeys): created, updated or revoked to match it.
        let new_api_keys = gust_gateway::apikeys::sync_manifest_keys(kv.as_ref(), &api_keys, &app.api_keys)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.file.display()))?;
        // Quota counts survive a restart: read back here, written behind while running.
        let quotas = gust_gateway::quotas::DurableQuotas::load(backends.quotas, std::time::SystemTime::now())
            .await
            .map_err(|e| anyhow::anyhow!("quota counters: {e}"))?;
        quotas.start(gust_gateway::quotas::FLUSH_EVERY);
        let gateway_auth = auth::gateway_auth(&app, &secret_store, api_keys.clone(), quotas.counter())
            .await
            .with_context(|| loaded.file.display().to_string())?;
        let upstreams = upstreams::start(
            &app,
            &upstreams::GustAddresses {
                gateway: format!("http://{gateway_addr}"),
                admin: format!("http://{admin_addr}"),
                state_dir: state_dir.clone(),
            },
        )
        .await?;
        let gateway = Gateway::new(invoker.clone(), Some(events.clone()), config.max_body_bytes);
        gateway.set_auth(gateway_auth);
        gateway.deploy(&app, &upstreams.upstreams);
        let firer = Arc::new(schedules::EventsFirer {
            events: events.clone(),
            region: app.region.clone(),
            account: gust_gateway::ACCOUNT_ID.into(),
        });
        let schedule_tasks = spawn_schedules(&compiled, &config.clock, &firer);
        let schedules_info = Arc::new(schedules::SchedulesInfo {
            schedules: std::sync::RwLock::new(Arc::new(compiled)),
            firer: firer.clone(),
            clock: config.clock.clone(),
        });
        let schedules_api: Arc<dyn gust_gateway::SchedulesApi> = schedules_info.clone();
        let admin = Admin::new(
            invoker.clone(),
            kv.clone(),
            backends.blobs.clone(),
            Some(events.clone()),
            Some(schedules_api),
        )
        .with_telemetry(telemetry_db.clone())
        .with_log_tail(tail)
        .with_upstreams(&upstreams.upstreams)
        .with_secrets(platform_secrets.clone())
        .with_api_keys(api_keys.clone())
        .with_operator_token(operator_credential)
        .with_access_keys(access_keys)
        .with_dynamodb(backends.dynamodb.clone(), app.name.as_str())
        .with_host_policy(gust_gateway::HostPolicy::with_names(&config.admin_hosts))
        .with_status(status_info);

        let deployer = Arc::new(Deployer {
            manifest: config.app.clone(),
            options,
            state_dir: state_dir.clone(),
            kv,
            api_keys,
            secret_store,
            platform_secrets,
            quota_counter: quotas.counter(),
            gateway: gateway.clone(),
            admin: admin.clone(),
            schedules: schedules_info,
            firer,
            clock: config.clock.clone(),
            dynamodb: backends.dynamodb.clone(),
            addresses: upstreams::GustAddresses {
                gateway: format!("http://{gateway_addr}"),
                admin: format!("http://{admin_addr}"),
                state_dir: state_dir.clone(),
            },
            invoker: invoker.clone(),
            events: events.clone(),
            app: std::sync::RwLock::new(Arc::new(app.clone())),
            source: std::sync::RwLock::new(Arc::new(source_app.clone())),
            code_store,
            running_number: std::sync::atomic::AtomicU64::new(1),
            current: tokio::sync::Mutex::new(Some(Current {
                running: Version {
                    number: 1,
                    at: std::time::SystemTime::now(),
                    app: Arc::new(app.clone()),
                    source: Arc::new(source_app.clone()),
                    revisions: resolved.revisions.clone(),
                    trees: resolved.trees.clone(),
                    manifest_file: loaded.file.clone(),
                    changes: Vec::new(),
                },
                history: std::collections::VecDeque::new(),
                next_number: 2,
                schedule_tasks,
                upstreams,
            })),
        });
        deployer
            .admin
            .set_deployer(Arc::new(DeployHandle(Arc::downgrade(&deployer))));
        let (stop_gateway, rx) = watch::channel(false);
        let gateway_task = tokio::spawn(serve(gateway_listener, gateway, config.limits.clone(), stopped(rx)));
        let (stop_admin, rx) = watch::channel(false);
        let admin_socket_task = match admin_socket_listener {
            Some(listener) => Some(tokio::spawn(serve(
                listener,
                admin.clone(),
                config.limits.clone(),
                stopped(rx.clone()),
            ))),
            None => None,
        };
        let admin_task = tokio::spawn(serve(admin_listener, admin, config.limits.clone(), stopped(rx)));

        let info = serde_json::json!({
            "gateway": format!("http://{gateway_addr}"),
            "admin": format!("http://{admin_addr}"),
            "admin_socket": config.admin_socket,
            "pid": std::process::id(),
        });
        std::fs::write(state_dir.join(RUNTIME_INFO_FILE), info.to_string())
            .context("cannot write the runtime info file")?;
        let backlog_sampler = backlog::spawn_sampler(events.clone(), telemetry_db.clone(), config.backlog_sample_every);

        Ok(Self {
            gateway_addr,
            admin_addr,
            admin_socket: config.admin_socket.clone(),
            state_dir,
            warnings: loaded.warnings,
            new_api_keys,
            invoker,
            events,
            _lock: lock,
            telemetry: telemetry_db,
            deployer,
            operator_token,
            quotas,
            stop_gateway,
            stop_admin,
            gateway_task,
            admin_task,
            admin_socket_task,
            backlog_sampler,
        })
    }

    /// The running version of the app.
    pub fn app(&self) -> Arc<gust_model::App> {
        self.deployer.app()
    }

    /// The running version as its manifest describes it: code directories in the working
    /// directory (what `--watch` watches), not the snapshots functions run from.
    pub fn source_app(&self) -> Arc<gust_model::App> {
        self.deployer.source.read().expect("source lock").clone()
    }

    /// The upstream services of the running version.
    pub async fn upstreams(&self) -> Vec<Arc<gust_gateway::upstream::Upstream>> {
        let current = self.deployer.current.lock().await;
        current
            .as_ref()
            .map(|c| c.upstreams.upstreams.clone())
            .unwrap_or_default()
    }

    /// Reads the app's manifest and code again and switches to them without downtime:
    /// functions whose spec, secrets and code did not change keep their warm instances; new
    /// and changed ones are prepared and their first instance started before the switch (a
    /// version that does not validate or start is refused, and the running one keeps
    /// serving); invocations and event deliveries in flight finish on the version they
    /// started on; routes, authorizers, subscriptions, schedules and upstreams follow the new
    /// manifest. Redeploys run one at a time.
    pub async fn redeploy(&self) -> Result<DeployReport, DeployError> {
        self.deployer.redeploy().await
    }

    /// Switches back to a kept version (`to`, or the one before the running one), the same
    /// way as a redeploy: its code snapshots and configuration, its instances started before
    /// the switch. The versions kept are the running one and the 4 before it, while this Gust
    /// runs (a restart deploys the working directory as version 1).
    pub async fn rollback(&self, to: Option<u64>) -> Result<DeployReport, DeployError> {
        self.deployer.rollback(to).await
    }

    /// The running version and the ones kept for rollback, newest first.
    pub async fn versions(&self) -> Vec<VersionInfo> {
        self.deployer.versions().await
    }
}

impl Deployer {
    async fn versions(&self) -> Vec<VersionInfo> {
        let guard = self.current.lock().await;
        let Some(current) = guard.as_ref() else {
            return Vec::new();
        };
        std::iter::once(&current.running)
            .chain(current.history.iter())
            .map(|v| VersionInfo {
                number: v.number,
                running: v.number == current.running.number,
                at: v.at,
                functions: v.app.functions.len(),
                code: {
                    let mut t: Vec<String> = v.trees.iter().cloned().collect();
                    t.sort();
                    t
                },
                changes: v.changes.clone(),
            })
            .collect()
    }
}

impl Platform {
    /// The operator credential (what `<state>/operator.token` holds).
    pub fn operator_token(&self) -> &str {
        &self.operator_token
    }

    /// The longest function timeout: how long in-flight work can take to finish.
    pub fn max_timeout(&self) -> Duration {
        self.app()
            .functions
            .values()
            .map(|f| f.timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Stops taking requests, lets in-flight invocations finish (each within its timeout),
    /// stops every instance, then closes the admin API functions were still using.
    pub async fn shutdown(self) {
        let _ = self.stop_gateway.send(true);
        self.backlog_sampler.abort();
        let grace = self.max_timeout() + Duration::from_secs(1);
        // No redeploy starts from now on; the running version's schedules and upstreams stop.
        let current = self.deployer.current.lock().await.take();
        if let Some(current) = &current {
            for t in &current.schedule_tasks {
                t.abort();
            }
        }
        // Deliveries in flight finish (or their records become due again at the next start).
        self.events.stop(grace).await;
        self.invoker.shutdown(grace).await;
        if let Some(current) = current {
            current.upstreams.stop().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.gateway_task).await;
        self.quotas.stop().await;
        self.telemetry.flush().await;
        // Open log streams never end by themselves; the server waits for open requests.
        self.deployer.admin.close_streams();
        let _ = self.stop_admin.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.admin_task).await;
        if let Some(task) = self.admin_socket_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        if let Some(path) = &self.admin_socket {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(self.state_dir.join(RUNTIME_INFO_FILE));
    }
}

/// Binds the admin address's Unix socket at `path`, readable and writable by Gust's own user
/// only (connecting to a socket needs write permission). A socket file left by a Gust that is
/// gone is replaced; one another process still listens on, or a file that is not a socket, is
/// an error rather than something to delete.
fn bind_admin_socket(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!("{} is in use by another process (another Gust?)", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot replace the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; choose another --admin-socket path",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {} for the admin API", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {} to Gust's user", path.display()))?;
    Ok(listener)
}

/// Reads the admin URL a running `gust up` wrote into its state directory.
pub fn admin_url_from_state(state_dir: &Path) -> Result<String> {
    let path = state_dir.join(RUNTIME_INFO_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no running Gust found ({} is missing); start one with `gust up` or pass --admin",
            path.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))?;
    v["admin"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{} has no admin address", path.display()))
}

/// Renders a trace's spans (`GET /gust/v1/traces/{id}`) as an indented tree with start offsets
/// and durations.
pub fn trace_tree(spans: &[gust_api::Span]) -> String {
    use std::fmt::Write;
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let t0 = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    let mut out = String::new();
    fn walk(
        out: &mut String,
        spans: &[gust_api::Span],
        parent: Option<&str>,
        depth: usize,
        t0: i64,
        roots: bool,
        ids: &std::collections::HashSet<&str>,
    ) {
        for s in spans {
            let p = s.parent_id.as_deref();
            let is_child = if roots {
                p.is_none_or(|p| !ids.contains(p))
            } else {
                p == parent
            };
            if !is_child {
                continue;
            }
            let start = (s.start_us - t0) as f64 / 1000.0;
            let dur = s.duration_us as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{:indent$}{} [{}] +{start:.2}ms {dur:.2}ms{}",
                "",
                s.name,
                s.kind,
                if s.error { " ERROR" } else { "" },
                indent = depth * 2
            );
            walk(out, spans, Some(&s.span_id), depth + 1, t0, false, ids);
        }
    }
    walk(&mut out, spans, None, 0, t0, true, &ids);
    let _ = writeln!(out, "{} spans", spans.len());
    out
}

/// The per-user pointer to the Gust this user started last, so that the CLI finds it from
/// any directory: a file holding that Gust's state directory, at
/// `$XDG_STATE_HOME/gust/last` (else `~/.local/state/gust/last`). It is only a hint: the
/// state directory's `gust.json` (with its pid) says whether that Gust still runs.
pub mod user_pointer {
    use std::path::{Path, PathBuf};

    pub fn path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
        Some(base.join("gust").join("last"))
    }

    /// Points at `state_dir` (best effort: a read-only home only loses the hint).
    pub fn write(state_dir: &Path) {
        let Some(p) = path() else { return };
        let Ok(abs) = std::fs::canonicalize(state_dir) else {
            return;
        };
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, abs.as_os_str().as_encoded_bytes()).is_ok() {
            let _ = std::fs::rename(&tmp, &p);
        }
    }

    /// Removes the pointer if it still points at `state_dir` (a later Gust may have taken it).
    pub fn clear(state_dir: &Path) {
        let Some(p) = path() else { return };
        let Ok(abs) = std::fs::canonicalize(state_dir) else {
            return;
        };
        if std::fs::read(&p).is_ok_and(|b| b == abs.as_os_str().as_encoded_bytes()) {
            let _ = std::fs::remove_file(&p);
        }
    }

    /// The state directory pointed at, when a Gust still runs there.
    pub fn read(pointer: &Path) -> Option<PathBuf> {
        let text = std::fs::read_to_string(pointer).ok()?;
        let dir = PathBuf::from(text.trim());
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(super::RUNTIME_INFO_FILE)).ok()?).ok()?;
        let pid = info["pid"].as_i64()? as i32;
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        alive.then_some(dir)
    }
}
