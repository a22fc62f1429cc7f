//! The admin address: four faces for four audiences, each with its own routes module and its
//! own credential check (`docs/control-plane.md`):
//!
//! - [`lambda_api`]: the Lambda Invoke API for the AWS CLI and SDKs, authenticated with AWS
//!   Signature Version 4 against access keys Gust issues (or the operator token, for
//!   `gust invoke`);
//! - [`platform_api`]: what functions reach through `GUST_API` with their own `GUST_TOKEN`
//!   (key-value store, blobs, publish, services and functions they were granted, granted
//!   secrets), never an operator action;
//! - [`operator_api`]: secrets, API keys, access keys, DLQs, schedules, telemetry, metrics,
//!   with the operator token;
//! - [`aws_api`]: AWS service APIs for the SDKs (DynamoDB and DynamoDB Streams, JSON
//!   protocol, picked by the `X-Amz-Target` header), with SigV4 like the Lambda API.
//!
//! Before any of them, [`guard`] refuses a `Host` that is not loopback or configured (DNS
//! rebinding) and a browser `Origin` other than the admin's own (CSRF). `/healthz` and
//! `/gust/v1/openapi.json` (the contract, the same document as the repository's
//! `docs/openapi.json`) need no credential. The address is meant for loopback or a private network, not the internet: the
//! gateway is the public face.

mod aws_api;
mod console;
mod credentials;
mod guard;
mod lambda_api;
pub(crate) mod lambda_errors;
mod lambda_operations;
mod log_stream;
mod operator_api;
mod platform_api;
mod status;

pub use credentials::{AccessKeys, OperatorToken};
pub use guard::HostPolicy;

use crate::codes::ErrorCode;
use crate::error::{ApiError, Body};
use crate::server::HttpHandler;
use bytes::Bytes;
use gust_events::Events;
use gust_runtime::Invoker;
use gust_store::{BlobStore, KvStore, TelemetryDb};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// Lambda's synchronous invocation payload limit.
const MAX_INVOKE_PAYLOAD: usize = 6 * 1024 * 1024;
const INVOKE_PREFIX: &str = "/2015-03-31/functions/";
const KV_PREFIX: &str = "/gust/v1/kv";

pub struct Admin {
    invoker: Arc<Invoker>,
    kv: Arc<dyn KvStore>,
    blobs: Arc<dyn BlobStore>,
    events: Option<Arc<Events>>,
    schedules: Option<Arc<dyn SchedulesApi>>,
    telemetry: Option<TelemetryDb>,
    /// The tail of an invocation's log, for the Lambda API's `X-Amz-Log-Type: Tail`.
    log_tail: Option<Arc<gust_runtime::Tail>>,
    /// The upstreams functions may reach by name (a redeploy replaces them).
    upstreams: std::sync::RwLock<std::collections::HashMap<String, Arc<crate::upstream::Upstream>>>,
    secrets: Option<Arc<dyn SecretsApi>>,
    /// Set once the binary's deployment exists (after the admin API is built).
    deployer: std::sync::OnceLock<Arc<dyn DeployApi>>,
    api_keys: Option<Arc<crate::auth::MemoryApiKeyStore>>,
    /// Without one, every operator action is refused.
    operator: Option<OperatorToken>,
    access_keys: Option<AccessKeys>,
    hosts: HostPolicy,
    dynamodb: Option<aws_api::DynamoFace>,
    /// The web console's sessions and one-time codes.
    console: console::Sessions,
    /// What `/gust/v1/status` says of this Gust besides what it reads live.
    status: Option<StatusInfo>,
    /// Open log streams, and the signal that ends them at shutdown.
    streams: log_stream::Streams,
}

/// What the binary knows of this Gust that the admin API reports (`/gust/v1/status`).
#[derive(Debug, Clone)]
pub struct StatusInfo {
    pub started_at: std::time::SystemTime,
    /// Each protection of the sandbox (empty: the sandbox is off).
    pub sandbox: Vec<gust_api::Protection>,
}

/// Secrets management and granted reads (implemented by the binary, which owns the store).
pub trait SecretsApi: Send + Sync + 'static {
    fn list(&self) -> Result<gust_api::SecretList, String>;
    fn set(&self, name: &str, value: &[u8]) -> Result<gust_api::SecretSet, String>;
    fn remove(&self, name: &str) -> Result<bool, String>;
    fn rotate_master(&self) -> Result<gust_api::MasterKeyRotated, String>;
    /// A secret's value for a function, only when its manifest grants it.
    fn get_for(&self, function: &str, name: &str) -> Result<Option<Vec<u8>>, String>;
}

/// Why a schedule could not be run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleRunError {
    /// No schedule has the name, and no function with a schedule has it.
    NotFound(String),
    /// The name is a function's with more than one schedule; the message lists them.
    Ambiguous(String),
    /// Queueing the run failed.
    Failed(String),
}

