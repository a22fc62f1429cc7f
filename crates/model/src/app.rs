use crate::{AppName, FunctionName, RouteKey, TopicName};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A resolved app: everything a deployment needs, validated, with paths made absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: AppName,
    /// The stage the manifest was read for (`dev` unless chosen); every function gets it as
    /// `GUST_STAGE`.
    pub stage: String,
    /// AWS_REGION given to functions (they may build ARNs or SDK clients with it).
    pub region: String,
    /// The directory holding the manifest; relative paths resolve against it.
    pub root: PathBuf,
    pub functions: BTreeMap<FunctionName, FunctionSpec>,
    pub routes: Vec<RouteSpec>,
    pub cors: Option<CorsSpec>,
    /// Topics events may be published to (declared, or named by a subscription).
    pub topics: std::collections::BTreeSet<TopicName>,
    /// Topics the public gateway takes publishes for (`POST /events/{topic}`), each with the
    /// checks a route may ask (API key, JWT, rate limit). A topic not here is published to only
    /// by functions granted it and by the operator.
    pub public_topics: BTreeMap<TopicName, RouteAuth>,
    pub subscriptions: Vec<SubscriptionSpec>,
    pub schedules: Vec<ScheduleSpec>,
    /// Existing HTTP services the gateway fronts and functions reach by name.
    pub upstreams: BTreeMap<FunctionName, UpstreamSpec>,
    /// JWT authorizers routes may name.
    pub authorizers: BTreeMap<FunctionName, JwtAuthorizerSpec>,
    /// Lambda (custom) authorizers routes may name: a function of the app decides.
    pub lambda_authorizers: BTreeMap<FunctionName, LambdaAuthorizerSpec>,
    /// API keys the manifest declares (serverless.yml `provider.apiGateway.apiKeys`), created
    /// or updated at start. Keys made with `gust apikeys create` are not listed here.
    pub api_keys: Vec<ApiKeySpec>,
    /// DynamoDB tables the manifest declares, by table name: created at deploy if missing.
    pub dynamodb_tables: BTreeMap<String, DynamoTableSpec>,
}

/// A DynamoDB table the manifest declares (serverless.yml `AWS::DynamoDB::Table`, gust.toml
/// `[dynamodb.tables.NAME]`).
#[derive(Debug, Clone, PartialEq)]
pub struct DynamoTableSpec {
    pub name: String,
    /// The table as a DynamoDB `CreateTable` request (`TableName`, `KeySchema`,
    /// `AttributeDefinitions`, indexes, `StreamSpecification`, `BillingMode`).
    pub create: serde_json::Value,
    /// `TimeToLiveSpecification` when enabled: the TTL attribute.
    pub ttl_attribute: Option<String>,
}

/// An existing HTTP microservice behind the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    pub name: FunctionName,
    /// Base URLs (`http://127.0.0.1:4001`), balanced round robin among the healthy ones.
    pub targets: Vec<String>,
    /// For local development: a command `gust up` starts (with `PORT`), health-checks and stops.
    pub command: Option<String>,
    /// The command's working directory.
    pub dir: PathBuf,
    /// The port given to `command` as `PORT` (its target is `http://127.0.0.1:PORT`).
    pub port: Option<u16>,
    pub environment: BTreeMap<String, String>,
    /// Active health check: `GET path` every `interval`; a target is out after
    /// `unhealthy_threshold` failures in a row and back after `healthy_threshold` successes.
    pub health_path: String,
    pub health_interval: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Whole-request timeout per attempt.
    pub timeout: Duration,
    /// Extra attempts for idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) on another target.
    pub retries: u32,
    /// Consecutive failures (5xx or no answer) that open the circuit: then 503 at once until
    /// `breaker_cooldown` passes and one trial request is let through (half-open).
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
}

/// A JWT authorizer (HS256, RS256, ES256).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtAuthorizerSpec {
    pub name: FunctionName,
    pub issuer: String,
    pub audiences: Vec<String>,
    /// A JWKS document on disk (absolute).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched at start.
    pub jwks_url: Option<String>,
    /// For HS256: the name of a Gust secret holding the shared key.
    pub hs256_secret: Option<String>,
    /// Find the JWKS through OpenID discovery at start: `jwks_uri` of
    /// `{issuer}/.well-known/openid-configuration` (as API Gateway does with `issuerUrl`).
    pub openid_discovery: bool,
}

