//! The platform API face: what a function reaches through `GUST_API` with its own
//! `GUST_TOKEN` (bearer, or in the path of a `GUST_SERVICE_<NAME>_URL`). Everything is scoped
//! to the caller: its app's key-value namespace and blobs, the app's topics, and only the
//! services, functions and secrets its manifest grants. No operator action is reachable here,
//! and the operator token is not a function's token (`403 FunctionOnly`).

use super::{bytes_response, empty, json_response, trace_of, Admin, KV_PREFIX, MAX_INVOKE_PAYLOAD};
use crate::codes::ErrorCode;
use crate::error::{ApiError, Body};
use crate::routes::percent_decode;
use bytes::Bytes;
use gust_runtime::{Invocation, PlatformApi, Trigger};
use gust_store::{Precondition, PutOutcome, MAX_BLOB_BYTES, MAX_VALUE_BYTES};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::net::SocketAddr;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "unknown platform API path")
}

impl Admin {
    /// Refuses (403) a caller whose manifest does not grant `name` in the list `granted` picks.
    fn require_grant<T: AsRef<str>>(
        &self,
        caller: &PlatformApi,
        name: &str,
        granted: impl Fn(&gust_model::FunctionSpec) -> &Vec<T>,
        what: &str,
    ) -> Result<(), ApiError> {
        let spec = self.invoker.spec(&caller.function);
        if spec
            .as_deref()
            .is_some_and(|s| granted(s).iter().any(|g| g.as_ref() == name))
        {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("`{}` is not granted {what} `{name}`", caller.function),
        ))
    }

    pub(super) async fn platform_api(
        &self,
        path: &str,
        req: Request<Incoming>,
        remote: SocketAddr,
        request_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        // Service discovery URLs carry the token in the path, so any HTTP client works.
        if let Some(rest) = path.strip_prefix("/gust/v1/fn/") {
            let (token, rest) = rest.split_once('/').unwrap_or((rest, ""));
            let caller = self
                .invoker
                .caller_for_token(token)
                .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "a valid GUST_TOKEN is required"))?;
            return match rest.strip_prefix("services/") {
                Some(svc) => self.service_proxy(caller, svc, req, remote, request_id).await,
                None => Err(not_found()),
            };
        }
        let caller = self.caller(req.headers())?;
        if let Some(svc) = path.strip_prefix("/gust/v1/services/") {
            return self.service_proxy(caller, svc, req, remote, request_id).await;
        }
        if let Some(name) = path
            .strip_prefix("/gust/v1/functions/")
            .and_then(|r| r.strip_suffix("/invoke"))
        {
            if req.method() != Method::POST {
                return Err(ApiError::new(ErrorCode::MethodNotAllowed, "use POST"));
            }
            return self.function_invoke(caller, name, req, request_id).await;
        }
        if let Some(rest) = path.strip_prefix(KV_PREFIX) {
            return self.kv_api(caller, rest, req).await;
        }
        if let Some(rest) = path.strip_prefix("/gust/v1/blobs") {
            return self.blobs_api(caller, rest, req).await;
        }
        if let Some(name) = path.strip_prefix("/gust/v1/secrets/") {
            return self.granted_secret(&caller, name);
        }
        if let Some(topic) = path.strip_prefix("/gust/v1/events/").filter(|t| !t.contains('/')) {
            return self.function_publish(&caller, topic, req).await;
        }
        Err(not_found())
    }

    /// A secret the caller's manifest grants (`GET /gust/v1/secrets/{name}`).
    fn granted_secret(&self, caller: &PlatformApi, name: &str) -> Result<Response<Body>, ApiError> {
        let secrets = self
            .secrets
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::SecretsDisabled, "secrets are not enabled on this Gust"))?;
        let name = percent_decode(name);
        match secrets.get_for(&caller.function, &name) {
            Ok(Some(v)) => Ok(bytes_response(v)),
            Ok(None) => Err(ApiError::new(
                ErrorCode::SecretNotFound,
                format!("secret `{name}` is not set"),
            )),
            Err(e) => Err(ApiError::new(ErrorCode::Forbidden, e)),
        }
    }

    /// A function publishing to a topic its manifest grants (`publishes`, `POST /gust/v1/events/{topic}`).
    async fn function_publish(
        &self,
        caller: &PlatformApi,
        topic: &str,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let events = self.events()?;
        let topic = percent_decode(topic);
        self.require_grant(caller, &topic, |s| &s.publishes, "to publish to")?;
        tracing::debug!(function = %caller.function, topic, "publish from a function");
        let (parts, body) = req.into_parts();
        let body = crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await?;
        crate::publish::publish(events, &topic, &parts.headers, &body).await
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
        self.require_grant(&caller, &name, |s| &s.services, "the service")?;
        let up = self
            .upstreams
            .read()
            .expect("upstreams lock")
            .get(&name)
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::ServiceNotFound, format!("no service `{name}`")))?;
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
        self.require_grant(&caller, name, |s| &s.invokes, "to invoke")?;
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
        let out = self.invoker.invoke(inv).await?;
        let mut r = Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(out.payload))
            .expect("static response parts are valid");
        if out.function_error.is_some() {
            r.headers_mut()
                .insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
        }
        Ok(r)
    }

    async fn blobs_api(
        &self,
        caller: PlatformApi,
        rest: &str,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let ns = caller.app.as_str();
        let key = percent_decode(rest.trim_start_matches('/'));
        if key.is_empty() {
            let prefix = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|p| p.strip_prefix("prefix=").map(percent_decode))
                .unwrap_or_default();
            let list = self.blobs.list(ns, &prefix).await?;
            let blobs: Vec<_> = list.iter().map(|(k, size)| json!({ "key": k, "size": size })).collect();
            return Ok(json_response(StatusCode::OK, json!({ "blobs": blobs })));
        }
        match *req.method() {
            Method::GET => match self.blobs.get(ns, &key).await? {
                Some(data) => Ok(bytes_response(data)),
                None => Err(ApiError::new(ErrorCode::BlobNotFound, format!("no blob `{key}`"))),
            },
            Method::PUT => {
                let (parts, body) = req.into_parts();
                let data = crate::gateway::read_limited(&parts.headers, body, MAX_BLOB_BYTES)
                    .await
                    .map_err(|e| {
                        if e.code == ErrorCode::PayloadTooLarge {
                            ApiError::new(ErrorCode::BlobTooLarge, e.message)
                        } else {
                            e
                        }
                    })?;
                self.blobs.put(ns, &key, data.to_vec()).await?;
                Ok(json_response(StatusCode::OK, json!({ "key": key, "size": data.len() })))
            }
            Method::DELETE => {
                if self.blobs.delete(ns, &key).await? {
                    Ok(empty(StatusCode::NO_CONTENT))
                } else {
                    Err(ApiError::new(ErrorCode::BlobNotFound, format!("no blob `{key}`")))
                }
            }
            _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "use GET, PUT or DELETE")),
        }
    }

    async fn kv_api(
        &self,
        caller: PlatformApi,
        rest: &str,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let ns = caller.app.as_str();
        if rest.is_empty() || rest == "/" {
            if req.method() != Method::GET {
                return Err(ApiError::new(ErrorCode::MethodNotAllowed, "use GET to list keys"));
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
                            .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "limit must be a number"))?
                    }
                    _ => {}
                }
            }
            let page = self.kv.list(ns, &prefix, after.as_deref(), limit).await?;
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
            return Err(ApiError::new(ErrorCode::NotFound, "unknown platform API path"));
        };
        let key = percent_decode(raw_key);
        let etag = |v: u64| HeaderValue::from_str(&format!("\"{v}\"")).expect("digits are a valid header");
        let if_match = req
            .headers()
            .get(http::header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_matches('"').to_string());
        match *req.method() {
            Method::GET => match self.kv.get(ns, &key).await? {
                Some(entry) => {
                    let mut r = bytes_response(entry.value);
                    r.headers_mut().insert(http::header::ETAG, etag(entry.version));
                    Ok(r)
                }
                None => Err(ApiError::new(ErrorCode::KeyNotFound, format!("no value under `{key}`"))),
            },
            Method::PUT => {
                let if_none_match = req.headers().get(http::header::IF_NONE_MATCH).is_some_and(|v| v == "*");
                let pre =
                    match (if_none_match, &if_match) {
                        (true, _) => Precondition::IfAbsent,
                        (false, Some(v)) => Precondition::IfVersion(v.parse().map_err(|_| {
                            ApiError::new(ErrorCode::InvalidParameter, "If-Match must be a version ETag")
                        })?),
                        (false, None) => Precondition::None,
                    };
                let (parts, body) = req.into_parts();
                let value = crate::gateway::read_limited(&parts.headers, body, MAX_VALUE_BYTES)
                    .await
                    .map_err(|e| {
                        if e.code == ErrorCode::PayloadTooLarge {
                            ApiError::new(
                                ErrorCode::ValueTooLarge,
                                format!("values are limited to {MAX_VALUE_BYTES} bytes"),
                            )
                        } else {
                            e
                        }
                    })?;
                match self.kv.put(ns, &key, value.to_vec(), pre).await? {
                    PutOutcome::Written { version, created } => {
                        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
                        let mut r =
                            json_response(status, json!({ "key": key, "version": version, "created": created }));
                        r.headers_mut().insert(http::header::ETAG, etag(version));
                        Ok(r)
                    }
                    PutOutcome::PreconditionFailed => Err(ApiError::new(
                        if pre == Precondition::IfAbsent {
                            ErrorCode::KeyExists
                        } else {
                            ErrorCode::VersionMismatch
                        },
                        format!("the precondition on `{key}` did not hold"),
                    )),
                }
            }
            Method::DELETE => {
                if let Some(v) = &if_match {
                    let want: u64 = v
                        .parse()
                        .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "If-Match must be a version ETag"))?;
                    let current = self.kv.get(ns, &key).await?;
                    if current.map(|e| e.version) != Some(want) {
                        return Err(ApiError::new(
                            ErrorCode::VersionMismatch,
                            format!("the precondition on `{key}` did not hold"),
                        ));
                    }
                }
                if self.kv.delete(ns, &key).await? {
                    Ok(empty(StatusCode::NO_CONTENT))
                } else {
                    Err(ApiError::new(ErrorCode::KeyNotFound, format!("no value under `{key}`")))
                }
            }
            _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "use GET, PUT or DELETE")),
        }
    }
}
