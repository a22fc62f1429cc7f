//! Gateway authorizers: API keys (with per-key rate limits and daily quotas) and JWTs (HS256,
//! RS256, ES256 and the rest of their families), as API Gateway HTTP APIs do them. Pure logic
//! over request headers; the gateway decides which routes use which authorizer.
//!
//! Every refusal is an [`AuthError`] whose public face (status, `code`, message) never says
//! what was wrong with a credential: an expired token, a bad signature, a wrong audience and
//! an unknown key all answer `401 Unauthorized`. The precise [`AuthFailure`] travels alongside
//! for logs and metrics.
//!
//! JWT algorithm choice never comes from the token: each key's algorithms are fixed by the
//! configuration (a JWK's `alg`, else its key type and curve, intersected with
//! `allowed_algorithms`), and a token whose header names anything else is refused before any
//! signature check. `alg: none`, symmetric (`oct`) keys in a JWKS, `crit` headers and
//! token-supplied keys (`jku`, `jwk`, `x5u`) are refused or ignored.

use crate::codes::ErrorCode;
use crate::error::ApiError;
use crate::ratelimit::{Decision, QuotaCounter, QuotaDecision, RateLimit, RateLimiter};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderMap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a request was refused. For logs and metrics only: never sent to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential at all (no `x-api-key`, no `Authorization`).
    MissingCredentials,
    /// Not shaped like a credential (bad base64, not JSON, several headers, ...).
    Malformed(&'static str),
    UnknownApiKey,
    /// A JWT with `alg: none`.
    AlgorithmNone,
    /// The token's `alg` is not one this key (or this authorizer) accepts.
    DisallowedAlgorithm(String),
    /// No configured key has the token's `kid` (or the token has none and there are several).
    UnknownKey {
        kid: Option<String>,
    },
    BadSignature,
    Expired {
        exp: u64,
        now: u64,
    },
    NotYetValid {
        nbf: u64,
        now: u64,
    },
    WrongIssuer,
    WrongAudience,
    MissingClaim(&'static str),
    /// Valid credentials without any of the route's required scopes (403).
    MissingScope,
    RateLimited,
    QuotaExhausted,
    /// A Lambda authorizer answered the error `Unauthorized` (401).
    AuthorizerUnauthorized,
    /// A Lambda authorizer's policy denies the request: a Deny covers it (`explicit`) or no
    /// Allow does (403).
    AuthorizerDenied {
        explicit: bool,
    },
    /// A Lambda authorizer failed, timed out or answered garbage (500).
    AuthorizerFailed(String),
}

impl AuthFailure {
    /// Stable snake_case label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFailure::MissingCredentials => "missing_credentials",
            AuthFailure::Malformed(_) => "malformed",
            AuthFailure::UnknownApiKey => "unknown_api_key",
            AuthFailure::AlgorithmNone => "alg_none",
            AuthFailure::DisallowedAlgorithm(_) => "disallowed_algorithm",
            AuthFailure::UnknownKey { .. } => "unknown_key",
            AuthFailure::BadSignature => "bad_signature",
            AuthFailure::Expired { .. } => "expired",
            AuthFailure::NotYetValid { .. } => "not_yet_valid",
            AuthFailure::WrongIssuer => "wrong_issuer",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::MissingClaim(_) => "missing_claim",
            AuthFailure::MissingScope => "missing_scope",
            AuthFailure::RateLimited => "rate_limited",
            AuthFailure::QuotaExhausted => "quota_exhausted",
            AuthFailure::AuthorizerUnauthorized => "authorizer_unauthorized",
            AuthFailure::AuthorizerDenied { .. } => "authorizer_denied",
            AuthFailure::AuthorizerFailed(_) => "authorizer_failed",
        }
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthFailure::MissingCredentials => f.write_str("no credentials in the request"),
            AuthFailure::Malformed(what) => write!(f, "malformed credentials: {what}"),
            AuthFailure::UnknownApiKey => f.write_str("unknown API key"),
            AuthFailure::AlgorithmNone => f.write_str("unsigned token (alg none) refused"),
            AuthFailure::DisallowedAlgorithm(alg) => write!(f, "algorithm {alg:?} not allowed"),
            AuthFailure::UnknownKey { kid: Some(kid) } => write!(f, "no key with kid {kid:?}"),
            AuthFailure::UnknownKey { kid: None } => f.write_str("token has no kid and the key set has several keys"),
            AuthFailure::BadSignature => f.write_str("signature does not verify"),
            AuthFailure::Expired { exp, now } => write!(f, "token expired at {exp} (now {now})"),
            AuthFailure::NotYetValid { nbf, now } => {
                write!(f, "token not valid before {nbf} (now {now})")
            }
            AuthFailure::WrongIssuer => f.write_str("issuer not accepted"),
            AuthFailure::WrongAudience => f.write_str("audience not accepted"),
            AuthFailure::MissingClaim(c) => write!(f, "required claim {c} missing"),
            AuthFailure::MissingScope => f.write_str("none of the required scopes granted"),
            AuthFailure::RateLimited => f.write_str("rate limit reached"),
            AuthFailure::QuotaExhausted => f.write_str("daily quota spent"),
            AuthFailure::AuthorizerUnauthorized => f.write_str("the Lambda authorizer answered Unauthorized"),
            AuthFailure::AuthorizerDenied { explicit: true } => f.write_str("the Lambda authorizer's policy denies"),
            AuthFailure::AuthorizerDenied { explicit: false } => {
                f.write_str("the Lambda authorizer's policy does not allow this resource")
            }
            AuthFailure::AuthorizerFailed(detail) => write!(f, "the Lambda authorizer failed: {detail}"),
        }
    }
}