/// A Lambda (custom) authorizer: a function of the app is invoked with API Gateway's
/// authorizer event and its answer allows or denies the request.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaAuthorizerSpec {
    pub name: FunctionName,
    /// The authorizer function (declared in the same app).
    pub function: FunctionName,
    pub kind: LambdaAuthorizerKind,
    /// Which event it receives and which answers it may give.
    pub format: AuthorizerFormat,
    /// Where the identity comes from; a request missing any of them is refused with 401
    /// without an invocation. Also the cache key.
    pub identity_sources: Vec<IdentitySource>,
    /// How long an answer is reused for the same identity values (0: never).
    pub ttl: Duration,
    /// TOKEN only: a regular expression the token must match, else 401 without invocation.
    pub validation: Option<String>,
    /// HTTP API payload 2.0 only: the answer is `{isAuthorized, context}` instead of a policy.
    pub simple_responses: bool,
}

/// Longest API key value accepted (the gateway's limit).
pub const MAX_API_KEY_VALUE: usize = 1024;

/// API Gateway's default `resultTtlInSeconds`.
pub const DEFAULT_AUTHORIZER_TTL_SECS: u64 = 300;
/// API Gateway's largest `resultTtlInSeconds`.
pub const MAX_AUTHORIZER_TTL_SECS: u64 = 3600;

/// Adds `spec` under its function's name, or under `NAME-2`, `NAME-3`, ... when another
/// route configured the same function differently; returns the name it is known by.
pub(crate) fn add_lambda_authorizer(
    all: &mut BTreeMap<FunctionName, LambdaAuthorizerSpec>,
    mut spec: LambdaAuthorizerSpec,
) -> FunctionName {
    let base = spec.function.as_str().to_string();
    for n in 1.. {
        let candidate = if n == 1 {
            spec.function.clone()
        } else {
            // Function names are at most 64 characters: shorten the base to fit the suffix.
            let suffix = format!("-{n}");
            let keep = base.len().min(64 - suffix.len());
            FunctionName::new(format!("{}{suffix}", &base[..keep])).expect("a function name with a suffix is valid")
        };
        spec.name = candidate.clone();
        match all.get(&candidate) {
            Some(existing) if *existing == spec => return candidate,
            Some(_) => continue,
            None => {
                all.insert(candidate.clone(), spec);
                return candidate;
            }
        }
    }
    unreachable!("the loop returns")
}

/// API Gateway's two kinds of Lambda authorizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaAuthorizerKind {
    /// `{type: "TOKEN", authorizationToken, methodArn}` (REST APIs only).
    Token,
    /// The request's headers, query string, path parameters and context.
    Request,
}

/// The authorizer event shape and the answers it may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizerFormat {
    /// A REST API (`http` events): TOKEN or REQUEST events, IAM policy answers.
    Rest,
    /// An HTTP API authorizer with payload version 1.0: the REST REQUEST shape with
    /// `version: "1.0"`, IAM policy answers.
    HttpV1,
    /// An HTTP API authorizer with payload version 2.0: `routeArn`, `identitySource` as a list;
    /// IAM policy or simple answers.
    HttpV2,
}

/// One identity source of a Lambda authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// A request header (name lower-cased).
    Header(String),
    /// A query string parameter.
    Query(String),
}

impl IdentitySource {
    /// Parses `method.request.header.NAME` / `method.request.querystring.NAME` (REST) and
    /// `$request.header.NAME` / `$request.querystring.NAME` (HTTP API); the error says what
    /// Gust supports.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let rest = t
            .strip_prefix("method.request.")
            .or_else(|| t.strip_prefix("$request."))
            .or_else(|| t.strip_prefix("route.request."));
        let parsed = rest.and_then(|r| {
            if let Some(h) = r.strip_prefix("header.") {
                (!h.is_empty()).then(|| Self::Header(h.to_ascii_lowercase()))
            } else if let Some(q) = r.strip_prefix("querystring.") {
                (!q.is_empty()).then(|| Self::Query(q.to_string()))
            } else {
                None
            }
        });
        parsed.ok_or_else(|| {
            format!(
                "identity source `{t}` is not supported: use a header or a query string parameter \
                 (`method.request.header.NAME`, `method.request.querystring.NAME`, \
                 `$request.header.NAME`, `$request.querystring.NAME`); stage and context variables do not exist in Gust"
            )
        })
    }
}

