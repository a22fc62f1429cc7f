//! API keys, kept hashed (SHA-256) in the key-value store under a namespace no app can use,
//! loaded into the gateway's in-memory store at start and changed through the admin API:
//! `POST /gust/v1/apikeys` (the plaintext key is shown once), `GET` (names, ids, limits),
//! `DELETE /gust/v1/apikeys/{name}`.
//!
//! Keys a manifest declares (serverless.yml `provider.apiGateway.apiKeys`) are reconciled at
//! start by [`sync_manifest_keys`] and marked `managed`: a key given with its value is created
//! or updated to that value; a key given by name only is generated once, shown once (the
//! caller prints it, as `gust apikeys create` does) and kept across restarts; a managed key
//! the manifest no longer lists (or lists with `enabled: false`) is removed, so taking a key
//! out of the file revokes it. Only hashes are stored, whatever the source.

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
    /// Declared by the manifest (reconciled at start), not made with `gust apikeys create`.
    #[serde(default)]
    pub managed: bool,
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
        managed: false,
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

/// Reconciles the manifest's keys with the stored ones (see the module docs). Returns the
/// keys generated now, `(name, plaintext)`: the only time their plaintext exists.
pub async fn sync_manifest_keys(
    kv: &dyn KvStore,
    store: &MemoryApiKeyStore,
    keys: &[gust_model::ApiKeySpec],
) -> Result<Vec<(String, String)>, String> {
    let existing = list(kv).await?;
    let mut generated = Vec::new();
    for spec in keys {
        let old = existing.iter().find(|k| k.name == spec.name);
        if old.is_some_and(|k| !k.managed) {
            return Err(format!(
                "API key `{}` of the manifest: a key of that name was made with `gust apikeys create`; \
                 remove it (`gust apikeys rm {}`) or rename the manifest's key",
                spec.name, spec.name
            ));
        }
        let (hash, plaintext) = match (&spec.value, old) {
            (Some(v), _) => (hex(&hash_api_key(v)), None),
            (None, Some(old)) => (old.hash.clone(), None),
            (None, None) => {
                let key = generate_api_key();
                (hex(&hash_api_key(&key)), Some(key))
            }
        };
        let stored = StoredKey {
            name: spec.name.clone(),
            hash,
            rate: spec.rate,
            burst: spec.burst,
            quota_per_day: spec.quota_per_day,
            managed: true,
        };
        let unchanged = old.is_some_and(|o| {
            o.hash == stored.hash
                && o.rate == stored.rate
                && o.burst == stored.burst
                && o.quota_per_day == stored.quota_per_day
        });
        if unchanged {
            continue;
        }
        let value = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        kv.put(NAMESPACE, &spec.name, value, Precondition::None)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(h) = old.and_then(StoredKey::hash_bytes) {
            store.remove_hash(&h);
        }
        if let Some(h) = stored.hash_bytes() {
            store.insert_hash(h, stored.policy());
        }
        if let Some(key) = plaintext {
            generated.push((spec.name.clone(), key));
        }
    }
    for old in existing.iter().filter(|k| k.managed) {
        if !keys.iter().any(|k| k.name == old.name) {
            remove(kv, store, &old.name).await?;
            tracing::info!(key = %old.name, "API key removed: the manifest no longer declares it");
        }
    }
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ApiKeyStore as _;
    use gust_model::ApiKeySpec;

    fn spec(name: &str, value: Option<&str>, rate: Option<f64>) -> ApiKeySpec {
        ApiKeySpec {
            name: name.into(),
            value: value.map(str::to_string),
            rate,
            burst: None,
            quota_per_day: Some(100),
        }
    }

    fn known(store: &MemoryApiKeyStore, key: &str) -> Option<ApiKeyPolicy> {
        store.find(&hash_api_key(key))
    }

    #[tokio::test]
    async fn manifest_keys_are_created_kept_updated_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let kv = gust_store::SqliteStore::open(&dir.path().join("state.db")).unwrap();
        let store = MemoryApiKeyStore::new();
        let given = "a-key-written-in-the-manifest";

        // First start: the given key is stored, the other generated and handed back once.
        let keys = [spec("given", Some(given), Some(5.0)), spec("made", None, None)];
        let generated = sync_manifest_keys(&kv, &store, &keys).await.unwrap();
        assert_eq!(generated.len(), 1);
        assert_eq!(generated[0].0, "made");
        let made = generated[0].1.clone();
        assert_eq!(known(&store, given).unwrap().quota_per_day, Some(100));
        assert!(known(&store, &made).is_some());
        let stored = list(&kv).await.unwrap();
        assert!(stored.iter().all(|k| k.managed && !k.hash.contains(given)));

        // Next start, same manifest: nothing generated, the generated key still works.
        let store = MemoryApiKeyStore::new();
        load_api_keys(&kv, &store).await.unwrap();
        assert!(sync_manifest_keys(&kv, &store, &keys).await.unwrap().is_empty());
        assert!(known(&store, &made).is_some());

        // A new value replaces the old one; a key no longer listed is revoked.
        let newer = "another-key-written-in-the-manifest";
        let generated = sync_manifest_keys(&kv, &store, &[spec("given", Some(newer), Some(9.0))])
            .await
            .unwrap();
        assert!(generated.is_empty());
        assert!(known(&store, given).is_none(), "the old value no longer works");
        assert_eq!(known(&store, newer).unwrap().rate.map(|r| r.per_second), Some(9.0));
        assert!(known(&store, &made).is_none(), "removed from the manifest: revoked");
        assert_eq!(list(&kv).await.unwrap().len(), 1);

        // An operator's key is never taken over by the manifest.
        create(&kv, &store, "ops", None, None, None).await.unwrap().unwrap();
        let e = sync_manifest_keys(&kv, &store, &[spec("ops", Some(given), None)])
            .await
            .unwrap_err();
        assert!(e.contains("gust apikeys create"), "{e}");
        // ... nor revoked by it.
        sync_manifest_keys(&kv, &store, &[]).await.unwrap();
        assert!(list(&kv).await.unwrap().iter().any(|k| k.name == "ops"));
    }
}
