//! The public API gateway: routes -> functions, with API Gateway payloads, limits and CORS.

use crate::codes::ErrorCode;
use crate::error::{ApiError, Body};
use crate::payload::{build_event, parse_response, RequestParts};
use crate::routes::{Lookup, RouteTable};
use crate::server::HttpHandler;
use bytes::Bytes;
use gust_model::{App, CorsSpec, RouteTarget, SpanRecord, TraceParent};
use gust_runtime::{Invocation, InvokeError, Invoker, Trigger};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// API Gateway's (and Lambda's synchronous) request payload limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

struct Routing {
    table: RouteTable,
    cors: Option<CorsSpec>,
    upstreams: std::collections::HashMap<String, Arc<crate::upstream::Upstream>>,
    /// Topics that take publishes here, with their checks; other topics are not reachable
    /// from the public gateway at all (they answer as unknown ones do).
    public_topics: std::collections::HashMap<String, gust_model::RouteAuth>,
    /// The app's region, in the ARNs Lambda authorizers' policies are checked against.
    region: String,
}

/// The gateway's authorizers: API keys (hashed, with per-key limits), JWT authorizers and
/// Lambda authorizers by name, and per-route token buckets.
#[derive(Default)]
pub struct GatewayAuth {
    pub api_keys: Option<crate::auth::ApiKeyAuthorizer>,
    pub jwt: std::collections::HashMap<String, crate::auth::JwtAuthorizer>,
    pub lambda: std::collections::HashMap<String, crate::lambda_auth::LambdaAuthorizer>,
    pub routes: crate::ratelimit::RateLimiter,
}

pub struct Gateway {
    invoker: Arc<Invoker>,
    auth: RwLock<Arc<GatewayAuth>>,
    events: Option<Arc<gust_events::Events>>,
    routing: RwLock<Arc<Routing>>,
    max_body_bytes: usize,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gateway")
    }
}