/// What the admin API needs from the scheduler (implemented by the binary, which owns it).
pub trait SchedulesApi: Send + Sync + 'static {
    /// Every schedule with its next fire times and last fired tick.
    fn list(&self) -> Pin<Box<dyn Future<Output = gust_api::ScheduleList> + Send + '_>>;
    /// Queues a run of `name` now: a schedule's name, or a function's with one schedule.
    fn run<'a>(
        &'a self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<gust_api::ScheduleRun, ScheduleRunError>> + Send + 'a>>;
}

/// What the admin API needs to redeploy the running app (implemented by the binary, which
/// owns the deployment).
pub trait DeployApi: Send + Sync + 'static {
    fn redeploy(&self) -> Pin<Box<dyn Future<Output = Result<gust_api::Deployment, DeployApiError>> + Send + '_>>;
    /// Back to version `to` (default: the one before the running one).
    fn rollback(
        &self,
        to: Option<u64>,
    ) -> Pin<Box<dyn Future<Output = Result<gust_api::Deployment, DeployApiError>> + Send + '_>>;
    fn list(&self) -> Pin<Box<dyn Future<Output = gust_api::DeploymentList> + Send + '_>>;
    /// The running version's app as its manifest describes it, and the version's number.
    fn running(&self) -> Option<(Arc<gust_model::App>, u64)>;
}

/// Why a redeploy did not happen.
#[derive(Debug)]
pub enum DeployApiError {
    /// The new version is invalid or does not start; the running one keeps serving.
    Refused(String),
    /// A rollback to a version that is not kept (the message lists the kept ones).
    NoSuchVersion(String),
    ShuttingDown,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin")
    }
}

/// A JSON answer: one of the contract's types (`gust_api`), or a `serde_json::Value` where
/// the answer is not part of it (the platform API).
fn json_response(status: StatusCode, value: impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(&value).expect("answer bodies serialise to JSON");
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static response parts are valid")
}

/// The contract (`docs/openapi.json`), generated once.
fn openapi_response() -> Response<Body> {
    static DOCUMENT: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| Bytes::from(gust_api::openapi())).clone();
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static response parts are valid")
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .expect("static response parts are valid")
}

fn bytes_response(value: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(value.into()))
        .expect("static response parts are valid")
}

/// The caller's trace: a W3C `traceparent`, or an X-Ray `X-Amzn-Trace-Id` (what a Lambda
/// function has in `_X_AMZN_TRACE_ID`).
fn trace_of(headers: &http::HeaderMap) -> Option<gust_model::TraceParent> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    get("traceparent")
        .and_then(gust_model::TraceParent::parse)
        .or_else(|| get("x-amzn-trace-id").and_then(gust_model::TraceParent::from_xray))
}

/// Which face a request belongs to, by method and path alone (credentials are checked by the
/// face).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Face {
    Health,
    /// `GET /gust/v1/openapi.json`: public, like the document in the repository.
    Contract,
    Lambda,
    Platform,
    Operator,
    /// `POST /gust/v1/events/{topic}`: a function publishing (its token) or `gust publish` (the
    /// operator token).
    Publish,
    /// `POST /` with a DynamoDB `X-Amz-Target`.
    Aws,
    /// `/console` and below: the web console's files, login and logout.
    Console,
    NotFound,
}

/// `target`: the `X-Amz-Target` header, which is how AWS's JSON protocols name the operation.
fn face_of(method: &Method, path: &str, target: Option<&str>) -> Face {
    if path == "/" && method == Method::POST && aws_api::is_dynamodb(target) {
        return Face::Aws;
    }
    if path == "/console" || path.starts_with("/console/") {
        return Face::Console;
    }
    if path == "/healthz" {
        return if method == Method::GET {
            Face::Health
        } else {
            Face::NotFound
        };
    }
    if path.starts_with(INVOKE_PREFIX) || lambda_operations::is_lambda_path(path) {
        return Face::Lambda;
    }
    if path == gust_api::Endpoint::OpenApi.path() && method == Method::GET {
        return Face::Contract;
    }
    let Some(rest) = path.strip_prefix("/gust/v1/") else {
        return if path == "/metrics" {
            Face::Operator
        } else {
            Face::NotFound
        };
    };
    if path.starts_with(KV_PREFIX)
        || rest.starts_with("fn/")
        || rest.starts_with("services/")
        || rest.starts_with("blobs")
        || (rest.starts_with("functions/") && rest.ends_with("/invoke"))
    {
        return Face::Platform;
    }
    if let Some(name) = rest.strip_prefix("secrets/") {
        // Reading one secret is a function's (granted) read; managing them is the operator's.
        if method == Method::GET && !name.is_empty() {
            return Face::Platform;
        }
    }
    if method == Method::POST && rest.starts_with("events/") {
        return Face::Publish;
    }
    Face::Operator
}