/// A refused request. `Display` is the public message and says nothing about which part of a
/// credential was wrong; [`AuthError::reason`] has the detail for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing or invalid credentials (401).
    #[error("Unauthorized")]
    Unauthorized { reason: AuthFailure },
    /// Valid credentials that may not do this (403).
    #[error("Forbidden")]
    Forbidden { reason: AuthFailure },
    /// A rate limit (429 with `Retry-After`).
    #[error("Too Many Requests")]
    TooManyRequests { retry_after: Duration },
    /// A daily quota (429 with `Retry-After`: the next UTC midnight).
    #[error("Limit Exceeded")]
    QuotaExceeded { retry_after: Duration },
    /// A Lambda authorizer failed or answered garbage (500): never an Allow.
    #[error("Internal Server Error")]
    AuthorizerFailed { reason: AuthFailure },
}

impl AuthError {
    pub fn unauthorized(reason: AuthFailure) -> Self {
        AuthError::Unauthorized { reason }
    }

    /// Stable, documented code (Gust's JSON error `code`; its status is in [`ErrorCode`]'s table).
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Unauthorized { .. } => ErrorCode::Unauthorized,
            AuthError::Forbidden { .. } => ErrorCode::Forbidden,
            AuthError::TooManyRequests { .. } => ErrorCode::TooManyRequests,
            AuthError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            AuthError::AuthorizerFailed { .. } => ErrorCode::AuthorizerError,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::TooManyRequests { retry_after } | AuthError::QuotaExceeded { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The detailed reason, for logs. Never put it in a response.
    pub fn reason(&self) -> AuthFailure {
        match self {
            AuthError::Unauthorized { reason }
            | AuthError::Forbidden { reason }
            | AuthError::AuthorizerFailed { reason } => reason.clone(),
            AuthError::TooManyRequests { .. } => AuthFailure::RateLimited,
            AuthError::QuotaExceeded { .. } => AuthFailure::QuotaExhausted,
        }
    }

    /// Gust's JSON error response (public message only; `Retry-After` in whole seconds,
    /// rounded up, at least 1), with API Gateway's `{"message": ...}` beside Gust's `error`
    /// so clients written for API Gateway read it too.
    pub fn to_api_error(&self) -> ApiError {
        let err = ApiError::new(self.code(), self.to_string()).aws_body("message", Value::String(self.to_string()));
        match self.retry_after() {
            Some(wait) => err.retry_after(wait),
            None => err,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        e.to_api_error()
    }
}

impl From<Decision> for Result<(), AuthError> {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => Err(AuthError::TooManyRequests { retry_after }),
        }
    }
}