/// An API key a manifest declares, with its usage plan's limits. `Debug` never shows the
/// value.
#[derive(Clone, PartialEq)]
pub struct ApiKeySpec {
    pub name: String,
    /// The key as written in the manifest; `None`: Gust generates one at the first start and
    /// prints it once.
    pub value: Option<String>,
    /// Requests per second (token bucket), with `burst`.
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    pub quota_per_day: Option<u64>,
}

impl std::fmt::Debug for ApiKeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySpec")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "(set)"))
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("quota_per_day", &self.quota_per_day)
            .finish()
    }
}

/// How a route checks callers, and how fast they may call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteAuth {
    /// Requires a valid `x-api-key` (keys are managed with `gust apikeys`).
    pub api_key: bool,
    /// Requires a bearer JWT accepted by this authorizer.
    pub jwt: Option<FunctionName>,
    /// With `jwt`: the token must grant one of these scopes (else 403); empty: any token.
    pub scopes: Vec<String>,
    /// Requires the Allow of this Lambda authorizer.
    pub lambda: Option<FunctionName>,
    /// Requests per second (token bucket) for the whole route.
    pub rate_limit: Option<f64>,
    pub burst: Option<u32>,
}

/// What to do with ticks missed while Gust was down (or stalled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Missed ticks are skipped.
    None,
    /// The most recent missed tick fires once.
    Last,
    /// Every missed tick fires, the most recent `n` at most.
    All(u32),
}

/// What to do when a tick comes while the previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The tick is recorded and not run.
    Skip,
    /// Runs start side by side.
    Allow,
    /// The run waits for the previous one.
    Queue,
}

/// A cron, rate or one-shot trigger of one function. The expression is checked at load by
/// the scheduler (`gust-scheduler`), which owns the syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub name: TopicName,
    pub function: FunctionName,
    pub expression: String,
    /// IANA time zone for cron and `at()` expressions.
    pub timezone: String,
    /// Constant event instead of the EventBridge "Scheduled Event".
    pub input: Option<serde_json::Value>,
    pub description: Option<String>,
    pub enabled: bool,
    pub catch_up: CatchUp,
    pub overlap: Overlap,
    /// A random delay up to this before each on-time fire, to spread load.
    pub jitter: Duration,
    pub max_attempts: u32,
    pub retry_delay: Duration,
}

/// The record shape a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventShape {
    /// SQS-style `{"Records":[{messageId, body, attributes, messageAttributes, ...}]}`.
    Sqs,
    /// SNS-style `{"Records":[{"EventSource":"aws:sns","Sns":{...}}]}`.
    Sns,
    /// The published payload itself, one per invocation (asynchronous invocation).
    Raw,
    /// Lambda's Amazon MQ for RabbitMQ event: `{"eventSource":"aws:rmq","rmqMessagesByQueue":
    /// {"<queue>::<vhost>":[{basicProperties, redelivered, data}]}}` (rabbitmq sources only).
    /// Lambda has no `batchItemFailures` for it: a failure fails the whole batch.
    RabbitMq,
    /// Lambda's DynamoDB stream event: `{"Records":[{eventID, eventName, eventSource:
    /// "aws:dynamodb", eventSourceARN, dynamodb: {Keys, NewImage, OldImage, SequenceNumber,
    /// StreamViewType, ...}}]}` (dynamodb-stream sources only); a failure fails the batch.
    DynamoDb,
}

/// Which events a subscription takes: all listed conditions must hold; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// CloudEvents `type` values (any of them).
    pub types: Vec<String>,
    /// Extension attribute -> accepted values.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Lambda filter patterns on the record's JSON (any of them); `filter_pattern.rs`.
    pub patterns: Vec<crate::FilterPattern>,
}

impl EventFilter {
    /// Whether the record's data (JSON) matches one of the patterns (true without patterns;
    /// data that is not JSON matches none).
    pub fn matches_data(&self, data: &[u8]) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| self.patterns.iter().any(|p| p.matches(&v)))
    }

    pub fn matches(&self, event_type: &str, attribute: impl Fn(&str) -> Option<String>) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && self
                .attributes
                .iter()
                .all(|(k, values)| attribute(k).is_some_and(|v| values.contains(&v)))
    }
}