impl Admin {
    pub fn new(
        invoker: Arc<Invoker>,
        kv: Arc<dyn KvStore>,
        blobs: Arc<dyn BlobStore>,
        events: Option<Arc<Events>>,
        schedules: Option<Arc<dyn SchedulesApi>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            invoker,
            kv,
            blobs,
            events,
            schedules,
            telemetry: None,
            log_tail: None,
            upstreams: Default::default(),
            deployer: std::sync::OnceLock::new(),
            secrets: None,
            api_keys: None,
            operator: None,
            access_keys: None,
            hosts: HostPolicy::default(),
            dynamodb: None,
            console: console::Sessions::default(),
            status: None,
            streams: log_stream::Streams::default(),
        })
    }

    fn change(self: Arc<Self>, what: &str, f: impl FnOnce(&mut Self)) -> Arc<Self> {
        let mut me =
            Arc::try_unwrap(self).unwrap_or_else(|_| panic!("{what} is called before the admin API is shared"));
        f(&mut me);
        Arc::new(me)
    }

    /// Serves invocation records, logs, traces and usage from `db`.
    pub fn with_telemetry(self: Arc<Self>, db: TelemetryDb) -> Arc<Self> {
        self.change("with_telemetry", |me| me.telemetry = Some(db))
    }

    /// Serves `/gust/v1/apikeys`, changing the gateway's key store.
    pub fn with_api_keys(self: Arc<Self>, store: Arc<crate::auth::MemoryApiKeyStore>) -> Arc<Self> {
        self.change("with_api_keys", |me| me.api_keys = Some(store))
    }

    /// Serves `/gust/v1/secrets`.
    pub fn with_secrets(self: Arc<Self>, secrets: Arc<dyn SecretsApi>) -> Arc<Self> {
        self.change("with_secrets", |me| me.secrets = Some(secrets))
    }

    /// Lets functions reach these upstreams by name.
    pub fn with_upstreams(self: Arc<Self>, upstreams: &[Arc<crate::upstream::Upstream>]) -> Arc<Self> {
        let map = upstreams
            .iter()
            .map(|u| (u.spec().name.to_string(), u.clone()))
            .collect();
        self.change("with_upstreams", |me| me.upstreams = std::sync::RwLock::new(map))
    }

    /// Serves `POST /gust/v1/deployments` with `deployer` (the first call wins).
    pub fn set_deployer(&self, deployer: Arc<dyn DeployApi>) {
        let _ = self.deployer.set(deployer);
    }

    /// Replaces the upstreams functions reach by name (a redeploy).
    pub fn set_upstreams(&self, upstreams: &[Arc<crate::upstream::Upstream>]) {
        *self.upstreams.write().expect("upstreams lock") = upstreams
            .iter()
            .map(|u| (u.spec().name.to_string(), u.clone()))
            .collect();
    }

    /// The operator credential: required by every operator action, accepted by the Lambda API.
    pub fn with_operator_token(self: Arc<Self>, token: OperatorToken) -> Arc<Self> {
        self.change("with_operator_token", |me| me.operator = Some(token))
    }

    /// Where the Lambda API reads an invocation's log tail (`X-Amz-Log-Type: Tail`); without
    /// it the tail is empty.
    pub fn with_log_tail(self: Arc<Self>, tail: Arc<gust_runtime::Tail>) -> Arc<Self> {
        self.change("with_log_tail", |me| me.log_tail = Some(tail))
    }

    /// Access keys for SigV4 on the Lambda API, and `/gust/v1/access-keys` to manage them.
    pub fn with_access_keys(self: Arc<Self>, keys: AccessKeys) -> Arc<Self> {
        self.change("with_access_keys", |me| me.access_keys = Some(keys))
    }

    fn events(&self) -> Result<&Arc<Events>, ApiError> {
        self.events
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::EventsDisabled, "events are not enabled on this Gust"))
    }

    /// Serves DynamoDB's API (`X-Amz-Target: DynamoDB_20120810.*`) from `db`, with the tables of
    /// `app`.
    pub fn with_dynamodb(self: Arc<Self>, db: Arc<gust_aws::dynamodb::DynamoDb>, app: impl Into<String>) -> Arc<Self> {
        let face = aws_api::DynamoFace { db, app: app.into() };
        self.change("with_dynamodb", |me| me.dynamodb = Some(face))
    }

    /// What `/gust/v1/status` reports of this Gust's start and sandbox.
    pub fn with_status(self: Arc<Self>, info: StatusInfo) -> Arc<Self> {
        self.change("with_status", |me| me.status = Some(info))
    }

    /// Ends every open log stream (at shutdown, so that open connections let the server stop).
    pub fn close_streams(&self) {
        self.streams.close();
    }

    /// Which `Host` names are accepted besides IP addresses and `localhost`.
    pub fn with_host_policy(self: Arc<Self>, hosts: HostPolicy) -> Arc<Self> {
        self.change("with_host_policy", |me| me.hosts = hosts)
    }
}

