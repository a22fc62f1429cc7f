//! Secrets at rest: envelope encryption in the state database.
//!
//! Each secret value is sealed with its own random 256-bit data key (XChaCha20-Poly1305, random
//! 192-bit nonce); the data key is sealed ("wrapped") under the master key with the same AEAD.
//! Both seals bind the secret's name and version as associated data, so a ciphertext moved to
//! another name or version (or a wrapped key moved to another row) fails to open instead of
//! decrypting as someone else's value. Every row records the id of the master key that wrapped
//! its data key (a truncated SHA-256 of the key, not the key), so the wrong master key is
//! reported as [`SecretError::WrongMasterKey`] rather than as corruption.
//!
//! Only the current version of a secret is kept: [`SecretStore::set`] (and its alias
//! [`SecretStore::rotate`]) replaces the row and bumps the version; the previous ciphertext is
//! gone with it. Versions count 1, 2, 3, ... per name; after [`SecretStore::remove`] a new
//! `set` of the same name starts again at 1.
//!
//! [`SecretStore::rotate_master`] re-wraps every data key under a new master key in one
//! transaction (values are not re-encrypted). Order for operators: generate the new key and
//! save it somewhere that survives a crash ([`MasterKey::save_file`] to a side path), rotate,
//! then move the new key into place; until the rotation commits the old key is the valid one,
//! after it only the new one is.
//!
//! The API is synchronous (one connection behind a mutex, as [`crate::SqliteStore`]); call it
//! from `spawn_blocking` on async paths. It opens its own connection to the state database
//! (WAL, `synchronous=FULL`) and owns the `secrets` table.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::{Zeroize, Zeroizing};

mod access_keys;
pub use access_keys::{is_valid_access_key_id, AccessKeyInfo, NewAccessKey, ACCESS_KEY_ID_PREFIX};

/// The environment variable holding the base64 master key; it wins over the key file.
pub const MASTER_KEY_ENV: &str = "GUST_MASTER_KEY";
/// Largest secret value accepted, in bytes (64 KiB, as AWS Secrets Manager).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Longest secret name, in bytes.
pub const MAX_SECRET_NAME_BYTES: usize = 128;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Row format: XChaCha20-Poly1305 envelope, AAD layout below. Bump on any change.
const FORMAT: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    format INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_keys (
    id TEXT PRIMARY KEY,
    format INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret name {0:?} is invalid: it must match [A-Za-z_][A-Za-z0-9_]{{0,127}}")]
    BadName(String),
    #[error("secret value is {0} bytes; the limit is {MAX_SECRET_BYTES}")]
    ValueTooLarge(usize),
    #[error("secret {0} does not exist")]
    NotFound(String),
    /// The configured master key is not the one the stored data keys were wrapped with.
    #[error(
        "wrong master key: secrets were stored under master key id {stored}, the configured key \
         has id {configured}; set {MASTER_KEY_ENV} or the key file to the original key"
    )]
    WrongMasterKey { stored: String, configured: String },
    /// The right master key, but a seal did not open: the row was altered, or moved from
    /// another name or version.
    #[error("secret {name} cannot be decrypted: its stored data was altered or moved")]
    Tampered { name: String },
    #[error("no master key: {MASTER_KEY_ENV} is not set and {} does not exist", .0.display())]
    NoMasterKey(PathBuf),
    /// Malformed key text; never contains the key itself.
    #[error("invalid master key ({source_name}): {problem}")]
    BadMasterKey { source_name: String, problem: &'static str },
    #[error("master key file {} already exists; refusing to overwrite it", .0.display())]
    KeyFileExists(PathBuf),
    #[error("master key file {}: {error}", .path.display())]
    KeyFile { path: PathBuf, error: std::io::Error },
    #[error("storage failure: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> SecretError {
    SecretError::Storage(e.to_string())
}