/// The single value of header `name`; several values are malformed, none is missing.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, AuthError> {
    let mut values = headers.get_all(name).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(AuthError::unauthorized(AuthFailure::MissingCredentials)),
        (Some(v), None) => v,
        (Some(_), Some(_)) => {
            return Err(AuthError::unauthorized(AuthFailure::Malformed(
                "credential header repeated",
            )))
        }
    };
    let text = value
        .to_str()
        .map_err(|_| AuthError::unauthorized(AuthFailure::Malformed("credential header is not ASCII")))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(AuthError::unauthorized(AuthFailure::MissingCredentials));
    }
    Ok(text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

/// The header API keys are read from (as API Gateway).
pub const API_KEY_HEADER: &str = "x-api-key";
/// Longest API key accepted, in bytes.
pub const MAX_API_KEY_BYTES: usize = 1024;

/// SHA-256 of an API key: all that is stored.
pub type ApiKeyHash = [u8; 32];

pub fn hash_api_key(key: &str) -> ApiKeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random API key (244 random bits from the OS generator, `gk_` + 64 hex digits).
/// Show it once; store only [`hash_api_key`] of it.
pub fn generate_api_key() -> String {
    format!("gk_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// What a key may do. Its plaintext is not here.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyPolicy {
    /// Human name (`mobile-app`), for logs and the request context.
    pub name: String,
    pub rate: Option<RateLimit>,
    pub quota_per_day: Option<u64>,
}

/// Who called, after a successful [`ApiKeyAuthorizer::check_api_key`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyIdentity {
    pub name: String,
    /// First 8 bytes of the key's hash, hex: a stable id safe to log (API Gateway's
    /// `apiKeyId`).
    pub key_id: String,
    /// Requests left today when the key has a quota.
    pub quota_remaining: Option<u64>,
}

/// Where API keys are looked up, by hash.
pub trait ApiKeyStore: Send + Sync + 'static {
    /// The policy of the key whose SHA-256 is `hash`. Implementations must compare stored
    /// hashes in constant time (index by a prefix, then [`ConstantTimeEq`] on the whole hash).
    fn find(&self, hash: &ApiKeyHash) -> Option<ApiKeyPolicy>;
}

type KeySlots = HashMap<[u8; 8], Vec<(ApiKeyHash, ApiKeyPolicy)>>;

/// API keys in memory (loaded from configuration or the state database by the caller).
#[derive(Debug, Default)]
pub struct MemoryApiKeyStore {
    /// By the first 8 hash bytes; the full hash is compared in constant time.
    keys: RwLock<KeySlots>,
}

fn prefix(hash: &ApiKeyHash) -> [u8; 8] {
    let mut p = [0; 8];
    p.copy_from_slice(&hash[..8]);
    p
}

