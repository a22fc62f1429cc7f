//! The admin address: the Lambda Invoke API (so the AWS CLI and SDKs work with
//! `--endpoint-url`), the platform API functions reach through `GUST_API` (key-value store),
//! and health/status endpoints. It is meant for loopback or a private network, not the
//! internet: the gateway is the public face.

use crate::error::{ApiError, Body};
use crate::routes::percent_decode;
use crate::server::HttpHandler;
use bytes::Bytes;
use gust_events::Events;
use gust_runtime::metric_names;
use gust_runtime::{Invocation, InvokeError, Invoker, PlatformApi, Trigger};
use gust_store::TelemetryDb;
use gust_store::{BlobError, BlobStore, KvError, KvStore, Precondition, PutOutcome, MAX_BLOB_BYTES, MAX_VALUE_BYTES};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
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
    upstreams: std::collections::HashMap<String, Arc<crate::upstream::Upstream>>,
    secrets: Option<Arc<dyn SecretsApi>>,
    api_keys: Option<Arc<crate::auth::MemoryApiKeyStore>>,
}

/// Secrets management and granted reads (implemented by the binary, which owns the store).
pub trait SecretsApi: Send + Sync + 'static {
    fn list(&self) -> Result<serde_json::Value, String>;
    fn set(&self, name: &str, value: &[u8]) -> Result<serde_json::Value, String>;
    fn remove(&self, name: &str) -> Result<bool, String>;
    fn rotate_master(&self) -> Result<serde_json::Value, String>;
    /// A secret's value for a function, only when its manifest grants it.
    fn get_for(&self, function: &str, name: &str) -> Result<Option<Vec<u8>>, String>;
}

/// What the admin API needs from the scheduler (implemented by the binary, which owns it).
pub trait SchedulesApi: Send + Sync + 'static {
    /// Every schedule with its next fire times and last fired tick.
    fn list(&self) -> Pin<Box<dyn Future<Output = serde_json::Value> + Send + '_>>;
    /// Queues a run of `name` now; `Err` when there is no such schedule.
    fn run<'a>(&'a self, name: &'a str)
        -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>>;
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin")
    }
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("static response parts are valid")
}

