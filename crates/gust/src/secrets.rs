//! Secrets for the running platform: the encrypted store (envelope encryption under a master
//! key from `GUST_MASTER_KEY` or `<state>/master.key`), grants (a function sees only the secrets
//! its manifest lists, as environment variables at instance start or through `GUST_API`),
//! rotation (new instances see the new value; warm ones are retired), and redaction of every
//! secret value from Gust's own output.

use gust_gateway::SecretsApi;
use gust_model::App;
use gust_runtime::Invoker;
use gust_store::{MasterKey, Redactor, SecretStore};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

/// The process-wide redactor: Gust's log writer and stored function output pass through it.
/// It knows the secrets of every platform in the process (tests run several at once).
pub fn redactor() -> &'static RwLock<Redactor> {
    static R: OnceLock<RwLock<Redactor>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(Redactor::new(Vec::<(String, Vec<u8>)>::new())))
}

type Known = HashMap<u64, Vec<(String, Vec<u8>)>>;

fn known() -> &'static std::sync::Mutex<Known> {
    static K: OnceLock<std::sync::Mutex<Known>> = OnceLock::new();
    K.get_or_init(Default::default)
}

/// Records one platform's current secrets (`None`: the platform is gone) and rebuilds the
/// redactor from every platform's.
fn publish(platform: u64, secrets: Option<Vec<(String, Vec<u8>)>>) {
    let mut k = known().lock().expect("secrets registry lock");
    match secrets {
        Some(s) => k.insert(platform, s),
        None => k.remove(&platform),
    };
    let all: Vec<(String, Vec<u8>)> = k.values().flatten().cloned().collect();
    *redactor().write().expect("redactor lock") = Redactor::new(all);
}

/// Replaces every known secret value in `text`.
pub fn redact(text: &str) -> String {
    let r = redactor().read().expect("redactor lock");
    if r.is_empty() {
        text.to_string()
    } else {
        r.redact(text)
    }
}

pub struct PlatformSecrets {
    id: u64,
    store: SecretStore,
    /// The app's running version (a redeploy replaces it).
    app: std::sync::RwLock<App>,
    invoker: Arc<Invoker>,
    key_path: PathBuf,
}

impl std::fmt::Debug for PlatformSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformSecrets")
    }
}

