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
pub mod cost;
pub mod handlers;
pub mod operator;
pub mod otlp;
pub mod schedules;
pub mod secrets;
pub mod telemetry;
pub mod upstreams;

use anyhow::{bail, Context, Result};
use gust_events::{EventLog, Events, SqliteLog};
use gust_gateway::{serve, Admin, Gateway, ServerLimits, DEFAULT_MAX_BODY_BYTES};
use gust_runtime::{Executor, ExecutorConfig, Invoker, LogSink, RuntimeFiles, TracingLogSink};
use gust_store::{BlobStore, FsBlobStore, KvStore, Retention, SqliteStore, TelemetryDb};
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
    pub app: gust_model::App,
    pub warnings: Vec<String>,
    /// API keys the manifest declares without a value, generated at this start:
    /// `(name, key)`. The only time their plaintext exists; `gust up` prints them once.
    pub new_api_keys: Vec<(String, String)>,
    pub invoker: Arc<Invoker>,
    pub events: Arc<Events>,
    /// Held for the platform's lifetime: the state directory is this Gust's alone.
    _lock: std::fs::File,
    pub telemetry: TelemetryDb,
    pub upstreams: upstreams::RunningUpstreams,
    /// The operator credential (also in `<state>/operator.token`).
    operator_token: String,
    /// API-key quota counts, written behind to the state database (saved at shutdown).
    quotas: Arc<gust_gateway::quotas::DurableQuotas>,
    schedule_tasks: Vec<JoinHandle<()>>,
    stop_gateway: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    gateway_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    admin_socket_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("gateway_addr", &self.gateway_addr)
            .field("admin_addr", &self.admin_addr)
            .finish()
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
        let kv: Arc<dyn KvStore> =
            Arc::new(SqliteStore::open(&state_dir.join("state.db")).context("cannot open the state database")?);
        // Telemetry has a file of its own: its busy, disposable writes must not share a WAL (and
        // its checkpoints) with the durable state.
        let telemetry_db = TelemetryDb::open(&state_dir.join("telemetry.db"), Retention::default())
            .map_err(|e| anyhow::anyhow!("cannot open the telemetry tables: {e}"))?;
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
        let secret_store = secrets::open_store(&state_dir.join("state.db"), &state_dir.join("master.key"))
            .map_err(|e| anyhow::anyhow!("secrets: {e}"))?;
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
            state_dir.join("master.key"),
        );
        let secret_env = platform_secrets
            .env_for_functions()
            .map_err(|e| anyhow::anyhow!("secrets: {e}"))?;
        invoker.deploy_with(&app, &secret_env, None)?;
        let log: Arc<dyn EventLog> =
            Arc::new(SqliteLog::open(&state_dir.join("state.db")).context("cannot open the event log")?);
        // Broker sources read their passwords from Gust secrets (`password_secret`); a missing
        // one is reported as the source's state, and Gust still starts.
        let broker_secret = |name: &str| -> Option<String> {
            match secret_store.get(name) {
                Ok(Some((value, _))) => Some(String::from_utf8_lossy(&value).into_owned()),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(secret = name, error = %e, "cannot read a broker source's secret");
                    None
                }
            }
        };
        let events = Events::start(log, invoker.clone(), &app, gust_gateway::ACCOUNT_ID, &broker_secret);
        let api_keys = Arc::new(gust_gateway::auth::MemoryApiKeyStore::new());
        gust_gateway::load_api_keys(kv.as_ref(), &api_keys)
            .await
            .map_err(|e| anyhow::anyhow!("api keys: {e}"))?;
        // The manifest's keys (serverless.yml apiKeys): created, updated or revoked to match it.
        let new_api_keys = gust_gateway::apikeys::sync_manifest_keys(kv.as_ref(), &api_keys, &app.api_keys)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.file.display()))?;
        // Quota counts survive a restart: read back here, written behind while running.
        let quota_store =
            gust_store::QuotaStore::open(&state_dir.join("state.db")).context("cannot open the quota counters")?;
        let quotas = gust_gateway::quotas::DurableQuotas::load(quota_store, std::time::SystemTime::now())
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
        gateway.deploy(&app, &upstreams.upstreams);
        gateway.set_auth(gateway_auth);
        let firer = Arc::new(schedules::EventsFirer {
            events: events.clone(),
            region: app.region.clone(),
            account: gust_gateway::ACCOUNT_ID.into(),
        });
        let mut schedule_tasks = Vec::new();
        for (spec, schedule) in compiled.iter().filter(|(s, _)| s.enabled) {
            schedule_tasks.push(gust_scheduler::spawn_runner(
                spec.clone(),
                schedule.clone(),
                config.clock.clone(),
                firer.clone(),
            ));
        }
        let schedules_api: Arc<dyn gust_gateway::SchedulesApi> = Arc::new(schedules::SchedulesInfo {
            schedules: compiled,
            firer,
            clock: config.clock.clone(),
        });
        let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(&state_dir.join("blobs")));
        let admin = Admin::new(invoker.clone(), kv, blobs, Some(events.clone()), Some(schedules_api))
            .with_telemetry(telemetry_db.clone())
            .with_log_tail(tail)
            .with_upstreams(&upstreams.upstreams)
            .with_secrets(platform_secrets)
            .with_api_keys(api_keys)
            .with_operator_token(operator_credential)
            .with_access_keys(access_keys)
            .with_dynamodb(
                Arc::new(
                    gust_aws::dynamodb::DynamoDb::open(&state_dir.join("aws.db"))
                        .context("cannot open the DynamoDB database")?,
                ),
                app.name.as_str(),
            )
            .with_host_policy(gust_gateway::HostPolicy::with_names(&config.admin_hosts));

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

        Ok(Self {
            gateway_addr,
            admin_addr,
            admin_socket: config.admin_socket.clone(),
            state_dir,
            app,
            warnings: loaded.warnings,
            new_api_keys,
            invoker,
            events,
            _lock: lock,
            telemetry: telemetry_db,
            upstreams,
            operator_token,
            quotas,
            schedule_tasks,
            stop_gateway,
            stop_admin,
            gateway_task,
            admin_task,
            admin_socket_task,
        })
    }

    /// The operator credential (what `<state>/operator.token` holds).
    pub fn operator_token(&self) -> &str {
        &self.operator_token
    }

    /// The longest function timeout: how long in-flight work can take to finish.
    pub fn max_timeout(&self) -> Duration {
        self.app
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
        for t in &self.schedule_tasks {
            t.abort();
        }
        let grace = self.max_timeout() + Duration::from_secs(1);
        // Deliveries in flight finish (or their records become due again at the next start).
        self.events.stop(grace).await;
        self.invoker.shutdown(grace).await;
        self.upstreams.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.gateway_task).await;
        self.quotas.stop().await;
        self.telemetry.flush().await;
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