/// The 256-bit key that wraps every data key. Zeroed on drop; `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// Where [`MasterKey::load_or_generate`] found the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Generated(PathBuf),
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"gust.master-key-id.v1\0")
            .chain_update(bytes)
            .finalize();
        Self {
            id: hex(&digest[..8]),
            bytes,
        }
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        Self::from_bytes(random())
    }

    /// 32 bytes in base64 (standard or URL-safe, padded or not); surrounding whitespace ignored.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        Self::parse(text, "base64 text")
    }

    fn parse(text: &str, source_name: &str) -> Result<Self, SecretError> {
        let bad = |problem| SecretError::BadMasterKey {
            source_name: source_name.to_string(),
            problem,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let decoded = Zeroizing::new(
            [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| bad("it is not base64"))?,
        );
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| bad("it must decode to exactly 32 bytes"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as standard padded base64 (what key files and `GUST_MASTER_KEY` hold).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes))
    }

    /// Stable public identifier of this key (16 hex digits); safe to log and store.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `GUST_MASTER_KEY` if it is set (a malformed value is an error, never a silent fallback),
    /// else the key file at `path`.
    pub fn from_env_or_file(path: &Path) -> Result<Self, SecretError> {
        Self::from_sources(std::env::var(MASTER_KEY_ENV).ok(), path).map(|(k, _)| k)
    }

    /// As [`MasterKey::from_env_or_file`], generating the key file (0600) when neither exists.
    /// Meant for a single-node `gust up`; back the file up, since losing it loses every secret.
    pub fn load_or_generate(path: &Path) -> Result<(Self, KeySource), SecretError> {
        Self::load_or_generate_from(std::env::var(MASTER_KEY_ENV).ok(), path)
    }

    fn load_or_generate_from(env: Option<String>, path: &Path) -> Result<(Self, KeySource), SecretError> {
        match Self::from_sources(env, path) {
            Err(SecretError::NoMasterKey(_)) => match Self::generate_file(path) {
                Ok(key) => Ok((key, KeySource::Generated(path.to_path_buf()))),
                // Lost a race with another process creating it: use theirs.
                Err(SecretError::KeyFileExists(_)) => Self::from_sources(None, path),
                Err(e) => Err(e),
            },
            other => other,
        }
    }

    fn from_sources(env: Option<String>, path: &Path) -> Result<(Self, KeySource), SecretError> {
        if let Some(text) = env.map(Zeroizing::new) {
            if !text.trim().is_empty() {
                return Ok((Self::parse(&text, MASTER_KEY_ENV)?, KeySource::Env));
            }
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let key = Self::parse(&text, &path.display().to_string())?;
                Ok((key, KeySource::File(path.to_path_buf())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SecretError::NoMasterKey(path.to_path_buf())),
            Err(error) => Err(SecretError::KeyFile {
                path: path.to_path_buf(),
                error,
            }),
        }
    }

    /// Generates a key and writes it to `path` (mode 0600, parent directories created).
    /// Never overwrites: an existing file is [`SecretError::KeyFileExists`].
    pub fn generate_file(path: &Path) -> Result<Self, SecretError> {
        let key = Self::generate();
        key.write_file(path, false)?;
        Ok(key)
    }

    /// Writes this key to `path` (mode 0600), atomically replacing any file there. Used for
    /// master key rotation; see the module documentation for the order of steps.
    pub fn save_file(&self, path: &Path) -> Result<(), SecretError> {
        self.write_file(path, true)
    }

    fn write_file(&self, path: &Path, replace: bool) -> Result<(), SecretError> {
        let io = |error| SecretError::KeyFile {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Write a private temporary file completely, then link it into place: the key file
        // either does not exist or holds a whole key, even after a crash.
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp-{}", hex(&random::<8>())));
        let tmp = PathBuf::from(tmp_name);
        let written = (|| {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut file = opts.open(&tmp)?;
            file.write_all(self.to_base64().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            if replace {
                std::fs::rename(&tmp, path)
            } else {
                std::fs::hard_link(&tmp, path)
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
            Err(e) if !replace && e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(SecretError::KeyFileExists(path.to_path_buf()))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.bytes))
    }
}

/// A secret's metadata; never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub version: u64,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

struct Inner {
    conn: Connection,
    master: MasterKey,
}

/// Encrypted secrets in the state database. Cheap to clone (shared connection).
#[derive(Clone)]
pub struct SecretStore {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretStore")
    }
}

/// `[A-Za-z_][A-Za-z0-9_]{0,127}`: secret names become environment variable names.
pub fn is_valid_secret_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_SECRET_NAME_BYTES
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn check_name(name: &str) -> Result<(), SecretError> {
    if is_valid_secret_name(name) {
        Ok(())
    } else {
        Err(SecretError::BadName(name.chars().take(160).collect()))
    }
}

impl SecretStore {
    /// Opens (creating the table if needed) the secrets in the state database at `path`.
    /// Secrets already stored under another master key are reported on first use
    /// ([`SecretStore::verify_master`] checks up front).
    pub fn open(path: &Path, master: MasterKey) -> Result<Self, SecretError> {
        let conn = Connection::open(path).map_err(storage)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")
            .map_err(storage)?;
        conn.execute_batch(SCHEMA).map_err(storage)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner { conn, master })),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, SecretError> {
        self.inner
            .lock()
            .map_err(|_| SecretError::Storage("secret store lock poisoned".into()))
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self) -> Result<String, SecretError> {
        Ok(self.lock()?.master.id.clone())
    }

    /// Fails with [`SecretError::WrongMasterKey`] if any stored secret was wrapped under a
    /// different master key (a startup check; it decrypts nothing).
    pub fn verify_master(&self) -> Result<(), SecretError> {
        let inner = self.lock()?;
        foreign_key_id(&inner.conn, &inner.master)
    }

    /// Stores `value` under `name` (creating it or replacing the current version) and returns
    /// the new version.
    pub fn set(&self, name: &str, value: &[u8]) -> Result<u64, SecretError> {
        check_name(name)?;
        if value.len() > MAX_SECRET_BYTES {
            return Err(SecretError::ValueTooLarge(value.len()));
        }
        let mut inner = self.lock()?;
        let Inner { conn, master } = &mut *inner;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage)?;
        // Never mix master keys in one database.
        foreign_key_id(&tx, master)?;
        let current: Option<i64> = tx
            .query_row("SELECT version FROM secrets WHERE name = ?1", params![name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(storage)?;
        let version = current.map_or(1, |v| v as u64 + 1);
        let (wrapped_key, ciphertext) = seal(master, name, version, value)?;
        let now = unix_millis(SystemTime::now());
        tx.execute(
            "INSERT INTO secrets
                 (name, version, format, key_id, wrapped_key, ciphertext, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (name) DO UPDATE SET
                 version = excluded.version, format = excluded.format, key_id = excluded.key_id,
                 wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext,
                 updated_at = excluded.updated_at",
            params![name, version as i64, FORMAT, master.id, wrapped_key, ciphertext, now],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(version)
    }

    /// Rotates the secret itself: a new value and version for an existing name (the previous
    /// value is not kept). [`SecretError::NotFound`] if the name does not exist.
    pub fn rotate(&self, name: &str, new_value: &[u8]) -> Result<u64, SecretError> {
        check_name(name)?;
        if !self.exists(name)? {
            return Err(SecretError::NotFound(name.to_string()));
        }
        self.set(name, new_value)
    }

    fn exists(&self, name: &str) -> Result<bool, SecretError> {
        let inner = self.lock()?;
        inner
            .conn
            .query_row("SELECT 1 FROM secrets WHERE name = ?1", params![name], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(storage)
    }

    /// The decrypted value and its version.
    pub fn get(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, SecretError> {
        check_name(name)?;
        let inner = self.lock()?;
        let row = inner
            .conn
            .query_row(
                "SELECT version, format, key_id, wrapped_key, ciphertext FROM secrets
                 WHERE name = ?1",
                params![name],
                StoredRow::from_row,
            )
            .optional()
            .map_err(storage)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let value = open_row(&inner.master, name, &row)?;
                Ok(Some((value, row.version)))
            }
        }
    }

    /// Every secret decrypted, in name order: what a function's environment and the
    /// [`Redactor`] are built from.
    pub fn get_all(&self) -> Result<Vec<(String, Vec<u8>)>, SecretError> {
        let inner = self.lock()?;
        let rows = all_rows(&inner.conn)?;
        rows.into_iter()
            .map(|(name, row)| {
                let value = open_row(&inner.master, &name, &row)?;
                Ok((name, value))
            })
            .collect()
    }

    /// Names, versions and times, in name order. Never values.
    pub fn list(&self) -> Result<Vec<SecretInfo>, SecretError> {
        let inner = self.lock()?;
        let mut stmt = inner
            .conn
            .prepare("SELECT name, version, created_at, updated_at FROM secrets ORDER BY name")
            .map_err(storage)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SecretInfo {
                    name: r.get(0)?,
                    version: r.get::<_, i64>(1)? as u64,
                    created_at: from_unix_millis(r.get(2)?),
                    updated_at: from_unix_millis(r.get(3)?),
                })
            })
            .map_err(storage)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(storage)
    }

    /// Returns whether the secret existed.
    pub fn remove(&self, name: &str) -> Result<bool, SecretError> {
        check_name(name)?;
        let inner = self.lock()?;
        let n = inner
            .conn
            .execute("DELETE FROM secrets WHERE name = ?1", params![name])
            .map_err(storage)?;
        Ok(n > 0)
    }

    /// Re-wraps every data key (secrets' and access keys') under `new_key` in one transaction
    /// and switches this store to it; values are not re-encrypted. Returns how many rows were
    /// re-wrapped. All or nothing: any row that does not open under the current key aborts the
    /// rotation.
    pub fn rotate_master(&self, new_key: MasterKey) -> Result<usize, SecretError> {
        let mut inner = self.lock()?;
        let Inner { conn, master } = &mut *inner;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage)?;
        let rows = all_rows(&tx)?;
        let new_cipher = new_key.cipher();
        for (name, row) in &rows {
            let data_key = unwrap_key(master, name, row)?;
            let nonce: [u8; NONCE_LEN] = random();
            let wrapped = wrap(&new_cipher, &nonce, &new_key.id, name, row.version, &data_key)?;
            tx.execute(
                "UPDATE secrets SET key_id = ?1, wrapped_key = ?2 WHERE name = ?3",
                params![new_key.id, wrapped, name],
            )
            .map_err(storage)?;
        }
        let access_keys = access_keys::rewrap(&tx, master, &new_key)?;
        tx.commit().map_err(storage)?;
        *master = new_key;
        Ok(rows.len() + access_keys)
    }
}

