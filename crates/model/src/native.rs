//! `gust.toml`, Gust's own manifest. Strict: an unknown key is an error naming it, so a typo
//! never silently changes behaviour. The reference is `docs/manifest.md`.

use crate::app::{
    defaults::{self, DEFAULT_REGION},
    AuthorizerFormat, CorsSpec, FunctionSpec, IdentitySource, JwtAuthorizerSpec, LambdaAuthorizerKind,
    LambdaAuthorizerSpec, Network, PayloadFormat, RouteAuth, RouteSpec, RouteTarget, UpstreamSpec,
};
use crate::vars::{Resolver, DEFAULT_STAGE};
use crate::{
    event_defaults, App, AppName, CatchUp, EventFilter, EventShape, FunctionName, LoadOptions, Loaded, ManifestError,
    Overlap, RouteKey, RuntimeKind, Scaling, ScheduleSpec, SubscriptionSpec, TopicName,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    app: AppSection,
    #[serde(default)]
    functions: BTreeMap<String, FunctionSection>,
    #[serde(default)]
    routes: Vec<RouteSection>,
    cors: Option<CorsSection>,
    #[serde(default)]
    topics: BTreeMap<String, TopicSection>,
    #[serde(default)]
    subscriptions: Vec<SubscriptionSection>,
    #[serde(default)]
    schedules: Vec<ScheduleSection>,
    #[serde(default)]
    upstreams: BTreeMap<String, UpstreamSection>,
    #[serde(default)]
    authorizers: BTreeMap<String, AuthorizerSection>,
    /// `[dynamodb.tables.NAME]`: tables created at deploy.
    #[serde(default)]
    dynamodb: DynamoSection,
    /// Per-stage overlays: `[stages.NAME.app]`, `[stages.NAME.functions.FN]`.
    #[serde(default)]
    stages: BTreeMap<String, StageSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DynamoSection {
    #[serde(default)]
    tables: BTreeMap<String, TableSection>,
}

/// `hash_key = "id"` (type `S`) or `"id:N"` / `"id:B"`; `range_key` likewise.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableSection {
    hash_key: String,
    range_key: Option<String>,
    /// `KEYS_ONLY`, `NEW_IMAGE`, `OLD_IMAGE` or `NEW_AND_OLD_IMAGES`.
    stream: Option<String>,
    /// The TTL attribute.
    ttl: Option<String>,
    /// Global secondary indexes (projection `ALL`).
    #[serde(default)]
    indexes: Vec<IndexSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexSection {
    name: String,
    hash_key: String,
    range_key: Option<String>,
}

/// `[dynamodb.tables.NAME]` as CreateTable requests.
fn dynamodb_tables(
    tables: BTreeMap<String, TableSection>,
) -> Result<BTreeMap<String, crate::DynamoTableSpec>, (String, String)> {
    use serde_json::json;
    let mut out = BTreeMap::new();
    for (name, t) in tables {
        let at = |k: &str| format!("dynamodb.tables.{name}.{k}");
        let mut attrs: BTreeMap<String, String> = BTreeMap::new();
        let key = |spec: &str, k: &str, kind: &str, attrs: &mut BTreeMap<String, String>| {
            let (attr, ty) = spec.split_once(':').unwrap_or((spec, "S"));
            if attr.is_empty() || !matches!(ty, "S" | "N" | "B") {
                return Err((
                    at(k),
                    format!(
                        "`{spec}` must be an attribute name, optionally with its type: \"id\", \"id:N\" (S, N or B)"
                    ),
                ));
            }
            if attrs.get(attr).is_some_and(|t| t != ty) {
                return Err((at(k), format!("attribute `{attr}` is given two types")));
            }
            attrs.insert(attr.to_string(), ty.to_string());
            Ok(json!({ "AttributeName": attr, "KeyType": kind }))
        };
        let mut schema = vec![key(&t.hash_key, "hash_key", "HASH", &mut attrs)?];
        if let Some(r) = &t.range_key {
            schema.push(key(r, "range_key", "RANGE", &mut attrs)?);
        }
        let mut create = json!({ "TableName": name, "KeySchema": schema, "BillingMode": "PAY_PER_REQUEST" });
        let mut gsis = Vec::new();
        for ix in &t.indexes {
            let mut s = vec![key(&ix.hash_key, "indexes.hash_key", "HASH", &mut attrs)?];
            if let Some(r) = &ix.range_key {
                s.push(key(r, "indexes.range_key", "RANGE", &mut attrs)?);
            }
            gsis.push(json!({ "IndexName": ix.name, "KeySchema": s, "Projection": { "ProjectionType": "ALL" } }));
        }
        if !gsis.is_empty() {
            create["GlobalSecondaryIndexes"] = json!(gsis);
        }
        if let Some(view) = &t.stream {
            if !matches!(
                view.as_str(),
                "KEYS_ONLY" | "NEW_IMAGE" | "OLD_IMAGE" | "NEW_AND_OLD_IMAGES"
            ) {
                return Err((
                    at("stream"),
                    format!("`{view}` is not a stream view type (KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES)"),
                ));
            }
            create["StreamSpecification"] = json!({ "StreamEnabled": true, "StreamViewType": view });
        }
        create["AttributeDefinitions"] = json!(attrs
            .iter()
            .map(|(a, ty)| json!({ "AttributeName": a, "AttributeType": ty }))
            .collect::<Vec<_>>());
        out.insert(
            name.clone(),
            crate::DynamoTableSpec {
                name,
                create,
                ttl_attribute: t.ttl,
            },
        );
    }
    Ok(out)
}

/// What one stage changes: the same keys as the base manifest, merged over it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StageSection {
    #[serde(default)]
    app: StageAppSection,
    #[serde(default)]
    functions: BTreeMap<String, StageFunctionSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StageAppSection {
    /// Merged over `app.environment` (this stage's value wins).
    #[serde(default)]
    environment: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StageFunctionSection {
    memory: Option<u32>,
    timeout: Option<f64>,
    /// Merged over the function's `environment`.
    #[serde(default)]
    environment: BTreeMap<String, String>,
    /// Each key given replaces the function's.
    scaling: Option<ScalingSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamSection {
    #[serde(default)]
    targets: Vec<String>,
    command: Option<String>,
    dir: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    health_path: Option<String>,
    health_interval: Option<f64>,
    healthy_threshold: Option<u32>,
    unhealthy_threshold: Option<u32>,
    timeout: Option<f64>,
    retries: Option<u32>,
    breaker_failures: Option<u32>,
    breaker_cooldown: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizerSection {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    jwks_file: Option<String>,
    jwks_url: Option<String>,
    hs256_secret: Option<String>,
    /// Find the JWKS through `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    openid_discovery: bool,
}

/// A route's inline Lambda authorizer (`authorizer = { function = "...", ... }`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LambdaAuthorizerSection {
    function: String,
    /// "request" (default) or "token".
    #[serde(rename = "type")]
    kind: Option<String>,
    /// API Gateway identity source expressions (default: the Authorization header).
    identity_source: Option<OneOrMany>,
    /// "2.0" (default for request), "1.0", or "rest" (the REST API shape; token's only one).
    format: Option<String>,
    #[serde(default)]
    simple_responses: bool,
    /// Seconds an answer is cached per identity (default 300; 0 turns caching off).
    ttl: Option<u64>,
    /// Token authorizers: a regular expression the token must match.
    validation: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSection {
    name: String,
    function: String,
    expression: String,
    timezone: Option<String>,
    input: Option<toml::Value>,
    description: Option<String>,
    enabled: Option<bool>,
    /// "none" (default), "last" or "all".
    catch_up: Option<String>,
    /// With catch_up = "all": how many missed ticks at most (default 10).
    max_catch_up: Option<u32>,
    /// "skip" (default), "allow" or "queue".
    overlap: Option<String>,
    jitter: Option<f64>,
    max_attempts: Option<u32>,
    retry_delay: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TopicSection {
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    /// The gateway takes `POST /events/{topic}` for this topic (off unless set).
    #[serde(default)]
    public: bool,
    /// Checks a public topic's publishes pass, as a route's.
    #[serde(default)]
    api_key: bool,
    jwt: Option<String>,
    rate_limit: Option<f64>,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionSection {
    /// A Gust topic, or (instead) a broker `source`.
    topic: Option<String>,
    source: Option<crate::source::SourceSection>,
    function: String,
    name: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Vec<String>>,
    /// Lambda filter patterns on a source record's JSON (`filter_pattern.rs`).
    #[serde(default)]
    filter_patterns: Vec<toml::Value>,
    /// "sqs" (default) or "sns".
    shape: Option<String>,
    batch_size: Option<u32>,
    batch_window: Option<f64>,
    max_concurrency: Option<u32>,
    max_attempts: Option<u32>,
    max_event_age: Option<f64>,
    visibility_timeout: Option<f64>,
    #[serde(default)]
    report_batch_item_failures: bool,
    retry_delay: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppSection {
    name: String,
    region: Option<String>,
    /// Environment given to every function (a function's own wins).
    #[serde(default)]
    environment: BTreeMap<String, String>,
    /// Package patterns for every function (a function's own `package` come after them).
    #[serde(default)]
    package: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionSection {
    runtime: String,
    #[serde(default)]
    handler: String,
    /// Code directory relative to the manifest (default: the manifest's directory).
    dir: Option<String>,
    memory: Option<u32>,
    /// MB of private writable `/tmp` (512 to 10240; default 512).
    ephemeral_storage: Option<u32>,
    /// Seconds (fractions allowed).
    timeout: Option<f64>,
    /// Seconds from process start to the first `/next` (default 10, as Lambda).
    init_timeout: Option<f64>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    scaling: ScalingSection,
    /// Upstreams this function may call by name.
    #[serde(default)]
    services: Vec<String>,
    /// Functions this function may invoke through GUST_API.
    #[serde(default)]
    invokes: Vec<String>,
    /// Secrets given as environment variables.
    #[serde(default)]
    secrets: Vec<String>,
    /// Topics this function may publish to through GUST_API.
    #[serde(default)]
    publishes: Vec<String>,
    /// `"default"` (the host's network) or `"none"`.
    network: Option<String>,
    /// Package patterns: which files of `dir` are deployed.
    #[serde(default)]
    package: Vec<String>,
    /// What the function may do through the AWS service APIs (`iam.rs`).
    #[serde(default)]
    aws: Vec<AwsGrantSection>,
}

/// `{ allow = ["dynamodb:GetItem"], resources = ["table/users"] }` (or `deny = [...]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsGrantSection {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    resources: Vec<String>,
}

/// The statements of `aws = [...]`; an error names the entry by its index.
fn aws_statements(grants: &[AwsGrantSection]) -> Result<Vec<crate::AwsStatement>, (usize, String)> {
    grants
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (effect, actions) = match (&g.allow, &g.deny) {
                (Some(a), None) => (crate::Effect::Allow, a),
                (None, Some(d)) => (crate::Effect::Deny, d),
                _ => {
                    return Err((
                        i,
                        "needs exactly one of `allow` or `deny` (a list of actions such as \"dynamodb:GetItem\")"
                            .into(),
                    ))
                }
            };
            if actions.is_empty() || g.resources.is_empty() {
                return Err((i, "needs at least one action and one resource".into()));
            }
            for a in actions {
                if a != "*" && !a.contains(':') {
                    return Err((
                        i,
                        format!(
                            "action `{a}` is not of the form service:Action (\"dynamodb:GetItem\", \"dynamodb:*\")"
                        ),
                    ));
                }
            }
            let resources = g
                .resources
                .iter()
                .map(|r| crate::iam::expand_resource(r).map_err(|m| (i, m)))
                .collect::<Result<_, _>>()?;
            Ok(crate::AwsStatement {
                effect,
                actions: actions.clone(),
                not_actions: false,
                resources,
                not_resources: false,
                conditional: false,
            })
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScalingSection {
    min_instances: Option<u32>,
    max_instances: Option<u32>,
    /// Seconds.
    idle_timeout: Option<f64>,
    max_queue: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    route: String,
    function: Option<String>,
    upstream: Option<String>,
    strip_prefix: Option<String>,
    add_prefix: Option<String>,
    /// "2.0" (default) or "1.0".
    payload: Option<String>,
    #[serde(default)]
    api_key: bool,
    jwt: Option<String>,
    /// With `jwt`: scopes of which the token must grant one.
    #[serde(default)]
    scopes: Vec<String>,
    /// A Lambda authorizer for this route.
    authorizer: Option<LambdaAuthorizerSection>,
    rate_limit: Option<f64>,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorsSection {
    #[serde(default)]
    allow_origins: Vec<String>,
    #[serde(default)]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    allow_credentials: bool,
    max_age: Option<u64>,
}

pub(crate) fn parse(file: &Path, text: &str, root: &Path, options: &LoadOptions) -> Result<Loaded, ManifestError> {
    let err = |key: String, msg: String| ManifestError::new(file, key, msg);
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(String::new(), format!("invalid TOML: {}", e.message())))?;

    let stage = options.stage.clone().unwrap_or_else(|| DEFAULT_STAGE.to_string());
    if let Some(toml::Value::Table(stages)) = table.get("stages") {
        if stage != DEFAULT_STAGE && !stages.contains_key(&stage) {
            let mut known: Vec<&str> = stages.keys().map(String::as_str).collect();
            if !known.contains(&DEFAULT_STAGE) {
                known.push(DEFAULT_STAGE);
            }
            known.sort_unstable();
            return Err(err(
                "stages".into(),
                format!(
                    "unknown stage `{stage}`: the known stages are {} (add a [stages.{stage}] table)",
                    known.join(", ")
                ),
            ));
        }
    }

    // `${env:...}` in string values; the other stages' overlays are left as written.
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let vars = Resolver::gust(&file_name, &*options.env);
    for (k, v) in table.iter_mut() {
        if k == "stages" {
            if let toml::Value::Table(stages) = v {
                if let Some(chosen) = stages.get_mut(&stage) {
                    resolve_toml(&vars, chosen, &format!("stages.{stage}")).map_err(|(k, m)| err(k, m))?;
                }
            }
            continue;
        }
        resolve_toml(&vars, v, k).map_err(|(k, m)| err(k, m))?;
    }

    let mut manifest: Manifest = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        ManifestError::new(file, key, e.into_inner().message().to_string())
    })?;

    // Stage overlays: every stage is checked, the chosen one is merged in.
    for (sname, s) in &manifest.stages {
        crate::ids::check_stage(sname).map_err(|e| err(format!("stages.{sname}"), e.to_string()))?;
        if let Some(f) = s.functions.keys().find(|f| !manifest.functions.contains_key(*f)) {
            return Err(err(
                format!("stages.{sname}.functions.{f}"),
                format!("no function named `{f}` is declared"),
            ));
        }
    }
    let mut staged_scaling = std::collections::BTreeSet::new();
    if let Some(overlay) = manifest.stages.remove(&stage) {
        manifest.app.environment.extend(overlay.app.environment);
        for (fname, o) in overlay.functions {
            let key = |k: &str| format!("stages.{stage}.functions.{fname}.{k}");
            let f = manifest.functions.get_mut(&fname).expect("checked above");
            if let Some(m) = o.memory {
                check_memory(Some(m)).map_err(|m| err(key("memory"), m))?;
                f.memory = Some(m);
            }
            if let Some(t) = o.timeout {
                check_timeout(Some(t)).map_err(|m| err(key("timeout"), m))?;
                f.timeout = Some(t);
            }
            f.environment.extend(o.environment);
            if let Some(s) = o.scaling {
                if s.idle_timeout.is_some_and(|v| seconds(v).is_none()) {
                    return Err(err(
                        key("scaling.idle_timeout"),
                        "must be a positive number of seconds".into(),
                    ));
                }
                let base = &mut f.scaling;
                base.min_instances = s.min_instances.or(base.min_instances);
                base.max_instances = s.max_instances.or(base.max_instances);
                base.idle_timeout = s.idle_timeout.or(base.idle_timeout);
                base.max_queue = s.max_queue.or(base.max_queue);
                staged_scaling.insert(fname.clone());
            }
        }
    }

    let name = AppName::new(&manifest.app.name).map_err(|e| err("app.name".into(), e.to_string()))?;
    let mut functions = BTreeMap::new();
    let mut warnings = Vec::new();
    for (fname, f) in manifest.functions {
        let key = |k: &str| format!("functions.{fname}.{k}");
        let name = FunctionName::new(&fname).map_err(|e| err(format!("functions.{fname}"), e.to_string()))?;
        let (kind, old) = RuntimeKind::check(&f.runtime).map_err(|m| err(key("runtime"), m))?;
        if let Some(w) = old {
            warnings.push(format!("{}: `{}`: {w}", file.display(), key("runtime")));
        }
        if kind != RuntimeKind::Provided && f.handler.is_empty() {
            return Err(err(key("handler"), "a handler (`file.export`) is required".into()));
        }
        let code_dir = match &f.dir {
            Some(d) => root.join(d),
            None => root.to_path_buf(),
        };
        let memory_mb = check_memory(f.memory).map_err(|m| err(key("memory"), m))?;
        let ephemeral_storage_mb =
            check_ephemeral_storage(f.ephemeral_storage).map_err(|m| err(key("ephemeral_storage"), m))?;
        let timeout = check_timeout(f.timeout).map_err(|m| err(key("timeout"), m))?;
        let init_timeout = check_init_timeout(f.init_timeout).map_err(|m| err(key("init_timeout"), m))?;
        let network = match &f.network {
            Some(v) => Network::parse(v).map_err(|m| err(key("network"), m))?,
            None => Network::Default,
        };
        let mut scaling = Scaling::default();
        let s = f.scaling;
        if let Some(v) = s.min_instances {
            scaling.min_instances = v;
        }
        if let Some(v) = s.max_instances {
            scaling.max_instances = v;
        }
        if let Some(v) = s.max_queue {
            scaling.max_queue = v;
        }
        if let Some(v) = s.idle_timeout {
            scaling.idle_timeout = seconds(v).ok_or_else(|| {
                err(
                    key("scaling.idle_timeout"),
                    "must be a positive number of seconds".into(),
                )
            })?;
        }
        check_scaling(&scaling).map_err(|(k, m)| {
            if staged_scaling.contains(&fname) {
                err(
                    format!("stages.{stage}.functions.{fname}.scaling.{k}"),
                    format!("{m} (with stage `{stage}` applied)"),
                )
            } else {
                err(key(&format!("scaling.{k}")), m)
            }
        })?;
        let mut environment = manifest.app.environment.clone();
        environment.extend(f.environment);
        functions.insert(
            name.clone(),
            FunctionSpec {
                name,
                runtime: f.runtime,
                kind,
                handler: f.handler,
                code_dir,
                memory_mb,
                ephemeral_storage_mb,
                timeout,
                init_timeout,
                environment,
                scaling,
                services: names(&f.services).map_err(|m| err(key("services"), m))?,
                invokes: names(&f.invokes).map_err(|m| err(key("invokes"), m))?,
                secrets: f.secrets,
                publishes: f
                    .publishes
                    .iter()
                    .map(|t| TopicName::new(t).map_err(|e| err(key("publishes"), e.to_string())))
                    .collect::<Result<_, _>>()?,
                network,
                package: {
                    let mut p = manifest.app.package.clone();
                    p.extend(f.package);
                    p
                },
                aws: aws_statements(&f.aws).map_err(|(i, m)| err(format!("{}[{i}]", key("aws")), m))?,
            },
        );
    }

    let mut routes = Vec::new();
    let mut lambda_authorizers = BTreeMap::new();
    for (i, r) in manifest.routes.into_iter().enumerate() {
        let at = |k: &str| format!("routes[{i}].{k}");
        let key = RouteKey::parse(&r.route).map_err(|m| err(at("route"), m))?;
        let target = match (r.function, r.upstream) {
            (Some(f), None) => {
                let function = FunctionName::new(&f).map_err(|e| err(at("function"), e.to_string()))?;
                let payload = match r.payload.as_deref() {
                    None | Some("2.0") => PayloadFormat::V2,
                    Some("1.0") => PayloadFormat::V1,
                    Some(other) => {
                        return Err(err(
                            at("payload"),
                            format!("unknown payload format `{other}`: use \"2.0\" or \"1.0\""),
                        ))
                    }
                };
                RouteTarget::Function { function, payload }
            }
            (None, Some(u)) => {
                let upstream = FunctionName::new(&u).map_err(|e| err(at("upstream"), e.to_string()))?;
                for (k, v) in [("strip_prefix", &r.strip_prefix), ("add_prefix", &r.add_prefix)] {
                    if v.as_deref().is_some_and(|p| !p.starts_with('/')) {
                        return Err(err(at(k), "must start with `/`".into()));
                    }
                }
                RouteTarget::Upstream {
                    upstream,
                    strip_prefix: r.strip_prefix,
                    add_prefix: r.add_prefix,
                }
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    at("upstream"),
                    "a route has a `function` or an `upstream`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    at("function"),
                    "a route needs a `function` or an `upstream`".into(),
                ))
            }
        };
        let mut auth = route_auth(r.api_key, r.jwt, r.rate_limit, r.burst, &at).map_err(|(k, m)| err(k, m))?;
        if !r.scopes.is_empty() && auth.jwt.is_none() {
            return Err(err(at("scopes"), "scopes are checked on a JWT: add `jwt`".into()));
        }
        auth.scopes = r.scopes;
        if let Some(a) = r.authorizer {
            if auth.jwt.is_some() {
                return Err(err(
                    at("authorizer"),
                    "a route has one authorizer: `jwt` or `authorizer`, not both".into(),
                ));
            }
            let spec = lambda_authorizer(a).map_err(|(k, m)| err(at(&format!("authorizer.{k}")), m))?;
            if !functions.contains_key(&spec.function) {
                return Err(err(
                    at("authorizer.function"),
                    format!("no function named `{}` is declared", spec.function),
                ));
            }
            auth.lambda = Some(crate::app::add_lambda_authorizer(&mut lambda_authorizers, spec));
        }
        routes.push(RouteSpec { key, target, auth });
    }

    let mut upstreams = BTreeMap::new();
    for (uname, u) in manifest.upstreams {
        let key = |k: &str| format!("upstreams.{uname}.{k}");
        let name = FunctionName::new(&uname).map_err(|e| err(format!("upstreams.{uname}"), e.to_string()))?;
        let mut targets = u.targets;
        if let Some(port) = u.port {
            targets.push(format!("http://127.0.0.1:{port}"));
        }
        if targets.is_empty() {
            return Err(err(
                key("targets"),
                "an upstream needs `targets` (URLs), or a `command` with a `port`".into(),
            ));
        }
        if u.command.is_some() && u.port.is_none() {
            return Err(err(
                key("port"),
                "an upstream with a `command` needs the `port` it listens on".into(),
            ));
        }
        for t in &targets {
            if !(t.starts_with("http://") || t.starts_with("https://")) || t.len() < 8 {
                return Err(err(key("targets"), format!("`{t}` is not an http:// URL")));
            }
        }
        let secs = |v: Option<f64>, default: f64, k: &str| -> Result<Duration, ManifestError> {
            seconds(v.unwrap_or(default)).ok_or_else(|| err(key(k), "must be a positive number of seconds".into()))
        };
        upstreams.insert(
            name.clone(),
            UpstreamSpec {
                name,
                targets: targets
                    .into_iter()
                    .map(|t| t.trim_end_matches('/').to_string())
                    .collect(),
                command: u.command,
                dir: u.dir.map(|d| root.join(d)).unwrap_or_else(|| root.to_path_buf()),
                port: u.port,
                environment: u.environment,
                health_path: u.health_path.unwrap_or_else(|| "/health".into()),
                health_interval: secs(u.health_interval, 2.0, "health_interval")?,
                healthy_threshold: u.healthy_threshold.unwrap_or(1).max(1),
                unhealthy_threshold: u.unhealthy_threshold.unwrap_or(2).max(1),
                timeout: secs(u.timeout, 30.0, "timeout")?,
                retries: u.retries.unwrap_or(1),
                breaker_failures: u.breaker_failures.unwrap_or(5).max(1),
                breaker_cooldown: secs(u.breaker_cooldown, 10.0, "breaker_cooldown")?,
            },
        );
    }

    let mut authorizers = BTreeMap::new();
    for (aname, a) in manifest.authorizers {
        let key = |k: &str| format!("authorizers.{aname}.{k}");
        let name = FunctionName::new(&aname).map_err(|e| err(format!("authorizers.{aname}"), e.to_string()))?;
        let sources = [
            a.jwks_file.is_some(),
            a.jwks_url.is_some(),
            a.hs256_secret.is_some(),
            a.openid_discovery,
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(err(
                key("jwks_file"),
                "set exactly one of `jwks_file`, `jwks_url`, `hs256_secret`, `openid_discovery = true`".into(),
            ));
        }
        if a.audiences.is_empty() {
            return Err(err(key("audiences"), "at least one audience is required".into()));
        }
        authorizers.insert(
            name.clone(),
            JwtAuthorizerSpec {
                name,
                issuer: a.issuer,
                audiences: a.audiences,
                jwks_file: a.jwks_file.map(|f| root.join(f)),
                jwks_url: a.jwks_url,
                hs256_secret: a.hs256_secret,
                openid_discovery: a.openid_discovery,
            },
        );
    }

    let cors = manifest.cors.map(|c| {
        let d = CorsSpec::default();
        CorsSpec {
            allow_origins: if c.allow_origins.is_empty() {
                d.allow_origins
            } else {
                c.allow_origins
            },
            allow_methods: if c.allow_methods.is_empty() {
                d.allow_methods
            } else {
                c.allow_methods
            },
            allow_headers: if c.allow_headers.is_empty() {
                d.allow_headers
            } else {
                c.allow_headers
            },
            expose_headers: c.expose_headers,
            allow_credentials: c.allow_credentials,
            max_age_secs: c.max_age,
        }
    });

    let mut topics = std::collections::BTreeSet::new();
    let mut public_topics = BTreeMap::new();
    for (t, section) in manifest.topics {
        let at = |k: &str| format!("topics.{t}.{k}");
        let name = TopicName::new(&t).map_err(|e| err(format!("topics.{t}"), e.to_string()))?;
        let auth = route_auth(section.api_key, section.jwt, section.rate_limit, section.burst, &at)
            .map_err(|(k, m)| err(k, m))?;
        if section.public {
            public_topics.insert(name.clone(), auth);
        } else if auth != RouteAuth::default() {
            return Err(err(
                at(if auth.api_key { "api_key" } else if auth.jwt.is_some() { "jwt" } else { "rate_limit" }),
                "publish checks apply to a public topic: add `public = true` (the gateway takes no publishes for this topic otherwise)".into(),
            ));
        }
        topics.insert(name);
    }
    let mut subscriptions = Vec::new();
    for (i, s) in manifest.subscriptions.into_iter().enumerate() {
        let key = |k: &str| format!("subscriptions[{i}].{k}");
        let function = FunctionName::new(&s.function).map_err(|e| err(key("function"), e.to_string()))?;
        let (topic, source) = match (s.topic, s.source) {
            (Some(_), Some(_)) => {
                return Err(err(
                    key("source"),
                    "a subscription reads either a Gust `topic` or a broker `source`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    key("topic"),
                    "missing: name a Gust `topic` or a broker `source = { type = ... }`".into(),
                ))
            }
            (Some(t), None) => (
                Some(TopicName::new(&t).map_err(|e| err(key("topic"), e.to_string()))?),
                None,
            ),
            (None, Some(src)) => (
                None,
                Some(crate::source::source(src).map_err(|(k, m)| err(key(&format!("source.{k}")), m))?),
            ),
        };
        let default_name = match (&topic, &source) {
            (Some(t), _) => format!("{}.{t}", s.function),
            (None, Some(src)) => format!("{}.{}", s.function, src.default_name()),
            (None, None) => unreachable!("checked above"),
        };
        let name = s.name.unwrap_or(default_name);
        let name = TopicName::new(&name).map_err(|e| err(key("name"), e.to_string()))?;
        if source.is_some() && name.as_str().starts_with("gust.") {
            return Err(err(
                key("name"),
                "names starting with `gust.` are reserved for Gust".into(),
            ));
        }
        // A source subscription has no Gust topic: its records are addressed by its own name
        // (dead letters and redrives live under it in the embedded log).
        let is_source = source.is_some();
        let topic = topic.unwrap_or_else(|| name.clone());
        let rabbitmq = matches!(source, Some(crate::SourceSpec::RabbitMq(_)));
        let stream = matches!(source, Some(crate::SourceSpec::DynamoDbStream(_)));
        if stream && s.shape.as_deref().is_some_and(|sh| sh != "dynamodb") {
            return Err(err(
                key("shape"),
                "a `dynamodb-stream` source reaches handlers in Lambda's DynamoDB stream shape: leave `shape` out"
                    .into(),
            ));
        }
        let shape = match s.shape.as_deref() {
            None | Some("dynamodb") if stream => EventShape::DynamoDb,
            // A RabbitMQ queue reaches handlers in Lambda's RabbitMQ shape unless told otherwise.
            None if rabbitmq => EventShape::RabbitMq,
            Some("rabbitmq") if rabbitmq => EventShape::RabbitMq,
            Some("rabbitmq") => {
                return Err(err(
                    key("shape"),
                    "the \"rabbitmq\" shape is for `source = { type = \"rabbitmq\", ... }` subscriptions".into(),
                ))
            }
            None | Some("sqs") => EventShape::Sqs,
            Some("sns") => EventShape::Sns,
            Some(other) => {
                return Err(err(
                    key("shape"),
                    format!("unknown shape `{other}`: use \"sqs\", \"sns\" or (rabbitmq sources) \"rabbitmq\""),
                ))
            }
        };
        if shape == EventShape::RabbitMq && s.report_batch_item_failures {
            return Err(err(
                key("report_batch_item_failures"),
                "Lambda's RabbitMQ event has no batchItemFailures (a failure fails the whole batch): leave it out, or use shape = \"sqs\"".into(),
            ));
        }
        if !s.filter_patterns.is_empty() && !is_source {
            return Err(err(
                key("filter_patterns"),
                "filter patterns apply to `source` subscriptions (a broker or a DynamoDB stream); a Gust topic filters with `types` and `attributes`".into(),
            ));
        }
        let mut patterns = Vec::new();
        for (j, p) in s.filter_patterns.iter().enumerate() {
            let json =
                serde_json::to_value(p).map_err(|e| err(key(&format!("filter_patterns[{j}]")), e.to_string()))?;
            patterns.push(crate::FilterPattern::new(&json).map_err(|m| err(key(&format!("filter_patterns[{j}]")), m))?);
        }
        let fn_timeout = functions.get(&function).map(|f: &FunctionSpec| f.timeout);
        let max_instances = functions.get(&function).map(|f: &FunctionSpec| f.scaling.max_instances);
        let sub = subscription(
            SubscriptionInput {
                name,
                topic: topic.clone(),
                function,
                filter: EventFilter {
                    types: s.types,
                    attributes: s.attributes,
                    patterns,
                },
                shape,
                batch_size: s.batch_size,
                batch_window: s.batch_window,
                max_concurrency: s.max_concurrency,
                max_attempts: s.max_attempts,
                max_event_age: s.max_event_age,
                visibility_timeout: s.visibility_timeout,
                report_batch_item_failures: s.report_batch_item_failures,
                retry_delay: s.retry_delay,
                source,
            },
            fn_timeout,
            max_instances,
        )
        .map_err(|(k, m)| err(key(k), m))?;
        if !is_source {
            topics.insert(topic);
        }
        subscriptions.push(sub);
    }

    let mut schedules = Vec::new();
    for (i, s) in manifest.schedules.into_iter().enumerate() {
        let key = |k: &str| format!("schedules[{i}].{k}");
        let input = s
            .input
            .map(|v| serde_json::to_value(v).map_err(|e| err(key("input"), e.to_string())))
            .transpose()?;
        schedules.push(
            schedule(ScheduleInput {
                name: s.name,
                function: s.function,
                expression: s.expression,
                timezone: s.timezone,
                input,
                description: s.description,
                enabled: s.enabled,
                catch_up: s.catch_up,
                max_catch_up: s.max_catch_up,
                overlap: s.overlap,
                jitter: s.jitter,
                max_attempts: s.max_attempts,
                retry_delay: s.retry_delay,
            })
            .map_err(|(k, m)| err(key(k), m))?,
        );
    }

    let dynamodb_tables = dynamodb_tables(manifest.dynamodb.tables).map_err(|(k, m)| err(k, m))?;
    let region = manifest.app.region.clone().unwrap_or_else(|| DEFAULT_REGION.into());
    // A `dynamodb-stream` source reads a table this manifest declares with a stream.
    for (i, sub) in subscriptions.iter_mut().enumerate() {
        let Some(crate::SourceSpec::DynamoDbStream(d)) = &mut sub.source else {
            continue;
        };
        let streams = dynamodb_tables
            .get(&d.table)
            .is_some_and(|t| t.create["StreamSpecification"]["StreamEnabled"] == true);
        if !streams {
            return Err(err(
                format!("subscriptions[{i}].source.table"),
                format!(
                    "`{}` is not a table of `[dynamodb.tables]` with `stream` set (e.g. `stream = \"NEW_AND_OLD_IMAGES\"`)",
                    d.table
                ),
            ));
        }
        if d.stream_arn.starts_with("table/") {
            d.stream_arn = format!("arn:aws:dynamodb:{region}:{}:{}", crate::iam::ACCOUNT_ID, d.stream_arn);
        }
    }
    let app = App {
        upstreams,
        authorizers,
        lambda_authorizers,
        api_keys: Vec::new(),
        dynamodb_tables,
        schedules,
        topics,
        public_topics,
        subscriptions,
        name,
        stage,
        region,
        root: root.to_path_buf(),
        functions,
        routes,
        cors,
    };
    app.check_references().map_err(|(k, m)| err(k, m))?;
    Ok(Loaded {
        app,
        warnings,
        file: file.to_path_buf(),
    })
}

/// Resolves `${env:...}` variables in every string of `v` (gust.toml values stay strings).
/// `key` is the dotted path of `v`; errors are (key, message).
fn resolve_toml(vars: &Resolver<'_>, v: &mut toml::Value, key: &str) -> Result<(), (String, String)> {
    match v {
        toml::Value::String(s) if s.contains("${") => {
            *s = vars.text(s).map_err(|m| (key.to_string(), m))?;
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                resolve_toml(vars, v, &format!("{key}.{k}"))?;
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                resolve_toml(vars, v, &format!("{key}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A schedule as written, before defaults and checks.
pub(crate) struct ScheduleInput {
    pub name: String,
    pub function: String,
    pub expression: String,
    pub timezone: Option<String>,
    pub input: Option<serde_json::Value>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub catch_up: Option<String>,
    pub max_catch_up: Option<u32>,
    pub overlap: Option<String>,
    pub jitter: Option<f64>,
    pub max_attempts: Option<u32>,
    pub retry_delay: Option<f64>,
}

/// Scheduled runs retry like Lambda's asynchronous invocations: two retries by default.
pub(crate) const SCHEDULE_MAX_ATTEMPTS: u32 = 3;

pub(crate) fn schedule(s: ScheduleInput) -> Result<ScheduleSpec, (&'static str, String)> {
    let name = TopicName::new(&s.name).map_err(|e| ("name", e.to_string()))?;
    let function = FunctionName::new(&s.function).map_err(|e| ("function", e.to_string()))?;
    if s.expression.trim().is_empty() {
        return Err(("expression", "is required".into()));
    }
    let catch_up = match s.catch_up.as_deref() {
        None | Some("none") => CatchUp::None,
        Some("last") => CatchUp::Last,
        Some("all") => CatchUp::All(s.max_catch_up.unwrap_or(10).max(1)),
        Some(other) => return Err(("catch_up", format!("unknown policy `{other}`: use none, last or all"))),
    };
    let overlap = match s.overlap.as_deref() {
        None | Some("skip") => Overlap::Skip,
        Some("allow") => Overlap::Allow,
        Some("queue") => Overlap::Queue,
        Some(other) => return Err(("overlap", format!("unknown policy `{other}`: use skip, allow or queue"))),
    };
    let jitter = match s.jitter {
        None => Duration::ZERO,
        Some(v) if (0.0..=3600.0).contains(&v) => Duration::from_secs_f64(v),
        Some(v) => return Err(("jitter", format!("{v} is outside 0..=3600 seconds"))),
    };
    let max_attempts = s.max_attempts.unwrap_or(SCHEDULE_MAX_ATTEMPTS);
    if max_attempts == 0 {
        return Err(("max_attempts", "must be at least 1".into()));
    }
    let retry_delay = match s.retry_delay {
        None => event_defaults::RETRY_DELAY,
        Some(v) => seconds(v).filter(|d| *d <= event_defaults::MAX_RETRY_DELAY).ok_or((
            "retry_delay",
            "must be a positive number of seconds, at most 300".to_string(),
        ))?,
    };
    Ok(ScheduleSpec {
        name,
        function,
        expression: s.expression.trim().to_string(),
        timezone: s.timezone.unwrap_or_else(|| "UTC".into()),
        input: s.input,
        description: s.description,
        enabled: s.enabled.unwrap_or(true),
        catch_up,
        overlap,
        jitter,
        max_attempts,
        retry_delay,
    })
}

/// A subscription as written, before defaults and checks.
pub(crate) struct SubscriptionInput {
    pub name: TopicName,
    pub topic: TopicName,
    pub function: FunctionName,
    pub filter: EventFilter,
    pub shape: EventShape,
    pub batch_size: Option<u32>,
    pub batch_window: Option<f64>,
    pub max_concurrency: Option<u32>,
    pub max_attempts: Option<u32>,
    pub max_event_age: Option<f64>,
    pub visibility_timeout: Option<f64>,
    pub report_batch_item_failures: bool,
    pub retry_delay: Option<f64>,
    pub source: Option<crate::SourceSpec>,
}

/// Applies the delivery defaults and limits; errors name the key.
pub(crate) fn subscription(
    s: SubscriptionInput,
    fn_timeout: Option<Duration>,
    fn_max_instances: Option<u32>,
) -> Result<SubscriptionSpec, (&'static str, String)> {
    let batch_size = s.batch_size.unwrap_or(event_defaults::BATCH_SIZE);
    if !(1..=10_000).contains(&batch_size) {
        return Err(("batch_size", format!("{batch_size} is outside 1..=10000")));
    }
    let batch_window = match s.batch_window {
        None => Duration::ZERO,
        Some(v) if (0.0..=300.0).contains(&v) => Duration::from_secs_f64(v),
        Some(v) => return Err(("batch_window", format!("{v} is outside 0..=300 seconds"))),
    };
    let max_attempts = s.max_attempts.unwrap_or(event_defaults::MAX_ATTEMPTS);
    if max_attempts == 0 {
        return Err(("max_attempts", "must be at least 1".into()));
    }
    let max_event_age = match s.max_event_age {
        None => event_defaults::MAX_EVENT_AGE,
        Some(v) => seconds(v).ok_or(("max_event_age", "must be a positive number of seconds".to_string()))?,
    };
    let min_visibility = fn_timeout
        .map(|t| (t * 6).max(event_defaults::MIN_VISIBILITY))
        .unwrap_or(event_defaults::MIN_VISIBILITY);
    let visibility_timeout = match s.visibility_timeout {
        None => min_visibility,
        Some(v) => {
            let d = seconds(v).ok_or(("visibility_timeout", "must be a positive number of seconds".to_string()))?;
            if let Some(t) = fn_timeout.filter(|t| d <= *t) {
                return Err((
                    "visibility_timeout",
                    format!("{v}s must be longer than the function timeout ({}s)", t.as_secs_f64()),
                ));
            }
            d
        }
    };
    let retry_delay = match s.retry_delay {
        None => event_defaults::RETRY_DELAY,
        Some(v) => seconds(v).filter(|d| *d <= event_defaults::MAX_RETRY_DELAY).ok_or((
            "retry_delay",
            "must be a positive number of seconds, at most 300".to_string(),
        ))?,
    };
    let max_concurrency = s
        .max_concurrency
        .unwrap_or_else(|| fn_max_instances.unwrap_or(10))
        .max(1);
    Ok(SubscriptionSpec {
        name: s.name,
        topic: s.topic,
        function: s.function,
        filter: s.filter,
        shape: s.shape,
        batch_size,
        batch_window,
        max_concurrency,
        max_attempts,
        max_event_age,
        visibility_timeout,
        report_batch_item_failures: s.report_batch_item_failures,
        retry_delay,
        source: s.source,
    })
}

/// The checks a route or a public topic asks of callers (`api_key`, `jwt`, `rate_limit`, `burst`).
fn route_auth(
    api_key: bool,
    jwt: Option<String>,
    rate_limit: Option<f64>,
    burst: Option<u32>,
    at: &dyn Fn(&str) -> String,
) -> Result<RouteAuth, (String, String)> {
    if rate_limit.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
        return Err((
            at("rate_limit"),
            "must be a positive number of requests per second".into(),
        ));
    }
    let jwt = jwt
        .map(|j| FunctionName::new(&j).map_err(|e| (at("jwt"), e.to_string())))
        .transpose()?;
    Ok(RouteAuth {
        api_key,
        jwt,
        rate_limit,
        burst,
        ..RouteAuth::default()
    })
}

/// A route's inline `authorizer = {...}`; errors are (key under `authorizer`, message).
fn lambda_authorizer(a: LambdaAuthorizerSection) -> Result<LambdaAuthorizerSpec, (String, String)> {
    let function = FunctionName::new(&a.function).map_err(|e| ("function".to_string(), e.to_string()))?;
    let kind = match a.kind.as_deref() {
        None | Some("request") => LambdaAuthorizerKind::Request,
        Some("token") => LambdaAuthorizerKind::Token,
        Some(other) => {
            return Err((
                "type".into(),
                format!("unknown authorizer type `{other}`: use \"request\" or \"token\""),
            ))
        }
    };
    let format = match (kind, a.format.as_deref()) {
        (LambdaAuthorizerKind::Token, None | Some("rest")) => AuthorizerFormat::Rest,
        (LambdaAuthorizerKind::Token, Some(_)) => {
            return Err((
                "format".into(),
                "a token authorizer has the REST shape only: leave `format` out or use \"rest\"".into(),
            ))
        }
        (_, None | Some("2.0")) => AuthorizerFormat::HttpV2,
        (_, Some("1.0")) => AuthorizerFormat::HttpV1,
        (_, Some("rest")) => AuthorizerFormat::Rest,
        (_, Some(other)) => {
            return Err((
                "format".into(),
                format!("unknown format `{other}`: use \"2.0\", \"1.0\" or \"rest\""),
            ))
        }
    };
    if a.simple_responses && format != AuthorizerFormat::HttpV2 {
        return Err((
            "simple_responses".into(),
            "simple responses exist only with format \"2.0\"".into(),
        ));
    }
    if a.validation.is_some() && kind != LambdaAuthorizerKind::Token {
        return Err((
            "validation".into(),
            "a validation expression applies to token authorizers".into(),
        ));
    }
    let sources = a
        .identity_source
        .map(OneOrMany::into_vec)
        .unwrap_or_else(|| vec!["$request.header.Authorization".into()]);
    let identity_sources = sources
        .iter()
        .map(|s| IdentitySource::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| ("identity_source".to_string(), m))?;
    if kind == LambdaAuthorizerKind::Token && !matches!(identity_sources.as_slice(), [IdentitySource::Header(_)]) {
        return Err((
            "identity_source".into(),
            "a token authorizer reads exactly one header".into(),
        ));
    }
    let ttl = a.ttl.unwrap_or(crate::app::DEFAULT_AUTHORIZER_TTL_SECS);
    if ttl > crate::app::MAX_AUTHORIZER_TTL_SECS {
        return Err((
            "ttl".into(),
            format!("at most {} seconds", crate::app::MAX_AUTHORIZER_TTL_SECS),
        ));
    }
    Ok(LambdaAuthorizerSpec {
        name: function.clone(),
        function,
        kind,
        format,
        identity_sources,
        ttl: Duration::from_secs(ttl),
        validation: a.validation,
        simple_responses: a.simple_responses,
    })
}

fn names(list: &[String]) -> Result<Vec<FunctionName>, String> {
    list.iter()
        .map(|n| FunctionName::new(n).map_err(|e| e.to_string()))
        .collect()
}

pub(crate) fn seconds(v: f64) -> Option<Duration> {
    (v.is_finite() && v > 0.0).then(|| Duration::from_secs_f64(v))
}

pub(crate) fn check_memory(v: Option<u32>) -> Result<u32, String> {
    let v = v.unwrap_or(defaults::MEMORY_MB);
    if !(defaults::MIN_MEMORY_MB..=defaults::MAX_MEMORY_MB).contains(&v) {
        return Err(format!(
            "memory {v} MB is out of range {}..={} MB",
            defaults::MIN_MEMORY_MB,
            defaults::MAX_MEMORY_MB
        ));
    }
    Ok(v)
}

pub(crate) fn check_ephemeral_storage(v: Option<u32>) -> Result<u32, String> {
    let v = v.unwrap_or(defaults::EPHEMERAL_STORAGE_MB);
    if !(defaults::EPHEMERAL_STORAGE_MB..=defaults::MAX_EPHEMERAL_STORAGE_MB).contains(&v) {
        return Err(format!(
            "ephemeral storage {v} MB is out of range {}..={} MB",
            defaults::EPHEMERAL_STORAGE_MB,
            defaults::MAX_EPHEMERAL_STORAGE_MB
        ));
    }
    Ok(v)
}

pub(crate) fn check_timeout(v: Option<f64>) -> Result<Duration, String> {
    let Some(v) = v else {
        return Ok(defaults::TIMEOUT);
    };
    let d = seconds(v).ok_or_else(|| "must be a positive number of seconds".to_string())?;
    if d > defaults::MAX_TIMEOUT {
        return Err(format!("timeout {v}s exceeds the maximum of 900s"));
    }
    Ok(d)
}

/// `init_timeout`: positive seconds, at most 900 as `timeout` (Lambda's init phase is 10 s).
pub(crate) fn check_init_timeout(v: Option<f64>) -> Result<Duration, String> {
    let Some(v) = v else {
        return Ok(defaults::INIT_TIMEOUT);
    };
    let d = seconds(v).ok_or_else(|| format!("must be a positive number of seconds, not {v}"))?;
    if d > defaults::MAX_TIMEOUT {
        return Err(format!("init_timeout {v}s exceeds the maximum of 900s"));
    }
    Ok(d)
}

pub(crate) fn check_scaling(s: &Scaling) -> Result<(), (&'static str, String)> {
    if s.max_instances == 0 {
        return Err(("max_instances", "must be at least 1".into()));
    }
    if s.min_instances > s.max_instances {
        return Err((
            "min_instances",
            format!("{} is above max_instances {}", s.min_instances, s.max_instances),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, ManifestError> {
        parse(
            Path::new("/app/gust.toml"),
            text,
            Path::new("/app"),
            &LoadOptions::from_env_map([("UNUSED", "")]),
        )
    }

    #[test]
    fn package_patterns_of_the_app_come_before_a_functions_own() {
        let l = load(
            "[app]\nname = \"p\"\npackage = [\"!tests/**\"]\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\npackage = [\"!big/**\", \"big/keep.js\"]\n[functions.g]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n",
        )
        .unwrap();
        let f = |n: &str| {
            l.app
                .functions
                .values()
                .find(|f| f.name.as_str() == n)
                .unwrap()
                .package
                .clone()
        };
        assert_eq!(f("f"), ["!tests/**", "!big/**", "big/keep.js"]);
        assert_eq!(f("g"), ["!tests/**"]);
    }

    #[test]
    fn aws_grants_and_dynamodb_tables() {
        use crate::iam::{decide, Decision};
        let base = "[app]\nname = \"shop\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"f.handler\"\n";
        let l = load(&format!(
            "{base}aws = [{{ allow = [\"dynamodb:GetItem\", \"dynamodb:Query\"], resources = [\"table/users\", \"table/users/index/*\"] }}, {{ deny = [\"dynamodb:*\"], resources = [\"table/secrets\"] }}]\n\
             [dynamodb.tables.users]\nhash_key = \"id\"\nrange_key = \"at:N\"\nstream = \"NEW_IMAGE\"\nttl = \"expires\"\nindexes = [{{ name = \"byEmail\", hash_key = \"email\" }}]\n"
        ))
        .unwrap();
        let f = &l.app.functions[&FunctionName::new("f").unwrap()];
        let t = "arn:aws:dynamodb:us-east-1:000000000000:table/users";
        assert_eq!(decide(&f.aws, "dynamodb:GetItem", t), Decision::Allowed);
        assert_eq!(
            decide(&f.aws, "dynamodb:Query", &format!("{t}/index/byEmail")),
            Decision::Allowed
        );
        assert_eq!(decide(&f.aws, "dynamodb:PutItem", t), Decision::ImplicitDeny);
        assert_eq!(
            decide(&f.aws, "dynamodb:GetItem", &t.replace("users", "secrets")),
            Decision::ExplicitDeny
        );
        let users = &l.app.dynamodb_tables["users"];
        assert_eq!(
            users.create["KeySchema"],
            serde_json::json!([{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}])
        );
        assert_eq!(
            users.create["AttributeDefinitions"],
            serde_json::json!([{"AttributeName": "at", "AttributeType": "N"}, {"AttributeName": "email", "AttributeType": "S"}, {"AttributeName": "id", "AttributeType": "S"}])
        );
        assert_eq!(users.create["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
        assert_eq!(users.create["GlobalSecondaryIndexes"][0]["IndexName"], "byEmail");
        assert_eq!(users.ttl_attribute.as_deref(), Some("expires"));

        let e = load(&format!(
            "{base}aws = [{{ allow = [\"GetItem\"], resources = [\"*\"] }}]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "functions.f.aws[0]");
        assert!(e.message.contains("service:Action"), "{e}");
        let e = load(&format!(
            "{base}aws = [{{ allow = [\"dynamodb:GetItem\"], deny = [\"dynamodb:PutItem\"], resources = [\"*\"] }}]\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("exactly one of `allow` or `deny`"), "{e}");
        let e = load(&format!(
            "{base}aws = [{{ allow = [\"dynamodb:GetItem\"], resources = [\"users\"] }}]\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("`table/users`"), "{e}");
        let e = load(&format!("{base}[dynamodb.tables.t]\nhash_key = \"id:X\"\n")).unwrap_err();
        assert_eq!(e.key, "dynamodb.tables.t.hash_key");
        let e = load(&format!(
            "{base}[dynamodb.tables.t]\nhash_key = \"id\"\nstream = \"ALL\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "dynamodb.tables.t.stream");
    }

    #[test]
    fn parses_a_full_manifest() {
        let l = load(
            r#"
[app]
name = "shop"
environment = { STAGE = "dev", SHARED = "app" }

[functions.register-user]
runtime = "nodejs20.x"
handler = "users/register.handler"
memory = 256
timeout = 2.5
environment = { SHARED = "fn" }
scaling = { min_instances = 1, max_instances = 4, idle_timeout = 30, max_queue = 5 }

[[routes]]
route = "POST /users"
function = "register-user"

[[routes]]
route = "GET /legacy/{proxy+}"
function = "register-user"
payload = "1.0"

[cors]
allow_origins = ["https://shop.example"]
"#,
        )
        .unwrap();
        let f = &l.app.functions[&FunctionName::new("register-user").unwrap()];
        assert_eq!(f.kind, RuntimeKind::Node);
        assert_eq!(f.memory_mb, 256);
        assert_eq!(f.timeout, Duration::from_millis(2500));
        assert_eq!(f.environment["SHARED"], "fn");
        assert_eq!(f.environment["STAGE"], "dev");
        assert_eq!(f.scaling.max_queue, 5);
        assert_eq!(f.code_dir, Path::new("/app"));
        assert_eq!(l.app.routes.len(), 2);
        assert_eq!(l.app.routes[1].key.to_string(), "GET /legacy/{proxy+}");
        assert_eq!(
            l.app.routes[1].target,
            RouteTarget::Function {
                function: f.name.clone(),
                payload: PayloadFormat::V1
            }
        );
        let cors = l.app.cors.unwrap();
        assert_eq!(cors.allow_origins, ["https://shop.example"]);
        assert!(cors.allow_headers.iter().any(|h| h == "Content-Type"));
    }

    #[test]
    fn parses_topics_and_subscriptions_with_defaults() {
        let l = load(
            r#"
[app]
name = "shop"
[functions.invoice]
runtime = "nodejs20.x"
handler = "i.handler"
timeout = 10
[topics.audit]
[[subscriptions]]
topic = "orders"
function = "invoice"
types = ["order.created"]
attributes = { region = ["eu", "us"] }
batch_size = 5
report_batch_item_failures = true
"#,
        )
        .unwrap();
        let topics: Vec<_> = l.app.topics.iter().map(|t| t.as_str()).collect();
        assert_eq!(topics, ["audit", "orders"]);
        let s = &l.app.subscriptions[0];
        assert_eq!(s.name.as_str(), "invoice.orders");
        assert_eq!(s.batch_size, 5);
        assert_eq!(s.max_attempts, 4);
        assert_eq!(s.visibility_timeout, Duration::from_secs(60), "6x the function timeout");
        assert_eq!(s.max_concurrency, 10);
        assert!(s
            .filter
            .matches("order.created", |k| (k == "region").then(|| "eu".to_string())));
        assert!(!s.filter.matches("order.created", |_| None));
        assert!(!s.filter.matches("order.paid", |_| Some("eu".into())));

        let e = load("[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\ntimeout = 10\n[[subscriptions]]\ntopic = \"t\"\nfunction = \"f\"\nvisibility_timeout = 5\n").unwrap_err();
        assert_eq!(e.key, "subscriptions[0].visibility_timeout");
        let e = load("[app]\nname = \"a\"\n[[subscriptions]]\ntopic = \"t\"\nfunction = \"f\"\n").unwrap_err();
        assert_eq!(e.key, "subscriptions[0].function");
    }

    #[test]
    fn topics_are_private_unless_public_and_publishing_is_granted_per_topic() {
        let l = load(
            r#"
[app]
name = "shop"
[functions.f]
runtime = "nodejs20.x"
handler = "h.h"
publishes = ["orders"]
[authorizers.auth0]
issuer = "https://issuer.example/"
audiences = ["shop"]
jwks_file = "jwks.json"
[topics.orders]
public = true
api_key = true
jwt = "auth0"
rate_limit = 50
[topics.audit]
"#,
        )
        .unwrap();
        let orders = TopicName::new("orders").unwrap();
        let auth = &l.app.public_topics[&orders];
        assert!(auth.api_key);
        assert_eq!(auth.jwt.as_ref().map(|j| j.as_str()), Some("auth0"));
        assert_eq!(auth.rate_limit, Some(50.0));
        assert!(
            !l.app.public_topics.contains_key(&TopicName::new("audit").unwrap()),
            "private by default"
        );
        let f = &l.app.functions[&FunctionName::new("f").unwrap()];
        assert_eq!(f.publishes, [orders]);

        let base = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n";
        // Checks on a topic the gateway does not take publishes for would protect nothing.
        let e = load(&format!("{base}[topics.t]\napi_key = true\n")).unwrap_err();
        assert_eq!(e.key, "topics.t.api_key");
        assert!(e.message.contains("public = true"), "{}", e.message);
        let e = load(&format!("{base}[topics.t]\npublic = true\njwt = \"nope\"\n")).unwrap_err();
        assert_eq!(e.key, "topics.t.jwt");
        let e = load(&format!("{base}[topics.t]\npublic = true\nrate_limit = 0\n")).unwrap_err();
        assert_eq!(e.key, "topics.t.rate_limit");
        let e = load(&format!("{base}publishes = [\"missing\"]\n")).unwrap_err();
        assert_eq!(e.key, "functions.f.publishes");
        assert!(e.message.contains("missing"), "{}", e.message);
        // A topic named only by a subscription can be granted too.
        let l = load(&format!(
            "{base}publishes = [\"jobs\"]\n[[subscriptions]]\ntopic = \"jobs\"\nfunction = \"f\"\n"
        ))
        .unwrap();
        assert_eq!(
            l.app.functions[&FunctionName::new("f").unwrap()].publishes[0].as_str(),
            "jobs"
        );
    }

    #[test]
    fn parses_upstreams_grants_and_route_auth() {
        let l = load(
            r#"
[app]
name = "shop"
[functions.invoice]
runtime = "nodejs20.x"
handler = "i.handler"
services = ["orders"]
invokes = ["invoice"]
secrets = ["SIGNING_KEY"]
[upstreams.orders]
command = "node server.js"
dir = "orders-service"
port = 4001
targets = ["http://10.0.0.2:4001/"]
[authorizers.auth0]
issuer = "https://issuer.example/"
audiences = ["shop"]
jwks_file = "jwks.json"
[[routes]]
route = "ANY /orders/{proxy+}"
upstream = "orders"
strip_prefix = "/orders"
api_key = true
jwt = "auth0"
rate_limit = 5
burst = 10
"#,
        )
        .unwrap();
        let u = &l.app.upstreams[&FunctionName::new("orders").unwrap()];
        assert_eq!(u.targets, ["http://10.0.0.2:4001", "http://127.0.0.1:4001"]);
        assert_eq!(u.dir, Path::new("/app/orders-service"));
        assert_eq!(u.health_path, "/health");
        let r = &l.app.routes[0];
        assert!(matches!(&r.target, RouteTarget::Upstream { strip_prefix: Some(p), .. } if p == "/orders"));
        assert!(r.auth.api_key);
        assert_eq!(r.auth.rate_limit, Some(5.0));
        let f = &l.app.functions[&FunctionName::new("invoice").unwrap()];
        assert_eq!(f.secrets, ["SIGNING_KEY"]);
        assert_eq!(f.services[0].as_str(), "orders");

        let base = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n";
        let e = load(&format!("{base}[[routes]]\nroute = \"GET /\"\nupstream = \"nope\"\n")).unwrap_err();
        assert_eq!(e.key, "routes[0].upstream");
        let e = load(&format!("{base}[[routes]]\nroute = \"GET /\"\n")).unwrap_err();
        assert_eq!(e.key, "routes[0].function");
        let e = load(&format!("{base}services = [\"x\"]\n")).unwrap_err();
        assert_eq!(e.key, "functions.f.services");
        let e = load(&format!("{base}secrets = [\"1BAD\"]\n")).unwrap_err();
        assert_eq!(e.key, "functions.f.secrets");
        let e = load(&format!("{base}[upstreams.u]\ncommand = \"x\"\n")).unwrap_err();
        assert_eq!(e.key, "upstreams.u.targets");
    }

    #[test]
    fn init_timeout_defaults_to_lambdas_and_is_checked_at_load() {
        let base = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n";
        let f = |l: &Loaded| l.app.functions[&FunctionName::new("f").unwrap()].init_timeout;
        assert_eq!(f(&load(base).unwrap()), Duration::from_secs(10), "Lambda's default");
        let l = load(&format!("{base}init_timeout = 2.5\n")).unwrap();
        assert_eq!(f(&l), Duration::from_millis(2500));
        assert_eq!(
            f(&load(&format!("{base}init_timeout = 900\n")).unwrap()),
            Duration::from_secs(900)
        );
        for bad in ["0", "-1", "901", "\"5s\""] {
            let e = load(&format!("{base}init_timeout = {bad}\n")).unwrap_err();
            assert_eq!(e.key, "functions.f.init_timeout", "{bad}: {e}");
            assert!(
                e.to_string().starts_with("/app/gust.toml: `functions.f.init_timeout`:"),
                "{bad}: {e}"
            );
        }
        let e = load(&format!("{base}init_timeout = 0\n")).unwrap_err();
        assert!(e.message.contains("positive number of seconds"), "{e}");
        let e = load(&format!("{base}init_timeout = 901\n")).unwrap_err();
        assert!(e.message.contains("exceeds the maximum of 900s"), "{e}");
    }

    #[test]
    fn network_is_default_or_none_and_anything_else_is_refused_by_key() {
        let base = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n";
        let f = |l: &Loaded| l.app.functions[&FunctionName::new("f").unwrap()].network;
        assert_eq!(f(&load(base).unwrap()), Network::Default);
        assert_eq!(
            f(&load(&format!("{base}network = \"default\"\n")).unwrap()),
            Network::Default
        );
        assert_eq!(f(&load(&format!("{base}network = \"none\"\n")).unwrap()), Network::None);
        for bad in ["\"host\"", "\"None\"", "\"\""] {
            let e = load(&format!("{base}network = {bad}\n")).unwrap_err();
            assert_eq!(e.key, "functions.f.network", "{bad}: {e}");
            assert!(e.message.contains("use \"default\""), "{bad}: {e}");
        }
        let e = load(&format!("{base}network = false\n")).unwrap_err();
        assert_eq!(e.key, "functions.f.network", "{e}");
    }

    const SOURCE_BASE: &str = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n[[subscriptions]]\nfunction = \"f\"\n";

    #[test]
    fn a_dynamodb_stream_source_reads_a_declared_table_with_a_stream() {
        use crate::{EventShape, SourceSpec, StartPosition};
        let tables = "[dynamodb.tables.orders]\nhash_key = \"id\"\nstream = \"NEW_AND_OLD_IMAGES\"\n[dynamodb.tables.plain]\nhash_key = \"id\"\n";
        let base = SOURCE_BASE.replace("[[subscriptions]]", &format!("{tables}[[subscriptions]]"));
        let l = load(&format!(
            "{base}source = {{ type = \"dynamodb-stream\", table = \"orders\", start = \"earliest\" }}\nmax_attempts = 3\n"
        ))
        .unwrap();
        let s = &l.app.subscriptions[0];
        assert_eq!(s.shape, EventShape::DynamoDb);
        assert_eq!(s.max_attempts, 3);
        let Some(SourceSpec::DynamoDbStream(d)) = &s.source else {
            panic!("{:?}", s.source)
        };
        assert_eq!(d.table, "orders");
        assert_eq!(d.start, StartPosition::Earliest);
        assert_eq!(
            d.stream_arn,
            "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/*"
        );
        for (source, key, says) in [
            (
                "{ type = \"dynamodb-stream\", table = \"plain\" }",
                "source.table",
                "with `stream` set",
            ),
            (
                "{ type = \"dynamodb-stream\", table = \"missing\" }",
                "source.table",
                "is not a table",
            ),
            ("{ type = \"dynamodb-stream\" }", "source.table", "needs `table`"),
            (
                "{ type = \"dynamodb-stream\", table = \"orders\", url = \"redis://x\" }",
                "source.url",
                "does not apply",
            ),
            (
                "{ type = \"redis-streams\", stream = \"s\", group = \"g\", table = \"orders\" }",
                "source.table",
                "does not apply",
            ),
        ] {
            let e = load(&format!("{base}source = {source}\n")).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(says), "{source}: {e}");
        }
        let e = load(&format!(
            "{base}source = {{ type = \"dynamodb-stream\", table = \"orders\" }}\nshape = \"sqs\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("shape"), "{e}");
        let l = load(&format!(
            "{base}source = {{ type = \"dynamodb-stream\", table = \"orders\" }}\nfilter_patterns = [{{ eventName = [\"REMOVE\"] }}]\n"
        ))
        .unwrap();
        let f = &l.app.subscriptions[0].filter;
        assert!(f.matches_data(br#"{"eventName":"REMOVE"}"#) && !f.matches_data(br#"{"eventName":"INSERT"}"#));
        let e = load(&format!(
            "{base}source = {{ type = \"dynamodb-stream\", table = \"orders\" }}\nfilter_patterns = [{{ eventName = \"REMOVE\" }}]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("filter_patterns[0]") && e.contains("`eventName`"), "{e}");
        let e = load(&format!(
            "{SOURCE_BASE}topic = \"orders\"\nfilter_patterns = [{{ a = [1] }}]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("filter_patterns") && e.contains("`source` subscriptions"),
            "{e}"
        );
    }

    #[test]
    fn parses_broker_sources() {
        use crate::{SourceSpec, StartPosition};
        let l = load(&format!(
            "{SOURCE_BASE}source = {{ type = \"redis-streams\", url = \"redis://127.0.0.1:6379\", stream = \"orders\", group = \"invoices\", start = \"earliest\", ordering_key = \"customer\", password_secret = \"REDIS_PASSWORD\" }}\n"
        ))
        .unwrap();
        let s = &l.app.subscriptions[0];
        assert_eq!(s.name.as_str(), "f.orders");
        assert_eq!(
            s.topic.as_str(),
            "f.orders",
            "a source subscription is addressed by its name"
        );
        assert!(l.app.topics.is_empty(), "no Gust topic is made for a source");
        let Some(SourceSpec::RedisStreams(r)) = &s.source else {
            panic!("{:?}", s.source)
        };
        assert_eq!(
            (r.stream.as_str(), r.group.as_str(), r.start),
            ("orders", "invoices", StartPosition::Earliest)
        );
        assert_eq!(r.ordering_key.as_deref(), Some("customer"));
        assert_eq!(r.password_secret.as_deref(), Some("REDIS_PASSWORD"));

        let l = load(&format!(
            "{SOURCE_BASE}name = \"inv\"\nsource = {{ type = \"nats-jetstream\", stream = \"ORDERS\", subject = \"orders.>\", durable = \"invoices\" }}\n"
        ))
        .unwrap();
        let Some(SourceSpec::NatsJetStream(j)) = &l.app.subscriptions[0].source else {
            panic!()
        };
        assert_eq!(
            (j.url.as_str(), j.subject.as_str(), j.start),
            ("nats://127.0.0.1:4222", "orders.>", StartPosition::Latest)
        );

        let l = load(&format!(
            "{SOURCE_BASE}source = {{ type = \"nats\", url = \"nats://127.0.0.1:4222\", subject = \"orders.created\", queue_group = \"invoices\" }}\n"
        ))
        .unwrap();
        let s = &l.app.subscriptions[0];
        assert_eq!(s.name.as_str(), "f.orders.created");
        assert!(!s.source.as_ref().unwrap().at_least_once());
    }

    #[test]
    fn mqtt_sources_default_to_qos_1_on_a_persistent_session() {
        use crate::SourceSpec;
        let l = load(&format!(
            "{SOURCE_BASE}source = {{ type = \"mqtt\", topic = \"sensors/+/temp\", shared_group = \"readers\" }}\n"
        ))
        .unwrap();
        let s = &l.app.subscriptions[0];
        assert_eq!(s.name.as_str(), "f.sensors___temp");
        assert_eq!(s.shape, EventShape::Sqs);
        let Some(SourceSpec::Mqtt(m)) = &s.source else {
            panic!("{:?}", s.source)
        };
        assert_eq!(
            (m.url.as_str(), m.qos, m.clean_session),
            ("mqtt://127.0.0.1:1883", 1, false)
        );
        assert_eq!(m.filter(), "$share/readers/sensors/+/temp");
        assert!(s.source.as_ref().unwrap().at_least_once());
        let l = load(&format!(
            "{SOURCE_BASE}source = {{ type = \"mqtt\", topic = \"a\", qos = 0, client_id = \"billing-1\" }}\n"
        ))
        .unwrap();
        assert!(
            !l.app.subscriptions[0].source.as_ref().unwrap().at_least_once(),
            "QoS 0 is at most once"
        );
    }

    #[test]
    fn rabbitmq_sources_default_to_lambdas_rabbitmq_shape() {
        use crate::SourceSpec;
        let l = load(&format!(
            "{SOURCE_BASE}source = {{ type = \"rabbitmq\", queue = \"orders\", username = \"app\", password_secret = \"RMQ_PASSWORD\", prefetch = 50, dead_letter_exchange = \"orders-dlx\" }}\n"
        ))
        .unwrap();
        let s = &l.app.subscriptions[0];
        assert_eq!(s.name.as_str(), "f.orders");
        assert_eq!(s.shape, EventShape::RabbitMq);
        let Some(SourceSpec::RabbitMq(r)) = &s.source else {
            panic!("{:?}", s.source)
        };
        assert_eq!(r.url, "amqp://127.0.0.1:5672/%2f");
        assert_eq!(r.vhost(), "/");
        assert_eq!(
            (r.prefetch, r.dead_letter_exchange.as_deref()),
            (Some(50), Some("orders-dlx"))
        );
        assert_eq!(r.password_secret.as_deref(), Some("RMQ_PASSWORD"));
        assert!(l.app.topics.is_empty());
        let l = load(&format!(
            "{SOURCE_BASE}shape = \"sqs\"\nsource = {{ type = \"rabbitmq\", queue = \"orders\" }}\n"
        ))
        .unwrap();
        assert_eq!(
            l.app.subscriptions[0].shape,
            EventShape::Sqs,
            "the SQS-like shape on request"
        );
    }

    #[test]
    fn bad_sources_name_the_key_and_the_value() {
        let cases = [
            ("source = { type = \"kafka\" }", "subscriptions[0].source.type", "kafka"),
            (
                "source = { type = \"redis-streams\", group = \"g\" }",
                "subscriptions[0].source.stream",
                "needs `stream`",
            ),
            (
                "source = { type = \"redis-streams\", stream = \"s\", group = \"g\", url = \"http://x\" }",
                "subscriptions[0].source.url",
                "http://x",
            ),
            (
                "source = { type = \"redis-streams\", stream = \"s\", group = \"g\", url = \"redis://:pw@h:6379\" }",
                "subscriptions[0].source.url",
                "password_secret",
            ),
            (
                "source = { type = \"redis-streams\", stream = \"s\", group = \"g\", start = \"yesterday\" }",
                "subscriptions[0].source.start",
                "yesterday",
            ),
            (
                "source = { type = \"nats\", subject = \"a\", durable = \"d\" }",
                "subscriptions[0].source.durable",
                "does not apply",
            ),
            (
                "source = { type = \"nats-jetstream\", stream = \"A.B\", subject = \"a\", durable = \"d\" }",
                "subscriptions[0].source.stream",
                "A.B",
            ),
            (
                "source = { type = \"nats\", subject = \"a\", colour = \"red\" }",
                "subscriptions[0]",
                "colour",
            ),
            (
                "topic = \"t\"\nsource = { type = \"nats\", subject = \"a\" }",
                "subscriptions[0].source",
                "not both",
            ),
            ("", "subscriptions[0].topic", "missing"),
            (
                "source = { type = \"mqtt\", topic = \"a/b\", qos = 2 }",
                "subscriptions[0].source.qos",
                "QoS 2",
            ),
            (
                "source = { type = \"mqtt\", topic = \"$share/g/a/b\" }",
                "subscriptions[0].source.topic",
                "shared_group",
            ),
            (
                "source = { type = \"mqtt\", topic = \"a\", url = \"mqtts://h\" }",
                "subscriptions[0].source.url",
                "mqtt://",
            ),
            (
                "source = { type = \"mqtt\", topic = \"a\", shared_group = \"a/b\" }",
                "subscriptions[0].source.shared_group",
                "must not contain",
            ),
            (
                "source = { type = \"rabbitmq\", queue = \"q\", prefetch = 0 }",
                "subscriptions[0].source.prefetch",
                "1..=65535",
            ),
            (
                "source = { type = \"rabbitmq\" }",
                "subscriptions[0].source.queue",
                "needs `queue`",
            ),
            (
                "report_batch_item_failures = true\nsource = { type = \"rabbitmq\", queue = \"q\" }",
                "subscriptions[0].report_batch_item_failures",
                "no batchItemFailures",
            ),
            (
                "shape = \"rabbitmq\"\nsource = { type = \"nats\", subject = \"a\" }",
                "subscriptions[0].shape",
                "rabbitmq",
            ),
        ];
        for (extra, key, needle) in cases {
            let e = load(&format!("{SOURCE_BASE}{extra}\n")).unwrap_err();
            assert!(
                e.key.starts_with(key),
                "{extra}: key {} (want {key}): {}",
                e.key,
                e.message
            );
            assert!(e.to_string().contains(needle), "{extra}: {e}");
            assert!(e.to_string().contains("/app/gust.toml"), "{e}");
        }
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = load("[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\nmemroy = 3\n")
            .unwrap_err();
        assert_eq!(e.key, "functions.f.memroy");
        assert!(e.message.contains("unknown field `memroy`"), "{e}");
        assert!(
            e.to_string().starts_with("/app/gust.toml: `functions.f.memroy`:"),
            "{e}"
        );

        let e = load("[app]\nname = \"a\"\n[functions.f]\nruntime = \"ruby3.2\"\nhandler = \"h.h\"\n").unwrap_err();
        assert_eq!(e.key, "functions.f.runtime");
        assert!(e.message.contains("ruby3.2"));

        let e =
            load("[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\ntimeout = \"x\"\n")
                .unwrap_err();
        assert_eq!(e.key, "functions.f.timeout");

        let e = load("[app]\nname = \"a\"\n[[routes]]\nroute = \"GET /\"\nfunction = \"nope\"\n").unwrap_err();
        assert_eq!(e.key, "routes[0].function");
        assert!(e.message.contains("no function named `nope`"));

        let e = load("[app]\nname = \"a\"\n[functions.\"../x\"]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n")
            .unwrap_err();
        assert_eq!(e.key, "functions.../x");

        let e = load("[app\nname=1").unwrap_err();
        assert!(e.message.starts_with("invalid TOML"), "{e}");

        let e = load("[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\nscaling = { min_instances = 3, max_instances = 2 }\n")
            .unwrap_err();
        assert_eq!(e.key, "functions.f.scaling.min_instances");
    }
}
