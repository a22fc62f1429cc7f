//! The admin address's credentials: the operator token, functions' `GUST_TOKEN`s (held by the
//! invoker), and access keys for SigV4. Each face asks for exactly one kind (the Lambda API
//! takes SigV4 or the operator token); a credential of another face is refused with a code
//! that says so.

use super::Admin;
use crate::codes::ErrorCode;
use crate::error::ApiError;
use gust_runtime::PlatformApi;
use gust_store::{AccessKeyInfo, NewAccessKey, SecretError, SecretStore, Zeroizing};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// The operator credential. Compared in constant time (as SHA-256 digests, so the length of
/// the presented token says nothing either); `Debug` never shows it.
#[derive(Clone)]
pub struct OperatorToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(..)")
    }
}

impl OperatorToken {
    /// Shortest token accepted, in bytes (a generated one is 64 hex digits after `gop_`).
    pub const MIN_BYTES: usize = 32;

    /// `None` when the token is too short to be a credential.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (token.len() >= Self::MIN_BYTES).then(|| Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// A new random token (244 random bits from the OS generator): `gop_` + 64 hex digits.
    pub fn generate() -> String {
        format!("gop_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
    }

    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        bool::from(d.ct_eq(&self.digest))
    }
}

/// Access keys for the Lambda API: kept sealed in the secret store, and in memory (decrypted)
/// for verification, changed through the operator API.
#[derive(Clone)]
pub struct AccessKeys {
    store: SecretStore,
    secrets: Arc<RwLock<HashMap<String, Zeroizing<String>>>>,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKeys")
    }
}

impl AccessKeys {
    /// Loads every stored access key from `store`.
    pub fn load(store: SecretStore) -> Result<Self, SecretError> {
        let secrets = store.access_key_secrets()?.into_iter().collect();
        Ok(Self {
            store,
            secrets: Arc::new(RwLock::new(secrets)),
        })
    }

    /// The secret of `id`, for signature verification.
    pub fn secret(&self, id: &str) -> Option<Zeroizing<String>> {
        self.secrets.read().expect("access keys lock").get(id).cloned()
    }

    pub fn create(&self) -> Result<NewAccessKey, SecretError> {
        let key = self.store.create_access_key()?;
        self.secrets
            .write()
            .expect("access keys lock")
            .insert(key.id.clone(), key.secret.clone());
        Ok(key)
    }

    pub fn list(&self) -> Result<Vec<AccessKeyInfo>, SecretError> {
        self.store.access_keys()
    }

    /// Takes effect at once: the next request signed with it is refused.
    pub fn remove(&self, id: &str) -> Result<bool, SecretError> {
        let removed = self.store.remove_access_key(id)?;
        self.secrets.write().expect("access keys lock").remove(id);
        Ok(removed)
    }
}

/// The bearer token of `Authorization: Bearer T`, if that is the scheme used.
pub(super) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Admin {
    /// True when the request carries the operator token.
    pub(super) fn is_operator(&self, headers: &http::HeaderMap) -> bool {
        match (&self.operator, bearer(headers)) {
            (Some(op), Some(t)) => op.matches(t),
            _ => false,
        }
    }

    /// Operator actions: the operator token, nothing else.
    pub(super) fn require_operator(&self, headers: &http::HeaderMap) -> Result<(), ApiError> {
        if self.is_operator(headers) {
            return Ok(());
        }
        if bearer(headers).is_some_and(|t| self.invoker.caller_for_token(t).is_some()) {
            return Err(ApiError::new(
                ErrorCode::OperatorOnly,
                "this is an operator action; a function's GUST_TOKEN cannot be used for it",
            ));
        }
        Err(ApiError::new(
            ErrorCode::OperatorTokenRequired,
            "operator actions need the operator token (Authorization: Bearer, from <state>/operator.token)",
        ))
    }

    /// The platform API: the calling function's own `GUST_TOKEN`.
    pub(super) fn caller(&self, headers: &http::HeaderMap) -> Result<PlatformApi, ApiError> {
        let unauthorized = || ApiError::new(ErrorCode::Unauthorized, "a valid GUST_TOKEN bearer token is required");
        let token = bearer(headers).ok_or_else(unauthorized)?;
        if let Some(caller) = self.invoker.caller_for_token(token) {
            return Ok(caller);
        }
        if self.is_operator(headers) {
            return Err(ApiError::new(
                ErrorCode::FunctionOnly,
                "the platform API acts for a function and needs its GUST_TOKEN; the operator token is not one",
            ));
        }
        Err(unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_tokens() {
        let t = OperatorToken::generate();
        assert!(t.starts_with("gop_") && t.len() == 68, "{t}");
        let op = OperatorToken::new(&t).unwrap();
        assert!(op.matches(&t));
        assert!(op.matches(&format!(" {t}\n")));
        assert!(!op.matches(&t[..67]));
        assert!(!op.matches(""));
        assert!(OperatorToken::new("short").is_none());
        assert_eq!(format!("{op:?}"), "OperatorToken(..)");
    }

    #[test]
    fn bearer_scheme() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(http::header::AUTHORIZATION, "Bearer abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
        );
        assert_eq!(bearer(&h), None);
    }
}
