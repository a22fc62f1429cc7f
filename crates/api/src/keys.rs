//! Credentials the operator manages: access keys for the Lambda API (SigV4,
//! `/gust/v1/access-keys`) and API keys for the public gateway (`x-api-key`,
//! `/gust/v1/apikeys`). A secret part is in the answer that creates it and never again.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /gust/v1/access-keys`: ids and creation times, never secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyList {
    pub access_keys: Vec<AccessKey>,
}

/// An access key as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessKey {
    /// `GKIA...`: what `AWS_ACCESS_KEY_ID` is set to.
    pub access_key_id: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /gust/v1/access-keys` (201): the new key with its secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewAccessKey {
    pub access_key_id: String,
    /// What `AWS_SECRET_ACCESS_KEY` is set to; not retrievable later.
    pub secret_access_key: String,
}

/// `GET /gust/v1/apikeys`: names and limits; the keys themselves are stored hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
}

/// A gateway API key as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub name: String,
    /// The first 16 hex digits of the key's SHA-256: tells keys apart, reveals nothing.
    pub key_id: String,
    /// Requests per second (token bucket); `null`: no rate limit of its own.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub rate: Option<f64>,
    /// Bucket size; `null`: the default for the rate.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub burst: Option<u32>,
    /// Requests per UTC day; `null`: no quota.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub quota_per_day: Option<u64>,
    /// Declared by the manifest (serverless.yml `apiKeys`) and kept in step with it at each
    /// start; `false`: made with `gust apikeys create`.
    #[serde(default)]
    pub managed: bool,
}

/// The body of `POST /gust/v1/apikeys`. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Letters, digits, `-` and `_`, 64 at most.
    pub name: String,
    /// Requests per second, a positive number.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub burst: Option<u32>,
    /// Requests per UTC day.
    #[serde(default)]
    pub quota_per_day: Option<u64>,
}

/// `POST /gust/v1/apikeys` (201): the key, shown this once (clients send it as `x-api-key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewApiKey {
    pub name: String,
    pub api_key: String,
}