impl PlatformSecrets {
    pub fn new(store: SecretStore, app: App, invoker: Arc<Invoker>, key_path: PathBuf) -> Arc<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(Self {
            id,
            store,
            app: std::sync::RwLock::new(app),
            invoker,
            key_path,
        })
    }

    /// The app's new version, after a redeploy.
    pub fn set_app(&self, app: App) {
        *self.app.write().expect("app lock") = app;
    }

    fn app(&self) -> App {
        self.app.read().expect("app lock").clone()
    }

    /// Each function's granted secrets that exist, as `(NAME, value)`; a missing grant is a
    /// warning (the function sees no variable), never a crash.
    pub fn env_for_functions(&self) -> Result<HashMap<String, Vec<(String, String)>>, String> {
        let all: HashMap<String, Vec<u8>> = self.store.get_all().map_err(|e| e.to_string())?.into_iter().collect();
        self.refresh_redactor(&all);
        let mut env = HashMap::new();
        for f in self.app().functions.values() {
            let mut vars = Vec::new();
            for name in &f.secrets {
                match all.get(name) {
                    Some(v) => vars.push((name.clone(), String::from_utf8_lossy(v).into_owned())),
                    None => {
                        tracing::warn!(function = %f.name, secret = %name, "granted secret is not set: `gust secrets set {name}`")
                    }
                }
            }
            env.insert(f.name.to_string(), vars);
        }
        Ok(env)
    }

    fn refresh_redactor(&self, all: &HashMap<String, Vec<u8>>) {
        publish(self.id, Some(all.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
    }

    /// Re-prepares the functions granted `name`, so new instances see its current value and
    /// warm ones are retired.
    fn redeploy_granted(&self, name: &str) -> Result<usize, String> {
        let env = self.env_for_functions()?;
        let app = self.app();
        let affected: Vec<String> = app
            .functions
            .values()
            .filter(|f| f.secrets.iter().any(|s| s == name))
            .map(|f| f.name.to_string())
            .collect();
        if !affected.is_empty() {
            self.invoker
                .deploy_with(&app, &env, Some(&affected))
                .map_err(|e| e.to_string())?;
        }
        Ok(affected.len())
    }
}

impl Drop for PlatformSecrets {
    fn drop(&mut self) {
        publish(self.id, None);
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl SecretsApi for PlatformSecrets {
    fn list(&self) -> Result<gust_api::SecretList, String> {
        let list = self.store.list().map_err(err)?;
        let secrets = list
            .iter()
            .map(|s| {
                let updated: chrono::DateTime<chrono::Utc> = s.updated_at.into();
                let granted_to = self
                    .app()
                    .functions
                    .values()
                    .filter(|f| f.secrets.contains(&s.name))
                    .map(|f| f.name.to_string())
                    .collect();
                gust_api::Secret {
                    name: s.name.clone(),
                    version: s.version,
                    updated_at: updated.to_rfc3339(),
                    granted_to,
                }
            })
            .collect();
        Ok(gust_api::SecretList { secrets })
    }

    fn set(&self, name: &str, value: &[u8]) -> Result<gust_api::SecretSet, String> {
        let version = self.store.set(name, value).map_err(err)?;
        let retired = self.redeploy_granted(name)?;
        Ok(gust_api::SecretSet {
            name: name.to_string(),
            version,
            functions_restarted: retired as u64,
        })
    }

    fn remove(&self, name: &str) -> Result<bool, String> {
        let removed = self.store.remove(name).map_err(err)?;
        if removed {
            self.redeploy_granted(name)?;
        }
        Ok(removed)
    }

    fn rotate_master(&self) -> Result<gust_api::MasterKeyRotated, String> {
        if std::env::var("GUST_MASTER_KEY").is_ok_and(|v| !v.trim().is_empty()) {
            return Err("the master key comes from GUST_MASTER_KEY: rotate it there (set the new key, restart)".into());
        }
        // The new key is saved beside the old one first; if Gust dies before the rename, the
        // next start finds `master.key.new` (see `open_store`). Then re-wrap, then move it in.
        let key = MasterKey::generate();
        let id = key.id().to_string();
        let side = side_path(&self.key_path);
        key.save_file(&side).map_err(err)?;
        let rewrapped = self.store.rotate_master(key).map_err(err)?;
        std::fs::rename(&side, &self.key_path).map_err(err)?;
        Ok(gust_api::MasterKeyRotated {
            master_key_id: id,
            rewrapped: rewrapped as u64,
        })
    }

    fn get_for(&self, function: &str, name: &str) -> Result<Option<Vec<u8>>, String> {
        let granted = self
            .app()
            .functions
            .values()
            .any(|f| f.name.as_str() == function && f.secrets.iter().any(|s| s == name));
        if !granted {
            return Err(format!("`{function}` is not granted the secret `{name}`"));
        }
        Ok(self.store.get(name).map_err(err)?.map(|(v, _)| v))
    }
}

fn side_path(key_path: &std::path::Path) -> PathBuf {
    let mut p = key_path.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

/// Opens the secret store with the master key (`GUST_MASTER_KEY`, else `key_path`, generated
/// on first use). Finishes a master key rotation that was interrupted after the re-wrap.
pub fn open_store(db: &std::path::Path, key_path: &std::path::Path) -> Result<SecretStore, String> {
    let (key, source) = MasterKey::load_or_generate(key_path).map_err(err)?;
    if let gust_store::KeySource::Generated(p) = &source {
        tracing::warn!(path = %p.display(), "generated a new master key for secrets: back this file up (or set GUST_MASTER_KEY)");
    }
    let store = SecretStore::open(db, key).map_err(err)?;
    if store.verify_master().is_ok() {
        return Ok(store);
    }
    let side = side_path(key_path);
    if side.is_file() {
        let newer = MasterKey::from_env_or_file(&side).map_err(err)?;
        let store = SecretStore::open(db, newer).map_err(err)?;
        if store.verify_master().is_ok() {
            std::fs::rename(&side, key_path).map_err(err)?;
            tracing::warn!("finished an interrupted master key rotation");
            return Ok(store);
        }
    }
    Err("the master key does not open the stored secrets (wrong GUST_MASTER_KEY or key file?)".into())
}