impl MemoryApiKeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key given in plaintext; only its hash is kept.
    pub fn insert(&self, key: &str, policy: ApiKeyPolicy) {
        self.insert_hash(hash_api_key(key), policy);
    }

    pub fn insert_hash(&self, hash: ApiKeyHash, policy: ApiKeyPolicy) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let slot = keys.entry(prefix(&hash)).or_default();
        slot.retain(|(h, _)| !bool::from(h.ct_eq(&hash)));
        slot.push((hash, policy));
    }

    /// Returns whether the key existed.
    pub fn remove_hash(&self, hash: &ApiKeyHash) -> bool {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = keys.get_mut(&prefix(hash)) else {
            return false;
        };
        let before = slot.len();
        slot.retain(|(h, _)| !bool::from(h.ct_eq(hash)));
        let removed = slot.len() != before;
        if slot.is_empty() {
            keys.remove(&prefix(hash));
        }
        removed
    }

    pub fn len(&self) -> usize {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ApiKeyStore for MemoryApiKeyStore {
    fn find(&self, hash: &ApiKeyHash) -> Option<ApiKeyPolicy> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let slot = keys.get(&prefix(hash))?;
        // Compare against every entry of the slot without an early exit.
        let mut found = None;
        for (stored, policy) in slot {
            if bool::from(stored.ct_eq(hash)) {
                found = Some(policy);
            }
        }
        found.cloned()
    }
}

/// Checks `x-api-key`, then the key's rate limit, then its daily quota.
pub struct ApiKeyAuthorizer {
    store: Arc<dyn ApiKeyStore>,
    limiter: RateLimiter,
    quotas: Arc<QuotaCounter>,
}

impl std::fmt::Debug for ApiKeyAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyAuthorizer")
    }
}

impl ApiKeyAuthorizer {
    /// Quotas counted in memory only (a restart resets them).
    pub fn new(store: Arc<dyn ApiKeyStore>) -> Self {
        Self::with_quotas(store, Arc::new(QuotaCounter::new()))
    }

    /// Quotas counted in `quotas`, which a write-behind loop keeps in the state database
    /// ([`crate::quotas::DurableQuotas`]) so that they survive a restart.
    pub fn with_quotas(store: Arc<dyn ApiKeyStore>, quotas: Arc<QuotaCounter>) -> Self {
        Self {
            store,
            limiter: RateLimiter::new(),
            quotas,
        }
    }

    pub fn check_api_key(&self, headers: &HeaderMap) -> Result<ApiKeyIdentity, AuthError> {
        self.check_api_key_at(headers, Instant::now(), SystemTime::now())
    }

