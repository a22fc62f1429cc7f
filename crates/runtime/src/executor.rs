//! Turning a [`FunctionSpec`] into a ready-to-start process description, once per deployment.

use crate::crashloop::CrashLoopPolicy;
use crate::credentials::FunctionCredentials;
use crate::error::PrepareError;
use crate::logs::LogSink;
use crate::resident::{Holding, ResidentSet};
use crate::sandbox::{Sandbox, TASK_ROOT};
use crate::spares::{Spares, Template};
use crate::RuntimeFiles;
use bytes::Bytes;
use gust_model::{FunctionSpec, Network, RuntimeKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Machine-wide settings every function shares.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub runtime_files: RuntimeFiles,
    /// `GUST_API` given to functions (the admin address), if the platform API is served.
    pub platform_api: Option<String>,
    /// AWS_REGION given to functions.
    pub region: String,
    /// The account id in ARNs.
    pub account_id: String,
    /// Generic Node/Python processes kept started per runtime in use, for fast cold starts
    /// (0 turns prewarming off).
    pub prewarm_per_runtime: usize,
    /// Bytes of `provided` functions' executables kept mapped while deployed, over all of them
    /// (`resident.rs`; 0 turns it off).
    pub resident_code_bytes: u64,
    /// Confinement for every instance (`sandbox/mod.rs`); `None`: functions are trusted.
    pub sandbox: Option<Arc<Sandbox>>,
    /// When a function whose inits keep failing may start again (`crashloop.rs`).
    pub crash_loop: CrashLoopPolicy,
}

/// The default of [`ExecutorConfig::resident_code_bytes`]: 128 MiB.
pub const DEFAULT_RESIDENT_CODE_BYTES: u64 = 128 << 20;

/// Resolves interpreters once per process and prepares functions.
#[derive(Clone)]
pub struct Executor {
    config: Arc<ExecutorConfig>,
    sink: Arc<dyn LogSink>,
    spares: Arc<Spares>,
    resident: Arc<ResidentSet>,
}

/// Everything needed to start one instance of a function, computed once.
pub struct Prepared {
    pub(crate) spec: Arc<FunctionSpec>,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// The environment minus the per-instance `AWS_LAMBDA_RUNTIME_API`.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) function_arn: Arc<str>,
    /// Set for runtimes with prewarmed spares.
    pub(crate) spares: Option<Arc<Spares>>,
    /// The `/specialize` answer that turns a spare into this function.
    pub(crate) specialization: Bytes,
    /// Where this function's instances get their Runtime API Unix socket (Node and Python).
    pub(crate) socket_dir: Option<PathBuf>,
    /// Set when instances start confined.
    pub(crate) sandbox: Option<Arc<Sandbox>>,
    /// Paths inside `/var/task` hidden from the function (the state directory).
    pub(crate) masks: Vec<String>,
    /// Files outside the code a sandboxed instance reads at their own path.
    pub(crate) extra_read_only: Vec<PathBuf>,
    /// `GUST_API` as given to functions on the host's network; a `network = "none"` instance
    /// gets a relay to it inside its namespace instead.
    pub(crate) platform_api: Option<String>,
    /// A `provided` function's executable, kept mapped while this deployment lives.
    _code: Option<Holding>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("config", &self.config).finish()
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("function", &self.spec.name)
            .field("program", &self.program)
            .finish()
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The real Python interpreter: pyenv-style shims add 100 ms to every start, so ask the shim
/// once where the interpreter lives and start that directly afterwards.
fn python_interpreter() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let shim = find_in_path("python3")?;
        let out = std::process::Command::new(&shim)
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        let real = String::from_utf8(out.stdout).ok()?.trim().to_string();
        if out.status.success() && !real.is_empty() {
            Some(PathBuf::from(real))
        } else {
            Some(shim)
        }
    })
    .clone()
}

