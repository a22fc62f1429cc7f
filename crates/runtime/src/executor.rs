//! Turning a [`FunctionSpec`] into a ready-to-start process description, once per deployment.

use crate::error::PrepareError;
use crate::RuntimeFiles;
use gust_model::{FunctionSpec, RuntimeKind};
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
}

/// Resolves interpreters once per process and prepares functions.
#[derive(Debug, Clone)]
pub struct Executor {
    config: Arc<ExecutorConfig>,
}

/// Everything needed to start one instance of a function, computed once.
#[derive(Debug)]
pub struct Prepared {
    pub(crate) spec: Arc<FunctionSpec>,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// The environment minus the per-instance `AWS_LAMBDA_RUNTIME_API`.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) function_arn: Arc<str>,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
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

fn node_interpreter() -> Option<PathBuf> {
    static NODE: OnceLock<Option<PathBuf>> = OnceLock::new();
    NODE.get_or_init(|| find_in_path("node")).clone()
}

impl Executor {
    pub fn new(config: ExecutorConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Checks the function can start here and builds its command line and environment.
    /// `token` is the function's `GUST_TOKEN` for the platform API.
    pub fn prepare(
        &self,
        spec: Arc<FunctionSpec>,
        token: Option<&str>,
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
        let (program, args) = match spec.kind {
            RuntimeKind::Node => {
                let node = node_interpreter()
                    .ok_or_else(|| fail("runtime `node` was not found on PATH".into()))?;
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
                let py = python_interpreter()
                    .ok_or_else(|| fail("runtime `python3` was not found on PATH".into()))?;
                (
                    py,
                    vec![path_arg(&self.config.runtime_files.python_bootstrap)],
                )
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
                (bootstrap, vec![])
            }
        };
        let c = &self.config;
        let function_arn: Arc<str> = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            c.region, c.account_id, spec.name
        )
        .into();
        let mut env: Vec<(String, String)> = Vec::new();
        for key in ["PATH", "LANG", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.into(), v));
            }
        }
        let task_root = path_arg(&spec.code_dir);
        let mut set = |k: &str, v: String| env.push((k.to_string(), v));
        set("_HANDLER", spec.handler.clone());
        set("LAMBDA_TASK_ROOT", task_root);
        set("AWS_LAMBDA_FUNCTION_NAME", spec.name.to_string());
        set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
        set(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        );
        set(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        );
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
        if let Some(t) = token {
            set("GUST_TOKEN", t.to_string());
        }
        // The function's own environment comes last and wins.
        for (k, v) in &spec.environment {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        Ok(Prepared {
            spec,
            program,
            args,
            env,
            function_arn,
        })
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
}