    /// As [`ApiKeyAuthorizer::check_api_key`] at a given time (`now` for the rate limit's
    /// bucket, `wall` for the quota's UTC day).
    pub fn check_api_key_at(
        &self,
        headers: &HeaderMap,
        now: Instant,
        wall: SystemTime,
    ) -> Result<ApiKeyIdentity, AuthError> {
        let key = single_header(headers, API_KEY_HEADER)?;
        if key.len() > MAX_API_KEY_BYTES {
            return Err(AuthError::unauthorized(AuthFailure::Malformed("API key too long")));
        }
        let hash = hash_api_key(key);
        let policy = self
            .store
            .find(&hash)
            .ok_or_else(|| AuthError::unauthorized(AuthFailure::UnknownApiKey))?;
        let key_id = hex(&hash[..8]);
        if let Some(rate) = policy.rate {
            Result::<(), AuthError>::from(self.limiter.check(&format!("apikey:{key_id}"), rate, now))?;
        }
        let quota_remaining = match policy.quota_per_day {
            None => None,
            Some(per_day) => match self.quotas.take(&key_id, per_day, wall) {
                QuotaDecision::Allowed { remaining } => Some(remaining),
                QuotaDecision::Exhausted { retry_after } => return Err(AuthError::QuotaExceeded { retry_after }),
            },
        };
        Ok(ApiKeyIdentity {
            name: policy.name,
            key_id,
            quota_remaining,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// JWT
// ---------------------------------------------------------------------------------------------

/// Signature algorithms a JWT authorizer can accept.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 12] = [
        JwtAlgorithm::HS256,
        JwtAlgorithm::HS384,
        JwtAlgorithm::HS512,
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::PS256,
        JwtAlgorithm::PS384,
        JwtAlgorithm::PS512,
        JwtAlgorithm::ES256,
        JwtAlgorithm::ES384,
        JwtAlgorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::HS384 => "HS384",
            JwtAlgorithm::HS512 => "HS512",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
            JwtAlgorithm::RS512 => "RS512",
            JwtAlgorithm::PS256 => "PS256",
            JwtAlgorithm::PS384 => "PS384",
            JwtAlgorithm::PS512 => "PS512",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }

    fn family(self) -> Family {
        match self {
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => Family::Hmac,
            JwtAlgorithm::RS256
            | JwtAlgorithm::RS384
            | JwtAlgorithm::RS512
            | JwtAlgorithm::PS256
            | JwtAlgorithm::PS384
            | JwtAlgorithm::PS512 => Family::Rsa,
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => Family::Ec,
            JwtAlgorithm::EdDSA => Family::Ed,
        }
    }

    fn to_jwt(self) -> Algorithm {
        match self {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::HS384 => Algorithm::HS384,
            JwtAlgorithm::HS512 => Algorithm::HS512,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::RS384 => Algorithm::RS384,
            JwtAlgorithm::RS512 => Algorithm::RS512,
            JwtAlgorithm::PS256 => Algorithm::PS256,
            JwtAlgorithm::PS384 => Algorithm::PS384,
            JwtAlgorithm::PS512 => Algorithm::PS512,
            JwtAlgorithm::ES256 => Algorithm::ES256,
            JwtAlgorithm::ES384 => Algorithm::ES384,
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    fn from_key_algorithm(alg: KeyAlgorithm) -> Option<Self> {
        JwtAlgorithm::ALL
            .into_iter()
            .find(|a| KeyAlgorithm::from(a.to_jwt()) == alg)
    }
}

impl std::fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;

    /// Exact JOSE names (`RS256`); `none` is never an algorithm here.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JwtAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unsupported JWT algorithm {s:?}"))
    }
}

/// Where the verification keys come from.
#[derive(Clone)]
pub enum JwtKeys {
    /// A JWKS document (file contents or fetched text). Public keys only: `oct` keys in it are
    /// ignored.
    Jwks(String),
    /// A shared HMAC secret (`hs256_secret`), at least 32 bytes; for HS256/HS384/HS512.
    HmacSecret(Vec<u8>),
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKeys::Jwks(text) => write!(f, "Jwks({} bytes)", text.len()),
            JwtKeys::HmacSecret(_) => f.write_str("HmacSecret(..)"),
        }
    }
}

/// Default clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Shortest HMAC secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A JWT authorizer's configuration (API Gateway HTTP API `JwtConfiguration` plus keys).
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Exact `iss` required.
    pub issuer: String,
    /// `aud` (any of its values), or `client_id` when there is no `aud`, must be one of these.
    pub audiences: Vec<String>,
    pub keys: JwtKeys,
    pub allowed_algorithms: Vec<JwtAlgorithm>,
    pub leeway: Duration,
}

impl JwtConfig {
    /// Defaults: RS256 and ES256 for a JWKS, HS256 for a secret; [`DEFAULT_LEEWAY`].
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>, keys: JwtKeys) -> Self {
        let allowed_algorithms = match keys {
            JwtKeys::Jwks(_) => vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256],
            JwtKeys::HmacSecret(_) => vec![JwtAlgorithm::HS256],
        };
        Self {
            issuer: issuer.into(),
            audiences,
            keys,
            allowed_algorithms,
            leeway: DEFAULT_LEEWAY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("JWT authorizer: issuer must not be empty")]
    NoIssuer,
    #[error("JWT authorizer: at least one audience is required")]
    NoAudience,
    #[error("JWT authorizer: allowed_algorithms is empty")]
    NoAlgorithms,
    #[error("JWT authorizer: the JWKS is invalid: {0}")]
    BadJwks(String),
    #[error("JWT authorizer: no usable key for the allowed algorithms ({allowed}); {skipped} key(s) skipped")]
    NoUsableKey { allowed: String, skipped: usize },
    #[error("JWT authorizer: the shared secret must be at least {MIN_HMAC_SECRET_BYTES} bytes")]
    WeakSecret,
}

