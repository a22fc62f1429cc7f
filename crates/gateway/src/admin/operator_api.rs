//! The operator face: everything that manages the platform (secrets, gateway API keys,
//! Lambda API access keys, dead-letter queues, schedules, invocation records, logs, traces,
//! usage, the function list, metrics, publishing as `gust publish`). Every request needs the
//! operator token (`Authorization: Bearer`, from `<state>/operator.token`); a function's
//! `GUST_TOKEN` is refused with `403 OperatorOnly`, anything else with
//! `401 OperatorTokenRequired`.
//!
//! Requests are routed through the contract's endpoint table ([`gust_api::Endpoint`]) and
//! answered with its types, so what is served here is what `docs/openapi.json` describes.

use super::{json_response, Admin, MAX_INVOKE_PAYLOAD};
use crate::codes::ErrorCode;
use crate::error::{storage_failure, ApiError, Body};
use crate::routes::percent_decode;
use gust_api::{Endpoint, Miss, Route};
use gust_runtime::metric_names;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

impl Admin {
    pub(super) async fn operator_api(&self, path: &str, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        // The operator token, or the web console's session cookie (`console.rs`).
        if !self.is_operator(req.headers()) && !self.operator_session(req.method(), req.headers())? {
            self.require_operator(req.headers())?;
        }
        let method = req.method().clone();
        let route = match Endpoint::resolve(method.as_str(), path) {
            Ok(route) => route,
            Err(Miss::WrongMethod(allowed)) => {
                return Err(ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    format!("use {}", allowed.join(" or ")),
                ))
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("no admin endpoint {method} {path}"),
                ))
            }
        };
        use Endpoint as E;
        match route.endpoint {
            E::Metrics => Ok(self.metrics().await),
            E::ListFunctions => Ok(self.functions()),
            E::GetFunction => self.function_detail(&percent_decode(route.param("name"))),
            E::GetStatus => Ok(json_response(StatusCode::OK, self.status().await)),
            E::CreateConsoleCode => Ok(json_response(StatusCode::CREATED, self.console_code())),
            E::StreamLogs => self.log_stream(&req),
            E::ListAccessKeys | E::CreateAccessKey | E::RemoveAccessKey => self.access_keys_api(&route).await,
            E::ListApiKeys | E::CreateApiKey | E::RemoveApiKey => self.apikeys_api(&route, req).await,
            E::ListSecrets | E::SetSecret | E::RemoveSecret | E::RotateMasterKey => self.secrets_api(&route, req).await,
            E::ListInvocations
            | E::ListLogs
            | E::GetTrace
            | E::GetUsage
            | E::GetSeries
            | E::GetStats
            | E::GetSubscriptionSeries => self.telemetry_api(&route, &req).await,
            E::ListSchedules | E::RunSchedule => self.schedules_api(&route).await,
            E::Redeploy | E::Rollback | E::ListDeployments => self.deployments_api(&route, &req).await,
            E::Publish
            | E::ListSubscriptions
            | E::ListDeadLetters
            | E::GetDeadLetter
            | E::RedriveDeadLetters
            | E::PurgeDeadLetters => self.events_api(&route, req).await,
            // Other faces' endpoints: `face_of` never sends them here.
            E::Invoke
            | E::LambdaListFunctions
            | E::LambdaGetFunction
            | E::LambdaGetFunctionConfiguration
            | E::LambdaGetAccountSettings
            | E::Health
            | E::OpenApi => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no admin endpoint {method} {path}"),
            )),
        }
    }

    /// `GET /gust/v1/access-keys` (ids only), `POST` (a new key; its secret is in this answer
    /// only), `DELETE /gust/v1/access-keys/{id}`.
    async fn access_keys_api(&self, route: &Route) -> Result<Response<Body>, ApiError> {
        let keys = self.access_keys.clone().ok_or_else(|| {
            ApiError::new(
                ErrorCode::AccessKeysDisabled,
                "access keys are not enabled on this Gust",
            )
        })?;
        let blocking = |f: Box<dyn FnOnce() -> Result<Response<Body>, ApiError> + Send>| async move {
            tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| storage_failure(&e, "the access key store"))?
        };
        match route.endpoint {
            Endpoint::ListAccessKeys => {
                blocking(Box::new(move || {
                    let list = keys.list().map_err(|e| storage_failure(&e, "the access key store"))?;
                    let access_keys = list
                        .iter()
                        .map(|k| {
                            let created: chrono::DateTime<chrono::Utc> = k.created_at.into();
                            gust_api::AccessKey {
                                access_key_id: k.id.clone(),
                                created_at: created.to_rfc3339(),
                            }
                        })
                        .collect();
                    Ok(json_response(StatusCode::OK, gust_api::AccessKeyList { access_keys }))
                }))
                .await
            }
            Endpoint::CreateAccessKey => {
                blocking(Box::new(move || {
                    let key = keys.create().map_err(|e| storage_failure(&e, "the access key store"))?;
                    tracing::info!(access_key_id = %key.id, "access key created");
                    Ok(json_response(
                        StatusCode::CREATED,
                        gust_api::NewAccessKey {
                            access_key_id: key.id.clone(),
                            secret_access_key: key.secret.as_str().to_string(),
                        },
                    ))
                }))
                .await
            }
            _ => {
                let id = percent_decode(route.param("id"));
                blocking(Box::new(move || {
                    if keys
                        .remove(&id)
                        .map_err(|e| storage_failure(&e, "the access key store"))?
                    {
                        tracing::info!(access_key_id = %id, "access key removed");
                        Ok(json_response(StatusCode::OK, gust_api::Removed { removed: id }))
                    } else {
                        Err(ApiError::new(
                            ErrorCode::AccessKeyNotFound,
                            format!("no access key `{id}`"),
                        ))
                    }
                }))
                .await
            }
        }
    }

    async fn apikeys_api(&self, route: &Route, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let store = self
            .api_keys
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::ApiKeysDisabled, "API keys are not enabled on this Gust"))?;
        let fail = |e: String| storage_failure(&e, "the API key store");
        match route.endpoint {
            Endpoint::ListApiKeys => {
                let list = crate::apikeys::list(self.kv.as_ref()).await.map_err(fail)?;
                let api_keys = list
                    .iter()
                    .map(|k| gust_api::ApiKey {
                        name: k.name.clone(),
                        key_id: k.hash[..16].to_string(),
                        rate: k.rate,
                        burst: k.burst,
                        quota_per_day: k.quota_per_day,
                        managed: k.managed,
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, gust_api::ApiKeyList { api_keys }))
            }
            Endpoint::CreateApiKey => {
                let (parts, body) = req.into_parts();
                let body = crate::gateway::read_limited(&parts.headers, body, 16 * 1024).await?;
                let c: gust_api::CreateApiKey = serde_json::from_slice(&body).map_err(|e| {
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
                    Some(api_key) => Ok(json_response(
                        StatusCode::CREATED,
                        gust_api::NewApiKey { name: c.name, api_key },
                    )),
                    None => Err(ApiError::new(
                        ErrorCode::ApiKeyExists,
                        format!("an API key named `{}` exists", c.name),
                    )),
                }
            }
            _ => {
                let n = percent_decode(route.param("name"));
                if crate::apikeys::remove(self.kv.as_ref(), store, &n)
                    .await
                    .map_err(fail)?
                {
                    Ok(json_response(StatusCode::OK, gust_api::Removed { removed: n }))
                } else {
                    Err(ApiError::new(
                        ErrorCode::ApiKeyNotFound,
                        format!("no API key named `{n}`"),
                    ))
                }
            }
        }
    }

    /// Operators manage secrets (values never come back; a function reads a granted one through
    /// the platform API). Errors never contain a value.
    async fn secrets_api(&self, route: &Route, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let secrets = self
            .secrets
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::SecretsDisabled, "secrets are not enabled on this Gust"))?;
        let fail = |e: String| ApiError::new(ErrorCode::SecretError, e);
        match route.endpoint {
            Endpoint::ListSecrets => Ok(json_response(StatusCode::OK, secrets.list().map_err(fail)?)),
            Endpoint::RotateMasterKey => Ok(json_response(StatusCode::OK, secrets.rotate_master().map_err(fail)?)),
            Endpoint::SetSecret => {
                let name = percent_decode(route.param("name"));
                let (parts, body) = req.into_parts();
                let value = crate::gateway::read_limited(&parts.headers, body, 64 * 1024).await?;
                Ok(json_response(StatusCode::OK, secrets.set(&name, &value).map_err(fail)?))
            }
            _ => {
                let name = percent_decode(route.param("name"));
                if secrets.remove(&name).map_err(fail)? {
                    Ok(json_response(StatusCode::OK, gust_api::Removed { removed: name }))
                } else {
                    Err(ApiError::new(
                        ErrorCode::SecretNotFound,
                        format!("secret `{name}` is not set"),
                    ))
                }
            }
        }
    }

    async fn telemetry_api(&self, route: &Route, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
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
        match route.endpoint {
            Endpoint::ListInvocations => {
                let limit = num("limit")?.unwrap_or(50).clamp(1, 10_000) as usize;
                let one_of = |name: &str, known: &[&str]| -> Result<Option<String>, ApiError> {
                    match param(name) {
                        Some(v) if !known.contains(&v.as_str()) => Err(ApiError::new(
                            ErrorCode::InvalidParameter,
                            format!("{name} `{v}` is not one of {}", known.join(", ")),
                        )),
                        v => Ok(v),
                    }
                };
                let q = gust_store::InvocationQuery {
                    function: param("function"),
                    outcome: one_of("outcome", OUTCOMES)?,
                    trigger: one_of("trigger", TRIGGERS)?,
                    cold: one_of("cold", &["true", "false"])?.map(|v| v == "true"),
                    since_ms: num("since_ms")?,
                    until_ms: num("until_ms")?,
                    limit,
                };
                let list = db.invocations_where(q).await.map_err(fail)?;
                let invocations = list
                    .into_iter()
                    .map(|r| gust_api::Invocation {
                        request_id: r.request_id,
                        function: r.function,
                        trigger: r.trigger,
                        start_ms: r.start_ms,
                        duration_ms: r.duration_us as f64 / 1000.0,
                        billed_ms: r.billed_ms,
                        memory_mb: r.memory_mb,
                        cold_start: r.cold_start,
                        init_ms: r.init_us.map(|v| v as f64 / 1000.0),
                        outcome: r.outcome,
                        error_type: r.error_type,
                        trace_id: r.trace_id,
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, gust_api::InvocationList { invocations }))
            }
            Endpoint::ListLogs => {
                let q = gust_store::LogQuery {
                    function: param("function"),
                    since_ms: num("since_ms")?,
                    request_id: param("request"),
                    trace_id: param("trace"),
                    after_id: num("after")?,
                    limit: num("limit")?.unwrap_or(1000).clamp(1, 10_000) as usize,
                };
                let rows = db.logs(q).await.map_err(fail)?;
                let lines = rows
                    .into_iter()
                    .map(|l| gust_api::LogLine {
                        id: l.id,
                        ts_ms: l.ts_ms,
                        function: l.function,
                        request_id: l.request_id,
                        stream: l.stream,
                        line: l.line,
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, gust_api::LogLines { lines }))
            }
            Endpoint::GetTrace => {
                let id = percent_decode(route.param("trace_id"));
                let spans = db.trace(id.clone()).await.map_err(fail)?;
                if spans.is_empty() {
                    return Err(ApiError::new(
                        ErrorCode::TraceNotFound,
                        format!("no spans recorded for trace `{id}`"),
                    ));
                }
                let spans = spans
                    .into_iter()
                    .map(|s| gust_api::Span {
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_id: s.parent_id,
                        name: s.name,
                        kind: s.kind,
                        start_us: s.start_us,
                        duration_us: s.duration_us,
                        error: s.error,
                        attributes: s.attributes.into_iter().collect(),
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, gust_api::Trace { trace_id: id, spans }))
            }
            Endpoint::GetSeries | Endpoint::GetStats | Endpoint::GetSubscriptionSeries => {
                let now = chrono::Utc::now().timestamp_millis();
                let since = num("since_ms")?.unwrap_or(now - 3_600_000);
                let ms = |us: Option<u64>| us.map(|v| v as f64 / 1000.0);
                if route.endpoint == Endpoint::GetStats {
                    let stats = db.stats(since).await.map_err(fail)?;
                    let functions = stats
                        .into_iter()
                        .map(|s| gust_api::FunctionStats {
                            function: s.function,
                            requests: s.requests,
                            errors: s.errors,
                            cold_starts: s.cold_starts,
                            p50_ms: ms(s.p50_us),
                            p99_ms: ms(s.p99_us),
                            billed_mb_ms: s.billed_mb_ms,
                        })
                        .collect();
                    return Ok(json_response(
                        StatusCode::OK,
                        gust_api::StatsReport {
                            since_ms: since,
                            functions,
                        },
                    ));
                }
                let until = num("until_ms")?.unwrap_or(now);
                let step_s = num("step_s")?.unwrap_or(60);
                let step_ms = step_s.saturating_mul(1000);
                // The store's own rule for a series' range, step and size, checked before any read.
                gust_store::check_series(since, until, step_ms)
                    .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e))?;
                if route.endpoint == Endpoint::GetSubscriptionSeries {
                    let sub = percent_decode(route.param("name"));
                    if !self.events()?.knows_subscription(&sub) {
                        return Err(ApiError::new(
                            ErrorCode::SubscriptionNotFound,
                            format!("subscription `{sub}` does not exist"),
                        ));
                    }
                    let points = db
                        .backlog_series(sub.clone(), since, until, step_ms)
                        .await
                        .map_err(fail)?
                        .into_iter()
                        .map(|p| gust_api::BacklogPoint {
                            t_ms: p.t_ms,
                            backlog: p.backlog,
                            oldest_age_s: p.oldest_age_ms.map(|v| v as f64 / 1000.0),
                            dead_letters: p.dead_letters,
                        })
                        .collect();
                    return Ok(json_response(
                        StatusCode::OK,
                        gust_api::BacklogSeries {
                            subscription: sub,
                            step_s: step_s as u64,
                            points,
                        },
                    ));
                }
                let function = param("function");
                let points = db
                    .series(function.clone(), since, until, step_s * 1000)
                    .await
                    .map_err(fail)?;
                let points = points
                    .into_iter()
                    .map(|p| gust_api::SeriesPoint {
                        t_ms: p.t_ms,
                        requests: p.requests,
                        errors: p.errors,
                        cold_starts: p.cold_starts,
                        p50_ms: ms(p.p50_us),
                        p99_ms: ms(p.p99_us),
                        billed_mb_ms: p.billed_mb_ms,
                    })
                    .collect();
                Ok(json_response(
                    StatusCode::OK,
                    gust_api::Series {
                        function,
                        step_s: step_s as u64,
                        points,
                    },
                ))
            }
            _ => {
                let since = num("since_ms")?.unwrap_or(0);
                let usage = db.usage(since).await.map_err(fail)?;
                let usage = usage
                    .into_iter()
                    .map(|u| gust_api::FunctionUsage {
                        function: u.function,
                        requests: u.requests,
                        billed_mb_ms: u.billed_mb_ms,
                        cold_starts: u.cold_starts,
                        errors: u.errors,
                    })
                    .collect();
                Ok(json_response(
                    StatusCode::OK,
                    gust_api::UsageReport { since_ms: since, usage },
                ))
            }
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
            .body(Body::from(m.render()))
            .expect("static response parts are valid")
    }

    async fn deployments_api(&self, route: &Route, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let deployer = self
            .deployer
            .get()
            .ok_or_else(|| ApiError::new(ErrorCode::DeploymentsDisabled, "this Gust does not redeploy"))?;
        let done = match route.endpoint {
            Endpoint::ListDeployments => return Ok(json_response(StatusCode::OK, deployer.list().await)),
            Endpoint::Rollback => {
                let to = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|p| p.strip_prefix("to="))
                    .map(|v| {
                        v.parse::<u64>().map_err(|_| {
                            ApiError::new(
                                ErrorCode::InvalidParameter,
                                format!("`to` must be a version number (got `{v}`)"),
                            )
                        })
                    })
                    .transpose()?;
                deployer.rollback(to).await
            }
            _ => deployer.redeploy().await,
        };
        match done {
            Ok(d) => Ok(json_response(StatusCode::OK, d)),
            Err(super::DeployApiError::Refused(why)) => Err(ApiError::new(ErrorCode::DeployRefused, why)),
            Err(super::DeployApiError::NoSuchVersion(why)) => Err(ApiError::new(ErrorCode::DeploymentNotFound, why)),
            Err(super::DeployApiError::ShuttingDown) => {
                Err(ApiError::new(ErrorCode::ShuttingDown, "Gust is shutting down"))
            }
        }
    }

    async fn schedules_api(&self, route: &Route) -> Result<Response<Body>, ApiError> {
        let schedules = self
            .schedules
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::SchedulesDisabled, "schedules are not enabled on this Gust"))?;
        match route.endpoint {
            Endpoint::ListSchedules => Ok(json_response(StatusCode::OK, schedules.list().await)),
            _ => match schedules.run(&percent_decode(route.param("name"))).await {
                Ok(v) => Ok(json_response(StatusCode::ACCEPTED, v)),
                Err(super::ScheduleRunError::NotFound(e)) => Err(ApiError::new(ErrorCode::ScheduleNotFound, e)),
                Err(super::ScheduleRunError::Ambiguous(e)) => Err(ApiError::new(ErrorCode::ScheduleAmbiguous, e)),
                Err(super::ScheduleRunError::Failed(e)) => {
                    tracing::error!(error = %e, "queueing a schedule run failed");
                    Err(ApiError::new(ErrorCode::StorageError, "the run could not be queued"))
                }
            },
        }
    }

    async fn events_api(&self, route: &Route, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
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
        match route.endpoint {
            Endpoint::Publish => {
                let body = crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await?;
                let topic = percent_decode(route.param("topic"));
                crate::publish::publish(events, &topic, &parts.headers, &body).await
            }
            Endpoint::ListSubscriptions => {
                let mut subscriptions = Vec::new();
                let dead = events.log().dlq_list(None).await?;
                for s in events.subscriptions() {
                    let backlog = events.log().backlog(s.name.as_str()).await?;
                    let dlq = dead.iter().filter(|d| d.subscription == s.name.as_str()).count();
                    subscriptions.push(gust_api::Subscription {
                        name: s.name.to_string(),
                        topic: s.topic.to_string(),
                        function: s.function.to_string(),
                        backlog,
                        dead_letters: dlq as u64,
                        batch_size: s.batch_size,
                        max_attempts: s.max_attempts,
                        max_event_age_s: s.max_event_age.as_secs(),
                        source: events.source_status(s.name.as_str()).map(|st| {
                            let now = st.state();
                            gust_api::SubscriptionSource {
                                kind: st.kind.to_string(),
                                url: st.url.clone(),
                                address: st.address.clone(),
                                guarantee: if st.at_least_once {
                                    "at-least-once"
                                } else {
                                    "at-most-once"
                                }
                                .into(),
                                state: now.state.to_string(),
                                since: chrono::DateTime::from_timestamp_millis(now.since_ms)
                                    .unwrap_or_default()
                                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                                last_error: now.last_error,
                                lag: now.lag,
                            }
                        }),
                    });
                }
                Ok(json_response(
                    StatusCode::OK,
                    gust_api::SubscriptionList { subscriptions },
                ))
            }
            Endpoint::ListDeadLetters => {
                let sub = param("subscription");
                let list = events.log().dlq_list(sub.as_deref()).await?;
                Ok(json_response(
                    StatusCode::OK,
                    gust_api::DeadLetterList {
                        dead_letters: list.iter().map(dead_letter).collect(),
                    },
                ))
            }
            Endpoint::GetDeadLetter => {
                let (sub, seq) = (percent_decode(route.param("subscription")), route.param("seq"));
                let seq: i64 = seq
                    .parse()
                    .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "seq must be a number"))?;
                let list = events.log().dlq_list(Some(&sub)).await?;
                let d = list.iter().find(|d| d.seq == seq).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::DeadLetterNotFound,
                        format!("no dead letter {seq} in `{sub}`"),
                    )
                })?;
                Ok(json_response(StatusCode::OK, dead_letter(d)))
            }
            Endpoint::RedriveDeadLetters => {
                let sub = percent_decode(route.param("subscription"));
                if !events.knows_subscription(&sub) {
                    return Err(ApiError::new(
                        ErrorCode::SubscriptionNotFound,
                        format!("subscription `{sub}` does not exist"),
                    ));
                }
                let seqs = seqs(param("seq"))?;
                let n = events.redrive(&sub, seqs.as_deref()).await?;
                Ok(json_response(StatusCode::OK, gust_api::Redriven { redriven: n as u64 }))
            }
            _ => {
                let sub = percent_decode(route.param("subscription"));
                let seqs = seqs(param("seq"))?;
                let n = events.log().dlq_purge(&sub, seqs.as_deref()).await?;
                Ok(json_response(StatusCode::OK, gust_api::Purged { purged: n as u64 }))
            }
        }
    }

    fn functions(&self) -> Response<Body> {
        let functions = self
            .invoker
            .function_names()
            .into_iter()
            .filter_map(|name| {
                let spec = self.invoker.spec(&name)?;
                let stats = self.invoker.pool_stats(&name)?;
                Some(gust_api::Function {
                    runtime: spec.runtime.clone(),
                    handler: spec.handler.clone(),
                    memory_mb: spec.memory_mb,
                    timeout_ms: spec.timeout.as_millis() as u64,
                    instances: gust_api::Instances {
                        total: stats.total,
                        idle: stats.idle,
                        waiting: stats.waiting,
                    },
                    name,
                })
            })
            .collect();
        json_response(StatusCode::OK, gust_api::FunctionList { functions })
    }
}

/// Invocation outcomes as recorded (`docs/observability.md`).
const OUTCOMES: &[&str] = &[
    "success",
    "error",
    "timeout",
    "crash",
    "out_of_memory",
    "init_error",
    "too_large",
    "platform_error",
];
/// Invocation triggers as recorded.
const TRIGGERS: &[&str] = &["http", "event", "schedule", "direct", "async", "authorizer"];

fn dead_letter(d: &gust_events::DeadLetter) -> gust_api::DeadLetter {
    let (data, data_base64) = d.event.data_text();
    gust_api::DeadLetter {
        subscription: d.subscription.clone(),
        seq: d.seq,
        message_id: d.message_id.clone(),
        attempts: d.attempts,
        reason: d.reason.clone(),
        last_error: d.last_error.clone(),
        failed_at: chrono::DateTime::from_timestamp_millis(d.failed_ms).map(|t| t.to_rfc3339()),
        event: gust_api::DeadLetterEvent {
            id: d.event.id.clone(),
            event_type: d.event.event_type.clone(),
            source: d.event.source.clone(),
            data,
            data_base64,
        },
    }
}