impl Gateway {
    pub fn new(invoker: Arc<Invoker>, events: Option<Arc<gust_events::Events>>, max_body_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            invoker,
            auth: RwLock::new(Arc::new(GatewayAuth::default())),
            events,
            routing: RwLock::new(Arc::new(Routing {
                table: RouteTable::default(),
                cors: None,
                upstreams: Default::default(),
                public_topics: Default::default(),
                region: gust_model::defaults::DEFAULT_REGION.into(),
            })),
            max_body_bytes,
        })
    }

    /// Sets the authorizers routes use.
    pub fn set_auth(&self, auth: GatewayAuth) {
        *self.auth.write().expect("auth lock") = Arc::new(auth);
    }

    /// Route checks, in order: the route's rate limit, its API key, its JWT (and its scopes).
    /// A refusal never says which part of a credential was wrong (the reason goes to the log).
    /// Returns a JWT's `requestContext.authorizer` in payload 2.0's shape. The Lambda
    /// authorizer, which needs the whole request, is [`Gateway::lambda_authorize`].
    fn authorize(
        &self,
        route_key: &str,
        auth: &gust_model::RouteAuth,
        headers: &HeaderMap,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let gate = self.auth.read().expect("auth lock").clone();
        if let Some(rps) = auth.rate_limit {
            let limit = crate::ratelimit::RateLimit::new(rps, auth.burst.unwrap_or(rps.ceil().max(1.0) as u32));
            if let crate::ratelimit::Decision::Limited { retry_after } = gate.routes.check_now(route_key, limit) {
                return Err(
                    ApiError::new(ErrorCode::TooManyRequests, "this route's rate limit is exceeded")
                        .retry_after(retry_after),
                );
            }
        }
        let logged = |e: crate::auth::AuthError| {
            tracing::info!(route = route_key, reason = %e.reason(), "request refused by the gateway");
            ApiError::from(e)
        };
        if auth.api_key {
            let keys = gate.api_keys.as_ref().ok_or_else(|| {
                logged(crate::auth::AuthError::unauthorized(
                    crate::auth::AuthFailure::MissingCredentials,
                ))
            })?;
            keys.check_api_key(headers).map_err(logged)?;
        }
        match &auth.jwt {
            Some(name) => {
                let jwt = gate.jwt.get(name.as_str()).ok_or_else(|| {
                    tracing::error!(authorizer = %name, "authorizer not loaded");
                    ApiError::new(
                        ErrorCode::AuthorizerUnavailable,
                        "the route's authorizer is not available",
                    )
                })?;
                let identity = jwt.authorize(headers).map_err(logged)?;
                identity.require_any_scope(&auth.scopes).map_err(logged)?;
                Ok(Some(identity.authorizer_context()))
            }
            None => Ok(None),
        }
    }

    /// The route's Lambda authorizer: `Ok(Some(requestContext.authorizer))` on an Allow, in
    /// the route's payload shape.
    async fn lambda_authorize(
        &self,
        name: &gust_model::FunctionName,
        parts: &RequestParts<'_>,
        payload: gust_model::PayloadFormat,
        region: &str,
        trace: &TraceParent,
    ) -> Result<serde_json::Value, ApiError> {
        let gate = self.auth.read().expect("auth lock").clone();
        let authorizer = gate.lambda.get(name.as_str()).ok_or_else(|| {
            tracing::error!(authorizer = %name, "Lambda authorizer not loaded");
            ApiError::new(
                ErrorCode::AuthorizerUnavailable,
                "the route's authorizer is not available",
            )
        })?;
        let arn = crate::lambda_auth::event::request_arn(region, parts.method, parts.raw_path);
        match authorizer.authorize(&self.invoker, parts, &arn, trace).await {
            Ok(allowed) => {
                tracing::debug!(authorizer = %name, cached = allowed.cached, "Lambda authorizer allowed");
                Ok(allowed.request_context(payload))
            }
            Err(refused) => {
                tracing::info!(route = parts.route_key, authorizer = %name, reason = %refused.error.reason(), "request refused by the gateway");
                Err(crate::lambda_auth::refusal(&refused))
            }
        }
    }

    /// Replaces the route table with `app`'s routes, proxying to these upstreams.
    pub fn deploy(&self, app: &App, upstreams: &[Arc<crate::upstream::Upstream>]) {
        let routing = Routing {
            table: RouteTable::new(&app.routes),
            cors: app.cors.clone(),
            upstreams: upstreams
                .iter()
                .map(|u| (u.spec().name.to_string(), u.clone()))
                .collect(),
            public_topics: app
                .public_topics
                .iter()
                .map(|(t, auth)| (t.to_string(), auth.clone()))
                .collect(),
            region: app.region.clone(),
        };
        *self.routing.write().expect("routing lock") = Arc::new(routing);
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        request_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let routing = self.routing.read().expect("routing lock").clone();
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let origin = req.headers().get(http::header::ORIGIN).cloned();

        if let (Some(cors), Some(origin)) = (&routing.cors, &origin) {
            if req.method() == Method::OPTIONS
                && req.headers().contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            {
                return Ok(preflight(cors, origin));
            }
        }

        let mut lookup = routing.table.lookup(&method, &path);
        // HEAD is answered by the GET route of the path, without the body (`handle`).
        if method == "HEAD" && !matches!(lookup, Lookup::Found(_)) {
            if let found @ Lookup::Found(_) = routing.table.lookup("GET", &path) {
                lookup = found;
            }
        }
        // `POST /events/{topic}` publishes to a public topic, unless an app route claims that
        // path. A topic that is not public answers as an unknown one: the gateway does not
        // tell outsiders which internal topics exist.
        if !matches!(lookup, Lookup::Found(_)) && method == "POST" {
            if let (Some(events), Some(topic)) = (&self.events, path.strip_prefix("/events/")) {
                if !topic.is_empty() && !topic.contains('/') {
                    let topic = crate::routes::percent_decode(topic);
                    let Some(auth) = routing.public_topics.get(topic.as_str()) else {
                        tracing::info!(topic = %topic, "gateway publish refused: the topic is not public");
                        return Err(ApiError::new(
                            ErrorCode::TopicNotFound,
                            format!(
                                "no public topic `{topic}` (a topic takes publishes here only with `public = true`)"
                            ),
                        ));
                    };
                    self.authorize(&format!("POST /events/{topic}"), auth, req.headers())?;
                    let (parts, body) = req.into_parts();
                    let body = read_limited(&parts.headers, body, self.max_body_bytes).await?;
                    return crate::publish::publish(events, &topic, &parts.headers, &body).await;
                }
            }
        }
        let m = match lookup {
            Lookup::Found(m) => m,
            Lookup::NotFound => {
                return Err(ApiError::new(
                    ErrorCode::RouteNotFound,
                    format!("no route matches {method} {path}"),
                ))
            }
            Lookup::MethodNotAllowed(allowed) => {
                let mut resp = ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    format!("{method} is not allowed on {path}"),
                )
                .into_response(request_id);
                let mut allow: Vec<String> = allowed.iter().filter(|m| *m != "*").cloned().collect();
                if allow.iter().any(|m| m == "GET") && !allow.iter().any(|m| m == "HEAD") {
                    allow.push("HEAD".into());
                }
                let allow = allow.join(", ");
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    resp.headers_mut().insert(http::header::ALLOW, v);
                }
                return Ok(resp);
            }
        };
        // Trace: the caller's context (or a new trace) -> this gateway span -> the target.
        let incoming = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        let server = incoming
            .as_ref()
            .map(TraceParent::child)
            .unwrap_or_else(TraceParent::new_root);
        let started_us = chrono::Utc::now().timestamp_micros();
        let payload = match &m.route.target {
            RouteTarget::Function { payload, .. } => *payload,
            RouteTarget::Upstream { .. } => gust_model::PayloadFormat::V2,
        };
        // Gateway checks first: rate limits, API key, JWT (401/403/429 before any work), then
        // the Lambda authorizer (before the body is read: API Gateway does not send it).
        let mut claims = self.authorize(&m.route.key, &m.route.auth, req.headers())?;
        if payload == gust_model::PayloadFormat::V1 {
            // REST APIs put a JWT's claims directly under `authorizer.claims`.
            claims = claims.map(|c| c.get("jwt").cloned().unwrap_or(c));
        }
        if let Some(name) = &m.route.auth.lambda {
            let host = host_of(req.headers());
            let empty = Bytes::new();
            let parts = RequestParts {
                method: req.method().as_str(),
                raw_path: req.uri().path(),
                raw_query: req.uri().query().unwrap_or(""),
                headers: req.headers(),
                body: &empty,
                route_key: &m.route.key,
                resource: &m.route.resource,
                path_params: &m.params,
                request_id,
                remote,
                host: &host,
                time_epoch_ms: chrono::Utc::now().timestamp_millis(),
                authorizer: None,
                header_case: req.extensions().get(),
            };
            claims = Some(
                self.lambda_authorize(name, &parts, payload, &routing.region, &server)
                    .await?,
            );
        }

        let (parts, body) = req.into_parts();
        let body = read_limited(&parts.headers, body, self.max_body_bytes).await?;
        let call = Call {
            parts: &parts,
            body: &body,
            remote,
            request_id,
            server: &server,
            claims,
        };
        let result = match &m.route.target {
            RouteTarget::Function { function, payload } => self.call_function(&m, function, *payload, call).await,
            RouteTarget::Upstream {
                upstream,
                strip_prefix,
                add_prefix,
            } => {
                self.call_upstream(&routing, upstream, strip_prefix.as_deref(), add_prefix.as_deref(), call)
                    .await
            }
        };
        let result = result.map(|mut resp| {
            if let (Some(cors), Some(origin)) = (&routing.cors, &origin) {
                cors_headers(cors, origin, resp.headers_mut());
            }
            resp
        });
        let status = match &result {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.status().as_u16(),
        };
        self.invoker.telemetry().span(SpanRecord {
            trace_id: server.trace_id.clone(),
            span_id: server.span_id.clone(),
            parent_id: incoming.map(|t| t.span_id),
            name: format!(
                "{method} {}",
                m.route.key.split_once(' ').map_or(m.route.key.as_str(), |(_, p)| p)
            ),
            kind: "server".into(),
            start_us: started_us,
            duration_us: (chrono::Utc::now().timestamp_micros() - started_us).max(0) as u64,
            error: status >= 500,
            attributes: vec![
                ("http.request.method".into(), method.clone()),
                ("http.route".into(), m.route.key.clone()),
                ("url.path".into(), path.clone()),
                ("http.response.status_code".into(), status.to_string()),
                ("gust.request_id".into(), request_id.to_string()),
            ],
        });
        let mut resp = result?;
        if let Ok(v) = HeaderValue::from_str(&server.trace_id) {
            resp.headers_mut().insert("x-gust-trace-id", v);
        }
        Ok(resp)
    }

    async fn call_function(
        &self,
        m: &crate::routes::RouteMatch<'_>,
        function: &gust_model::FunctionName,
        payload: gust_model::PayloadFormat,
        c: Call<'_>,
    ) -> Result<Response<Body>, ApiError> {
        let host = host_of(&c.parts.headers);
        let invocation = c.server.child();
        let mut headers = c.parts.headers.clone();
        if let Ok(v) = HeaderValue::from_str(&invocation.to_string()) {
            headers.insert("traceparent", v);
        }
        let event = build_event(
            payload,
            &RequestParts {
                method: c.parts.method.as_str(),
                raw_path: c.parts.uri.path(),
                raw_query: c.parts.uri.query().unwrap_or(""),
                headers: &headers,
                body: c.body,
                route_key: &m.route.key,
                resource: &m.route.resource,
                path_params: &m.params,
                request_id: c.request_id,
                remote: c.remote,
                host: &host,
                time_epoch_ms: chrono::Utc::now().timestamp_millis(),
                authorizer: c.claims.as_ref(),
                header_case: c.parts.extensions.get(),
            },
        );
        let mut inv = Invocation::new(function.as_str(), event, Trigger::Http);
        inv.request_id = Some(c.request_id.to_string());
        inv.trace = Some(invocation);
        inv.parent_span = Some(c.server.span_id.clone());
        let out = self.invoker.invoke(inv).await.map_err(|e| match e {
            // Why a function could not start is for its operators (the function's log has the
            // error, `gust logs`), not for whoever called the route.
            InvokeError::InitFailed { .. } => {
                tracing::warn!(function = %function, request_id = c.request_id, error = %e, "init failed -> 502");
                ApiError::new(
                    ErrorCode::FunctionInitError,
                    "the function could not start; its log has the details under this request id",
                )
            }
            e => ApiError::from(e),
        })?;
        if let Some(error_type) = &out.function_error {
            tracing::debug!(function = %function, request_id = c.request_id, error_type, "handler error -> 502");
            return Err(ApiError::new(
                ErrorCode::FunctionError,
                format!("the function `{function}` failed: {error_type}"),
            ));
        }
        let answer = parse_response(payload, &out.payload)
            .map_err(|e| ApiError::new(ErrorCode::BadFunctionResponse, e.to_string()))?;
        let mut resp = Response::builder()
            .status(answer.status)
            .body(Body::from(answer.body))
            .expect("status and body are valid");
        *resp.headers_mut() = answer.headers;
        Ok(resp)
    }

    async fn call_upstream(
        &self,
        routing: &Routing,
        upstream: &gust_model::FunctionName,
        strip: Option<&str>,
        add: Option<&str>,
        c: Call<'_>,
    ) -> Result<Response<Body>, ApiError> {
        let up = routing.upstreams.get(upstream.as_str()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UpstreamUnavailable,
                format!("upstream `{upstream}` is not running"),
            )
        })?;
        let mut path = crate::upstream::rewrite_path(c.parts.uri.path(), strip, add);
        if let Some(q) = c.parts.uri.query() {
            path = format!("{path}?{q}");
        }
        let client = c.server.child();
        let started_us = chrono::Utc::now().timestamp_micros();
        let result = up
            .forward(crate::upstream::ForwardRequest {
                method: c.parts.method.clone(),
                path_and_query: path.clone(),
                headers: c.parts.headers.clone(),
                body: c.body.clone(),
                remote: c.remote,
                request_id: c.request_id,
                traceparent: client.to_string(),
                deadline: None,
            })
            .await;
        self.invoker.telemetry().span(SpanRecord {
            trace_id: client.trace_id.clone(),
            span_id: client.span_id.clone(),
            parent_id: Some(c.server.span_id.clone()),
            name: format!("proxy {upstream}"),
            kind: "client".into(),
            start_us: started_us,
            duration_us: (chrono::Utc::now().timestamp_micros() - started_us).max(0) as u64,
            error: !matches!(&result, Ok(r) if !r.status().is_server_error()),
            attributes: vec![
                ("gust.upstream".into(), upstream.to_string()),
                ("url.path".into(), path),
            ],
        });
        result
    }
}