struct KeyEntry {
    kid: Option<String>,
    key: DecodingKey,
    /// The only algorithms this key verifies, all of one family.
    algorithms: Vec<JwtAlgorithm>,
}

enum KeySet {
    Secret(KeyEntry),
    Jwks(Vec<KeyEntry>),
}

/// Verifies bearer JWTs. Cheap to share (`Arc`); the JWKS can be replaced while in use.
pub struct JwtAuthorizer {
    issuer: String,
    audiences: HashSet<String>,
    allowed: Vec<JwtAlgorithm>,
    leeway_secs: u64,
    keys: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthorizer")
            .field("issuer", &self.issuer)
            .field("allowed", &self.allowed)
            .finish()
    }
}

/// A verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtIdentity {
    /// The claims as sent (a JSON object).
    pub claims: Map<String, Value>,
    /// From `scope` (space-separated) or `scp` (array or string); `None` when neither is there.
    pub scopes: Option<Vec<String>>,
    pub algorithm: JwtAlgorithm,
    pub kid: Option<String>,
}

impl JwtIdentity {
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// `requestContext.authorizer` of an HTTP API (payload 2.0) event:
    /// `{"jwt": {"claims": {...}, "scopes": [...] | null}}`. As API Gateway, every claim value
    /// is a string: numbers and booleans in their JSON spelling, arrays as `[a b c]`, objects
    /// as JSON text.
    pub fn authorizer_context(&self) -> Value {
        let claims: Map<String, Value> = self
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(claim_string(v))))
            .collect();
        serde_json::json!({ "jwt": { "claims": claims, "scopes": self.scopes } })
    }

    /// Route `authorizationScopes`: passes when the token has any of `required` (or when
    /// `required` is empty); otherwise 403.
    pub fn require_any_scope<S: AsRef<str>>(&self, required: &[S]) -> Result<(), AuthError> {
        if required.is_empty() {
            return Ok(());
        }
        let granted = self.scopes.as_deref().unwrap_or_default();
        if required.iter().any(|r| granted.iter().any(|g| g == r.as_ref())) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                reason: AuthFailure::MissingScope,
            })
        }
    }
}

fn claim_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(claim_string).collect();
            format!("[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

fn scopes_of(claims: &Map<String, Value>) -> Option<Vec<String>> {
    let words = |v: &Value| -> Option<Vec<String>> {
        match v {
            Value::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
            Value::Array(items) => Some(items.iter().filter_map(Value::as_str).map(str::to_string).collect()),
            _ => None,
        }
    };
    claims
        .get("scope")
        .and_then(words)
        .or_else(|| claims.get("scp").and_then(words))
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

fn malformed(what: &'static str) -> AuthError {
    AuthError::unauthorized(AuthFailure::Malformed(what))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A NumericDate claim: a non-negative number (fractions truncated).
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| malformed("a time claim is not a number")),
    }
}