/// A durable queue feeding one function from one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSpec {
    pub name: TopicName,
    pub topic: TopicName,
    pub function: FunctionName,
    pub filter: EventFilter,
    pub shape: EventShape,
    /// Records per invocation at most.
    pub batch_size: u32,
    /// How long to gather a fuller batch once the first record is waiting.
    pub batch_window: Duration,
    /// Batches of this subscription in flight at once.
    pub max_concurrency: u32,
    /// Deliveries of one record before it goes to the DLQ.
    pub max_attempts: u32,
    /// Records older than this go to the DLQ instead of another attempt.
    pub max_event_age: Duration,
    /// A claimed batch is invisible to other deliveries this long.
    pub visibility_timeout: Duration,
    /// Honour `{"batchItemFailures":[{"itemIdentifier":...}]}` answers.
    pub report_batch_item_failures: bool,
    /// First retry delay; each further retry doubles it (with jitter), up to 5 minutes.
    pub retry_delay: Duration,
    /// A broker this subscription reads directly instead of `topic` (then `topic` is the
    /// subscription's own name, under which its dead letters and redrives are kept).
    pub source: Option<crate::SourceSpec>,
}

/// Event delivery defaults (documented in docs/events.md).
pub mod event_defaults {
    use std::time::Duration;
    pub const BATCH_SIZE: u32 = 10;
    pub const MAX_ATTEMPTS: u32 = 4;
    pub const MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
    /// Visibility timeout: 6x the function timeout (AWS's advice for SQS triggers), at least this.
    pub const MIN_VISIBILITY: Duration = Duration::from_secs(30);
    pub const RETRY_DELAY: Duration = Duration::from_secs(1);
    pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
}

/// Which process a function runs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// `nodejs18.x`, `nodejs20.x`, `nodejs22.x`: Gust's Node bootstrap.
    Node,
    /// `python3.x`: Gust's Python bootstrap.
    Python,
    /// `provided`, `provided.al2`, `provided.al2023`: the function's own `bootstrap` executable.
    Provided,
}

/// The runtime names the manifests take, for error messages and docs alike.
pub const RUNTIME_NAMES: &str = "nodejs24.x, nodejs22.x, nodejs20.x, nodejs18.x (and Lambda's older nodejs*), \
python3.14 ... python3.10 (any python3.N, and python2.7), provided, provided.al2, provided.al2023";

/// Node runtimes Lambda lists that it no longer supports (python3.9 and older are the
/// Python ones): they run on the installed interpreter, with a warning.
const OLD_NODE: [&str; 10] = [
    "nodejs",
    "nodejs4.3",
    "nodejs4.3-edge",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "nodejs18.x",
];

impl RuntimeKind {
    /// Maps a Lambda runtime identifier to the kind Gust runs it with.
    pub fn parse(id: &str) -> Option<Self> {
        Self::check(id).ok().map(|(kind, _)| kind)
    }

    /// [`RuntimeKind::parse`] with the manifests' error text, and a warning for a runtime
    /// Lambda has deprecated (it runs on the installed interpreter).
    pub fn check(id: &str) -> Result<(Self, Option<String>), String> {
        let old = |interpreter: &str| {
            Some(format!(
                "runtime `{id}` is deprecated by Lambda; Gust runs it on the installed `{interpreter}`"
            ))
        };
        match id {
            "nodejs20.x" | "nodejs22.x" | "nodejs24.x" => return Ok((Self::Node, None)),
            id if OLD_NODE.contains(&id) => return Ok((Self::Node, old("node"))),
            "provided" | "provided.al2" | "provided.al2023" => return Ok((Self::Provided, None)),
            "python2.7" => return Ok((Self::Python, old("python3"))),
            _ => {}
        }
        if let Some(minor) = id.strip_prefix("python3.") {
            if let Ok(n) = minor.parse::<u32>() {
                if minor.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok((Self::Python, if n < 10 { old("python3") } else { None }));
                }
            }
        }
        Err(format!("unsupported runtime `{id}`: use {RUNTIME_NAMES}"))
    }
}

/// Scaling knobs of one function's pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    /// Instances kept warm even when idle (provisioned concurrency).
    pub min_instances: u32,
    /// Upper bound of concurrently running instances.
    pub max_instances: u32,
    /// An instance idle this long is stopped (scale to zero when `min_instances` is 0).
    pub idle_timeout: Duration,
    /// Invocations that may wait for an instance when all are busy; past that, 429.
    pub max_queue: u32,
}