/// The `Host` header without its port (`localhost` when there is none).
fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_string())
        .unwrap_or_else(|| "localhost".into())
}

/// One request on its way to a function or an upstream.
struct Call<'a> {
    parts: &'a http::request::Parts,
    body: &'a Bytes,
    remote: SocketAddr,
    request_id: &'a str,
    server: &'a TraceParent,
    claims: Option<serde_json::Value>,
}

/// Reads a body up to `limit` bytes: 413 from `Content-Length` before reading, or as soon as
/// a streamed body passes the limit; 408 past the connection's body-read timeout.
pub(crate) async fn read_limited(headers: &HeaderMap, body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body exceeds the {limit} byte limit"),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match crate::server::read_body_in_time(Limited::new(body, limit).collect()).await? {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("could not read the request body: {e}"),
        )),
    }
}

fn origin_allowed(cors: &CorsSpec, origin: &HeaderValue) -> Option<HeaderValue> {
    if cors.allow_origins.iter().any(|o| o == "*") && !cors.allow_credentials {
        return Some(HeaderValue::from_static("*"));
    }
    let o = origin.to_str().ok()?;
    cors.allow_origins
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
        .then(|| origin.clone())
}

fn cors_headers(cors: &CorsSpec, origin: &HeaderValue, h: &mut HeaderMap) {
    let Some(allowed) = origin_allowed(cors, origin) else {
        return;
    };
    h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    h.append(http::header::VARY, HeaderValue::from_static("Origin"));
    if cors.allow_credentials {
        h.insert(
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !cors.expose_headers.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(", ")) {
            h.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
}

fn preflight(cors: &CorsSpec, origin: &HeaderValue) -> Response<Body> {
    let mut resp = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("static response parts are valid");
    if origin_allowed(cors, origin).is_none() {
        return resp;
    }
    let h = resp.headers_mut();
    cors_headers(cors, origin, h);
    let methods = if cors.allow_methods.iter().any(|m| m == "*") {
        "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS".to_string()
    } else {
        cors.allow_methods.join(", ")
    };
    for (name, value) in [
        (http::header::ACCESS_CONTROL_ALLOW_METHODS, methods),
        (
            http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            cors.allow_headers.join(", "),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Some(age) = cors.max_age_secs {
        h.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    resp
}

impl HttpHandler for Gateway {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let head = req.method() == Method::HEAD;
        let mut resp = match self.route(req, remote, &request_id).await {
            Ok(r) => r,
            Err(e) => e.into_response(&request_id),
        };
        if head {
            // The headers GET would have, no body; `Content-Length` says what GET would send.
            let len = hyper::body::Body::size_hint(resp.body()).exact();
            *resp.body_mut() = Body::default();
            if let Some(len) = len.filter(|_| !resp.headers().contains_key(http::header::CONTENT_LENGTH)) {
                resp.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("apigw-requestid", v);
        }
        resp
    }
}