struct StoredRow {
    version: u64,
    format: i64,
    key_id: String,
    wrapped_key: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl StoredRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            version: r.get::<_, i64>(0)? as u64,
            format: r.get(1)?,
            key_id: r.get(2)?,
            wrapped_key: r.get(3)?,
            ciphertext: r.get(4)?,
        })
    }
}

fn all_rows(conn: &Connection) -> Result<Vec<(String, StoredRow)>, SecretError> {
    let mut stmt = conn
        .prepare(
            "SELECT version, format, key_id, wrapped_key, ciphertext, name FROM secrets
             ORDER BY name",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(5)?, StoredRow::from_row(r)?)))
        .map_err(storage)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(storage)
}

fn foreign_key_id(conn: &Connection, master: &MasterKey) -> Result<(), SecretError> {
    let other: Option<String> = conn
        .query_row(
            "SELECT key_id FROM secrets WHERE key_id != ?1 LIMIT 1",
            params![master.id],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    let other = match other {
        Some(id) => Some(id),
        None => access_keys::foreign_key_id(conn, master)?,
    };
    match other {
        Some(stored) => Err(SecretError::WrongMasterKey {
            stored,
            configured: master.id.clone(),
        }),
        None => Ok(()),
    }
}

/// Associated data: a purpose label, then the fields, each NUL-terminated (names cannot
/// contain NUL, key ids are hex) and the version as 8 big-endian bytes.
fn aad(label: &str, key_id: Option<&str>, name: &str, version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + name.len());
    out.extend_from_slice(label.as_bytes());
    out.push(0);
    if let Some(id) = key_id {
        out.extend_from_slice(id.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(&version.to_be_bytes());
    out
}

fn value_aad(name: &str, version: u64) -> Vec<u8> {
    aad("gust.secret.value.v1", None, name, version)
}

fn key_aad(key_id: &str, name: &str, version: u64) -> Vec<u8> {
    aad("gust.secret.data-key.v1", Some(key_id), name, version)
}

/// `nonce || AEAD(cipher, msg, aad)`
fn seal_with(
    cipher: &XChaCha20Poly1305,
    nonce: &[u8; NONCE_LEN],
    msg: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SecretError> {
    let sealed = cipher
        .encrypt(XNonce::from_slice(nonce), Payload { msg, aad })
        .map_err(|_| SecretError::Storage("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(());
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| ())
}

fn wrap(
    cipher: &XChaCha20Poly1305,
    nonce: &[u8; NONCE_LEN],
    key_id: &str,
    name: &str,
    version: u64,
    data_key: &[u8],
) -> Result<Vec<u8>, SecretError> {
    seal_with(cipher, nonce, data_key, &key_aad(key_id, name, version))
}

/// Returns `(wrapped_key, ciphertext)`.
fn seal(master: &MasterKey, name: &str, version: u64, value: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SecretError> {
    let data_key = Zeroizing::new(random::<KEY_LEN>());
    let data_cipher = XChaCha20Poly1305::new(Key::from_slice(&*data_key));
    let ciphertext = seal_with(&data_cipher, &random(), value, &value_aad(name, version))?;
    let wrapped = wrap(&master.cipher(), &random(), &master.id, name, version, &*data_key)?;
    Ok((wrapped, ciphertext))
}

fn unwrap_key(master: &MasterKey, name: &str, row: &StoredRow) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    if row.key_id != master.id {
        return Err(SecretError::WrongMasterKey {
            stored: row.key_id.clone(),
            configured: master.id.clone(),
        });
    }
    let tampered = || SecretError::Tampered { name: name.to_string() };
    if row.format != FORMAT {
        return Err(tampered());
    }
    let key = open_with(
        &master.cipher(),
        &row.wrapped_key,
        &key_aad(&master.id, name, row.version),
    )
    .map_err(|_| tampered())?;
    if key.len() != KEY_LEN {
        return Err(tampered());
    }
    Ok(key)
}

fn open_row(master: &MasterKey, name: &str, row: &StoredRow) -> Result<Vec<u8>, SecretError> {
    let data_key = unwrap_key(master, name, row)?;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&data_key));
    let mut value = open_with(&cipher, &row.ciphertext, &value_aad(name, row.version))
        .map_err(|_| SecretError::Tampered { name: name.to_string() })?;
    Ok(std::mem::take(&mut *value))
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS generator failing is not recoverable (no safe key or nonce can be made).
    getrandom::fill(&mut out).expect("operating system random number generator failed");
    out
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    s
}

fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_unix_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Shortest value [`Redactor`] replaces, in bytes: shorter ones would redact ordinary text.
pub const MIN_REDACTED_BYTES: usize = 4;

/// Replaces secret values in text (function logs, error messages) with `[REDACTED:NAME]`.
///
/// Built once from the current values (rebuild after a secret changes). Matching is
/// leftmost-longest, so a value that contains another is replaced whole. Values shorter than
/// [`MIN_REDACTED_BYTES`] are not redacted; a value with surrounding whitespace (a file read
/// with its newline) is also matched trimmed. With no secrets, [`Redactor::redact`] is a copy.
#[derive(Clone, Default)]
pub struct Redactor {
    compiled: Option<Arc<Compiled>>,
}

struct Compiled {
    matcher: Matcher,
    replacements: Vec<String>,
}

enum Matcher {
    Automaton(aho_corasick::AhoCorasick),
    /// Only when the automaton cannot be built (far beyond any realistic set of secrets):
    /// a plain scan, longest pattern first at each position. Redaction never silently stops.
    Scan(Vec<Vec<u8>>),
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.compiled.as_ref().map_or(0, |c| c.replacements.len()))
            .finish()
    }
}

impl Redactor {
    pub fn new<I, N, V>(secrets: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        Self::build(secrets, false)
    }

    fn build<I, N, V>(secrets: I, force_scan: bool) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut replacements = Vec::new();
        for (name, value) in secrets {
            let value = value.as_ref();
            let trimmed = value.trim_ascii();
            for candidate in [value, trimmed] {
                if candidate.len() >= MIN_REDACTED_BYTES && !patterns.iter().any(|p| p == candidate) {
                    patterns.push(candidate.to_vec());
                    replacements.push(format!("[REDACTED:{}]", name.as_ref()));
                }
            }
        }
        if patterns.is_empty() {
            return Self::default();
        }
        let automaton = if force_scan {
            None
        } else {
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&patterns)
                .ok()
        };
        let matcher = match automaton {
            Some(ac) => {
                patterns.zeroize();
                Matcher::Automaton(ac)
            }
            None => Matcher::Scan(patterns),
        };
        Self {
            compiled: Some(Arc::new(Compiled { matcher, replacements })),
        }
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_none()
    }

    pub fn redact(&self, text: &str) -> String {
        if self.compiled.is_none() {
            return text.to_owned();
        }
        // Byte matching: a value need not be UTF-8 and may in principle match across a
        // character boundary, so the result is re-validated rather than sliced as str.
        let out = self.redact_bytes(text.as_bytes());
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// As [`Redactor::redact`], for raw output (a function's stdout/stderr).
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let Some(c) = &self.compiled else {
            return bytes.to_vec();
        };
        match &c.matcher {
            Matcher::Automaton(ac) => ac.replace_all_bytes(bytes, &c.replacements),
            Matcher::Scan(patterns) => {
                let mut out = Vec::with_capacity(bytes.len());
                let mut i = 0;
                while i < bytes.len() {
                    let longest = patterns
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| bytes[i..].starts_with(p))
                        .max_by_key(|(_, p)| p.len());
                    match longest {
                        Some((n, p)) => {
                            out.extend_from_slice(c.replacements[n].as_bytes());
                            i += p.len();
                        }
                        None => {
                            out.push(bytes[i]);
                            i += 1;
                        }
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        (dir, db)
    }

    pub(super) fn raw_files(db: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(bytes) = std::fs::read(PathBuf::from(p)) {
                all.extend_from_slice(&bytes);
            }
        }
        all
    }

    pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trip_and_versions() {
        let (_d, db) = temp();
        let store = SecretStore::open(&db, MasterKey::generate()).unwrap();
        assert_eq!(store.get("DB_PASSWORD").unwrap(), None);
        assert_eq!(store.set("DB_PASSWORD", b"hunter2-correct-horse").unwrap(), 1);
        assert_eq!(
            store.get("DB_PASSWORD").unwrap(),
            Some((b"hunter2-correct-horse".to_vec(), 1))
        );
        assert_eq!(store.set("DB_PASSWORD", b"second").unwrap(), 2);
        assert_eq!(store.rotate("DB_PASSWORD", b"third").unwrap(), 3);
        assert_eq!(store.get("DB_PASSWORD").unwrap(), Some((b"third".to_vec(), 3)));
        assert!(matches!(store.rotate("MISSING", b"x"), Err(SecretError::NotFound(_))));
        // Empty and binary values round-trip.
        store.set("EMPTY", b"").unwrap();
        assert_eq!(store.get("EMPTY").unwrap(), Some((vec![], 1)));
        store.set("_BIN", &[0, 255, 1, 254]).unwrap();
        assert_eq!(store.get("_BIN").unwrap().unwrap().0, vec![0, 255, 1, 254]);
        assert_eq!(
            store.get_all().unwrap(),
            vec![
                ("DB_PASSWORD".to_string(), b"third".to_vec()),
                ("EMPTY".to_string(), vec![]),
                ("_BIN".to_string(), vec![0, 255, 1, 254]),
            ]
        );
        assert!(store.remove("DB_PASSWORD").unwrap());
        assert!(!store.remove("DB_PASSWORD").unwrap());
        assert_eq!(store.get("DB_PASSWORD").unwrap(), None);
        // Versions restart after removal (documented).
        assert_eq!(store.set("DB_PASSWORD", b"again").unwrap(), 1);
    }

    #[test]
    fn survives_reopen_with_the_same_key_file() {
        let (dir, db) = temp();
        let key_path = dir.path().join("keys/master.key");
        let key = MasterKey::generate_file(&key_path).unwrap();
        SecretStore::open(&db, key)
            .unwrap()
            .set("API_TOKEN", b"tok-123456")
            .unwrap();
        let (key, source) = MasterKey::from_sources(None, &key_path).unwrap();
        assert_eq!(source, KeySource::File(key_path.clone()));
        let store = SecretStore::open(&db, key).unwrap();
        store.verify_master().unwrap();
        assert_eq!(store.get("API_TOKEN").unwrap(), Some((b"tok-123456".to_vec(), 1)));
    }

    #[test]
    fn names_are_env_variable_names() {
        for ok in ["A", "_", "a_b_9", "DB_PASSWORD", &"X".repeat(128)] {
            assert!(is_valid_secret_name(ok), "{ok}");
        }
        for bad in ["", "9A", "A-B", "A.B", "A B", "é", "A\0", &"X".repeat(129)] {
            assert!(!is_valid_secret_name(bad), "{bad:?}");
        }
        let (_d, db) = temp();
        let store = SecretStore::open(&db, MasterKey::generate()).unwrap();
        assert!(matches!(store.set("bad-name", b"v"), Err(SecretError::BadName(_))));
        assert!(matches!(
            store.set("BIG", &vec![0; MAX_SECRET_BYTES + 1]),
            Err(SecretError::ValueTooLarge(_))
        ));
    }

    #[test]
    fn plaintext_never_reaches_the_database_files() {
        let (_d, db) = temp();
        let key = MasterKey::generate();
        let key_bytes = key.bytes;
        let store = SecretStore::open(&db, key).unwrap();
        let values: [&[u8]; 3] = [
            b"sk_live_PLAINTEXT_MARKER_0123456789",
            b"postgres://admin:PLAINTEXT_MARKER_pw@db/shop",
            b"PLAINTEXT_MARKER",
        ];
        for (i, v) in values.iter().enumerate() {
            store.set(&format!("S{i}"), v).unwrap();
            store.set(&format!("S{i}"), v).unwrap(); // a second version too
        }
        store.rotate_master(MasterKey::generate()).unwrap();
        // Once in the WAL, once after a checkpoint into the main file.
        for checkpoint in [false, true] {
            if checkpoint {
                let c = Connection::open(&db).unwrap();
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            }
            let bytes = raw_files(&db);
            assert!(!bytes.is_empty());
            assert!(contains(&bytes, b"S0"), "names are stored in the clear");
            assert!(!contains(&bytes, b"PLAINTEXT_MARKER"));
            assert!(!contains(&bytes, &key_bytes));
        }
        assert_eq!(store.get("S1").unwrap().unwrap().0, values[1]);
    }

    #[test]
    fn wrong_master_key_is_a_clear_error() {
        let (_d, db) = temp();
        let right = MasterKey::generate();
        SecretStore::open(&db, right.clone())
            .unwrap()
            .set("TOKEN", b"value-1234")
            .unwrap();
        let wrong = MasterKey::generate();
        let store = SecretStore::open(&db, wrong.clone()).unwrap();
        for err in [
            store.get("TOKEN").unwrap_err(),
            store.get_all().unwrap_err(),
            store.verify_master().unwrap_err(),
            store.set("OTHER", b"x").unwrap_err(),
            store.rotate_master(MasterKey::generate()).unwrap_err(),
        ] {
            match err {
                SecretError::WrongMasterKey { stored, configured } => {
                    assert_eq!(stored, right.id());
                    assert_eq!(configured, wrong.id());
                }
                other => panic!("expected WrongMasterKey, got {other:?}"),
            }
        }
        // Nothing was written under the wrong key; the right one still works.
        let store = SecretStore::open(&db, right).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.get("TOKEN").unwrap().unwrap().0, b"value-1234");
    }

    #[test]
    fn master_rotation_rewraps_every_key() {
        let (_d, db) = temp();
        let old = MasterKey::generate();
        let store = SecretStore::open(&db, old.clone()).unwrap();
        store.set("A", b"alpha-value").unwrap();
        store.set("B", b"bravo-value").unwrap();
        let raw_ct = |name: &str| -> Vec<u8> {
            Connection::open(&db)
                .unwrap()
                .query_row("SELECT ciphertext FROM secrets WHERE name = ?1", [name], |r| r.get(0))
                .unwrap()
        };
        let before = raw_ct("A");
        let new = MasterKey::generate();
        assert_eq!(store.rotate_master(new.clone()).unwrap(), 2);
        assert_eq!(store.master_key_id().unwrap(), new.id());
        // Values were not re-encrypted, only their keys re-wrapped.
        assert_eq!(raw_ct("A"), before);
        assert_eq!(store.get("A").unwrap().unwrap().0, b"alpha-value");
        // A fresh store on the new key reads everything; the old key no longer works.
        let reopened = SecretStore::open(&db, new).unwrap();
        assert_eq!(reopened.get("B").unwrap().unwrap().0, b"bravo-value");
        let stale = SecretStore::open(&db, old).unwrap();
        assert!(matches!(stale.get("A"), Err(SecretError::WrongMasterKey { .. })));
        // Writes after rotation use the new key.
        store.set("C", b"charlie-value").unwrap();
        assert_eq!(reopened.get("C").unwrap(), Some((b"charlie-value".to_vec(), 1)));
    }

    #[test]
    fn swapped_rows_do_not_decrypt() {
        let (_d, db) = temp();
        let store = SecretStore::open(&db, MasterKey::generate()).unwrap();
        store.set("ADMIN_TOKEN", b"admin-secret-value").unwrap();
        store.set("GUEST_TOKEN", b"guest-secret-value").unwrap();
        let c = Connection::open(&db).unwrap();
        let read = |name: &str| -> (Vec<u8>, Vec<u8>) {
            c.query_row(
                "SELECT wrapped_key, ciphertext FROM secrets WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let write = |name: &str, (w, ct): &(Vec<u8>, Vec<u8>)| {
            c.execute(
                "UPDATE secrets SET wrapped_key = ?1, ciphertext = ?2 WHERE name = ?3",
                params![w, ct, name],
            )
            .unwrap();
        };
        let (admin, guest) = (read("ADMIN_TOKEN"), read("GUEST_TOKEN"));
        // The whole envelope (wrapped key and ciphertext) moved to another name.
        write("GUEST_TOKEN", &admin);
        write("ADMIN_TOKEN", &guest);
        for name in ["ADMIN_TOKEN", "GUEST_TOKEN"] {
            assert!(
                matches!(store.get(name), Err(SecretError::Tampered { name: n }) if n == name),
                "{name}"
            );
        }
        // Only the ciphertext moved (the wrapped key is right for the row).
        write("ADMIN_TOKEN", &(admin.0.clone(), guest.1.clone()));
        assert!(matches!(store.get("ADMIN_TOKEN"), Err(SecretError::Tampered { .. })));
        // Same name, an old version's envelope under a new version number.
        write("ADMIN_TOKEN", &admin);
        assert!(store.get("ADMIN_TOKEN").is_ok());
        c.execute("UPDATE secrets SET version = 2 WHERE name = 'ADMIN_TOKEN'", [])
            .unwrap();
        assert!(matches!(store.get("ADMIN_TOKEN"), Err(SecretError::Tampered { .. })));
        // A flipped bit.
        let mut flipped = guest.clone();
        let last = flipped.1.len() - 1;
        flipped.1[last] ^= 1;
        write("GUEST_TOKEN", &flipped);
        assert!(matches!(store.get("GUEST_TOKEN"), Err(SecretError::Tampered { .. })));
    }

    #[test]
    fn list_never_returns_values() {
        let (_d, db) = temp();
        let store = SecretStore::open(&db, MasterKey::generate()).unwrap();
        let start = SystemTime::now() - Duration::from_secs(1);
        store.set("ZETA", b"zeta-value-9999").unwrap();
        store.set("ALPHA", b"alpha-value-9999").unwrap();
        store.set("ALPHA", b"alpha-value-0000").unwrap();
        let list = store.list().unwrap();
        let names: Vec<_> = list.iter().map(|i| (i.name.as_str(), i.version)).collect();
        assert_eq!(names, vec![("ALPHA", 2), ("ZETA", 1)]);
        assert!(list
            .iter()
            .all(|i| i.updated_at >= start && i.created_at <= i.updated_at));
        let shown = format!("{list:?}");
        assert!(!shown.contains("value"), "{shown}");
    }

    #[test]
    fn master_key_sources() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        assert!(matches!(
            MasterKey::from_sources(None, &path),
            Err(SecretError::NoMasterKey(_))
        ));
        let key = MasterKey::generate_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            MasterKey::generate_file(&path),
            Err(SecretError::KeyFileExists(_))
        ));
        let (from_file, _) = MasterKey::from_sources(None, &path).unwrap();
        assert_eq!(from_file.id(), key.id());
        // The environment wins over the file, in any base64 flavour.
        let other = MasterKey::from_bytes([0xfb; 32]);
        let url_no_pad = URL_SAFE_NO_PAD.encode(other.bytes);
        let (from_env, source) = MasterKey::from_sources(Some(url_no_pad), &path).unwrap();
        assert_eq!((from_env.id(), source), (other.id(), KeySource::Env));
        // An empty variable is unset; a malformed one is an error, not a fallback.
        assert_eq!(
            MasterKey::from_sources(Some(" ".into()), &path).unwrap().0.id(),
            key.id()
        );
        for bad in ["not base64!", "AAAA"] {
            let err = MasterKey::from_sources(Some(bad.into()), &path).unwrap_err();
            assert!(matches!(err, SecretError::BadMasterKey { .. }), "{err}");
            assert!(err.to_string().contains(MASTER_KEY_ENV));
        }
        // save_file replaces atomically; Debug never shows the key.
        other.save_file(&path).unwrap();
        assert_eq!(MasterKey::from_sources(None, &path).unwrap().0.id(), other.id());
        assert!(!format!("{other:?}").contains(other.to_base64().trim_end_matches('=')));
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
        // load_or_generate: generates once, then reads what it wrote.
        let gen = dir.path().join("sub/gen.key");
        let (k, src) = MasterKey::load_or_generate_from(None, &gen).unwrap();
        assert_eq!(src, KeySource::Generated(gen.clone()));
        let (again, src) = MasterKey::load_or_generate_from(None, &gen).unwrap();
        assert_eq!((again.id(), src), (k.id(), KeySource::File(gen.clone())));
    }

    #[test]
    fn redaction() {
        let r = Redactor::new([
            ("API_KEY", "sk_live_abcdef".as_bytes()),
            ("SHORT", b"abc"),
            ("PASSWORD", b"hunter2\n"),
            ("PREFIX", b"sk_live_abc"),
        ]);
        assert!(!r.is_empty());
        assert_eq!(
            r.redact("key=sk_live_abcdef pw=hunter2 short=abc again sk_live_abcdef sk_live_abc!"),
            "key=[REDACTED:API_KEY] pw=[REDACTED:PASSWORD] short=abc again \
             [REDACTED:API_KEY] [REDACTED:PREFIX]!"
        );
        assert_eq!(
            r.redact_bytes(b"\xff hunter2 \xfe"),
            b"\xff [REDACTED:PASSWORD] \xfe".to_vec()
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(r.redact("ünïcödé hunter2 ✓"), "ünïcödé [REDACTED:PASSWORD] ✓");
        let empty = Redactor::new(Vec::<(String, Vec<u8>)>::new());
        assert!(empty.is_empty());
        assert_eq!(empty.redact("hunter2"), "hunter2");
        assert!(Redactor::new([("X", b"abc")]).is_empty());
        assert_eq!(format!("{r:?}"), "Redactor { patterns: 4 }");
    }

    #[test]
    fn redaction_fallback_scan_matches_the_automaton() {
        let secrets = [
            ("A", "abcd".as_bytes()),
            ("AB", b"abcdef"),
            ("B", b"cdef12"),
            ("C", b"\xffzz\xfe"),
        ];
        let fast = Redactor::new(secrets);
        let scan = Redactor::build(secrets, true);
        assert!(matches!(scan.compiled.as_ref().unwrap().matcher, Matcher::Scan(_)));
        for text in [
            &b"abcdef12 abcd cdef12 abcdabcdef xx"[..],
            b"\xffzz\xfe and abc",
            b"",
            b"ab",
        ] {
            assert_eq!(
                scan.redact_bytes(text),
                fast.redact_bytes(text),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(scan.redact("x abcdef12 y"), "x [REDACTED:AB]12 y");
    }
}
