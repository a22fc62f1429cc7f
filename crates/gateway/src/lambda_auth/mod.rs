//! Lambda (custom) authorizers, as API Gateway runs them: a function of the app is invoked
//! through the one [`Invoker`] (`Trigger::Authorizer`) with the authorizer event, and its
//! answer allows the request, denies it, or is garbage.
//!
//! In order, for one request:
//! 1. the identity sources (headers, query parameters) are read; one missing or empty is a
//!    401 without an invocation, and so is a TOKEN that fails `identityValidationExpression`;
//! 2. an answer cached for the same identity values is used if its TTL has not passed
//!    ([`cache`]); otherwise the function is invoked ([`event`] builds what it receives);
//! 3. the answer is read ([`answer`]): an error whose message is `Unauthorized` is a 401
//!    (API Gateway's convention), an explicit or implicit Deny a 403, a failure or an answer
//!    of the wrong shape a 500; only a well-formed Allow lets the request through;
//! 4. `principalId` and `context` reach the route's function in `requestContext.authorizer`
//!    ([`Allowed::request_context`]).
//!
//! Refusals carry API Gateway's bodies (`{"message":"Unauthorized"}`, REST's
//! `{"Message":"User is not authorized to access this resource with an explicit deny"}`, ...)
//! beside Gust's own `error` object, made in [`refusal`].

pub mod answer;
pub mod cache;
pub mod event;

use crate::auth::{AuthError, AuthFailure};
use crate::error::ApiError;
use crate::payload::{query_pairs, RequestParts};
use answer::{Answer, Verdict};
use gust_model::TraceParent;
use gust_model::{AuthorizerFormat, IdentitySource, LambdaAuthorizerKind, LambdaAuthorizerSpec, PayloadFormat};
use gust_runtime::{Invocation, Invoker, Trigger};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// Longest identity value accepted (a header is at most the 64 KiB head anyway).
const MAX_IDENTITY_BYTES: usize = 16 * 1024;

/// One configured Lambda authorizer with its answer cache.
#[derive(Debug)]
pub struct LambdaAuthorizer {
    spec: LambdaAuthorizerSpec,
    validation: Option<regex::Regex>,
    cache: cache::AnswerCache,
}

/// What an Allow established.
#[derive(Debug, Clone)]
pub struct Allowed {
    pub answer: Arc<Answer>,
    /// The answer came from the cache (no invocation).
    pub cached: bool,
    /// Milliseconds the authorizer took (0 when cached): REST's `integrationLatency`.
    pub latency_ms: u64,
}

/// A refused request, with the authorizer format that decides the API Gateway body.
#[derive(Debug, Clone)]
pub struct Refused {
    pub error: AuthError,
    pub format: AuthorizerFormat,
}

impl LambdaAuthorizer {
    /// Fails when `identityValidationExpression` is not a valid regular expression.
    pub fn new(spec: LambdaAuthorizerSpec) -> Result<Self, String> {
        let validation = spec
            .validation
            .as_deref()
            .map(|v| regex::Regex::new(v).map_err(|e| format!("identityValidationExpression `{v}`: {e}")))
            .transpose()?;
        let cache = cache::AnswerCache::new(
            if spec.identity_sources.is_empty() {
                std::time::Duration::ZERO
            } else {
                spec.ttl
            },
            cache::MAX_ENTRIES,
        );
        Ok(Self {
            spec,
            validation,
            cache,
        })
    }

    pub fn spec(&self) -> &LambdaAuthorizerSpec {
        &self.spec
    }

    /// The identity values, in the order of the sources; `None` when one is missing or empty.
    fn identity(&self, r: &RequestParts<'_>) -> Option<Vec<String>> {
        let mut out = Vec::with_capacity(self.spec.identity_sources.len());
        for source in &self.spec.identity_sources {
            let value = match source {
                IdentitySource::Header(name) => {
                    let values: Vec<&str> = r
                        .headers
                        .get_all(name.as_str())
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    values.join(",")
                }
                IdentitySource::Query(name) => query_pairs(r.raw_query)
                    .into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
                    .unwrap_or_default(),
            };
            if value.trim().is_empty() || value.len() > MAX_IDENTITY_BYTES {
                return None;
            }
            out.push(value);
        }
        Some(out)
    }