impl JwtAuthorizer {
    pub fn new(config: JwtConfig) -> Result<Self, JwtConfigError> {
        if config.issuer.trim().is_empty() {
            return Err(JwtConfigError::NoIssuer);
        }
        if config.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err(JwtConfigError::NoAudience);
        }
        if config.allowed_algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithms);
        }
        let mut allowed = config.allowed_algorithms.clone();
        allowed.dedup();
        let keys = match &config.keys {
            JwtKeys::Jwks(text) => parse_jwks(text, &allowed)?,
            JwtKeys::HmacSecret(secret) => {
                if secret.len() < MIN_HMAC_SECRET_BYTES {
                    return Err(JwtConfigError::WeakSecret);
                }
                let algorithms: Vec<_> = allowed.iter().copied().filter(|a| a.family() == Family::Hmac).collect();
                if algorithms.is_empty() {
                    return Err(JwtConfigError::NoUsableKey {
                        allowed: list(&allowed),
                        skipped: 1,
                    });
                }
                KeySet::Secret(KeyEntry {
                    kid: None,
                    key: DecodingKey::from_secret(secret),
                    algorithms,
                })
            }
        };
        Ok(Self {
            issuer: config.issuer,
            audiences: config.audiences.into_iter().filter(|a| !a.trim().is_empty()).collect(),
            allowed,
            leeway_secs: config.leeway.as_secs(),
            keys: RwLock::new(Arc::new(keys)),
        })
    }

    /// Replaces the keys with a newly fetched JWKS (for an authorizer built from a JWKS);
    /// returns how many keys are usable. On error the previous keys stay in use.
    pub fn update_jwks(&self, jwks: &str) -> Result<usize, JwtConfigError> {
        let set = parse_jwks(jwks, &self.allowed)?;
        let n = match &set {
            KeySet::Jwks(entries) => entries.len(),
            KeySet::Secret(_) => 1,
        };
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(n)
    }

    /// Verifies the bearer token in `Authorization` (`Bearer <jwt>`, or the bare JWT, as API
    /// Gateway accepts).
    pub fn authorize(&self, headers: &HeaderMap) -> Result<JwtIdentity, AuthError> {
        self.authorize_at(headers, unix_now())
    }

    /// As [`JwtAuthorizer::authorize`] at `now` (seconds since the Unix epoch).
    pub fn authorize_at(&self, headers: &HeaderMap, now: u64) -> Result<JwtIdentity, AuthError> {
        let value = single_header(headers, http::header::AUTHORIZATION.as_str())?;
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            Some(_) => return Err(malformed("not a bearer token")),
            None => value,
        };
        self.verify_token(token, now)
    }

    /// Verifies a compact JWT at `now` (seconds since the Unix epoch).
    pub fn verify_token(&self, token: &str, now: u64) -> Result<JwtIdentity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not three dot-separated parts"));
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| malformed("header is not base64url"))?;
        let header: RawHeader =
            serde_json::from_slice(&header_json).map_err(|_| malformed("header is not a JSON object"))?;
        if header.crit.is_some() {
            return Err(malformed("crit header parameters are not supported"));
        }
        let alg_name = header.alg.ok_or_else(|| malformed("header has no alg"))?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(AuthError::unauthorized(AuthFailure::AlgorithmNone));
        }
        let disallowed = || AuthError::unauthorized(AuthFailure::DisallowedAlgorithm(short(&alg_name)));
        let alg: JwtAlgorithm = alg_name.parse().map_err(|_| disallowed())?;
        if !self.allowed.contains(&alg) {
            return Err(disallowed());
        }

        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let entry = match &*keys {
            KeySet::Secret(entry) => entry,
            KeySet::Jwks(entries) => select_key(entries, header.kid.as_deref())?,
        };
        // The key decides the algorithm; the header may only name one of the key's own.
        if !entry.algorithms.contains(&alg) {
            return Err(disallowed());
        }

        let mut validation = Validation::new(alg.to_jwt());
        validation.algorithms = entry.algorithms.iter().map(|a| a.to_jwt()).collect();
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(token, &entry.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            AuthError::unauthorized(match e.kind() {
                ErrorKind::InvalidSignature => AuthFailure::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthFailure::DisallowedAlgorithm(short(&alg_name))
                }
                ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    AuthFailure::Malformed("payload or signature is not valid base64url JSON")
                }
                // Key material the crypto backend refused, or a malformed signature value.
                _ => AuthFailure::BadSignature,
            })
        })?;
        let Value::Object(claims) = data.claims else {
            return Err(malformed("claims are not a JSON object"));
        };
        self.check_claims(&claims, now)?;
        Ok(JwtIdentity {
            scopes: scopes_of(&claims),
            claims,
            algorithm: alg,
            kid: header.kid,
        })
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<(), AuthError> {
        let fail = |reason| Err(AuthError::unauthorized(reason));
        let Some(exp) = numeric_date(claims, "exp")? else {
            return fail(AuthFailure::MissingClaim("exp"));
        };
        if now >= exp.saturating_add(self.leeway_secs) {
            return fail(AuthFailure::Expired { exp, now });
        }
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if nbf > now.saturating_add(self.leeway_secs) {
                return fail(AuthFailure::NotYetValid { nbf, now });
            }
        }
        match claims.get("iss") {
            None => return fail(AuthFailure::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => return fail(AuthFailure::WrongIssuer),
        }
        let accepted = |v: &Value| v.as_str().is_some_and(|s| self.audiences.contains(s));
        match (claims.get("aud"), claims.get("client_id")) {
            (Some(Value::Array(auds)), _) if auds.iter().any(accepted) => Ok(()),
            (Some(aud @ Value::String(_)), _) if accepted(aud) => Ok(()),
            (Some(_), _) => fail(AuthFailure::WrongAudience),
            // Cognito access tokens carry client_id instead of aud (API Gateway accepts both).
            (None, Some(client_id)) if accepted(client_id) => Ok(()),
            (None, Some(_)) => fail(AuthFailure::WrongAudience),
            (None, None) => fail(AuthFailure::MissingClaim("aud")),
        }
    }
}