impl Default for Scaling {
    fn default() -> Self {
        Self {
            min_instances: 0,
            max_instances: 10,
            idle_timeout: Duration::from_secs(300),
            max_queue: 100,
        }
    }
}

/// One function: code, runtime and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub name: FunctionName,
    /// The Lambda runtime identifier as written (`nodejs20.x`).
    pub runtime: String,
    pub kind: RuntimeKind,
    /// `file.export` for Node and Python; informational for `provided`.
    pub handler: String,
    /// LAMBDA_TASK_ROOT: absolute directory of the code.
    pub code_dir: PathBuf,
    pub memory_mb: u32,
    /// Size of the instance's private writable `/tmp` in MB (Lambda's `EphemeralStorage`).
    pub ephemeral_storage_mb: u32,
    pub timeout: Duration,
    /// How long a start may take from spawn to the first `/next` (Lambda's init phase limit).
    pub init_timeout: Duration,
    pub environment: BTreeMap<String, String>,
    pub scaling: Scaling,
    /// Upstream services this function may reach by name (`GUST_SERVICE_<NAME>_URL`).
    pub services: Vec<FunctionName>,
    /// Functions this function may invoke through `GUST_API`.
    pub invokes: Vec<FunctionName>,
    /// Secrets given to the function as environment variables of the same name.
    pub secrets: Vec<String>,
    /// Topics this function may publish to through `GUST_API`.
    pub publishes: Vec<TopicName>,
    /// Which network its instances get (`network` in gust.toml).
    pub network: Network,
    /// Package patterns: which files of `code_dir` are deployed (serverless.yml
    /// `package.patterns`, gust.toml `package`), in order; `!glob` leaves out, `glob` brings
    /// back; empty: everything (`gust_store::Patterns`).
    pub package: Vec<String>,
    /// What it may do through the AWS service APIs (IAM-style statements, `iam.rs`); none:
    /// nothing, as a Lambda role with no policy.
    pub aws: Vec<crate::AwsStatement>,
}

/// The network a function's instances get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network, as any process of Gust's: outbound connections to services and
    /// databases.
    #[default]
    Default,
    /// No network but the instance's Runtime API and the platform API (`GUST_API`): a
    /// network namespace of its own with only loopback (`gust-runtime::sandbox::netns`).
    None,
}

impl Network {
    /// Parses the manifest's value; the error says which values there are.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "default" => Ok(Self::Default),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown network `{other}`: use \"default\" (the host's network) or \"none\" (only the Runtime API and GUST_API)"
            )),
        }
    }
}

/// Defaults shared by both manifest formats (the same as Lambda's where Lambda has one).
pub mod defaults {
    use std::time::Duration;
    pub const MEMORY_MB: u32 = 128;
    pub const TIMEOUT: Duration = Duration::from_secs(3);
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
    /// Lambda's init phase limit for on-demand functions.
    pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MIN_MEMORY_MB: u32 = 64;
    pub const MAX_MEMORY_MB: u32 = 10240;
    /// `/tmp` size, as Lambda's default and range.
    pub const EPHEMERAL_STORAGE_MB: u32 = 512;
    pub const MAX_EPHEMERAL_STORAGE_MB: u32 = 10240;
    pub const DEFAULT_REGION: &str = "us-east-1";
}

/// Which API Gateway event shape a route sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// REST API / payload format 1.0 (serverless.yml `http` events).
    V1,
    /// HTTP API payload format 2.0 (the default; serverless.yml `httpApi` events).
    V2,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteTarget {
    Function {
        function: FunctionName,
        payload: PayloadFormat,
    },
    Upstream {
        upstream: FunctionName,
        /// Removed from the start of the path before forwarding (`/orders` -> ``).
        strip_prefix: Option<String>,
        /// Put in front of the (stripped) path (`/api/v1`).
        add_prefix: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub key: RouteKey,
    pub target: RouteTarget,
    pub auth: RouteAuth,
}

/// CORS answered by the gateway (preflight and response headers), as API Gateway HTTP APIs do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSpec {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_secs: Option<u64>,
}

impl Default for CorsSpec {
    /// The permissive default serverless.yml's `cors: true` means.
    fn default() -> Self {
        Self {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec![
                "Content-Type".into(),
                "X-Amz-Date".into(),
                "Authorization".into(),
                "X-Api-Key".into(),
                "X-Amz-Security-Token".into(),
                "X-Amz-User-Agent".into(),
            ],
            expose_headers: vec![],
            allow_credentials: false,
            max_age_secs: None,
        }
    }
}

