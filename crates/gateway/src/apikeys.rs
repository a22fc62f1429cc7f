//! API keys, kept hashed (SHA-256) in the key-value store under a namespace no app can use,
//! loaded into the gateway's in-memory store at start and changed through the admin API:
//! `POST /gust/v1/apikeys` (the plaintext key is shown once), `GET` (names, ids, limits),
//! `DELETE /gust/v1/apikeys/{name}`.

use crate::auth::{generate_api_key, hash_api_key, ApiKeyHash, ApiKeyPolicy, MemoryApiKeyStore};
use crate::ratelimit::RateLimit;
use gust_store::{KvStore, Precondition, PutOutcome};
use serde::{Deserialize, Serialize};

/// App names cannot contain dots, so this namespace is Gust's alone.
pub const NAMESPACE: &str = "gust.apikeys";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub name: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    pub quota_per_day: Option<u64>,
}

impl StoredKey {
    fn policy(&self) -> ApiKeyPolicy {
        ApiKeyPolicy {
            name: self.name.clone(),
            rate: self
                .rate
                .map(|r| RateLimit::new(r, self.burst.unwrap_or(r.ceil().max(1.0) as u32))),
            quota_per_day: self.quota_per_day,
        }
    }

    fn hash_bytes(&self) -> Option<ApiKeyHash> {
        let bytes: Vec<u8> = (0..self.hash.len() / 2)
            .filter_map(|i| u8::from_str_radix(&self.hash[2 * i..2 * i + 2], 16).ok())
            .collect();
        bytes.try_into().ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads every stored key into `store`.
pub async fn load_api_keys(kv: &dyn KvStore, store: &MemoryApiKeyStore) -> Result<usize, String> {
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let page = kv
            .list(NAMESPACE, "", after.as_deref(), 1000)
            .await
            .map_err(|e| e.to_string())?;
        for (key, _) in &page.keys {
            let Some(entry) = kv.get(NAMESPACE, key).await.map_err(|e| e.to_string())? else {
                continue;
            };
            let stored: StoredKey =
                serde_json::from_slice(&entry.value).map_err(|e| format!("api key `{key}`: {e}"))?;
            if let Some(h) = stored.hash_bytes() {
                store.insert_hash(h, stored.policy());
                n += 1;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(n),
        }
    }
}

/// Creates a key named `name`; returns the plaintext (shown once) or `None` if the name exists.
pub async fn create(
    kv: &dyn KvStore,
    store: &MemoryApiKeyStore,
    name: &str,
    rate: Option<f64>,
    burst: Option<u32>,
    quota_per_day: Option<u64>,
) -> Result<Option<String>, String> {
    let key = generate_api_key();
    let stored = StoredKey {
        name: name.into(),
        hash: hex(&hash_api_key(&key)),
        rate,
        burst,
        quota_per_day,
    };
    let value = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
    match kv
        .put(NAMESPACE, name, value, Precondition::IfAbsent)
        .await
        .map_err(|e| e.to_string())?
    {
        PutOutcome::Written { .. } => {
            store.insert(&key, stored.policy());
            Ok(Some(key))
        }
        PutOutcome::PreconditionFailed => Ok(None),
    }
}

pub async fn list(kv: &dyn KvStore) -> Result<Vec<StoredKey>, String> {
    let page = kv.list(NAMESPACE, "", None, 1000).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (key, _) in page.keys {
        if let Some(e) = kv.get(NAMESPACE, &key).await.map_err(|e| e.to_string())? {
            out.push(serde_json::from_slice(&e.value).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

pub async fn remove(kv: &dyn KvStore, store: &MemoryApiKeyStore, name: &str) -> Result<bool, String> {
    let Some(entry) = kv.get(NAMESPACE, name).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let stored: StoredKey = serde_json::from_slice(&entry.value).map_err(|e| e.to_string())?;
    if let Some(h) = stored.hash_bytes() {
        store.remove_hash(&h);
    }
    kv.delete(NAMESPACE, name).await.map_err(|e| e.to_string())
}
