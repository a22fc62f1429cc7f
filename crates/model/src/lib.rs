//! # gust-model: the nouns of Gust
//!
//! Owns the validated, resolved description of an app (functions, routes, CORS) and the two
//! manifest formats that produce it: Gust's own `gust.toml` and the Serverless Framework v3
//! `serverless.yml`. Also owns the typed names (`FunctionName`, `AppName`) that everything else
//! trusts because they were checked here.
//!
//! Also the records Gust keeps about its work (invocations, spans, W3C trace context).
//!
//! Must not depend on: any I/O beyond reading the manifest file, any async runtime, any other
//! Gust crate. Everything here is plain data plus parsing, so every other crate can use it.

mod app;
#[cfg(test)]
mod auth_tests;
mod error;
mod filter_pattern;
pub use filter_pattern::FilterPattern;
pub mod iam;
mod ids;
mod native;
mod route_key;
mod serverless;
mod source;
#[cfg(test)]
mod stages_tests;
mod telemetry;
mod vars;

pub use app::defaults;
pub use app::{
    event_defaults, is_env_name, ApiKeySpec, App, AuthorizerFormat, CatchUp, CorsSpec, DynamoTableSpec, EventFilter,
    EventShape, FunctionSpec, IdentitySource, JwtAuthorizerSpec, LambdaAuthorizerKind, LambdaAuthorizerSpec, Network,
    Overlap, PayloadFormat, RouteAuth, RouteSpec, RouteTarget, RuntimeKind, Scaling, ScheduleSpec, SubscriptionSpec,
    UpstreamSpec,
};
pub use error::ManifestError;
pub use iam::{AwsStatement, Decision, Effect};
pub use ids::{AppName, FunctionName, NameError, TopicName};
pub use route_key::{MethodMatch, RouteKey};
pub use source::{
    CoreNatsSource, DynamoDbStreamSource, JetStreamSource, MqttSource, RabbitMqSource, RedisStreamsSource, SourceSpec,
    StartPosition,
};
pub use telemetry::{InvocationRecord, InvokeSpan, SpanRecord, TraceParent};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The stage when none is chosen (`gust up` without `--stage`).
pub const DEFAULT_STAGE: &str = vars::DEFAULT_STAGE;

/// The environment variable every function gets with the app's stage.
pub const STAGE_ENV: &str = "GUST_STAGE";

/// Looks up an environment variable for `${env:NAME}` (`None`: not set).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How a manifest is read: the stage, and where `${env:NAME}` variables come from.
#[derive(Clone)]
pub struct LoadOptions {
    /// `--stage`: picks `[stages.NAME]` in gust.toml and is `${opt:stage}`/`${sls:stage}` in
    /// serverless.yml. `None`: serverless.yml's `provider.stage`, else `dev`.
    pub stage: Option<String>,
    /// Looks up an environment variable for `${env:NAME}` (`None`: not set).
    pub env: EnvLookup,
}

impl LoadOptions {
    /// No stage chosen; `${env:NAME}` reads the process environment.
    pub fn from_process_env() -> Self {
        Self {
            stage: None,
            env: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    /// No stage chosen; `${env:NAME}` reads this snapshot only (tests, embedding).
    pub fn from_env_map<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        let map: BTreeMap<String, String> = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Self {
            stage: None,
            env: Arc::new(move |name| map.get(name).cloned()),
        }
    }

    /// The same options with this stage chosen.
    pub fn with_stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }
}

impl Default for LoadOptions {
    /// [`LoadOptions::from_process_env`], as [`load`] uses.
    fn default() -> Self {
        Self::from_process_env()
    }
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// The file names Gust looks for, in order, when given a directory.
pub const MANIFEST_FILES: [&str; 3] = ["gust.toml", "serverless.yml", "serverless.yaml"];

/// A loaded app plus the non-fatal findings (unsupported keys and the like) to show the user.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub app: App,
    pub warnings: Vec<String>,
    /// The manifest file that was read.
    pub file: PathBuf,
}

/// Loads the manifest at `path`: a `gust.toml`, a `serverless.yml`, or a directory holding one.
/// The default stage (or serverless.yml's `provider.stage`); `${env:NAME}` from the process.
pub fn load(path: &Path) -> Result<Loaded, ManifestError> {
    load_with(path, &LoadOptions::from_process_env())
}

/// Loads the manifest at `path` for a stage, with `${env:NAME}` from `options.env`.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Loaded, ManifestError> {
    let file = resolve_manifest_path(path)?;
    let text =
        std::fs::read_to_string(&file).map_err(|e| ManifestError::new(&file, "", format!("cannot read file: {e}")))?;
    let root = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let mut loaded = parse(&file, &text, &root, options)?;
    loaded.file = file;
    Ok(loaded)
}

/// Parses manifest text; `file` picks the format (by extension) and names errors.
pub fn parse(file: &Path, text: &str, root: &Path, options: &LoadOptions) -> Result<Loaded, ManifestError> {
    if let Some(stage) = &options.stage {
        ids::check_stage(stage).map_err(|e| ManifestError::new(file, "", format!("--stage: {e}")))?;
    }
    let mut loaded = match file.extension().and_then(|e| e.to_str()) {
        Some("toml") => native::parse(file, text, root, options),
        Some("yml") | Some("yaml") => serverless::parse(file, text, root, options),
        _ => Err(ManifestError::new(
            file,
            "",
            "unknown manifest format: expected gust.toml or serverless.yml",
        )),
    }?;
    let app = &mut loaded.app;
    for f in app.functions.values_mut() {
        f.environment.insert(STAGE_ENV.into(), app.stage.clone());
    }
    for u in app.upstreams.values_mut() {
        u.environment.insert(STAGE_ENV.into(), app.stage.clone());
    }
    Ok(loaded)
}

fn resolve_manifest_path(path: &Path) -> Result<PathBuf, ManifestError> {
    if path.is_dir() {
        for name in MANIFEST_FILES {
            let candidate = path.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        return Err(ManifestError::new(
            path,
            "",
            format!("no manifest found: expected one of {}", MANIFEST_FILES.join(", ")),
        ));
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(ManifestError::new(path, "", "no such file or directory"))
}