impl App {
    /// Checks what spans functions and routes: every route names a declared function, no two
    /// routes share a key. Called by both parsers after they built the app.
    pub(crate) fn check_references(&self) -> Result<(), (String, String)> {
        let mut seen = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            match &route.target {
                RouteTarget::Function { function, .. } if !self.functions.contains_key(function) => {
                    return Err((
                        format!("routes[{i}].function"),
                        format!("no function named `{function}` is declared"),
                    ));
                }
                RouteTarget::Upstream { upstream, .. } if !self.upstreams.contains_key(upstream) => {
                    return Err((
                        format!("routes[{i}].upstream"),
                        format!("no upstream named `{upstream}` is declared"),
                    ));
                }
                _ => {}
            }
            if let Some(a) = route.auth.jwt.as_ref().filter(|a| !self.authorizers.contains_key(*a)) {
                return Err((
                    format!("routes[{i}].jwt"),
                    format!("no authorizer named `{a}` is declared"),
                ));
            }
            if let Some(a) = route
                .auth
                .lambda
                .as_ref()
                .filter(|a| !self.lambda_authorizers.contains_key(*a))
            {
                return Err((
                    format!("routes[{i}].authorizer"),
                    format!("no Lambda authorizer named `{a}` is declared"),
                ));
            }
            if !seen.insert(route.key.to_string()) {
                return Err((
                    format!("routes[{i}]"),
                    format!("route `{}` is declared twice", route.key),
                ));
            }
        }
        if let Some(t) = self.topics.iter().find(|t| t.as_str().starts_with("gust.")) {
            return Err((
                format!("topics.{t}"),
                "topic names starting with `gust.` are reserved for Gust".into(),
            ));
        }
        for f in self.functions.values() {
            if let Some(s) = f.services.iter().find(|s| !self.upstreams.contains_key(*s)) {
                return Err((
                    format!("functions.{}.services", f.name),
                    format!("no upstream named `{s}` is declared"),
                ));
            }
            if let Some(g) = f.invokes.iter().find(|g| !self.functions.contains_key(*g)) {
                return Err((
                    format!("functions.{}.invokes", f.name),
                    format!("no function named `{g}` is declared"),
                ));
            }
            if let Some(t) = f.publishes.iter().find(|t| !self.topics.contains(*t)) {
                return Err((
                    format!("functions.{}.publishes", f.name),
                    format!("no topic named `{t}` is declared (add [topics.{t}] or a subscription to it)"),
                ));
            }
            if let Some(s) = f.secrets.iter().find(|s| !is_env_name(s)) {
                return Err((
                    format!("functions.{}.secrets", f.name),
                    format!("`{s}` is not a valid secret name ([A-Za-z_][A-Za-z0-9_]*, at most 128)"),
                ));
            }
        }
        for a in self.lambda_authorizers.values() {
            if !self.functions.contains_key(&a.function) {
                return Err((
                    format!("authorizers.{}.function", a.name),
                    format!("no function named `{}` is declared", a.function),
                ));
            }
        }
        for (t, auth) in &self.public_topics {
            if let Some(a) = auth.jwt.as_ref().filter(|a| !self.authorizers.contains_key(*a)) {
                return Err((
                    format!("topics.{t}.jwt"),
                    format!("no authorizer named `{a}` is declared"),
                ));
            }
        }
        let mut schedule_names = std::collections::HashSet::new();
        for (i, s) in self.schedules.iter().enumerate() {
            if !self.functions.contains_key(&s.function) {
                return Err((
                    format!("schedules[{i}].function"),
                    format!("no function named `{}` is declared", s.function),
                ));
            }
            if !schedule_names.insert(s.name.clone()) {
                return Err((
                    format!("schedules[{i}].name"),
                    format!("schedule `{}` is declared twice", s.name),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, sub) in self.subscriptions.iter().enumerate() {
            if !self.functions.contains_key(&sub.function) {
                return Err((
                    format!("subscriptions[{i}].function"),
                    format!("no function named `{}` is declared", sub.function),
                ));
            }
            if !names.insert(sub.name.clone()) {
                return Err((
                    format!("subscriptions[{i}].name"),
                    format!("subscription `{}` is declared twice", sub.name),
                ));
            }
        }
        Ok(())
    }
}

/// Secret names become environment variable names.
pub fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}