/// Lambda-style service errors: `x-amzn-ErrorType` plus `{"Type","message"}`, which the AWS
/// SDKs turn into typed exceptions.
fn lambda_error(status: u16, error_type: &str, message: &str) -> Response<Body> {
    let mut r = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({ "Type": if status < 500 { "User" } else { "Service" }, "message": message }),
    );
    if let Ok(v) = HeaderValue::from_str(error_type) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
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
            upstreams: Default::default(),
            secrets: None,
            api_keys: None,
        })
    }

    /// Serves invocation records, logs, traces and usage from `db`.
    pub fn with_telemetry(self: Arc<Self>, db: TelemetryDb) -> Arc<Self> {
        let mut me =
            Arc::try_unwrap(self).unwrap_or_else(|_| panic!("with_telemetry is called before the admin API is shared"));
        me.telemetry = Some(db);
        Arc::new(me)
    }

    /// Serves `/gust/v1/apikeys`, changing the gateway's key store.
    pub fn with_api_keys(self: Arc<Self>, store: Arc<crate::auth::MemoryApiKeyStore>) -> Arc<Self> {
        let mut me =
            Arc::try_unwrap(self).unwrap_or_else(|_| panic!("with_api_keys is called before the admin API is shared"));
        me.api_keys = Some(store);
        Arc::new(me)
    }

    async fn apikeys_api(&self, rest: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let store = self
            .api_keys
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "ApiKeysDisabled", "API keys are not enabled on this Gust"))?;
        let fail = |e: String| {
            tracing::error!(error = %e, "api key store failure");
            ApiError::new(500, "StorageError", "the API key store failed; see the Gust log")
        };
        let name = percent_decode(rest.trim_start_matches('/'));
        match (req.method().clone(), name.as_str()) {
            (Method::GET, "") => {
                let list = crate::apikeys::list(self.kv.as_ref()).await.map_err(fail)?;
                let items: Vec<_> = list
                    .iter()
                    .map(|k| json!({ "name": k.name, "key_id": &k.hash[..16], "rate": k.rate, "burst": k.burst, "quota_per_day": k.quota_per_day }))
                    .collect();
                Ok(json_response(StatusCode::OK, json!({ "api_keys": items })))
            }
            (Method::POST, "") => {
                let (parts, body) = req.into_parts();
                let body = crate::gateway::read_limited(&parts.headers, body, 16 * 1024).await?;
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Create {
                    name: String,
                    rate: Option<f64>,
                    burst: Option<u32>,
                    quota_per_day: Option<u64>,
                }
                let c: Create = serde_json::from_slice(&body).map_err(|e| {
                    ApiError::new(
                        400,
                        "InvalidParameter",
                        format!("expected {{name, rate, burst, quota_per_day}}: {e}"),
                    )
                })?;
                if gust_model::FunctionName::new(&c.name).is_err() {
                    return Err(ApiError::new(
                        400,
                        "InvalidParameter",
                        "key names are letters, digits, '-' and '_' (64 at most)",
                    ));
                }
                if c.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                    return Err(ApiError::new(
                        400,
                        "InvalidParameter",
                        "rate must be a positive number of requests per second",
                    ));
                }
                match crate::apikeys::create(self.kv.as_ref(), store, &c.name, c.rate, c.burst, c.quota_per_day)
                    .await
                    .map_err(fail)?
                {
                    Some(key) => Ok(json_response(
                        StatusCode::CREATED,
                        json!({ "name": c.name, "api_key": key }),
                    )),
                    None => Err(ApiError::new(
                        409,
                        "ApiKeyExists",
                        format!("an API key named `{}` exists", c.name),
                    )),
                }
            }
            (Method::DELETE, n) if !n.is_empty() => {
                if crate::apikeys::remove(self.kv.as_ref(), store, n).await.map_err(fail)? {
                    Ok(json_response(StatusCode::OK, json!({ "removed": n })))
                } else {
                    Err(ApiError::new(404, "ApiKeyNotFound", format!("no API key named `{n}`")))
                }
            }
            _ => Err(ApiError::new(405, "MethodNotAllowed", "use GET, POST or DELETE")),
        }
    }

    /// Serves `/gust/v1/secrets`.
    pub fn with_secrets(self: Arc<Self>, secrets: Arc<dyn SecretsApi>) -> Arc<Self> {
        let mut me =
            Arc::try_unwrap(self).unwrap_or_else(|_| panic!("with_secrets is called before the admin API is shared"));
        me.secrets = Some(secrets);
        Arc::new(me)
    }

    /// Operators manage secrets (values never come back); a function reads a granted one with
    /// its token. Errors never contain a value.
    async fn secrets_api(&self, rest: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let secrets = self
            .secrets
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "SecretsDisabled", "secrets are not enabled on this Gust"))?;
        let fail = |e: String| ApiError::new(400, "SecretError", e);
        let name = percent_decode(rest.trim_start_matches('/'));
        match (req.method().clone(), name.as_str()) {
            (Method::GET, "") => Ok(json_response(StatusCode::OK, secrets.list().map_err(fail)?)),
            (Method::POST, "master/rotate") => {
                Ok(json_response(StatusCode::OK, secrets.rotate_master().map_err(fail)?))
            }
            (Method::GET, _) => {
                let caller = self.caller(&req)?;
                match secrets.get_for(&caller.function, &name) {
                    Ok(Some(v)) => Ok(Response::builder()
                        .status(StatusCode::OK)
                        .header(http::header::CONTENT_TYPE, "application/octet-stream")
                        .body(Full::new(Bytes::from(v)))
                        .expect("static response parts are valid")),
                    Ok(None) => Err(ApiError::new(
                        404,
                        "SecretNotFound",
                        format!("secret `{name}` is not set"),
                    )),
                    Err(e) => Err(ApiError::new(403, "Forbidden", e)),
                }
            }
            (Method::PUT, _) => {
                let (parts, body) = req.into_parts();
                let value = crate::gateway::read_limited(&parts.headers, body, 64 * 1024).await?;
                Ok(json_response(StatusCode::OK, secrets.set(&name, &value).map_err(fail)?))
            }
            (Method::DELETE, _) => {
                if secrets.remove(&name).map_err(fail)? {
                    Ok(json_response(StatusCode::OK, json!({ "removed": name })))
                } else {
                    Err(ApiError::new(
                        404,
                        "SecretNotFound",
                        format!("secret `{name}` is not set"),
                    ))
                }
            }
            _ => Err(ApiError::new(405, "MethodNotAllowed", "use GET, PUT or DELETE")),
        }
    }

    /// Lets functions reach these upstreams by name.
    pub fn with_upstreams(self: Arc<Self>, upstreams: &[Arc<crate::upstream::Upstream>]) -> Arc<Self> {
        let mut me =
            Arc::try_unwrap(self).unwrap_or_else(|_| panic!("with_upstreams is called before the admin API is shared"));
        me.upstreams = upstreams
            .iter()
            .map(|u| (u.spec().name.to_string(), u.clone()))
            .collect();
        Arc::new(me)
    }

    /// A function calling a service it was granted, by name: `/gust/v1/fn/{token}/services/{name}/...`
    /// (the URL in `GUST_SERVICE_<NAME>_URL`) or `/gust/v1/services/{name}/...` with its bearer token.
    async fn service_proxy(
        &self,
        caller: PlatformApi,
        rest: &str,
        req: Request<Incoming>,
        remote: SocketAddr,
        request_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let (name, path) = match rest.split_once('/') {
            Some((n, p)) => (n.to_string(), format!("/{p}")),
            None => (rest.to_string(), "/".to_string()),
        };
        let spec = self.invoker.spec(&caller.function);
        if !spec
            .as_ref()
            .is_some_and(|s| s.services.iter().any(|g| g.as_str() == name))
        {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("`{}` is not granted the service `{name}`", caller.function),
            ));
        }
        let up = self
            .upstreams
            .get(&name)
            .ok_or_else(|| ApiError::new(404, "ServiceNotFound", format!("no service `{name}`")))?;
        let (parts, body) = req.into_parts();
        let body = crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await?;
        let parent = trace_of(&parts.headers);
        let span = parent
            .as_ref()
            .map(|p| p.child())
            .unwrap_or_else(gust_model::TraceParent::new_root);
        // The caller's deadline travels with the call (Lambda's remaining time, in epoch ms).
        let deadline = parts
            .headers
            .get("x-gust-deadline-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .map(|ms| {
                let left = (ms - chrono::Utc::now().timestamp_millis()).max(0) as u64;
                std::time::Instant::now() + std::time::Duration::from_millis(left)
            });
        let mut path = path;
        if let Some(q) = parts.uri.query() {
            path = format!("{path}?{q}");
        }
        let mut headers = parts.headers.clone();
        headers.remove(http::header::AUTHORIZATION);
        let started_us = chrono::Utc::now().timestamp_micros();
        let result = up
            .forward(crate::upstream::ForwardRequest {
                method: parts.method.clone(),
                path_and_query: path.clone(),
                headers,
                body,
                remote,
                request_id,
                traceparent: span.to_string(),
                deadline,
            })
            .await;
        self.invoker.telemetry().span(gust_model::SpanRecord {
            trace_id: span.trace_id.clone(),
            span_id: span.span_id.clone(),
            parent_id: parent.map(|p| p.span_id),
            name: format!("call {name}"),
            kind: "client".into(),
            start_us: started_us,
            duration_us: (chrono::Utc::now().timestamp_micros() - started_us).max(0) as u64,
            error: !matches!(&result, Ok(r) if !r.status().is_server_error()),
            attributes: vec![
                ("gust.caller".into(), caller.function.clone()),
                ("url.path".into(), path),
            ],
        });
        result
    }

    /// A function invoking another one it was granted, by name (`POST /gust/v1/functions/{name}/invoke`).
    async fn function_invoke(
        &self,
        caller: PlatformApi,
        name: &str,
        req: Request<Incoming>,
        request_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let spec = self.invoker.spec(&caller.function);
        if !spec
            .as_ref()
            .is_some_and(|s| s.invokes.iter().any(|g| g.as_str() == name))
        {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("`{}` is not granted to invoke `{name}`", caller.function),
            ));
        }
        let (parts, body) = req.into_parts();
        let payload = crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await?;
        let mut inv = Invocation::new(
            name,
            if payload.is_empty() {
                Bytes::from_static(b"{}")
            } else {
                payload
            },
            Trigger::Direct,
        );
        inv.request_id = Some(request_id.to_string());
        if let Some(parent) = trace_of(&parts.headers) {
            inv.parent_span = Some(parent.span_id.clone());
            inv.trace = Some(parent.child());
        }
        let out = self.invoker.invoke(inv).await.map_err(|e| ApiError::from_invoke(&e))?;
        let mut r = Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(out.payload))
            .expect("static response parts are valid");
        if out.function_error.is_some() {
            r.headers_mut()
                .insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
        }
        Ok(r)
    }

    async fn telemetry_api(&self, rest: &str, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let db = self
            .telemetry
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "TelemetryDisabled", "telemetry is not kept on this Gust"))?;
        let query = req.uri().query().unwrap_or("").to_string();
        let param = |name: &str| {
            query.split('&').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k == name && !v.is_empty()).then(|| percent_decode(v))
            })
        };
        let num = |name: &str| -> Result<Option<i64>, ApiError> {
            param(name)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| ApiError::new(400, "InvalidParameter", format!("{name} must be a number")))
                })
                .transpose()
        };
        let fail = |e: String| {
            tracing::error!(error = %e, "telemetry query failed");
            ApiError::new(500, "StorageError", "reading telemetry failed; see the Gust log")
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            ["invocations"] => {
                let limit = num("limit")?.unwrap_or(50).clamp(1, 10_000) as usize;
                let list = db.invocations(param("function"), limit).await.map_err(fail)?;
                let items: Vec<_> = list
                    .iter()
                    .map(|r| {
                        json!({
                            "request_id": r.request_id, "function": r.function, "trigger": r.trigger,
                            "start_ms": r.start_ms, "duration_ms": r.duration_us as f64 / 1000.0,
                            "billed_ms": r.billed_ms, "memory_mb": r.memory_mb, "cold_start": r.cold_start,
                            "init_ms": r.init_us.map(|v| v as f64 / 1000.0), "outcome": r.outcome,
                            "error_type": r.error_type, "trace_id": r.trace_id,
                        })
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, json!({ "invocations": items })))
            }
            ["logs"] => {
                let q = gust_store::LogQuery {
                    function: param("function"),
                    since_ms: num("since_ms")?,
                    request_id: param("request"),
                    trace_id: param("trace"),
                    after_id: num("after")?,
                    limit: num("limit")?.unwrap_or(1000).clamp(1, 10_000) as usize,
                };
                let rows = db.logs(q).await.map_err(fail)?;
                let lines: Vec<_> = rows
                    .iter()
                    .map(|l| {
                        json!({ "id": l.id, "ts_ms": l.ts_ms, "function": l.function,
                                "request_id": l.request_id, "stream": l.stream, "line": l.line })
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, json!({ "lines": lines })))
            }
            ["traces", id] => {
                let spans = db.trace((*id).to_string()).await.map_err(fail)?;
                if spans.is_empty() {
                    return Err(ApiError::new(
                        404,
                        "TraceNotFound",
                        format!("no spans recorded for trace `{id}`"),
                    ));
                }
                let items: Vec<_> = spans
                    .iter()
                    .map(|s| {
                        json!({
                            "trace_id": s.trace_id, "span_id": s.span_id, "parent_id": s.parent_id, "name": s.name,
                            "kind": s.kind, "start_us": s.start_us, "duration_us": s.duration_us, "error": s.error,
                            "attributes": s.attributes.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                        })
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, json!({ "trace_id": id, "spans": items })))
            }
            ["usage"] => {
                let since = num("since_ms")?.unwrap_or(0);
                let usage = db.usage(since).await.map_err(fail)?;
                let items: Vec<_> = usage
                    .iter()
                    .map(|u| {
                        json!({ "function": u.function, "requests": u.requests, "billed_mb_ms": u.billed_mb_ms,
                                "cold_starts": u.cold_starts, "errors": u.errors })
                    })
                    .collect();
                Ok(json_response(
                    StatusCode::OK,
                    json!({ "since_ms": since, "usage": items }),
                ))
            }
            _ => Err(ApiError::new(
                404,
                "NotFound",
                format!("no admin endpoint /gust/v1/{rest}"),
            )),
        }
    }

    /// Prometheus text: counters kept by the runtime, gauges read now.
    async fn metrics(&self) -> Response<Body> {
        let m = self.invoker.metrics();
        for f in self.invoker.function_names() {
            if let Some(s) = self.invoker.pool_stats(&f) {
                let busy = s.total.saturating_sub(s.idle);
                m.gauge(
                    metric_names::INSTANCES,
                    &[("function", &f), ("state", "busy")],
                    busy as f64,
                );
                m.gauge(
                    metric_names::INSTANCES,
                    &[("function", &f), ("state", "idle")],
                    s.idle as f64,
                );
                m.gauge(metric_names::POOL_QUEUE, &[("function", &f)], s.waiting as f64);
            }
        }
        if let Some(events) = &self.events {
            let dead = events.log().dlq_list(None).await.unwrap_or_default();
            for s in events.subscriptions() {
                let name = s.name.as_str();
                if let Ok(b) = events.log().backlog(name).await {
                    m.gauge(metric_names::EVENT_BACKLOG, &[("subscription", name)], b as f64);
                }
                let depth = dead.iter().filter(|d| d.subscription == name).count();
                m.gauge(metric_names::DLQ_DEPTH, &[("subscription", name)], depth as f64);
            }
        }
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(m.render())))
            .expect("static response parts are valid")
    }

    async fn blobs_api(&self, rest: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let caller = self.caller(&req)?;
        let ns = caller.app.as_str();
        let blob_err = |e: BlobError| match e {
            BlobError::BadKey(_) => ApiError::new(400, "InvalidKey", e.to_string()),
            BlobError::TooLarge(_) => ApiError::new(413, "BlobTooLarge", e.to_string()),
            BlobError::Storage(_) => {
                tracing::error!(error = %e, "blob storage failure");
                ApiError::new(500, "StorageError", "the blob store failed; see the Gust log")
            }
        };
        let key = percent_decode(rest.trim_start_matches('/'));
        if key.is_empty() {
            let prefix = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|p| p.strip_prefix("prefix=").map(percent_decode))
                .unwrap_or_default();
            let list = self.blobs.list(ns, &prefix).await.map_err(blob_err)?;
            let blobs: Vec<_> = list.iter().map(|(k, size)| json!({ "key": k, "size": size })).collect();
            return Ok(json_response(StatusCode::OK, json!({ "blobs": blobs })));
        }
        match *req.method() {
            Method::GET => match self.blobs.get(ns, &key).await.map_err(blob_err)? {
                Some(data) => Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/octet-stream")
                    .body(Full::new(Bytes::from(data)))
                    .expect("static response parts are valid")),
                None => Err(ApiError::new(404, "BlobNotFound", format!("no blob `{key}`"))),
            },
            Method::PUT => {
                let (parts, body) = req.into_parts();
                let data = crate::gateway::read_limited(&parts.headers, body, MAX_BLOB_BYTES)
                    .await
                    .map_err(|e| {
                        if e.status == 413 {
                            ApiError::new(413, "BlobTooLarge", e.message)
                        } else {
                            e
                        }
                    })?;
                self.blobs.put(ns, &key, data.to_vec()).await.map_err(blob_err)?;
                Ok(json_response(StatusCode::OK, json!({ "key": key, "size": data.len() })))
            }
            Method::DELETE => {
                if self.blobs.delete(ns, &key).await.map_err(blob_err)? {
                    Ok(Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .expect("static response parts are valid"))
                } else {
                    Err(ApiError::new(404, "BlobNotFound", format!("no blob `{key}`")))
                }
            }
            _ => Err(ApiError::new(405, "MethodNotAllowed", "use GET, PUT or DELETE")),
        }
    }

    async fn schedules_api(&self, rest: &str, method: &Method) -> Result<Response<Body>, ApiError> {
        let schedules = self
            .schedules
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "SchedulesDisabled", "schedules are not enabled on this Gust"))?;
        let segments: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        match (method, segments.as_slice()) {
            (&Method::GET, []) => Ok(json_response(StatusCode::OK, schedules.list().await)),
            (&Method::POST, [name, "run"]) => match schedules.run(&percent_decode(name)).await {
                Ok(v) => Ok(json_response(StatusCode::ACCEPTED, v)),
                Err(e) => Err(ApiError::new(404, "ScheduleNotFound", e)),
            },
            _ => Err(ApiError::new(
                404,
                "NotFound",
                format!("no admin endpoint {method} /gust/v1/schedules{rest}"),
            )),
        }
    }

    fn events(&self) -> Result<&Arc<Events>, ApiError> {
        self.events
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "EventsDisabled", "events are not enabled on this Gust"))
    }

    async fn events_api(&self, rest: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let events = self.events()?;
        let (parts, body) = req.into_parts();
        let query = parts.uri.query().unwrap_or("").to_string();
        let param = |name: &str| {
            query.split('&').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k == name).then(|| percent_decode(v))
            })
        };
        let seqs = |v: Option<String>| -> Result<Option<Vec<i64>>, ApiError> {
            v.map(|s| {
                s.split(',')
                    .map(|x| {
                        x.trim()
                            .parse::<i64>()
                            .map_err(|_| ApiError::new(400, "InvalidParameter", "seq must be numbers"))
                    })
                    .collect()
            })
            .transpose()
        };
        let log_err = |e: gust_events::LogError| {
            tracing::error!(error = %e, "event log failure");
            ApiError::new(500, "StorageError", "the event log failed; see the Gust log")
        };
        let segments: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        match (&parts.method, segments.as_slice()) {
            (&Method::POST, ["events", topic]) => {
                let body = crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await?;
                crate::publish::publish(events, topic, &parts.headers, &body).await
            }
            (&Method::GET, ["subscriptions"]) => {
                let mut list = Vec::new();
                let dead = events.log().dlq_list(None).await.map_err(log_err)?;
                for s in events.subscriptions() {
                    let backlog = events.log().backlog(s.name.as_str()).await.map_err(log_err)?;
                    let dlq = dead.iter().filter(|d| d.subscription == s.name.as_str()).count();
                    list.push(json!({
                        "name": s.name.as_str(), "topic": s.topic.as_str(), "function": s.function.as_str(),
                        "backlog": backlog, "dead_letters": dlq, "batch_size": s.batch_size,
                        "max_attempts": s.max_attempts, "max_event_age_s": s.max_event_age.as_secs(),
                    }));
                }
                Ok(json_response(StatusCode::OK, json!({ "subscriptions": list })))
            }
            (&Method::GET, ["dlq"]) => {
                let sub = param("subscription");
                let list = events.log().dlq_list(sub.as_deref()).await.map_err(log_err)?;
                Ok(json_response(
                    StatusCode::OK,
                    json!({ "dead_letters": list.iter().map(dead_letter_json).collect::<Vec<_>>() }),
                ))
            }
            (&Method::GET, ["dlq", sub, seq]) => {
                let seq: i64 = seq
                    .parse()
                    .map_err(|_| ApiError::new(400, "InvalidParameter", "seq must be a number"))?;
                let list = events.log().dlq_list(Some(sub)).await.map_err(log_err)?;
                let d = list.iter().find(|d| d.seq == seq).ok_or_else(|| {
                    ApiError::new(404, "DeadLetterNotFound", format!("no dead letter {seq} in `{sub}`"))
                })?;
                Ok(json_response(StatusCode::OK, dead_letter_json(d)))
            }
            (&Method::POST, ["dlq", sub, "redrive"]) => {
                if !events.knows_subscription(sub) {
                    return Err(ApiError::new(
                        404,
                        "SubscriptionNotFound",
                        format!("subscription `{sub}` does not exist"),
                    ));
                }
                let seqs = seqs(param("seq"))?;
                let n = events.redrive(sub, seqs.as_deref()).await.map_err(log_err)?;
                Ok(json_response(StatusCode::OK, json!({ "redriven": n })))
            }
            (&Method::DELETE, ["dlq", sub]) => {
                let seqs = seqs(param("seq"))?;
                let n = events.log().dlq_purge(sub, seqs.as_deref()).await.map_err(log_err)?;
                Ok(json_response(StatusCode::OK, json!({ "purged": n })))
            }
            _ => Err(ApiError::new(
                404,
                "NotFound",
                format!("no admin endpoint {} /gust/v1/{rest}", parts.method),
            )),
        }
    }

    async fn invoke_api(&self, name: &str, req: Request<Incoming>, request_id: &str) -> Response<Body> {
        let name = percent_decode(name);
        // Lambda accepts a name, a partial or a full ARN; the function name is the last part.
        let name = name.rsplit(':').next().unwrap_or(&name).to_string();
        let kind = req
            .headers()
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("RequestResponse")
            .to_string();
        let Some(_) = self.invoker.spec(&name) else {
            return lambda_error(404, "ResourceNotFoundException", &format!("Function not found: {name}"));
        };
        match kind.as_str() {
            "DryRun" => {
                return Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Full::new(Bytes::new()))
                    .expect("static response parts are valid")
            }
            "RequestResponse" => {}
            "Event" => return self.invoke_async(&name, req, request_id).await,
            other => {
                return lambda_error(
                    400,
                    "InvalidParameterValueException",
                    &format!("unknown InvocationType `{other}`"),
                )
            }
        }
        let (parts, body) = req.into_parts();
        let headers = parts.headers;
        let client_context = headers
            .get("x-amz-client-context")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let payload = match crate::gateway::read_limited(&headers, body, MAX_INVOKE_PAYLOAD).await {
            Ok(p) => p,
            Err(e) if e.status == 413 => {
                return lambda_error(
                    413,
                    "RequestTooLargeException",
                    "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
                )
            }
            Err(e) => return e.into_response(request_id),
        };
        let payload = if payload.is_empty() {
            Bytes::from_static(b"{}")
        } else {
            payload
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
            return lambda_error(
                400,
                "InvalidRequestContentException",
                "Could not parse request body into json",
            );
        }
        let mut inv = Invocation::new(name.clone(), payload, Trigger::Direct);
        inv.request_id = Some(request_id.to_string());
        if let Some(parent) = trace_of(&headers) {
            inv.parent_span = Some(parent.span_id.clone());
            inv.trace = Some(parent.child());
        }
        inv.client_context = client_context;
        let mut resp = match self.invoker.invoke(inv).await {
            Ok(out) => {
                let mut r = Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header("x-amz-executed-version", "$LATEST")
                    .body(Full::new(out.payload))
                    .expect("static response parts are valid");
                if out.function_error.is_some() {
                    r.headers_mut()
                        .insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
                }
                r
            }
            // Lambda reports a function's own failure (timeout, crash) as a 200 with
            // X-Amz-Function-Error, and platform-side refusals as service errors.
            Err(
                e @ (InvokeError::Timeout { .. }
                | InvokeError::Crashed { .. }
                | InvokeError::OutOfMemory { .. }
                | InvokeError::InitFailed { .. }
                | InvokeError::ResponseTooLarge { .. }),
            ) => {
                let mut r = json_response(
                    StatusCode::OK,
                    json!({ "errorType": e.lambda_error_type(), "errorMessage": e.to_string() }),
                );
                r.headers_mut()
                    .insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
                r
            }
            Err(e @ InvokeError::TooManyRequests { .. }) => {
                let mut r = lambda_error(429, "TooManyRequestsException", &e.to_string());
                if let InvokeError::TooManyRequests { retry_after, .. } = &e {
                    r.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        HeaderValue::from(retry_after.as_secs().max(1)),
                    );
                }
                r
            }
            Err(InvokeError::FunctionNotFound(n)) => {
                lambda_error(404, "ResourceNotFoundException", &format!("Function not found: {n}"))
            }
            Err(e) => lambda_error(e.http_status(), "ServiceException", &e.to_string()),
        };
        if let Ok(v) = HeaderValue::from_str(request_id) {
            resp.headers_mut().insert("x-amzn-requestid", v);
        }
        resp
    }

    /// `InvocationType: Event`: durable first, then 202; the function runs from the queue with
    /// Lambda's retry policy and ends in the function's DLQ if every attempt fails.
    async fn invoke_async(&self, name: &str, req: Request<Incoming>, request_id: &str) -> Response<Body> {
        let Some(events) = &self.events else {
            return lambda_error(
                400,
                "InvalidParameterValueException",
                "asynchronous invocation needs events enabled",
            );
        };
        let trace = trace_of(req.headers()).map(|t| t.to_string());
        let (parts, body) = req.into_parts();
        let payload = match crate::gateway::read_limited(&parts.headers, body, gust_events::MAX_EVENT_BYTES).await {
            Ok(p) if p.is_empty() => Bytes::from_static(b"{}"),
            Ok(p) => p,
            Err(e) if e.status == 413 => {
                return lambda_error(
                    413,
                    "RequestTooLargeException",
                    "Request must be smaller than 1048576 bytes for asynchronous invocation",
                )
            }
            Err(e) => return e.into_response(request_id),
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
            return lambda_error(
                400,
                "InvalidRequestContentException",
                "Could not parse request body into json",
            );
        }
        match events.invoke_async(name, payload, trace).await {
            Ok(id) => {
                let mut r = Response::builder()
                    .status(StatusCode::ACCEPTED)
                    .body(Full::new(Bytes::new()))
                    .expect("static response parts are valid");
                if let Ok(v) = HeaderValue::from_str(&id) {
                    r.headers_mut().insert("x-amzn-requestid", v);
                }
                r
            }
            Err(gust_events::PublishError::UnknownFunction(n)) => {
                lambda_error(404, "ResourceNotFoundException", &format!("Function not found: {n}"))
            }
            Err(e) => {
                tracing::error!(error = %e, "queueing an asynchronous invocation failed");
                lambda_error(500, "ServiceException", "the invocation could not be queued")
            }
        }
    }

    fn caller(&self, req: &Request<Incoming>) -> Result<PlatformApi, ApiError> {
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::new(401, "Unauthorized", "a valid GUST_TOKEN bearer token is required"))?;
        self.invoker
            .caller_for_token(token.trim())
            .ok_or_else(|| ApiError::new(401, "Unauthorized", "a valid GUST_TOKEN bearer token is required"))
    }

    async fn kv_api(&self, rest: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let caller = self.caller(&req)?;
        let ns = caller.app.as_str();
        let kv_err = |e: KvError| match e {
            KvError::BadKey => ApiError::new(400, "InvalidKey", e.to_string()),
            KvError::ValueTooLarge(_) => ApiError::new(413, "ValueTooLarge", e.to_string()),
            KvError::Storage(_) => {
                tracing::error!(error = %e, "kv storage failure");
                ApiError::new(500, "StorageError", "the key-value store failed; see the Gust log")
            }
        };
        if rest.is_empty() || rest == "/" {
            if req.method() != Method::GET {
                return Err(ApiError::new(405, "MethodNotAllowed", "use GET to list keys"));
            }
            let mut prefix = String::new();
            let mut after = None;
            let mut limit = 100usize;
            for pair in req.uri().query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_decode(&v.replace('+', " "));
                match k {
                    "prefix" => prefix = v,
                    "after" => after = Some(v),
                    "limit" => {
                        limit = v
                            .parse()
                            .map_err(|_| ApiError::new(400, "InvalidParameter", "limit must be a number"))?
                    }
                    _ => {}
                }
            }
            let page = self
                .kv
                .list(ns, &prefix, after.as_deref(), limit)
                .await
                .map_err(kv_err)?;
            let keys: Vec<_> = page
                .keys
                .iter()
                .map(|(k, v)| json!({ "key": k, "version": v }))
                .collect();
            return Ok(json_response(
                StatusCode::OK,
                json!({ "keys": keys, "next": page.next }),
            ));
        }
        let Some(raw_key) = rest.strip_prefix('/') else {
            return Err(ApiError::new(404, "NotFound", "unknown platform API path"));
        };
        let key = percent_decode(raw_key);
        let etag = |v: u64| HeaderValue::from_str(&format!("\"{v}\"")).expect("digits are a valid header");
        let if_match = req
            .headers()
            .get(http::header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_matches('"').to_string());
        match *req.method() {
            Method::GET => match self.kv.get(ns, &key).await.map_err(kv_err)? {
                Some(entry) => {
                    let mut r = Response::builder()
                        .status(StatusCode::OK)
                        .header(http::header::CONTENT_TYPE, "application/octet-stream")
                        .body(Full::new(Bytes::from(entry.value)))
                        .expect("static response parts are valid");
                    r.headers_mut().insert(http::header::ETAG, etag(entry.version));
                    Ok(r)
                }
                None => Err(ApiError::new(404, "KeyNotFound", format!("no value under `{key}`"))),
            },
            Method::PUT => {
                let if_none_match = req.headers().get(http::header::IF_NONE_MATCH).is_some_and(|v| v == "*");
                let pre = match (if_none_match, &if_match) {
                    (true, _) => Precondition::IfAbsent,
                    (false, Some(v)) => Precondition::IfVersion(
                        v.parse()
                            .map_err(|_| ApiError::new(400, "InvalidParameter", "If-Match must be a version ETag"))?,
                    ),
                    (false, None) => Precondition::None,
                };
                let (parts, body) = req.into_parts();
                let value = crate::gateway::read_limited(&parts.headers, body, MAX_VALUE_BYTES)
                    .await
                    .map_err(|e| {
                        if e.status == 413 {
                            ApiError::new(
                                413,
                                "ValueTooLarge",
                                format!("values are limited to {MAX_VALUE_BYTES} bytes"),
                            )
                        } else {
                            e
                        }
                    })?;
                match self.kv.put(ns, &key, value.to_vec(), pre).await.map_err(kv_err)? {
                    PutOutcome::Written { version, created } => {
                        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
                        let mut r =
                            json_response(status, json!({ "key": key, "version": version, "created": created }));
                        r.headers_mut().insert(http::header::ETAG, etag(version));
                        Ok(r)
                    }
                    PutOutcome::PreconditionFailed => Err(ApiError::new(
                        412,
                        if pre == Precondition::IfAbsent {
                            "KeyExists"
                        } else {
                            "VersionMismatch"
                        },
                        format!("the precondition on `{key}` did not hold"),
                    )),
                }
            }
            Method::DELETE => {
                if let Some(v) = &if_match {
                    let want: u64 = v
                        .parse()
                        .map_err(|_| ApiError::new(400, "InvalidParameter", "If-Match must be a version ETag"))?;
                    let current = self.kv.get(ns, &key).await.map_err(kv_err)?;
                    if current.map(|e| e.version) != Some(want) {
                        return Err(ApiError::new(
                            412,
                            "VersionMismatch",
                            format!("the precondition on `{key}` did not hold"),
                        ));
                    }
                }
                if self.kv.delete(ns, &key).await.map_err(kv_err)? {
                    Ok(Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .expect("static response parts are valid"))
                } else {
                    Err(ApiError::new(404, "KeyNotFound", format!("no value under `{key}`")))
                }
            }
            _ => Err(ApiError::new(405, "MethodNotAllowed", "use GET, PUT or DELETE")),
        }
    }

    fn functions(&self) -> Response<Body> {
        let list: Vec<_> = self
            .invoker
            .function_names()
            .into_iter()
            .filter_map(|name| {
                let spec = self.invoker.spec(&name)?;
                let stats = self.invoker.pool_stats(&name)?;
                Some(json!({
                    "name": name,
                    "runtime": spec.runtime,
                    "handler": spec.handler,
                    "memory_mb": spec.memory_mb,
                    "timeout_ms": spec.timeout.as_millis() as u64,
                    "instances": { "total": stats.total, "idle": stats.idle, "waiting": stats.waiting },
                }))
            })
            .collect();
        json_response(StatusCode::OK, json!({ "functions": list }))
    }
}