impl HttpHandler for Admin {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        if let Err(e) = self.hosts.check(req.headers()) {
            tracing::info!(%remote, code = e.code.as_str(), message = %e.message, "admin request refused");
            return e.into_response(&request_id);
        }
        let path = req.uri().path().to_string();
        let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok());
        match face_of(req.method(), &path, target) {
            Face::Aws => self.aws_api(req, &request_id).await,
            Face::Console => self.console(&path, req, &request_id).await,
            Face::Health => json_response(StatusCode::OK, gust_api::Health { status: "ok".into() }),
            Face::Contract => openapi_response(),
            Face::Lambda => self.lambda_api(req, &request_id).await,
            Face::Platform => self
                .platform_api(&path, req, remote, &request_id)
                .await
                .unwrap_or_else(|e| e.into_response(&request_id)),
            Face::Operator => self
                .operator_api(&path, req)
                .await
                .unwrap_or_else(|e| e.into_response(&request_id)),
            Face::Publish => {
                let result = if self.is_operator(req.headers()) {
                    self.operator_api(&path, req).await
                } else {
                    self.platform_api(&path, req, remote, &request_id).await
                };
                result.unwrap_or_else(|e| e.into_response(&request_id))
            }
            Face::NotFound => ApiError::new(
                ErrorCode::NotFound,
                format!("no admin endpoint {} {path}", req.method()),
            )
            .into_response(&request_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_one_face() {
        let cases = [
            (Method::GET, "/healthz", Face::Health),
            (Method::GET, "/gust/v1/openapi.json", Face::Contract),
            (Method::POST, "/gust/v1/openapi.json", Face::Operator),
            (Method::POST, "/healthz", Face::NotFound),
            (Method::POST, "/2015-03-31/functions/f/invocations", Face::Lambda),
            (Method::GET, "/2015-03-31/functions", Face::Lambda),
            (Method::GET, "/2016-08-19/account-settings", Face::Lambda),
            (Method::DELETE, "/2017-03-31/tags/x", Face::Lambda),
            (Method::GET, "/gust/v1/kv/x", Face::Platform),
            (Method::GET, "/gust/v1/kv", Face::Platform),
            (Method::PUT, "/gust/v1/blobs/a/b", Face::Platform),
            (Method::GET, "/gust/v1/fn/tok/services/orders/x", Face::Platform),
            (Method::GET, "/gust/v1/services/orders/x", Face::Platform),
            (Method::POST, "/gust/v1/functions/f/invoke", Face::Platform),
            (Method::GET, "/gust/v1/secrets/NAME", Face::Platform),
            (Method::GET, "/gust/v1/secrets", Face::Operator),
            (Method::PUT, "/gust/v1/secrets/NAME", Face::Operator),
            (Method::DELETE, "/gust/v1/secrets/NAME", Face::Operator),
            (Method::POST, "/gust/v1/secrets/master/rotate", Face::Operator),
            (Method::POST, "/gust/v1/events/orders", Face::Publish),
            (Method::GET, "/gust/v1/functions", Face::Operator),
            (Method::GET, "/gust/v1/dlq", Face::Operator),
            (Method::POST, "/gust/v1/access-keys", Face::Operator),
            (Method::GET, "/gust/v1/anything-else", Face::Operator),
            (Method::GET, "/metrics", Face::Operator),
            (Method::GET, "/", Face::NotFound),
            (Method::GET, "/console", Face::Console),
            (Method::POST, "/console/login", Face::Console),
            (Method::GET, "/console/vendor/uPlot.esm.js", Face::Console),
            (Method::GET, "/consoles", Face::NotFound),
        ];
        for (m, p, want) in cases {
            assert_eq!(face_of(&m, p, None), want, "{m} {p}");
        }
        let dynamo = Some("DynamoDB_20120810.PutItem");
        assert_eq!(face_of(&Method::POST, "/", dynamo), Face::Aws);
        assert_eq!(face_of(&Method::GET, "/", dynamo), Face::NotFound);
        assert_eq!(face_of(&Method::POST, "/x", dynamo), Face::NotFound);
        let streams = Some("DynamoDBStreams_20120810.GetRecords");
        assert_eq!(face_of(&Method::POST, "/", streams), Face::Aws);
        assert_eq!(
            face_of(&Method::POST, "/", Some("AmazonSQS.SendMessage")),
            Face::NotFound
        );
    }
}
