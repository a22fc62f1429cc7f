//! Fronting existing HTTP services: round-robin over healthy targets, active health checks,
//! per-attempt timeouts, retries only for idempotent methods, a circuit breaker that answers
//! 503 at once while a service is failing, and `X-Forwarded-*`, `X-Request-Id` and
//! `traceparent` on every proxied request.
//!
//! Bodies are buffered (up to the gateway's body limit) rather than streamed: it keeps retries
//! possible and the code small; streaming is a later step.

use crate::codes::ErrorCode;
use crate::error::{ApiError, Body};
use bytes::Bytes;
use gust_model::UpstreamSpec;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

struct Target {
    base: String,
    healthy: AtomicBool,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

struct Breaker {
    state: BreakerState,
    failures: u32,
}

pub struct Upstream {
    spec: UpstreamSpec,
    targets: Vec<Target>,
    next: AtomicUsize,
    breaker: Mutex<Breaker>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("name", &self.spec.name).finish()
    }
}

/// What the caller of [`Upstream::forward`] knows about the request.
pub struct ForwardRequest<'a> {
    pub method: Method,
    /// Path and query to send (already rewritten).
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub remote: SocketAddr,
    pub request_id: &'a str,
    pub traceparent: String,
    /// A deadline the caller must keep (a function calling a service inherits its own).
    pub deadline: Option<Instant>,
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