/// The caller's trace: a W3C `traceparent`, or an X-Ray `X-Amzn-Trace-Id` (what a Lambda
/// function has in `_X_AMZN_TRACE_ID`).
fn trace_of(headers: &http::HeaderMap) -> Option<gust_model::TraceParent> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    get("traceparent")
        .and_then(gust_model::TraceParent::parse)
        .or_else(|| get("x-amzn-trace-id").and_then(gust_model::TraceParent::from_xray))
}

fn dead_letter_json(d: &gust_events::DeadLetter) -> serde_json::Value {
    let (data, b64) = d.event.data_text();
    json!({
        "subscription": d.subscription,
        "seq": d.seq,
        "message_id": d.message_id,
        "attempts": d.attempts,
        "reason": d.reason,
        "last_error": d.last_error,
        "failed_at": chrono::DateTime::from_timestamp_millis(d.failed_ms).map(|t| t.to_rfc3339()),
        "event": {
            "id": d.event.id, "type": d.event.event_type, "source": d.event.source,
            "data": data, "data_base64": b64,
        },
    })
}

impl HttpHandler for Admin {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let path = req.uri().path().to_string();
        // Service discovery and function-to-function calls.
        if let Some(rest) = path.strip_prefix("/gust/v1/fn/") {
            let (token, rest) = rest.split_once('/').unwrap_or((rest, ""));
            let result = match (self.invoker.caller_for_token(token), rest.strip_prefix("services/")) {
                (Some(caller), Some(svc)) => self.service_proxy(caller, svc, req, remote, &request_id).await,
                (None, _) => Err(ApiError::new(401, "Unauthorized", "a valid GUST_TOKEN is required")),
                _ => Err(ApiError::new(404, "NotFound", "unknown platform API path")),
            };
            return result.unwrap_or_else(|e| e.into_response(&request_id));
        }
        if let Some(svc) = path.strip_prefix("/gust/v1/services/") {
            let result = match self.caller(&req) {
                Ok(caller) => self.service_proxy(caller, svc, req, remote, &request_id).await,
                Err(e) => Err(e),
            };
            return result.unwrap_or_else(|e| e.into_response(&request_id));
        }
        if let Some(name) = path
            .strip_prefix("/gust/v1/functions/")
            .and_then(|r| r.strip_suffix("/invoke"))
        {
            let result = match (self.caller(&req), req.method() == Method::POST) {
                (Ok(caller), true) => self.function_invoke(caller, name, req, &request_id).await,
                (Ok(_), false) => Err(ApiError::new(405, "MethodNotAllowed", "use POST")),
                (Err(e), _) => Err(e),
            };
            return result.unwrap_or_else(|e| e.into_response(&request_id));
        }
        if let Some(rest) = path.strip_prefix(INVOKE_PREFIX) {
            if let Some(name) = rest.strip_suffix("/invocations") {
                if req.method() == Method::POST && !name.contains('/') {
                    return self.invoke_api(name, req, &request_id).await;
                }
            }
        }
        if let Some(rest) = path.strip_prefix(KV_PREFIX) {
            return match self.kv_api(rest, req).await {
                Ok(r) => r,
                Err(e) => e.into_response(&request_id),
            };
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/apikeys") {
            return match self.apikeys_api(rest, req).await {
                Ok(r) => r,
                Err(e) => e.into_response(&request_id),
            };
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/secrets") {
            return match self.secrets_api(rest, req).await {
                Ok(r) => r,
                Err(e) => e.into_response(&request_id),
            };
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/blobs") {
            return match self.blobs_api(rest, req).await {
                Ok(r) => r,
                Err(e) => e.into_response(&request_id),
            };
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/schedules") {
            let method = req.method().clone();
            return match self.schedules_api(rest, &method).await {
                Ok(r) => r,
                Err(e) => e.into_response(&request_id),
            };
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/") {
            if req.method() == Method::GET
                && (rest == "invocations" || rest == "logs" || rest == "usage" || rest.starts_with("traces/"))
            {
                return match self.telemetry_api(rest, &req).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(&request_id),
                };
            }
            if rest.starts_with("events/") || rest.starts_with("dlq") || rest == "subscriptions" {
                return match self.events_api(rest, req).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(&request_id),
                };
            }
        }
        match (req.method(), path.as_str()) {
            (&Method::GET, "/metrics") => self.metrics().await,
            (&Method::GET, "/healthz") => json_response(StatusCode::OK, json!({ "status": "ok" })),
            (&Method::GET, "/gust/v1/functions") => self.functions(),
            _ => ApiError::new(404, "NotFound", format!("no admin endpoint {} {path}", req.method()))
                .into_response(&request_id),
        }
    }
}