/// `PATH` inside the sandbox: the interpreters Gust found first, then the system's. The
/// interpreters' installations become readable: Node's for Node functions, Python's for Python
/// functions, both for `provided` ones (whose `bootstrap` may be a script that runs either).
fn sandbox_path(sandbox: &Sandbox, kind: &RuntimeKind) -> String {
    let interpreters = match kind {
        RuntimeKind::Node => vec![node_interpreter()],
        RuntimeKind::Python => vec![python_interpreter()],
        RuntimeKind::Provided => vec![node_interpreter(), python_interpreter()],
    };
    let mut dirs: Vec<String> = Vec::new();
    for program in interpreters.into_iter().flatten() {
        // Both the path as found (a virtualenv's own directory) and the real one.
        let real = std::fs::canonicalize(&program).ok();
        for p in [Some(program.clone()), real].into_iter().flatten() {
            if let Some(prefix) = p.parent().and_then(Path::parent) {
                sandbox.allow_read(prefix);
            }
        }
        if let Some(bin) = program.parent() {
            dirs.push(bin.to_string_lossy().into_owned());
        }
    }
    dirs.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    dirs.dedup();
    dirs.join(":")
}

fn node_interpreter() -> Option<PathBuf> {
    static NODE: OnceLock<Option<PathBuf>> = OnceLock::new();
    NODE.get_or_init(|| find_in_path("node")).clone()
}

impl Executor {
    pub fn new(config: ExecutorConfig, sink: Arc<dyn LogSink>) -> Self {
        // Start the orphan watchdog now rather than on the first cold start's path.
        crate::orphans::watchdog_running();
        let spares = Spares::new(config.prewarm_per_runtime, sink.clone());
        let resident = ResidentSet::new(config.resident_code_bytes);
        Self {
            config: Arc::new(config),
            sink,
            spares,
            resident,
        }
    }

    /// Where function output goes.
    pub fn sink(&self) -> Arc<dyn LogSink> {
        self.sink.clone()
    }

    /// Prewarmed runtimes ready to be specialised.
    pub fn spares_ready(&self) -> usize {
        self.spares.ready_total()
    }

    /// Process ids of the prewarmed runtimes ready to be specialised.
    pub fn spare_pids(&self) -> Vec<i32> {
        self.spares.ready_pids()
    }