/// Attacker-supplied text kept for logs: bounded and printable.
fn short(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn list(algs: &[JwtAlgorithm]) -> String {
    algs.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
}

fn select_key<'a>(entries: &'a [KeyEntry], kid: Option<&str>) -> Result<&'a KeyEntry, AuthError> {
    let found = match kid {
        Some(kid) => entries.iter().find(|e| e.kid.as_deref() == Some(kid)),
        None if entries.len() == 1 => entries.first(),
        None => None,
    };
    found.ok_or_else(|| AuthError::unauthorized(AuthFailure::UnknownKey { kid: kid.map(short) }))
}

fn parse_jwks(text: &str, allowed: &[JwtAlgorithm]) -> Result<KeySet, JwtConfigError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| JwtConfigError::BadJwks(e.to_string()))?;
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err(JwtConfigError::BadJwks("no \"keys\" array".into()));
    };
    let mut entries = Vec::new();
    let mut skipped = 0;
    for raw in keys {
        match jwk_entry(raw, allowed) {
            Some(entry) => entries.push(entry),
            None => skipped += 1,
        }
    }
    if entries.is_empty() {
        return Err(JwtConfigError::NoUsableKey {
            allowed: list(allowed),
            skipped,
        });
    }
    Ok(KeySet::Jwks(entries))
}

/// A JWK usable for verification with some allowed algorithm, or `None` (skipped).
fn jwk_entry(raw: &Value, allowed: &[JwtAlgorithm]) -> Option<KeyEntry> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).ok()?;
    let common = &jwk.common;
    if matches!(common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if let Some(ops) = &common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return None;
        }
    }
    let by_type: &[JwtAlgorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = URL_SAFE_NO_PAD.decode(p.n.trim_end_matches('=')).ok()?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return None;
            }
            &[
                JwtAlgorithm::RS256,
                JwtAlgorithm::RS384,
                JwtAlgorithm::RS512,
                JwtAlgorithm::PS256,
                JwtAlgorithm::PS384,
                JwtAlgorithm::PS512,
            ]
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[JwtAlgorithm::ES256],
            EllipticCurve::P384 => &[JwtAlgorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[JwtAlgorithm::EdDSA],
        // Symmetric keys do not belong in a (public) JWKS; anything else is unsupported.
        _ => return None,
    };
    let mut algorithms: Vec<JwtAlgorithm> = by_type.iter().copied().filter(|a| allowed.contains(a)).collect();
    if let Some(declared) = common.key_algorithm {
        let declared = JwtAlgorithm::from_key_algorithm(declared)?;
        algorithms.retain(|a| *a == declared);
    }
    if algorithms.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(KeyEntry {
        kid: common.key_id.clone(),
        key,
        algorithms,
    })
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
