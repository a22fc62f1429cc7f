//! The operator face: everything that manages the platform (secrets, gateway API keys,
//! Lambda API access keys, dead-letter queues, schedules, invocation records, logs, traces,
//! usage, the function list, metrics, publishing as `gust publish`). Every request needs the
//! operator token (`Authorization: Bearer`, from `<state>/operator.token`); a function's
//! `GUST_TOKEN` is refused with `403 OperatorOnly`, anything else with
//! `401 OperatorTokenRequired`.

use super::{json_response, Admin, MAX_INVOKE_PAYLOAD};
use crate::codes::ErrorCode;
use crate::error::{storage_failure, ApiError, Body};
use crate::routes::percent_decode;
use bytes::Bytes;
use gust_runtime::metric_names;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

impl Admin {
    pub(super) async fn operator_api(&self, path: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        self.require_operator(req.headers())?;
        let method = req.method().clone();
        if path == "/metrics" {
            return match method {
                Method::GET => Ok(self.metrics().await),
                _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "use GET")),
            };
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/apikeys") {
            return self.apikeys_api(rest, req).await;
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/access-keys") {
            return self.access_keys_api(rest, &method).await;
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/secrets") {
            return self.secrets_api(rest, req).await;
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/schedules") {
            return self.schedules_api(rest, &method).await;
        }
        let rest = path.strip_prefix("/gust/v1/").unwrap_or_default();
        if method == Method::GET
            && (rest == "invocations" || rest == "logs" || rest == "usage" || rest.starts_with("traces/"))
        {
            return self.telemetry_api(rest, &req).await;
        }
        if rest.starts_with("events/") || rest.starts_with("dlq") || rest == "subscriptions" {
            return self.events_api(rest, req).await;
        }
        if method == Method::GET && rest == "functions" {
            return Ok(self.functions());
        }
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no admin endpoint {method} {path}"),
        ))
    }

    /// `GET /gust/v1/access-keys` (ids only), `POST` (a new key; its secret is in this answer
    /// only), `DELETE /gust/v1/access-keys/{id}`.
    async fn access_keys_api(&self, rest: &str, method: &Method) -> Result<Response<Body>, ApiError> {
        let keys = self.access_keys.clone().ok_or_else(|| {
            ApiError::new(
                ErrorCode::AccessKeysDisabled,
                "access keys are not enabled on this Gust",
            )
        })?;
        let id = percent_decode(rest.trim_start_matches('/'));
        let blocking = |f: Box<dyn FnOnce() -> Result<Response<Body>, ApiError> + Send>| async move {
            tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| storage_failure(&e, "the access key store"))?
        };
        match (method, id.as_str()) {
            (&Method::GET, "") => {
                blocking(Box::new(move || {
                    let list = keys.list().map_err(|e| storage_failure(&e, "the access key store"))?;
                    let items: Vec<_> = list
                        .iter()
                        .map(|k| {
                            let created: chrono::DateTime<chrono::Utc> = k.created_at.into();
                            json!({ "access_key_id": k.id, "created_at": created.to_rfc3339() })
                        })
                        .collect();
                    Ok(json_response(StatusCode::OK, json!({ "access_keys": items })))
                }))
                .await
            }
            (&Method::POST, "") => {
                blocking(Box::new(move || {
                    let key = keys.create().map_err(|e| storage_failure(&e, "the access key store"))?;
                    tracing::info!(access_key_id = %key.id, "access key created");
                    Ok(json_response(
                        StatusCode::CREATED,
                        json!({ "access_key_id": key.id, "secret_access_key": key.secret.as_str() }),
                    ))
                }))
                .await
            }
            (&Method::DELETE, id) if !id.is_empty() => {
                let id = id.to_string();
                blocking(Box::new(move || {
                    if keys
                        .remove(&id)
                        .map_err(|e| storage_failure(&e, "the access key store"))?
                    {
                        tracing::info!(access_key_id = %id, "access key removed");
                        Ok(json_response(StatusCode::OK, json!({ "removed": id })))
                    } else {
                        Err(ApiError::new(
                            ErrorCode::AccessKeyNotFound,
                            format!("no access key `{id}`"),
                        ))
                    }
                }))
                .await
            }
            _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "use GET, POST or DELETE")),
        }
    }

    async fn apikeys_api(&self, rest: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let store = self
            .api_keys
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::ApiKeysDisabled, "API keys are not enabled on this Gust"))?;
        let fail = |e: String| storage_failure(&e, "the API key store");
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
                        ErrorCode::InvalidParameter,
                        format!("expected {{name, rate, burst, quota_per_day}}: {e}"),
                    )
                })?;
                if gust_model::FunctionName::new(&c.name).is_err() {
                    return Err(ApiError::new(
                        ErrorCode::InvalidParameter,
                        "key names are letters, digits, '-' and '_' (64 at most)",
                    ));
                }
                if c.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidParameter,
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
                        ErrorCode::ApiKeyExists,
                        format!("an API key named `{}` exists", c.name),
                    )),
                }
            }
            (Method::DELETE, n) if !n.is_empty() => {
                if crate::apikeys::remove(self.kv.as_ref(), store, n).await.map_err(fail)? {
                    Ok(json_response(StatusCode::OK, json!({ "removed": n })))
                } else {
                    Err(ApiError::new(
                        ErrorCode::ApiKeyNotFound,
                        format!("no API key named `{n}`"),
                    ))
                }
            }
            _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "use GET, POST or DELETE")),
        }
    }

    /// Operators manage secrets (values never come back; a function reads a granted one through
    /// the platform API). Errors never contain a value.
    async fn secrets_api(&self, rest: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let secrets = self
            .secrets
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::SecretsDisabled, "secrets are not enabled on this Gust"))?;
        let fail = |e: String| ApiError::new(ErrorCode::SecretError, e);
        let name = percent_decode(rest.trim_start_matches('/'));
        match (req.method().clone(), name.as_str()) {
            (Method::GET, "") => Ok(json_response(StatusCode::OK, secrets.list().map_err(fail)?)),
            (Method::POST, "master/rotate") => {
                Ok(json_response(StatusCode::OK, secrets.rotate_master().map_err(fail)?))
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
                        ErrorCode::SecretNotFound,
                        format!("secret `{name}` is not set"),
                    ))
                }
            }
            _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "use GET, PUT or DELETE")),
        }
    }

    async fn telemetry_api(&self, rest: &str, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let db = self
            .telemetry
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::TelemetryDisabled, "telemetry is not kept on this Gust"))?;
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
                        .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, format!("{name} must be a number")))
                })
                .transpose()
        };
        let fail = |e: String| storage_failure(&e, "reading telemetry");
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
                        ErrorCode::TraceNotFound,
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
                ErrorCode::NotFound,
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

    async fn schedules_api(&self, rest: &str, method: &Method) -> Result<Response<Body>, ApiError> {
        let schedules = self
            .schedules
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::SchedulesDisabled, "schedules are not enabled on this Gust"))?;
        let segments: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        match (method, segments.as_slice()) {
            (&Method::GET, []) => Ok(json_response(StatusCode::OK, schedules.list().await)),
            (&Method::POST, [name, "run"]) => match schedules.run(&percent_decode(name)).await {
                Ok(v) => Ok(json_response(StatusCode::ACCEPTED, v)),
                Err(e) => Err(ApiError::new(ErrorCode::ScheduleNotFound, e)),
            },
            _ => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no admin endpoint {method} /gust/v1/schedules{rest}"),
            )),
        }
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
                            .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "seq must be numbers"))
                    })
                    .collect()
            })
            .transpose()
        };
        let segments: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        match (&parts.method, segments.as_slice()) {
            (&Method::POST, ["events", topic]) => {
                let body = crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await?;
                let topic = crate::routes::percent_decode(topic);
                crate::publish::publish(events, &topic, &parts.headers, &body).await
            }
            (&Method::GET, ["subscriptions"]) => {
                let mut list = Vec::new();
                let dead = events.log().dlq_list(None).await?;
                for s in events.subscriptions() {
                    let backlog = events.log().backlog(s.name.as_str()).await?;
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
                let list = events.log().dlq_list(sub.as_deref()).await?;
                Ok(json_response(
                    StatusCode::OK,
                    json!({ "dead_letters": list.iter().map(dead_letter_json).collect::<Vec<_>>() }),
                ))
            }
            (&Method::GET, ["dlq", sub, seq]) => {
                let seq: i64 = seq
                    .parse()
                    .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "seq must be a number"))?;
                let list = events.log().dlq_list(Some(sub)).await?;
                let d = list.iter().find(|d| d.seq == seq).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::DeadLetterNotFound,
                        format!("no dead letter {seq} in `{sub}`"),
                    )
                })?;
                Ok(json_response(StatusCode::OK, dead_letter_json(d)))
            }
            (&Method::POST, ["dlq", sub, "redrive"]) => {
                if !events.knows_subscription(sub) {
                    return Err(ApiError::new(
                        ErrorCode::SubscriptionNotFound,
                        format!("subscription `{sub}` does not exist"),
                    ));
                }
                let seqs = seqs(param("seq"))?;
                let n = events.redrive(sub, seqs.as_deref()).await?;
                Ok(json_response(StatusCode::OK, json!({ "redriven": n })))
            }
            (&Method::DELETE, ["dlq", sub]) => {
                let seqs = seqs(param("seq"))?;
                let n = events.log().dlq_purge(sub, seqs.as_deref()).await?;
                Ok(json_response(StatusCode::OK, json!({ "purged": n })))
            }
            _ => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no admin endpoint {} /gust/v1/{rest}", parts.method),
            )),
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
