//! Secrets as the operator sees them (`/gust/v1/secrets`): names, versions and grants. Values
//! go in (`PUT`, the raw body) and never come back out through the operator API; a function
//! reads a granted one through the platform API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /gust/v1/secrets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretList {
    pub secrets: Vec<Secret>,
}

/// A secret as listed (never its value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Secret {
    pub name: String,
    /// 1 when first set, one more at each set.
    pub version: u64,
    /// RFC 3339.
    pub updated_at: String,
    /// The functions whose manifest grants this secret.
    pub granted_to: Vec<String>,
}

/// `PUT /gust/v1/secrets/{name}`: the new version, and how many function deployments were
/// restarted to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretSet {
    pub name: String,
    pub version: u64,
    pub functions_restarted: u64,
}

/// `POST /gust/v1/secrets/master/rotate`: the new master key's id and how many secrets (and
/// access keys) were re-wrapped under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MasterKeyRotated {
    pub master_key_id: String,
    pub rewrapped: u64,
}