    /// Stops the prewarmed spares (at shutdown).
    pub fn stop_spares(&self) {
        self.spares.stop();
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Checks the function can start here and builds its command line and environment.
    /// `creds` are the function's `GUST_TOKEN` for the platform API and its AWS session key
    /// for the AWS service APIs (both served on `platform_api`). `secrets` are the function's granted secrets, set last as environment variables.
    pub fn prepare(
        &self,
        spec: Arc<FunctionSpec>,
        creds: Option<&FunctionCredentials>,
        secrets: &[(String, String)],
    ) -> Result<Prepared, PrepareError> {
        let fail = |message: String| PrepareError {
            function: spec.name.to_string(),
            message,
        };
        if !spec.code_dir.is_dir() {
            return Err(fail(format!(
                "code directory {} does not exist",
                spec.code_dir.display()
            )));
        }
        if let Some(sb) = &self.config.sandbox {
            sb.check_readable(&spec.code_dir).map_err(fail)?;
        }
        if spec.network == Network::None {
            // Never started on the host's network: refused where no namespace can be made.
            match &self.config.sandbox {
                None => {
                    return Err(fail(
                        "network = \"none\" needs the sandbox, and instances run unconfined here (--sandbox off, or --sandbox auto on a host without namespaces): they would keep the host's network".into(),
                    ))
                }
                Some(sb) => sb
                    .network_none()
                    .map_err(|why| fail(format!("network = \"none\" is not available here: {why}")))?,
            }
        }
        let (program, args) = match spec.kind {
            RuntimeKind::Node => {
                let node = node_interpreter().ok_or_else(|| fail("runtime `node` was not found on PATH".into()))?;
                // V8 keeps its heap within the memory size; the RSS watchdog covers the rest.
                let heap = (spec.memory_mb as u64 * 7 / 8).max(32);
                (
                    node,
                    vec![
                        format!("--max-old-space-size={heap}"),
                        path_arg(&self.config.runtime_files.node_bootstrap),
                    ],
                )
            }
            RuntimeKind::Python => {
                let py = python_interpreter().ok_or_else(|| fail("runtime `python3` was not found on PATH".into()))?;
                (py, vec![path_arg(&self.config.runtime_files.python_bootstrap)])
            }
            RuntimeKind::Provided => {
                let bootstrap = spec.code_dir.join("bootstrap");
                if !is_executable(&bootstrap) {
                    return Err(fail(format!(
                        "runtime `{}` needs an executable `bootstrap` in {}",
                        spec.runtime,
                        spec.code_dir.display()
                    )));
                }
                match &self.config.sandbox {
                    Some(_) => (Path::new(TASK_ROOT).join("bootstrap"), vec![]),
                    None => (bootstrap, vec![]),
                }
            }
        };
        let c = &self.config;
        let sandbox = c.sandbox.clone();
        let function_arn: Arc<str> =
            format!("arn:aws:lambda:{}:{}:function:{}", c.region, c.account_id, spec.name).into();
        let mut env: Vec<(String, String)> = Vec::new();
        for key in ["PATH", "LANG", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.into(), v));
            }
        }
        if let Some(sb) = &sandbox {
            // The instance sees its code at /var/task, a private /tmp, and only the
            // interpreters' and system's files.
            let path = sandbox_path(sb, &spec.kind);
            env.retain(|(k, _)| k != "PATH" && k != "HOME");
            env.push(("PATH".into(), path));
            env.push(("HOME".into(), "/tmp".into()));
        }
        let task_root = match &sandbox {
            Some(_) => TASK_ROOT.to_string(),
            None => path_arg(&spec.code_dir),
        };
        let mut set = |k: &str, v: String| env.push((k.to_string(), v));
        set("_HANDLER", spec.handler.clone());
        set("LAMBDA_TASK_ROOT", task_root.clone());
        set("AWS_LAMBDA_FUNCTION_NAME", spec.name.to_string());
        set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
        set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string());
        set("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.name));
        set("AWS_LAMBDA_LOG_STREAM_NAME", format!("gust/{}", spec.name));
        set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
        set("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", spec.runtime));
        set("AWS_REGION", c.region.clone());
        set("AWS_DEFAULT_REGION", c.region.clone());
        set("TZ", ":UTC".into());
        set("PYTHONUNBUFFERED", "1".into());
        if let Some(api) = &c.platform_api {
            set("GUST_API", api.clone());
        }
        if let Some(creds) = creds {
            let t = &creds.token;
            set("GUST_TOKEN", t.to_string());
            // The AWS SDKs find Gust's AWS service APIs and the function's own session key in
            // the environment, as on Lambda; the function's own `environment` still wins.
            if let Some(api) = &c.platform_api {
                set("AWS_ENDPOINT_URL", api.clone());
                set("AWS_ENDPOINT_URL_DYNAMODB", api.clone());
            }
            set("AWS_ACCESS_KEY_ID", creds.aws.access_key_id.clone());
            set("AWS_SECRET_ACCESS_KEY", creds.aws.secret_access_key.clone());
            set("AWS_SESSION_TOKEN", creds.aws.session_token.clone());
            // Service discovery: each granted upstream by name, through the platform's proxy
            // (load balancing, health, circuit breaker, trace), with the token in the path so
            // a plain URL works from any HTTP client.
            if let Some(api) = &c.platform_api {
                for svc in &spec.services {
                    let var = format!(
                        "GUST_SERVICE_{}_URL",
                        svc.as_str().to_ascii_uppercase().replace('-', "_")
                    );
                    set(&var, format!("{api}/gust/v1/fn/{t}/services/{svc}"));
                }
            }
        }
        // The function's own environment, then its granted secrets, win over the defaults.
        for (k, v) in spec.environment.iter().chain(secrets.iter().map(|(k, v)| (k, v))) {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        // Gust's own bootstraps talk to the Runtime API over the Unix socket; `provided`
        // runtimes bring their own client, which speaks TCP.
        let socket_dir = match spec.kind {
            RuntimeKind::Node | RuntimeKind::Python => c.runtime_files.sockets.clone(),
            RuntimeKind::Provided => None,
        };
        // A `bootstrap` that links out of the code (to a build's output) is shown at its target.
        let extra_read_only = match (&sandbox, &spec.kind) {
            (Some(_), RuntimeKind::Provided) => std::fs::canonicalize(spec.code_dir.join("bootstrap"))
                .ok()
                .filter(|real| !real.starts_with(std::fs::canonicalize(&spec.code_dir).unwrap_or_default()))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        // A sandboxed spare takes its function's code from its init, which only a root Gust
        // can keep out of the function's reach; its /tmp is the default size.
        // A spare was started on the host's network and cannot move into a namespace of its
        // own: `network = "none"` starts a process.
        let spare_fits = sandbox.as_ref().is_none_or(|sb| sb.supports_spares())
            && (sandbox.is_none() || spec.ephemeral_storage_mb == gust_model::defaults::EPHEMERAL_STORAGE_MB)
            && spec.network == Network::Default;
        let spares = match spec.kind {
            _ if !self.spares.enabled() || !spare_fits => None,
            // Unconfined, a `provided` start is the function's own process start: nothing to
            // prewarm. Confined, a spare holds the sandbox ready for any `provided` function.
            // (A spare cannot show files outside the code: a linked `bootstrap` starts a process.)
            RuntimeKind::Provided if sandbox.is_none() || !extra_read_only.is_empty() => None,
            RuntimeKind::Provided => {
                self.spares.want(
                    RuntimeKind::Provided,
                    Template {
                        program: PathBuf::new(),
                        args: Vec::new(),
                        env: Vec::new(),
                        cwd: PathBuf::from(TASK_ROOT),
                        socket_dir: None,
                        sandbox: sandbox.clone(),
                    },
                );
                Some(self.spares.clone())
            }
            _ => {
                let bootstrap = args.last().cloned().unwrap_or_default();
                let cwd = Path::new(&bootstrap)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let mut base: Vec<(String, String)> = env
                    .iter()
                    .filter(|(k, _)| matches!(k.as_str(), "PATH" | "LANG" | "HOME" | "PYTHONUNBUFFERED"))
                    .cloned()
                    .collect();
                base.push(("GUST_PREWARM".into(), "1".into()));
                base.extend(native_library_env(&spec.kind, c));
                // The V8 heap flag is per function and cannot be set after start; a spare's
                // memory is bounded by the RSS watchdog instead.
                self.spares.want(
                    spec.kind.clone(),
                    Template {
                        program: program.clone(),
                        args: vec![bootstrap],
                        env: base,
                        cwd,
                        socket_dir: socket_dir.clone(),
                        sandbox: sandbox.clone(),
                    },
                );
                Some(self.spares.clone())
            }
        };
        let specialization = serde_json::to_vec(&serde_json::json!({
            "handler": spec.handler,
            "taskRoot": task_root,
            "env": env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        }))
        .expect("a JSON value always serialises")
        .into();
        // After the specialization: the bootstrap removes it from its own environment, and a
        // spare must not get it back with the function's.
        env.extend(native_library_env(&spec.kind, c));
        // A `provided` function's executable is its own code: keep it in memory between cold
        // starts. Interpreters are kept mapped by their prewarmed spares.
        let code =
            matches!(spec.kind, RuntimeKind::Provided).then(|| self.resident.hold(&spec.code_dir.join("bootstrap")));
        let masks = sandbox
            .as_ref()
            .map(|sb| sb.masks_for(&spec.code_dir))
            .unwrap_or_default();
        Ok(Prepared {
            spec,
            program,
            args,
            env,
            function_arn,
            spares,
            specialization,
            socket_dir,
            sandbox,
            masks,
            extra_read_only,
            platform_api: c.platform_api.clone(),
            _code: code,
        })
    }
}

/// `GUST_NATIVE_LIB` for Gust's own bootstraps (`bootstrap.rs`); nothing for `provided`.
fn native_library_env(kind: &RuntimeKind, c: &ExecutorConfig) -> Option<(String, String)> {
    match kind {
        RuntimeKind::Node | RuntimeKind::Python => c
            .runtime_files
            .native_library
            .as_deref()
            .map(|lib| ("GUST_NATIVE_LIB".to_string(), path_arg(lib))),
        RuntimeKind::Provided => None,
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Prepared {
    pub fn spec(&self) -> &Arc<FunctionSpec> {
        &self.spec
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>`, as its instances are told.
    pub fn function_arn(&self) -> &str {
        &self.function_arn
    }

    pub(crate) fn specialization(&self) -> Bytes {
        self.specialization.clone()
    }
}
