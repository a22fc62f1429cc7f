//! The `gust` command line.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use gust::{admin_url_from_state, Platform, PlatformConfig};
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// mimalloc instead of glibc's malloc: under load the allocator was over a tenth of Gust's CPU
/// (per-request buffers freed on other threads, `malloc_consolidate`); see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gust",
    version,
    about = "Gust: a self-hosted serverless platform for microservices"
)]
struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the app in DIR in the foreground until Ctrl-C or SIGTERM.
    Up {
        /// App directory (holding gust.toml or serverless.yml) or manifest file.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Gateway port (0 picks a free one).
        #[arg(long, short, default_value_t = 8080, env = "GUST_PORT")]
        port: u16,
        /// Admin API port: Lambda Invoke API, the platform API for functions, the operator API.
        #[arg(long, default_value_t = 8081, env = "GUST_ADMIN_PORT")]
        admin_port: u16,
        /// Host names the admin API answers to besides IP addresses and localhost (a reverse
        /// proxy's, say); repeat or separate with commas. Others are refused (DNS rebinding).
        #[arg(long = "admin-host", env = "GUST_ADMIN_HOSTS", value_delimiter = ',')]
        admin_host: Vec<String>,
        /// Also serve the admin API on this Unix socket (mode 0600, removed at exit); the CLI
        /// reaches it with `--admin unix:PATH`. The operator token is still required on it.
        #[arg(long = "admin-socket", env = "GUST_ADMIN_SOCKET")]
        admin_socket: Option<PathBuf>,
        /// Address the gateway listens on.
        #[arg(long, default_value = "127.0.0.1", env = "GUST_HOST")]
        host: IpAddr,
        /// State directory (default: DIR/.gust).
        #[arg(long, env = "GUST_STATE_DIR")]
        state: Option<PathBuf>,
        /// Generic Node/Python runtimes kept started per runtime in use, so cold starts skip
        /// process start (0 turns it off).
        #[arg(long, default_value_t = 1, env = "GUST_PREWARM")]
        prewarm: usize,
        /// MiB of `provided` functions' executables kept mapped while deployed, so that a cold
        /// start after a long idle does not read them from disk again (0 turns it off).
        #[arg(long, default_value_t = gust_runtime::DEFAULT_RESIDENT_CODE_BYTES >> 20, env = "GUST_RESIDENT_CODE_MB")]
        resident_code_mb: u64,
        /// Invocation records kept (the oldest go first; at most 7 days). The console's charts
        /// come from per-minute rollups kept 14 days whatever this is.
        #[arg(long, default_value_t = 200_000, env = "GUST_KEEP_INVOCATIONS")]
        keep_invocations: u64,
        /// Stage: gust.toml's [stages.NAME] overlay, serverless.yml's ${opt:stage}/${sls:stage}
        /// (default: serverless.yml's provider.stage, else dev).
        #[arg(long, env = "GUST_STAGE")]
        stage: Option<String>,
        /// How function instances are confined: `auto` (what this host offers; each
        /// protection that is off is named at start), `strict` (refuse to start unless all are
        /// in force) or `off` (trusted functions).
        #[arg(long, default_value = "auto", env = "GUST_SANDBOX")]
        sandbox: gust_runtime::sandbox::SandboxMode,
        /// uids instances get when Gust runs as root, `FIRST-LAST` (one per instance).
        #[arg(long, default_value = "2000000-2065535", env = "GUST_SANDBOX_UIDS")]
        sandbox_uids: String,
        /// Milliseconds an instance stays idle (its runtime waiting for the next event) before
        /// its processes are frozen until the next invocation, as Lambda freezes idle
        /// environments; `off` keeps idle instances running.
        #[arg(long, default_value = "10", env = "GUST_FREEZE_IDLE_AFTER")]
        freeze_idle_after: String,
        /// Redeploy when the app's files change: a handler or dependency edit redeploys the
        /// functions whose code changed, a manifest edit the app; a broken edit is shown and
        /// the last good version keeps serving.
        #[arg(long)]
        watch: bool,
        /// Where functions run from: `snapshot` (an immutable copy of their code taken at each
        /// deploy, as Lambda runs a package: an edit reaches instances only once deployed) or
        /// `in-place` (the working directory as it is when an instance starts).
        #[arg(long, default_value = "snapshot", env = "GUST_CODE")]
        code: gust::revision::CodeMode,
    },
    /// List what confines function instances on this host (the sandbox's protections).
    Doctor {
        #[arg(long, default_value = "auto")]
        sandbox: gust_runtime::sandbox::SandboxMode,
    },
    /// Invoke a function of a running Gust and print its answer.
    Invoke {
        name: String,
        /// The event, as JSON.
        #[arg(long, short, conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the event from a file (`-` for stdin).
        #[arg(long)]
        data_file: Option<PathBuf>,
        /// Queue the invocation (Lambda `InvocationType: Event`): answer at once, run with retries.
        #[arg(long = "async")]
        is_async: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Publish an event to a topic of a running Gust.
    Publish {
        topic: String,
        /// The event data, as JSON.
        #[arg(long, short)]
        data: String,
        /// CloudEvents `type` (default: the topic).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// CloudEvents `id`; a repeat within the dedup window is not delivered twice.
        #[arg(long)]
        id: Option<String>,
        /// A CloudEvents extension attribute, `NAME=VALUE` (repeatable; names are lower-case
        /// letters and digits, as CloudEvents requires). The event is then sent in binary mode.
        #[arg(long = "ext", value_name = "NAME=VALUE")]
        extensions: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Redeploy the running app from its directory without downtime: functions whose code or
    /// settings changed get new instances (started before the switch), the others stay warm; a
    /// version that does not validate or start is refused and the running one keeps serving.
    Redeploy {
        #[command(flatten)]
        target: Target,
    },
    /// Switch back to a version kept since this Gust started (the running one and the 4
    /// before it), without downtime, as a redeploy does.
    Rollback {
        /// The version to go back to (default: the one before the running one).
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// List the running version and the versions kept for rollback.
    Deployments {
        #[command(flatten)]
        target: Target,
    },
    /// Print a one-time link that logs a browser in to the web console (valid for 60 s,
    /// once); the console also takes the operator token on its login page.
    Console {
        #[command(flatten)]
        target: Target,
    },
    /// List subscriptions: backlog, dead letters, and for broker sources their state
    /// (connected / reconnecting with the last error) and lag.
    Subscriptions {
        /// Also list the hidden queues (`gust.async.*`, `gust.schedule.*`).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Inspect and act on dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
        #[command(flatten)]
        target: Target,
    },
    /// Show a function's log lines, tagged with request id and time.
    Logs {
        function: Option<String>,
        /// Keep following new lines.
        #[arg(long, short)]
        follow: bool,
        /// Only lines newer than this (`30s`, `10m`, `2h`, `1d`).
        #[arg(long)]
        since: Option<String>,
        /// Only this invocation's lines.
        #[arg(long)]
        request: Option<String>,
        /// Only lines of invocations in this trace.
        #[arg(long)]
        trace: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List recent invocations.
    Invocations {
        function: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        target: Target,
    },
    /// Print a trace's span tree with timings.
    Trace {
        trace_id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Cost per function at a price table, beside an always-on instance.
    Cost {
        /// The period (`24h`, `7d`, ...).
        #[arg(long, default_value = "24h")]
        since: String,
        /// A TOML price table (`per_gb_second`, `per_million_requests`, `always_on_per_hour`, `always_on_name`).
        #[arg(long)]
        prices: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// List schedules with their next fire times, or run one now.
    Schedules {
        #[command(subcommand)]
        action: Option<ScheduleAction>,
        #[command(flatten)]
        target: Target,
    },
    /// Manage encrypted secrets (values are read from stdin or a file, never from arguments).
    Secrets {
        #[command(subcommand)]
        action: SecretAction,
        #[command(flatten)]
        target: Target,
    },
    /// Manage gateway API keys (stored hashed; a new key is shown once).
    Apikeys {
        #[command(subcommand)]
        action: ApiKeyAction,
        #[command(flatten)]
        target: Target,
    },
    /// Manage access keys for the Lambda API and DynamoDB (AWS Signature Version 4, as
    /// `aws lambda invoke`, `aws dynamodb` and the SDKs sign); stored encrypted, a new secret is
    /// shown once.
    AccessKeys {
        #[command(subcommand)]
        action: AccessKeyAction,
        #[command(flatten)]
        target: Target,
    },
    /// Print the OpenAPI document of the admin API (operator and Lambda API), as checked in at
    /// docs/openapi.json.
    Openapi,
    /// Check a manifest and print what Gust would run.
    Validate {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Stage to check the manifest for (as `gust up --stage`).
        #[arg(long, env = "GUST_STAGE")]
        stage: Option<String>,
    },
}

#[derive(clap::Args)]
struct Target {
    /// Admin URL of the running Gust, or `unix:PATH` for its `--admin-socket` (default: read
    /// from the app's state directory).
    #[arg(long, global = true, env = "GUST_ADMIN")]
    admin: Option<String>,
    /// App directory whose running Gust to use.
    #[arg(long, global = true, default_value = ".")]
    app: PathBuf,
    /// State directory of the running Gust (default: APP/.gust), where its address and the
    /// operator token are read from.
    #[arg(long, global = true, env = "GUST_STATE_DIR")]
    state: Option<PathBuf>,
    /// Operator token (default: the state directory's operator.token); with --admin, this is
    /// how to reach a Gust started elsewhere.
    #[arg(long, global = true, env = "GUST_OPERATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum AccessKeyAction {
    /// Create an access key; prints AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY once.
    Create,
    /// Access key ids and when they were made (never secrets).
    List,
    /// Remove an access key: requests signed with it are refused from now on.
    Rm { id: String },
}

#[derive(Subcommand)]
enum SecretAction {
    /// Set (or replace) a secret; functions granted it are restarted with the new value.
    Set {
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Names, versions and grants (never values).
    List,
    /// Remove a secret.
    Rm { name: String },
    /// Replace a secret's value (same as set; the version goes up).
    Rotate {
        name: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Re-wrap every secret under a new master key (values are not re-encrypted).
    RotateMaster,
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Create a key; prints it once.
    Create {
        name: String,
        /// Requests per second for this key (token bucket).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long)]
        burst: Option<u32>,
        /// Requests per UTC day.
        #[arg(long)]
        quota: Option<u64>,
    },
    List,
    Rm {
        name: String,
    },
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Every schedule with its next three fire times (the default).
    List,
    /// Fire a schedule now, outside its ticks.
    Run {
        /// The schedule's name, or the name of a function with exactly one schedule.
        name: String,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// List dead letters (of one subscription, or all).
    List { subscription: Option<String> },
    /// Show one dead letter with its event.
    Show { subscription: String, seq: i64 },
    /// Deliver dead letters again (all of the subscription's, or `--seq 1,2`).
    Redrive {
        subscription: String,
        #[arg(long)]
        seq: Option<String>,
    },
    /// Delete dead letters (all of the subscription's, or `--seq 1,2`).
    Purge {
        subscription: String,
        #[arg(long)]
        seq: Option<String>,
    },
}

impl Target {
    /// The running Gust's state directory: `--state`, else the app directory's `.gust` when a
    /// Gust runs there, else the one this user started last (`gust::user_pointer`), still
    /// running. The error names each place it looked.
    fn state_dir(&self) -> Result<PathBuf> {
        if let Some(s) = &self.state {
            return Ok(s.clone());
        }
        let root = if self.app.is_file() {
            self.app.parent().map(PathBuf::from).unwrap_or_default()
        } else {
            self.app.clone()
        };
        let local = root.join(".gust");
        if local.join(gust::RUNTIME_INFO_FILE).is_file() {
            return Ok(local);
        }
        let pointer = gust::user_pointer::path();
        let last = match &pointer {
            Some(p) => match gust::user_pointer::read(p) {
                Some(dir) => return Ok(dir),
                None => format!("the Gust this user started last ({}): none running", p.display()),
            },
            None => "the Gust this user started last: no HOME or XDG_STATE_HOME to find it by".to_string(),
        };
        bail!(
            "no running Gust found; tried --admin/GUST_ADMIN (not set), --state/GUST_STATE_DIR (not set), {} (no Gust runs there), {last}. Start one with `gust up`, or pass --admin URL",
            local.join(gust::RUNTIME_INFO_FILE).display()
        )
    }

    fn admin_url(&self) -> Result<String> {
        if let Some(a) = &self.admin {
            // Over a Unix socket the URL only names the host the request says it is for.
            if self.admin_socket().is_some() {
                return Ok("http://localhost".into());
            }
            return Ok(a.trim_end_matches('/').to_string());
        }
        Ok(admin_url_from_state(&self.state_dir()?)?
            .trim_end_matches('/')
            .to_string())
    }

    /// An HTTP client that sends the operator token with every request.
    fn client(&self) -> Result<reqwest::Client> {
        let state = match (&self.token, &self.admin) {
            // With --admin and --token nothing local is needed.
            (Some(_), _) => self.state.clone().unwrap_or_default(),
            _ => self.state_dir()?,
        };
        let token = gust::operator::token_for_cli(self.token.as_deref(), &state)?;
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the operator token is not valid in an HTTP header")?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let mut builder = reqwest::Client::builder().default_headers(headers);
        if let Some(path) = self.admin_socket() {
            builder = builder.unix_socket(path);
        }
        Ok(builder.build()?)
    }

    /// `--admin unix:PATH`: the admin API's Unix socket (`gust up --admin-socket`).
    fn admin_socket(&self) -> Option<PathBuf> {
        self.admin.as_deref()?.strip_prefix("unix:").map(PathBuf::from)
    }
}

/// Sends a request for `endpoint` to the admin API and reads its answer as the contract's
/// type for it (`gust_api`); fails on a non-2xx status, and on an answer that is not that type
/// (a missing field is an error naming the endpoint and the field, never a default).
async fn admin_call<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
    admin: &str,
    endpoint: gust_api::Endpoint,
) -> Result<T> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach Gust at {admin}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        bail!("HTTP {status}: {value}");
    }
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        anyhow::anyhow!(
            "{} {} answered with a body this gust does not understand (at `{at}`: {}); is the running Gust another version?",
            endpoint.method(),
            endpoint.path(),
            e.into_inner()
        )
    })
}

/// An answer as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Gust's log output with every known secret value replaced.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(gust::secrets::redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GUST_LOG")
        // Broker clients' own connection chatter is left out: the sources log their state
        // changes themselves, once per change.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn,redis=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A command piped into `head` should end quietly when the pipe closes, as Unix tools do,
/// instead of panicking on the next print.
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; restoring the default
    // disposition of SIGPIPE installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Up { .. }) {
        default_sigpipe();
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads()? {
        runtime.worker_threads(n);
    }
    runtime.enable_all().build()?.block_on(run(cli))
}

/// `GUST_WORKER_THREADS`: how many threads run Gust's own work (default: one per core).
fn worker_threads() -> Result<Option<usize>> {
    match std::env::var("GUST_WORKER_THREADS") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => bail!("GUST_WORKER_THREADS must be a whole number of threads, 1 or more (got `{v}`)"),
        },
    }
}