    /// Decides on one request. `arn` is the request's `methodArn` / `routeArn`; `trace` the
    /// gateway's span (the authorizer's invocation is its child).
    pub async fn authorize(
        &self,
        invoker: &Invoker,
        r: &RequestParts<'_>,
        arn: &str,
        trace: &TraceParent,
    ) -> Result<Allowed, Refused> {
        let refuse = |error| Refused {
            error,
            format: self.spec.format,
        };
        let identity = self
            .identity(r)
            .ok_or_else(|| refuse(AuthError::unauthorized(AuthFailure::MissingCredentials)))?;
        if self.spec.kind == LambdaAuthorizerKind::Token {
            if let (Some(re), Some(token)) = (&self.validation, identity.first()) {
                if !re.is_match(token) {
                    return Err(refuse(AuthError::unauthorized(AuthFailure::Malformed(
                        "the token does not match identityValidationExpression",
                    ))));
                }
            }
        }
        let key = cache_key(&identity);
        let (answer, cached, latency_ms) = match self.cache.get(&key, Instant::now()) {
            Some(a) => (a, true, 0),
            None => {
                let started = Instant::now();
                let a = Arc::new(self.invoke(invoker, r, arn, &identity, trace).await.map_err(refuse)?);
                self.cache.insert(key, a.clone(), Instant::now());
                (a, false, started.elapsed().as_millis() as u64)
            }
        };
        match answer.verdict(arn) {
            Verdict::Allow => Ok(Allowed {
                answer,
                cached,
                latency_ms,
            }),
            Verdict::Deny { explicit } => Err(refuse(AuthError::Forbidden {
                reason: AuthFailure::AuthorizerDenied { explicit },
            })),
        }
    }

    async fn invoke(
        &self,
        invoker: &Invoker,
        r: &RequestParts<'_>,
        arn: &str,
        identity: &[String],
        trace: &TraceParent,
    ) -> Result<Answer, AuthError> {
        let spec = &self.spec;
        let payload = event::build(spec.kind, spec.format, r, arn, identity);
        let mut inv = Invocation::new(spec.function.as_str(), payload, Trigger::Authorizer);
        inv.trace = Some(trace.child());
        inv.parent_span = Some(trace.span_id.clone());
        let failed = |detail: String| {
            tracing::warn!(authorizer = %spec.name, function = %spec.function, %detail, "Lambda authorizer failed: 500");
            AuthError::AuthorizerFailed {
                reason: AuthFailure::AuthorizerFailed(detail),
            }
        };
        let out = invoker.invoke(inv).await.map_err(|e| failed(e.to_string()))?;
        if let Some(error_type) = &out.function_error {
            // API Gateway's convention: an error whose message is exactly `Unauthorized` is a 401.
            let message = serde_json::from_slice::<Value>(&out.payload)
                .ok()
                .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_string));
            if message.as_deref() == Some("Unauthorized") {
                return Err(AuthError::unauthorized(AuthFailure::AuthorizerUnauthorized));
            }
            return Err(failed(format!("the function answered an error ({error_type})")));
        }
        answer::parse(&out.payload, spec.format, spec.simple_responses)
            .map_err(|m| failed(format!("garbage answer: {m}")))
    }
}

/// The cache key of identity values: each value with its length in front, so that no two
/// different lists of values (a decoded query value may hold any character) share a key.
fn cache_key(identity: &[String]) -> String {
    let mut key = String::new();
    for v in identity {
        key.push_str(&v.len().to_string());
        key.push(':');
        key.push_str(v);
    }
    key
}

impl Allowed {
    /// `requestContext.authorizer` of the route's event: payload 1.0 (REST and HTTP API
    /// 1.0) gets `{principalId, integrationLatency, ...context}` with every context value a
    /// string (API Gateway stringifies them); payload 2.0 gets `{"lambda": context}` as
    /// answered.
    pub fn request_context(&self, payload: PayloadFormat) -> Value {
        let context = self.answer.context();
        match payload {
            PayloadFormat::V2 => json!({ "lambda": context }),
            PayloadFormat::V1 => {
                let mut m = Map::new();
                for (k, v) in context {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    m.insert(k.clone(), Value::String(s));
                }
                if let Some(p) = self.answer.principal_id() {
                    m.insert("principalId".into(), json!(p));
                }
                m.insert("integrationLatency".into(), json!(self.latency_ms));
                Value::Object(m)
            }
        }
    }
}

/// The answer to a refused request: Gust's error with API Gateway's body beside it.
pub fn refusal(r: &Refused) -> ApiError {
    let err = ApiError::from(r.error.clone());
    let rest = r.format == AuthorizerFormat::Rest;
    match (&r.error, rest) {
        (AuthError::Forbidden { reason }, true) => {
            let explicit = matches!(reason, AuthFailure::AuthorizerDenied { explicit: true });
            err.aws_body(
                "Message",
                json!(if explicit {
                    "User is not authorized to access this resource with an explicit deny"
                } else {
                    "User is not authorized to access this resource"
                }),
            )
        }
        (AuthError::AuthorizerFailed { .. }, true) => err.aws_body("message", Value::Null),
        _ => err,
    }
}

#[cfg(test)]
mod tests;
