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
mod error;
mod ids;
mod native;
mod route_key;
mod serverless;
mod telemetry;

pub use app::{
    event_defaults, is_env_name, App, CatchUp, CorsSpec, EventFilter, EventShape, FunctionSpec, JwtAuthorizerSpec,
    Overlap, PayloadFormat, RouteAuth, RouteSpec, RouteTarget, RuntimeKind, Scaling, ScheduleSpec, SubscriptionSpec,
    UpstreamSpec,
};
pub use error::ManifestError;
pub use ids::{AppName, FunctionName, NameError, TopicName};
pub use route_key::{MethodMatch, RouteKey};
pub use telemetry::{InvocationRecord, SpanRecord, TraceParent};

use std::path::{Path, PathBuf};

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
pub fn load(path: &Path) -> Result<Loaded, ManifestError> {
    let file = resolve_manifest_path(path)?;
    let text =
        std::fs::read_to_string(&file).map_err(|e| ManifestError::new(&file, "", format!("cannot read file: {e}")))?;
    let root = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let mut loaded = parse(&file, &text, &root)?;
    loaded.file = file;
    Ok(loaded)
}

/// Parses manifest text; `file` picks the format (by extension) and names errors.
pub fn parse(file: &Path, text: &str, root: &Path) -> Result<Loaded, ManifestError> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("toml") => native::parse(file, text, root),
        Some("yml") | Some("yaml") => serverless::parse(file, text, root),
        _ => Err(ManifestError::new(
            file,
            "",
            "unknown manifest format: expected gust.toml or serverless.yml",
        )),
    }
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