/// `--freeze-idle-after MS|off`.
fn parse_freeze_after(text: &str) -> Result<Option<std::time::Duration>> {
    match text.trim() {
        "off" => Ok(None),
        ms => match ms.parse::<u64>() {
            Ok(ms) if ms <= 60_000 => Ok(Some(std::time::Duration::from_millis(ms))),
            _ => bail!("--freeze-idle-after must be a number of milliseconds up to 60000, or `off` (got `{text}`)"),
        },
    }
}

/// `--sandbox-uids FIRST-LAST`.
fn parse_uid_range(text: &str) -> Result<(u32, u32)> {
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((first, last)) if first > 0 && last >= first => Ok((first, last - first + 1)),
        _ => bail!("--sandbox-uids must be FIRST-LAST with 0 < FIRST <= LAST (got `{text}`)"),
    }
}

/// `gust doctor`: probes the sandbox as `gust up` would and prints each protection.
fn doctor(mode: gust_runtime::sandbox::SandboxMode) -> Result<()> {
    let dir = tempfile::tempdir().context("cannot make a scratch directory")?;
    let files = gust_runtime::RuntimeFiles::install(dir.path()).context("cannot write the runtime files")?;
    if mode == gust_runtime::sandbox::SandboxMode::Off {
        println!("sandbox: off: functions run unconfined");
        return Ok(());
    }
    // Probed as strict, so that what is off comes back with its reason.
    let settings = gust_runtime::sandbox::SandboxSettings {
        mode: gust_runtime::sandbox::SandboxMode::Strict,
        ..Default::default()
    };
    let report = match gust_runtime::sandbox::probe(&settings, &files) {
        Ok(sandbox) => sandbox.map(|s| s.report().to_vec()).unwrap_or_default(),
        Err(e) => e.0,
    };
    for p in &report {
        println!(
            "{:<16} {:<4} {}",
            p.name,
            if p.enforced { "on" } else { "OFF" },
            p.detail
        );
    }
    if mode == gust_runtime::sandbox::SandboxMode::Strict && report.iter().any(|p| !p.enforced) {
        bail!("--sandbox strict would refuse to start on this host");
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    init_logging(cli.log_format);
    match cli.command {
        Command::Up {
            dir,
            port,
            admin_port,
            admin_host,
            admin_socket,
            host,
            state,
            prewarm,
            resident_code_mb,
            keep_invocations,
            stage,
            sandbox,
            sandbox_uids,
            freeze_idle_after,
            watch,
            code,
        } => {
            let mut config = PlatformConfig::new(dir);
            config.stage = stage;
            config.code = code;
            config.sandbox.mode = sandbox;
            (config.sandbox.uid_first, config.sandbox.uid_count) = parse_uid_range(&sandbox_uids)?;
            config.sandbox.freeze_idle_after = parse_freeze_after(&freeze_idle_after)?;
            config.gateway_addr = SocketAddr::new(host, port);
            config.admin_addr = SocketAddr::new([127, 0, 0, 1].into(), admin_port);
            config.admin_hosts = admin_host;
            config.admin_socket = admin_socket;
            config.state_dir = state;
            config.prewarm_per_runtime = prewarm;
            config.resident_code_bytes = resident_code_mb.saturating_mul(1 << 20);
            if keep_invocations == 0 {
                bail!("--keep-invocations must be at least 1");
            }
            config.telemetry.max_invocations = keep_invocations;
            config.otlp = gust::otlp::OtlpConfig::from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
            up(config, watch).await
        }
        Command::Doctor { sandbox } => doctor(sandbox),
        Command::Invoke {
            name,
            data,
            data_file,
            is_async,
            target,
        } => invoke(name, data, data_file, is_async, target).await,
        Command::Publish {
            topic,
            data,
            event_type,
            id,
            extensions,
            target,
        } => {
            serde_json::from_str::<serde_json::Value>(&data).context("--data is not valid JSON")?;
            let mut ext = Vec::new();
            for e in &extensions {
                let (name, value) = e
                    .split_once('=')
                    .with_context(|| format!("--ext `{e}` is not NAME=VALUE"))?;
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                anyhow::ensure!(
                    valid,
                    "--ext `{name}`: an extension attribute name is 1-64 lower-case letters and digits"
                );
                let reserved = [
                    "id",
                    "source",
                    "type",
                    "specversion",
                    "subject",
                    "time",
                    "dataschema",
                    "datacontenttype",
                ];
                anyhow::ensure!(
                    !reserved.contains(&name),
                    "--ext `{name}` is a CloudEvents context attribute, not an extension (use --id or --type)"
                );
                ext.push((format!("ce-{name}"), value.to_string()));
            }
            let admin = target.admin_url()?;
            let mut req = target
                .client()?
                .post(format!("{admin}/gust/v1/events/{topic}"))
                .header("content-type", "application/json")
                .body(data);
            if ext.is_empty() {
                if let Some(t) = event_type {
                    req = req.header("x-event-type", t);
                }
                if let Some(id) = id {
                    req = req.header("idempotency-key", id);
                }
            } else {
                // Extensions travel as `ce-*` headers: CloudEvents binary mode.
                req = req
                    .header("ce-specversion", "1.0")
                    .header("ce-id", id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
                    .header("ce-source", "/gust/cli")
                    .header("ce-type", event_type.unwrap_or_else(|| topic.clone()))
                    .header(
                        "ce-time",
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    );
                for (name, value) in ext {
                    req = req.header(name, value);
                }
            }
            let v: gust_api::Published = admin_call(req, &admin, gust_api::Endpoint::Publish).await?;
            print_json(&v)
        }
        Command::Logs {
            function,
            follow,
            since,
            request,
            trace,
            target,
        } => logs(function, follow, since, request, trace, target).await,
        Command::Invocations {
            function,
            limit,
            target,
        } => {
            let admin = target.admin_url()?;
            let mut url = format!("{admin}/gust/v1/invocations?limit={limit}");
            if let Some(f) = &function {
                url.push_str(&format!("&function={f}"));
            }
            let v: gust_api::InvocationList =
                admin_call(target.client()?.get(url), &admin, gust_api::Endpoint::ListInvocations).await?;
            println!(
                "{:<36}  {:<18} {:<8} {:<24} {:>10} {:>7} {:>6}  {:<12} {:<11} {:<24} TRACE",
                "REQUEST",
                "FUNCTION",
                "TRIGGER",
                "START",
                "DURATION",
                "BILLED",
                "MEM",
                "COLD(INIT)",
                "OUTCOME",
                "ERROR"
            );
            for r in v.invocations {
                let start = chrono::DateTime::from_timestamp_millis(r.start_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                    .unwrap_or_else(|| r.start_ms.to_string());
                let cold = match r.init_ms {
                    Some(i) => format!("yes({i:.1}ms)"),
                    None => "no".into(),
                };
                println!(
                    "{:<36}  {:<18} {:<8} {:<24} {:>8.2}ms {:>5}ms {:>4}MB  {:<12} {:<11} {:<24} {}",
                    r.request_id,
                    r.function,
                    r.trigger,
                    start,
                    r.duration_ms,
                    r.billed_ms,
                    r.memory_mb,
                    cold,
                    r.outcome,
                    r.error_type.as_deref().unwrap_or("-"),
                    r.trace_id.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        Command::Trace { trace_id, target } => {
            let admin = target.admin_url()?;
            let v: gust_api::Trace = admin_call(
                target.client()?.get(format!("{admin}/gust/v1/traces/{trace_id}")),
                &admin,
                gust_api::Endpoint::GetTrace,
            )
            .await?;
            print!("{}", gust::trace_tree(&v.spans));
            Ok(())
        }
        Command::Cost { since, prices, target } => {
            let admin = target.admin_url()?;
            let period = parse_age(&since)?;
            let prices: gust::cost::Prices = match prices {
                Some(p) => toml::from_str(
                    &std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?,
                )
                .with_context(|| format!("{}: not a valid price table", p.display()))?,
                None => Default::default(),
            };
            let since_ms = chrono::Utc::now().timestamp_millis() - period.as_millis() as i64;
            let v: gust_api::UsageReport = admin_call(
                target
                    .client()?
                    .get(format!("{admin}/gust/v1/usage?since_ms={since_ms}")),
                &admin,
                gust_api::Endpoint::GetUsage,
            )
            .await?;
            let hours = period.as_secs_f64() / 3600.0;
            println!(
                "{:<22} {:>10} {:>14} {:>12} {:>12} {:>12} {:>14}",
                "FUNCTION", "REQUESTS", "GB-SECONDS", "COMPUTE $", "REQUESTS $", "TOTAL $", "ALWAYS-ON $"
            );
            let (mut total, mut always) = (0.0, 0.0);
            for u in v.usage {
                let c = gust::cost::cost(&u.function, u.requests, u.billed_mb_ms, hours, &prices);
                total += c.total_usd;
                always += c.always_on_usd;
                println!(
                    "{:<22} {:>10} {:>14.4} {:>12.6} {:>12.6} {:>12.6} {:>14.4}",
                    c.function, c.requests, c.gb_seconds, c.compute_usd, c.request_usd, c.total_usd, c.always_on_usd
                );
            }
            println!(
                "\nover {since}: serverless ${total:.6} vs always-on ${always:.4} (one {} per function at ${}/h)",
                prices.always_on_name, prices.always_on_per_hour
            );
            Ok(())
        }
        Command::Secrets { action, target } => {
            let admin = target.admin_url()?;
            let c = target.client()?;
            let read_value = |file: &Option<PathBuf>| -> Result<Vec<u8>> {
                let mut v = match file {
                    Some(f) => std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
                    None => {
                        if std::io::stdin().is_terminal() {
                            eprintln!("value (end with Ctrl-D):");
                        }
                        let mut v = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                        v
                    }
                };
                // A trailing newline from `echo` or an editor is not part of the secret.
                while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    v.pop();
                }
                if v.is_empty() {
                    bail!("the secret value is empty");
                }
                Ok(v)
            };
            use gust_api::Endpoint as E;
            match &action {
                SecretAction::Set { name, file } | SecretAction::Rotate { name, file } => {
                    let value = read_value(file)?;
                    let req = c.put(format!("{admin}/gust/v1/secrets/{name}")).body(value);
                    print_json(&admin_call::<gust_api::SecretSet>(req, &admin, E::SetSecret).await?)?;
                }
                SecretAction::List => {
                    let req = c.get(format!("{admin}/gust/v1/secrets"));
                    let v: gust_api::SecretList = admin_call(req, &admin, E::ListSecrets).await?;
                    for s in v.secrets {
                        println!(
                            "{:<32} v{:<4} {}  granted to: {}",
                            s.name,
                            s.version,
                            s.updated_at,
                            s.granted_to.join(", ")
                        );
                    }
                }
                SecretAction::Rm { name } => {
                    let req = c.delete(format!("{admin}/gust/v1/secrets/{name}"));
                    print_json(&admin_call::<gust_api::Removed>(req, &admin, E::RemoveSecret).await?)?;
                }
                SecretAction::RotateMaster => {
                    let req = c.post(format!("{admin}/gust/v1/secrets/master/rotate"));
                    print_json(&admin_call::<gust_api::MasterKeyRotated>(req, &admin, E::RotateMasterKey).await?)?;
                }
            }
            Ok(())
        }
        Command::Apikeys { action, target } => {
            let admin = target.admin_url()?;
            let c = target.client()?;
            use gust_api::Endpoint as E;
            match action {
                ApiKeyAction::Create {
                    name,
                    rate,
                    burst,
                    quota,
                } => {
                    let body = gust_api::CreateApiKey {
                        name,
                        rate,
                        burst,
                        quota_per_day: quota,
                    };
                    let req = c.post(format!("{admin}/gust/v1/apikeys")).json(&body);
                    let v: gust_api::NewApiKey = admin_call(req, &admin, E::CreateApiKey).await?;
                    println!("{}", v.api_key);
                    eprintln!(
                        "API key `{}` created: store it now, it is not shown again (send it as `x-api-key`)",
                        v.name
                    );
                }
                ApiKeyAction::List => {
                    let req = c.get(format!("{admin}/gust/v1/apikeys"));
                    print_json(&admin_call::<gust_api::ApiKeyList>(req, &admin, E::ListApiKeys).await?)?;
                }
                ApiKeyAction::Rm { name } => {
                    let req = c.delete(format!("{admin}/gust/v1/apikeys/{name}"));
                    print_json(&admin_call::<gust_api::Removed>(req, &admin, E::RemoveApiKey).await?)?;
                }
            }
            Ok(())
        }
        Command::Schedules { action, target } => {
            let admin = target.admin_url()?;
            let c = target.client()?;
            match action.unwrap_or(ScheduleAction::List) {
                ScheduleAction::List => {
                    let req = c.get(format!("{admin}/gust/v1/schedules"));
                    let v: gust_api::ScheduleList = admin_call(req, &admin, gust_api::Endpoint::ListSchedules).await?;
                    if v.schedules.is_empty() {
                        println!("no schedules");
                    }
                    for s in v.schedules {
                        println!(
                            "{:<24} {:<26} {:<16} -> {:<20} {}{}",
                            s.name,
                            s.expression,
                            s.timezone,
                            s.function,
                            if s.enabled { "next: " } else { "disabled" },
                            s.next.join(", ")
                        );
                    }
                }
                ScheduleAction::Run { name } => {
                    let req = c.post(format!("{admin}/gust/v1/schedules/{name}/run"));
                    let v: gust_api::ScheduleRun = admin_call(req, &admin, gust_api::Endpoint::RunSchedule).await?;
                    println!("queued a run of `{}` ({})", v.schedule, v.id);
                }
            }
            Ok(())
        }
        Command::Redeploy { target } => deploy_call(&target, "/gust/v1/deployments".into()).await,
        Command::Rollback { to, target } => {
            let path = match to {
                Some(n) => format!("/gust/v1/deployments/rollback?to={n}"),
                None => "/gust/v1/deployments/rollback".into(),
            };
            deploy_call(&target, path).await
        }
        Command::Console { target } => {
            let admin = target.admin_url()?;
            if target.admin_socket().is_some() {
                bail!("the console is a web page on the admin TCP address; a browser cannot reach the Unix socket (use --admin http://HOST:PORT)");
            }
            let req = target.client()?.post(format!("{admin}/gust/v1/console/codes"));
            let code: gust_api::ConsoleCode = admin_call(req, &admin, gust_api::Endpoint::CreateConsoleCode).await?;
            eprintln!(
                "Open this link within {} s to log in to the console (it works once):",
                code.expires_in_s
            );
            println!("{admin}{}", code.path);
            Ok(())
        }
        Command::Deployments { target } => {
            let admin = target.admin_url()?;
            let req = target.client()?.get(format!("{admin}/gust/v1/deployments"));
            let list: gust_api::DeploymentList = admin_call(req, &admin, gust_api::Endpoint::ListDeployments).await?;
            println!("app `{}`", list.app);
            println!(
                "{:<8} {:<8} {:<25} {:>9}  {:<26} CHANGED",
                "VERSION", "", "DEPLOYED", "FUNCTIONS", "CODE"
            );
            for v in &list.versions {
                let code = if v.code.is_empty() {
                    "in place".to_string()
                } else {
                    v.code
                        .iter()
                        .map(|c| &c[..12.min(c.len())])
                        .collect::<Vec<_>>()
                        .join(",")
                };
                println!(
                    "{:<8} {:<8} {:<25} {:>9}  {code:<26} {}",
                    v.version,
                    if v.running { "serving" } else { "" },
                    v.deployed_at,
                    v.functions,
                    if v.changes.is_empty() {
                        "-".to_string()
                    } else {
                        v.changes.join(", ")
                    }
                );
            }
            Ok(())
        }
        Command::Subscriptions { all, target } => {
            let admin = target.admin_url()?;
            let c = target.client()?;
            let req = c.get(format!("{admin}/gust/v1/subscriptions"));
            let v: gust_api::SubscriptionList = admin_call(req, &admin, gust_api::Endpoint::ListSubscriptions).await?;
            println!(
                "{:<28} {:<20} {:<16} {:<14} {:>8} {:>8} {:>5}  LAST ERROR",
                "NAME", "FUNCTION", "SOURCE", "STATE", "LAG", "BACKLOG", "DLQ"
            );
            for s in v.subscriptions.iter().filter(|s| all || !s.name.starts_with("gust.")) {
                let (kind, state, lag, error) = match &s.source {
                    Some(src) => (
                        src.kind.as_str(),
                        src.state.as_str(),
                        src.lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                        src.last_error.clone().unwrap_or_default(),
                    ),
                    None => ("topic", "-", "-".into(), String::new()),
                };
                println!(
                    "{:<28} {:<20} {:<16} {:<14} {:>8} {:>8} {:>5}  {}",
                    s.name,
                    s.function,
                    kind,
                    state,
                    lag,
                    s.backlog,
                    s.dead_letters,
                    error.chars().take(80).collect::<String>()
                );
            }
            Ok(())
        }
        Command::Dlq { action, target } => {
            let admin = target.admin_url()?;
            let c = target.client()?;
            let with_seq = |url: String, seq: &Option<String>| match seq {
                Some(s) => format!("{url}?seq={s}"),
                None => url,
            };
            use gust_api::Endpoint as E;
            match &action {
                DlqAction::List { subscription } => {
                    let url = match subscription {
                        Some(s) => format!("{admin}/gust/v1/dlq?subscription={s}"),
                        None => format!("{admin}/gust/v1/dlq"),
                    };
                    let v: gust_api::DeadLetterList = admin_call(c.get(url), &admin, E::ListDeadLetters).await?;
                    if v.dead_letters.is_empty() {
                        println!("no dead letters");
                    }
                    for d in v.dead_letters {
                        println!(
                            "{:<28} seq {:<6} attempts {:<3} {:<22} {}  {}",
                            d.subscription,
                            d.seq,
                            d.attempts,
                            d.reason,
                            d.failed_at.as_deref().unwrap_or(""),
                            d.last_error.chars().take(100).collect::<String>()
                        );
                    }
                }
                DlqAction::Show { subscription, seq } => {
                    let req = c.get(format!("{admin}/gust/v1/dlq/{subscription}/{seq}"));
                    print_json(&admin_call::<gust_api::DeadLetter>(req, &admin, E::GetDeadLetter).await?)?;
                }
                DlqAction::Redrive { subscription, seq } => {
                    let req = c.post(with_seq(format!("{admin}/gust/v1/dlq/{subscription}/redrive"), seq));
                    print_json(&admin_call::<gust_api::Redriven>(req, &admin, E::RedriveDeadLetters).await?)?;
                }
                DlqAction::Purge { subscription, seq } => {
                    let req = c.delete(with_seq(format!("{admin}/gust/v1/dlq/{subscription}"), seq));
                    print_json(&admin_call::<gust_api::Purged>(req, &admin, E::PurgeDeadLetters).await?)?;
                }
            }
            Ok(())
        }
        Command::AccessKeys { action, target } => {
            let admin = target.admin_url()?;
            let c = target.client()?;
            use gust_api::Endpoint as E;
            match action {
                AccessKeyAction::Create => {
                    let req = c.post(format!("{admin}/gust/v1/access-keys"));
                    let v: gust_api::NewAccessKey = admin_call(req, &admin, E::CreateAccessKey).await?;
                    println!("AWS_ACCESS_KEY_ID={}", v.access_key_id);
                    println!("AWS_SECRET_ACCESS_KEY={}", v.secret_access_key);
                    eprintln!(
                        "access key created: store the secret now, it is not shown again \
                         (aws lambda invoke --endpoint-url {admin} ... with these two variables)"
                    );
                }
                AccessKeyAction::List => {
                    let req = c.get(format!("{admin}/gust/v1/access-keys"));
                    let v: gust_api::AccessKeyList = admin_call(req, &admin, E::ListAccessKeys).await?;
                    if v.access_keys.is_empty() {
                        println!("no access keys");
                    }
                    for k in v.access_keys {
                        println!("{:<22} created {}", k.access_key_id, k.created_at);
                    }
                }
                AccessKeyAction::Rm { id } => {
                    let req = c.delete(format!("{admin}/gust/v1/access-keys/{id}"));
                    let v: gust_api::Removed = admin_call(req, &admin, E::RemoveAccessKey).await?;
                    println!("removed {}", v.removed);
                }
            }
            Ok(())
        }
        Command::Openapi => {
            print!("{}", gust_api::openapi());
            Ok(())
        }
        Command::Validate { dir, stage } => validate(dir, stage),
    }
}

/// What `gust up` runs: functions and routes (on stderr, beside the log).
fn print_app(app: &gust_model::App) {
    let mut err = std::io::stderr().lock();
    let _ = write_app(&mut err, app, false);
}

/// Functions and routes; with `all`, also topics, subscriptions, schedules and authorizers.
fn write_app(out: &mut dyn std::io::Write, app: &gust_model::App, all: bool) -> std::io::Result<()> {
    for f in app.functions.values() {
        writeln!(
            out,
            "  function {:<24} {:<16} {:<28} {} MB, timeout {:?}",
            f.name.as_str(),
            f.runtime,
            f.handler,
            f.memory_mb,
            f.timeout
        )?;
    }
    for r in &app.routes {
        let target = match &r.target {
            gust_model::RouteTarget::Function { function, .. } => function.to_string(),
            gust_model::RouteTarget::Upstream { upstream, .. } => format!("upstream {upstream}"),
        };
        let mut checks = Vec::new();
        if r.auth.api_key {
            checks.push("api key".to_string());
        }
        if let Some(j) = &r.auth.jwt {
            checks.push(format!("jwt {j}"));
        }
        if let Some(l) = &r.auth.lambda {
            checks.push(format!("lambda authorizer {l}"));
        }
        let checks = if checks.is_empty() {
            String::new()
        } else {
            format!("  [{}]", checks.join(", "))
        };
        writeln!(out, "  route    {:<24} -> {target}{checks}", r.key.to_string())?;
    }
    for s in &app.subscriptions {
        let Some(src) = &s.source else { continue };
        let guarantee = if src.at_least_once() {
            "at-least-once"
        } else {
            "AT-MOST-ONCE: a message in flight when Gust stops is lost"
        };
        writeln!(
            out,
            "  source   {:<24} {} {} ({}) -> {} [{guarantee}]",
            s.name.as_str(),
            src.kind(),
            src.url(),
            src.address(),
            s.function
        )?;
    }
    if !all {
        return Ok(());
    }
    for t in &app.topics {
        let public = if app.public_topics.contains_key(t) {
            "  (public: POST /events/{topic} on the gateway)"
        } else {
            ""
        };
        writeln!(out, "  topic    {t}{public}")?;
    }
    for s in &app.subscriptions {
        writeln!(
            out,
            "  subscription {:<20} {} -> {} (batch {}, {} attempts)",
            s.name.as_str(),
            s.topic,
            s.function,
            s.batch_size,
            s.max_attempts
        )?;
    }
    for s in &app.schedules {
        let off = if s.enabled { "" } else { " (disabled)" };
        writeln!(
            out,
            "  schedule {:<24} {} ({}) -> {}{off}",
            s.name.as_str(),
            s.expression,
            s.timezone,
            s.function
        )?;
    }
    for a in app.authorizers.values() {
        writeln!(out, "  jwt authorizer {:<18} issuer {}", a.name.as_str(), a.issuer)?;
    }
    for a in app.lambda_authorizers.values() {
        writeln!(
            out,
            "  lambda authorizer {:<15} function {}, {:?} {:?}, cache {:?}",
            a.name.as_str(),
            a.function,
            a.kind,
            a.format,
            a.ttl
        )?;
    }
    for k in &app.api_keys {
        let value = if k.value.is_some() {
            "value from the manifest"
        } else {
            "generated at the first start"
        };
        writeln!(out, "  api key  {:<24} {value}", k.name)?;
    }
    Ok(())
}

fn validate(dir: PathBuf, stage: Option<String>) -> Result<()> {
    let options = gust_model::LoadOptions {
        stage,
        ..gust_model::LoadOptions::from_process_env()
    };
    let loaded = gust_model::load_with(&dir, &options)?;
    gust::schedules::compile(&loaded.app, &loaded.file.display().to_string())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let file = loaded.file.display();
    // What the gateway compiles at start (a Lambda authorizer's validation expression).
    for a in loaded.app.lambda_authorizers.values() {
        gust_gateway::lambda_auth::LambdaAuthorizer::new(a.clone()).map_err(|e| {
            anyhow::anyhow!(
                "{file}: Lambda authorizer `{}` (function `{}`): {e}",
                a.name,
                a.function
            )
        })?;
    }
    // Every handler's code, where its runtime will look for it.
    let mut problems = 0;
    let mut found = Vec::new();
    for f in loaded.app.functions.values() {
        let key = format!("functions.{}.handler", f.name);
        match gust::handlers::check(f) {
            gust::handlers::Finding::Ok(what) => found.push(format!("  handler  {:<24} ok: {what}", f.name.as_str())),
            gust::handlers::Finding::Warning(why) => {
                eprintln!("warning: {file}: `{key}`: {why}");
                found.push(format!(
                    "  handler  {:<24} not verified (see the warning)",
                    f.name.as_str()
                ));
            }
            gust::handlers::Finding::Error(why) => {
                eprintln!("error: {file}: `{key}`: {why}");
                problems += 1;
            }
        }
    }
    if problems > 0 {
        anyhow::bail!("{file}: {problems} handler(s) would not be found at the first request");
    }
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    writeln!(
        out,
        "app `{}` (stage `{}`) is valid:",
        loaded.app.name, loaded.app.stage
    )?;
    write_app(&mut out, &loaded.app, true)?;
    for line in found {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

async fn up(config: PlatformConfig, watch: bool) -> Result<()> {
    let mut platform = Platform::start(config).await?;
    for w in &platform.warnings {
        tracing::warn!("{w}");
    }
    eprintln!(
        "Gust is running app `{}`, stage `{}`",
        platform.app().name,
        platform.app().stage
    );
    print_app(&platform.app());
    eprintln!("  gateway  http://{}", platform.gateway_addr);
    eprintln!(
        "  admin    http://{}  (Lambda Invoke API, platform API, operator API)",
        platform.admin_addr
    );
    eprintln!(
        "  operator token {}",
        gust::operator::token_path(&platform.state_dir).display()
    );
    eprintln!("  state    {}", platform.state_dir.display());
    // Printed once, then dropped: only the keys' hashes stay.
    for (name, key) in std::mem::take(&mut platform.new_api_keys) {
        eprintln!("  API key `{name}` generated from the manifest; it is shown this once (only its hash is kept):");
        println!("{key}");
    }
    let mut changes = if watch {
        let app = platform.source_app();
        let mut roots: Vec<PathBuf> = vec![app.root.clone()];
        for dir in app
            .functions
            .values()
            .map(|f| &f.code_dir)
            .chain(app.upstreams.values().map(|u| &u.dir))
        {
            if !roots.iter().any(|r| dir.starts_with(r)) {
                roots.push(dir.clone());
            }
        }
        let rx =
            gust::watcher::spawn(roots, platform.state_dir.clone()).context("--watch: cannot watch the app's files")?;
        eprintln!("  watching {} for changes", app.root.display());
        Some(rx)
    } else {
        None
    };
    gust::user_pointer::write(&platform.state_dir);
    // Everything the CLI needs exists now: the listeners, gust.json, the operator token.
    eprintln!("Gust is ready");
    tracing::info!(gateway = %platform.gateway_addr, admin = %platform.admin_addr, "ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            Some(path) = async {
                match changes.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let rx = changes.as_mut().expect("watching");
                // Debounce: an editor's save (or `npm install`) is many events; redeploy once
                // the files have been quiet for a moment.
                let mut last = path;
                while let Ok(Some(p)) = tokio::time::timeout(WATCH_QUIET, rx.recv()).await {
                    last = p;
                }
                redeploy_on_change(&platform, &last).await;
            }
        }
    }
    gust::user_pointer::clear(&platform.state_dir);
    tracing::info!(
        in_flight = platform.invoker.in_flight(),
        "shutting down: finishing in-flight invocations (Ctrl-C again to stop at once)"
    );
    let shutdown = platform.shutdown();
    tokio::select! {
        _ = shutdown => {}
        _ = tokio::signal::ctrl_c() => {
            tracing::warn!("stopping at once");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// `gust redeploy` / `gust rollback`: POSTs `path` and prints what the new version is.
async fn deploy_call(target: &Target, path: String) -> Result<()> {
    let admin = target.admin_url()?;
    let resp = target
        .client()?
        .post(format!("{admin}{path}"))
        .send()
        .await
        .with_context(|| format!("cannot reach Gust at {admin}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let message = v["error"]["message"].as_str().unwrap_or(&text);
        bail!("refused ({status}): {message}");
    }
    let d: gust_api::Deployment = serde_json::from_str(&text).context("the answer is not a deployment")?;
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    let mut parts = Vec::new();
    for (what, list) in [("new", &d.added), ("redeployed", &d.replaced), ("removed", &d.removed)] {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    if !d.manifest_changes.is_empty() {
        parts.push(format!("{} updated", d.manifest_changes.join(", ")));
    }
    if parts.is_empty() {
        println!(
            "`{}` version {} serving: nothing changed ({} ms)",
            d.app, d.version, d.duration_ms
        );
    } else {
        parts.push(format!("{} kept warm", d.kept.len()));
        println!(
            "`{}` version {} serving ({} ms): {}",
            d.app,
            d.version,
            d.duration_ms,
            parts.join("; ")
        );
    }
    for k in &d.new_api_keys {
        eprintln!(
            "API key `{}` generated from the manifest; it is shown this once:",
            k.name
        );
        println!("{}", k.key);
    }
    Ok(())
}

/// How long the files must be quiet before `--watch` redeploys.
const WATCH_QUIET: std::time::Duration = std::time::Duration::from_millis(150);

/// `--watch`: one redeploy after a change, its outcome on one line (two for an error).
async fn redeploy_on_change(platform: &Platform, changed: &std::path::Path) {
    let started = std::time::Instant::now();
    match platform.redeploy().await {
        Ok(report) => {
            for w in &report.warnings {
                tracing::warn!("{w}");
            }
            let f = &report.functions;
            let ms = started.elapsed().as_millis();
            if f.added.is_empty() && f.replaced.is_empty() && f.removed.is_empty() && report.manifest.is_empty() {
                eprintln!(
                    "change in {}: version {} still current, nothing to redeploy ({ms} ms)",
                    changed.display(),
                    report.version
                );
            } else {
                let mut parts = Vec::new();
                for (what, list) in [("new", &f.added), ("redeployed", &f.replaced), ("removed", &f.removed)] {
                    if !list.is_empty() {
                        parts.push(format!("{what} {}", list.join(", ")));
                    }
                }
                if !report.manifest.is_empty() {
                    parts.push(format!("{} updated", report.manifest.join(", ")));
                }
                if report.upstreams_restarted {
                    parts.push("upstream commands restarted".into());
                }
                parts.push(format!("{} kept warm", f.kept.len()));
                eprintln!("version {} serving ({ms} ms): {}", report.version, parts.join("; "));
            }
            for (name, key) in report.new_api_keys {
                eprintln!(
                    "  API key `{name}` generated from the manifest; it is shown this once (only its hash is kept):"
                );
                println!("{key}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "the change in {} was not deployed; the last good version keeps serving",
                changed.display()
            );
        }
    }
}

async fn invoke(
    name: String,
    data: Option<String>,
    data_file: Option<PathBuf>,
    is_async: bool,
    target: Target,
) -> Result<()> {
    let payload = match (data, data_file) {
        (Some(d), _) => d,
        (None, Some(f)) if f.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
        (None, Some(f)) => std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?,
        (None, None) => "{}".to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&payload).context("the event is not valid JSON")?;
    let admin = target.admin_url()?;
    let url = format!("{admin}/2015-03-31/functions/{name}/invocations");
    let resp = target
        .client()?
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "x-amz-invocation-type",
            if is_async { "Event" } else { "RequestResponse" },
        )
        .body(payload)
        .send()
        .await
        .with_context(|| format!("cannot reach Gust at {admin}"))?;
    if is_async && resp.status().as_u16() == 202 {
        let id = resp
            .headers()
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        println!("queued: request id {id}");
        return Ok(());
    }
    let status = resp.status();
    let function_error = resp.headers().get("x-amz-function-error").is_some();
    let body = resp.text().await?;
    println!("{body}");
    if !status.is_success() {
        bail!("invoke failed with HTTP {status}");
    }
    if function_error {
        bail!("the function returned an error");
    }
    Ok(())
}

/// `30s`, `10m`, `2h`, `1d` -> a duration.
fn parse_age(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a duration like 30s, 10m, 2h or 1d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("`{s}`: unknown unit `{unit}` (use s, m, h or d)"),
    };
    Ok(std::time::Duration::from_secs(secs))
}

async fn logs(
    function: Option<String>,
    follow: bool,
    since: Option<String>,
    request: Option<String>,
    trace: Option<String>,
    target: Target,
) -> Result<()> {
    let admin = target.admin_url()?;
    let client = target.client()?;
    let mut params = Vec::new();
    if let Some(f) = &function {
        params.push(format!("function={f}"));
    }
    if let Some(s) = &since {
        let age = parse_age(s)?;
        params.push(format!(
            "since_ms={}",
            chrono::Utc::now().timestamp_millis() - age.as_millis() as i64
        ));
    }
    if let Some(r) = &request {
        params.push(format!("request={r}"));
    }
    if let Some(t) = &trace {
        params.push(format!("trace={t}"));
    }
    let mut after: Option<i64> = None;
    loop {
        let mut q = params.clone();
        if let Some(a) = after {
            q.push(format!("after={a}"));
        }
        let url = format!("{admin}/gust/v1/logs?{}", q.join("&"));
        let v: gust_api::LogLines = match admin_call(client.get(url), &admin, gust_api::Endpoint::ListLogs).await {
            Ok(v) => v,
            // Following survives a restart of Gust: say so and keep trying.
            Err(e) if follow => {
                eprintln!("gust logs: {e:#}; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let full = v.lines.len() >= 1000;
        for l in &v.lines {
            print_log_line(l);
            after = Some(l.id);
        }
        if !follow {
            return Ok(());
        }
        if full {
            continue;
        }
        if request.is_none() && trace.is_none() {
            // Caught up: follow the server's stream of new lines (it takes only `function`).
            if follow_stream(&client, &admin, function.as_deref(), &mut after).await {
                eprintln!("gust logs: the log stream ended; reconnecting");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

fn print_log_line(l: &gust_api::LogLine) {
    let ts = chrono::DateTime::from_timestamp_millis(l.ts_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| l.ts_ms.to_string());
    println!(
        "{ts} {} {} {}{}",
        l.function,
        l.request_id.as_deref().unwrap_or("-"),
        if l.stream == "stderr" { "[stderr] " } else { "" },
        l.line
    );
}

/// Prints lines from `GET /gust/v1/logs/stream` (server-sent events) until it ends or fails,
/// resuming after `after`; `after` follows what was printed. False when the stream could not
/// be opened (then the caller polls).
async fn follow_stream(client: &reqwest::Client, admin: &str, function: Option<&str>, after: &mut Option<i64>) -> bool {
    let mut url = format!("{admin}/gust/v1/logs/stream");
    if let Some(f) = function {
        url.push_str(&format!("?function={f}"));
    }
    let mut req = client.get(url).timeout(std::time::Duration::from_secs(24 * 3600));
    if let Some(a) = *after {
        req = req.header("last-event-id", a.to_string());
    }
    let Ok(mut resp) = req.send().await else { return false };
    if !resp.status().is_success() {
        return false;
    }
    let mut buf = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            match serde_json::from_str::<gust_api::LogLine>(data) {
                Ok(l) => {
                    print_log_line(&l);
                    *after = Some(l.id);
                }
                Err(e) => eprintln!("gust logs: a stream event is not a log line ({e}): {data}"),
            }
        }
    }
    true
}