impl Upstream {
    pub fn new(spec: UpstreamSpec) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Arc::new(Self {
            targets: spec
                .targets
                .iter()
                .map(|t| Target {
                    base: t.clone(),
                    healthy: AtomicBool::new(true),
                    ok_streak: AtomicU32::new(0),
                    fail_streak: AtomicU32::new(0),
                })
                .collect(),
            spec,
            next: AtomicUsize::new(0),
            breaker: Mutex::new(Breaker {
                state: BreakerState::Closed,
                failures: 0,
            }),
            client,
        })
    }

    pub fn spec(&self) -> &UpstreamSpec {
        &self.spec
    }

    /// `(target, healthy)` for status output and tests.
    pub fn health(&self) -> Vec<(String, bool)> {
        self.targets
            .iter()
            .map(|t| (t.base.clone(), t.healthy.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn circuit_open(&self) -> bool {
        matches!(
            self.breaker.lock().expect("breaker lock").state,
            BreakerState::Open { .. }
        )
    }

    /// The next healthy target after the last one used, skipping `tried`.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|i| !tried.contains(i) && self.targets[*i].healthy.load(Ordering::Relaxed))
    }

    /// Whether a request may go through now; moves Open -> HalfOpen after the cooldown.
    /// A refusal says how long until a request may be let through: what is left of the
    /// cooldown, or (while a trial request is out) nothing known, which `Retry-After` rounds
    /// to its one second.
    fn admit(&self) -> Result<(), Option<Duration>> {
        let mut b = self.breaker.lock().expect("breaker lock");
        let now = Instant::now();
        match b.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open { until } if now >= until => {
                b.state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(Some(until - now)),
            // One trial at a time: the others are refused until it settles.
            BreakerState::HalfOpen => Err(None),
        }
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().expect("breaker lock");
        if ok {
            b.failures = 0;
            b.state = BreakerState::Closed;
            return;
        }
        b.failures += 1;
        if b.state == BreakerState::HalfOpen || b.failures >= self.spec.breaker_failures {
            if !matches!(b.state, BreakerState::Open { .. }) {
                tracing::warn!(upstream = %self.spec.name, failures = b.failures, "circuit opened");
            }
            b.state = BreakerState::Open {
                until: Instant::now() + self.spec.breaker_cooldown,
            };
        }
    }

    /// Forwards a request, retrying idempotent ones on another target.
    pub async fn forward(&self, r: ForwardRequest<'_>) -> Result<Response<Body>, ApiError> {
        if let Err(wait) = self.admit() {
            let err = unavailable(self.spec.name.as_str(), "its circuit is open after repeated failures");
            return Err(match wait {
                Some(wait) => err.retry_after(wait),
                None => err,
            });
        }
        let attempts = 1 + if idempotent(&r.method) { self.spec.retries } else { 0 };
        let mut tried = Vec::new();
        let mut last_err = None;
        for _ in 0..attempts {
            let Some(i) = self.pick(&tried) else { break };
            tried.push(i);
            let target = &self.targets[i];
            let mut timeout = self.spec.timeout;
            if let Some(d) = r.deadline {
                timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            }
            match tokio::time::timeout(timeout, self.send(target, &r)).await {
                Ok(Ok(resp)) if resp.status().is_server_error() && matches!(resp.status().as_u16(), 502..=504) => {
                    self.record(false);
                    last_err = Some(ApiError::new(
                        ErrorCode::UpstreamError,
                        format!("upstream `{}` answered {}", self.spec.name, resp.status()),
                    ));
                    if tried.len() as u32 >= attempts {
                        return Ok(resp);
                    }
                }
                Ok(Ok(resp)) => {
                    self.record(!resp.status().is_server_error());
                    return Ok(resp);
                }
                Ok(Err(e)) => {
                    self.record(false);
                    tracing::debug!(upstream = %self.spec.name, target = %target.base, error = %e, "upstream attempt failed");
                    last_err = Some(ApiError::new(
                        ErrorCode::UpstreamError,
                        format!("upstream `{}` could not be reached", self.spec.name),
                    ));
                }
                Err(_) => {
                    self.record(false);
                    last_err = Some(ApiError::new(
                        ErrorCode::UpstreamTimeout,
                        format!("upstream `{}` did not answer within {timeout:?}", self.spec.name),
                    ));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| unavailable(self.spec.name.as_str(), "no target is healthy")))
    }

    async fn send(&self, target: &Target, r: &ForwardRequest<'_>) -> Result<Response<Body>, String> {
        let uri: Uri = format!("{}{}", target.base, r.path_and_query)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let mut req = Request::builder().method(r.method.clone()).uri(uri.clone());
        let headers = req.headers_mut().expect("a fresh builder has headers");
        for (k, v) in &r.headers {
            if !HOP_BY_HOP.contains(&k.as_str()) && k != http::header::HOST {
                headers.append(k.clone(), v.clone());
            }
        }
        if let Some(a) = uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                headers.insert(http::header::HOST, v);
            }
        }
        let ip = r.remote.ip().to_string();
        let xff = match r.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        let set = |h: &mut HeaderMap, k: &'static str, v: &str| {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(HeaderName::from_static(k), v);
            }
        };
        set(headers, "x-forwarded-for", &xff);
        set(headers, "x-forwarded-proto", "http");
        if let Some(h) = r.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()) {
            set(headers, "x-forwarded-host", h);
        }
        set(headers, "x-request-id", r.request_id);
        set(headers, "traceparent", &r.traceparent);
        let req = req.body(Full::new(r.body.clone())).map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let (mut parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        for h in HOP_BY_HOP {
            parts.headers.remove(h);
        }
        Ok(Response::from_parts(parts, Body::from(body)))
    }

    /// Probes every target until the returned task is aborted.
    pub fn spawn_health_checks(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.spec.health_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.check_all().await;
            }
        })
    }

    async fn probe(&self, t: &Target) -> bool {
        let Ok(uri) = format!("{}{}", t.base, self.spec.health_path).parse::<Uri>() else {
            return false;
        };
        let req = Request::get(uri).body(Full::new(Bytes::new())).expect("a GET is valid");
        matches!(
            tokio::time::timeout(self.spec.health_interval.min(Duration::from_secs(5)), self.client.request(req)).await,
            Ok(Ok(r)) if r.status().is_success()
        )
    }

    /// Whether every target answers its health check now (no state change: for start-up).
    pub async fn all_healthy_now(&self) -> bool {
        for t in &self.targets {
            if !self.probe(t).await {
                return false;
            }
        }
        true
    }

    /// One round of health checks.
    pub async fn check_all(&self) {
        for t in &self.targets {
            let ok = self.probe(t).await;
            if ok {
                t.fail_streak.store(0, Ordering::Relaxed);
                let streak = t.ok_streak.fetch_add(1, Ordering::Relaxed) + 1;
                if streak >= self.spec.healthy_threshold && !t.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(upstream = %self.spec.name, target = %t.base, "target healthy again");
                }
            } else {
                t.ok_streak.store(0, Ordering::Relaxed);
                let streak = t.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
                if streak >= self.spec.unhealthy_threshold && t.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(upstream = %self.spec.name, target = %t.base, "target unhealthy: taken out of rotation");
                }
            }
        }
    }
}

fn unavailable(name: &str, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UpstreamUnavailable,
        format!("upstream `{name}` is unavailable: {why}"),
    )
}

/// Applies a route's prefix rules to a path (`/orders/1` with strip `/orders` -> `/1`).
pub fn rewrite_path(path: &str, strip: Option<&str>, add: Option<&str>) -> String {
    let mut p = match strip {
        Some(s) if path == s => "/".to_string(),
        Some(s) if path.starts_with(&format!("{}/", s.trim_end_matches('/'))) => {
            path[s.trim_end_matches('/').len()..].to_string()
        }
        _ => path.to_string(),
    };
    if let Some(a) = add {
        let a = a.trim_end_matches('/');
        p = if p == "/" { format!("{a}/") } else { format!("{a}{p}") };
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert_eq!(rewrite_path("/orders/1", Some("/orders"), None), "/1");
        assert_eq!(rewrite_path("/orders", Some("/orders"), None), "/");
        assert_eq!(rewrite_path("/ordersx", Some("/orders"), None), "/ordersx");
        assert_eq!(rewrite_path("/orders/1", Some("/orders"), Some("/api/v1")), "/api/v1/1");
        assert_eq!(rewrite_path("/a", None, None), "/a");
    }
}
