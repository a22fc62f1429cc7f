//! Access keys for the Lambda API (AWS Signature Version 4), in the same envelope as secrets.
//!
//! A SigV4 verifier needs the secret access key itself (the signature is an HMAC under a key
//! derived from it), so unlike gateway API keys it cannot be kept as a hash. Each secret is
//! sealed with its own data key, wrapped under the master key, exactly as a secret value;
//! the associated data carries a label of its own (`gust.access-key.*`), so an access key row
//! can never be opened as a secret or the other way round. The id (`GKIA...`) is public, the
//! secret is returned once by [`SecretStore::create_access_key`] and otherwise only to the
//! verifier ([`SecretStore::access_key_secrets`]).

use super::{
    aad, from_unix_millis, open_with, random, seal_with, storage, unix_millis, MasterKey, SecretError, SecretStore,
    FORMAT, KEY_LEN, NONCE_LEN,
};
use base64::Engine as _;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{Key, XChaCha20Poly1305};
use rusqlite::{params, Connection, OptionalExtension};
use std::time::SystemTime;
use zeroize::Zeroizing;

/// Every access key id starts with this (as AWS's start with `AKIA`).
pub const ACCESS_KEY_ID_PREFIX: &str = "GKIA";
/// Random characters after the prefix (base32: 80 bits).
const ID_RANDOM_CHARS: usize = 16;
/// Only one version of an access key exists; it is part of the associated data all the same.
const VERSION: u64 = 1;

/// An access key's public part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub id: String,
    pub created_at: SystemTime,
}

/// A key just created: the secret is shown to the operator once.
#[derive(Debug)]
pub struct NewAccessKey {
    pub id: String,
    pub secret: Zeroizing<String>,
}

/// `GKIA` + 16 of `A-Z2-7`.
pub fn is_valid_access_key_id(id: &str) -> bool {
    id.len() == ACCESS_KEY_ID_PREFIX.len() + ID_RANDOM_CHARS
        && id.starts_with(ACCESS_KEY_ID_PREFIX)
        && id[ACCESS_KEY_ID_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: [u8; ID_RANDOM_CHARS] = random();
    let mut id = String::from(ACCESS_KEY_ID_PREFIX);
    id.extend(bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char));
    id
}

fn value_aad(id: &str) -> Vec<u8> {
    aad("gust.access-key.secret.v1", None, id, VERSION)
}

fn key_aad(key_id: &str, id: &str) -> Vec<u8> {
    aad("gust.access-key.data-key.v1", Some(key_id), id, VERSION)
}

struct Row {
    id: String,
    format: i64,
    key_id: String,
    wrapped_key: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn rows(conn: &Connection) -> Result<Vec<Row>, SecretError> {
    let mut stmt = conn
        .prepare("SELECT id, format, key_id, wrapped_key, ciphertext FROM access_keys ORDER BY id")
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                format: r.get(1)?,
                key_id: r.get(2)?,
                wrapped_key: r.get(3)?,
                ciphertext: r.get(4)?,
            })
        })
        .map_err(storage)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(storage)
}

fn unwrap_key(master: &MasterKey, row: &Row) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    if row.key_id != master.id {
        return Err(SecretError::WrongMasterKey {
            stored: row.key_id.clone(),
            configured: master.id.clone(),
        });
    }
    let tampered = || SecretError::Tampered { name: row.id.clone() };
    if row.format != FORMAT {
        return Err(tampered());
    }
    let key = open_with(&master.cipher(), &row.wrapped_key, &key_aad(&master.id, &row.id)).map_err(|_| tampered())?;
    if key.len() != KEY_LEN {
        return Err(tampered());
    }
    Ok(key)
}

fn open(master: &MasterKey, row: &Row) -> Result<Zeroizing<String>, SecretError> {
    let data_key = unwrap_key(master, row)?;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&data_key));
    let tampered = || SecretError::Tampered { name: row.id.clone() };
    let mut value = open_with(&cipher, &row.ciphertext, &value_aad(&row.id)).map_err(|_| tampered())?;
    let text = String::from_utf8(std::mem::take(&mut *value)).map_err(|_| tampered())?;
    Ok(Zeroizing::new(text))
}

/// Re-wraps every access key's data key under `new_key` (inside the caller's transaction).
pub(super) fn rewrap(conn: &Connection, master: &MasterKey, new_key: &MasterKey) -> Result<usize, SecretError> {
    let rows = rows(conn)?;
    let new_cipher = new_key.cipher();
    for row in &rows {
        let data_key = unwrap_key(master, row)?;
        let nonce: [u8; NONCE_LEN] = random();
        let wrapped = seal_with(&new_cipher, &nonce, &data_key, &key_aad(&new_key.id, &row.id))?;
        conn.execute(
            "UPDATE access_keys SET key_id = ?1, wrapped_key = ?2 WHERE id = ?3",
            params![new_key.id, wrapped, row.id],
        )
        .map_err(storage)?;
    }
    Ok(rows.len())
}

/// The id of a master key other than `master` that wrapped some access key, if any.
pub(super) fn foreign_key_id(conn: &Connection, master: &MasterKey) -> Result<Option<String>, SecretError> {
    conn.query_row(
        "SELECT key_id FROM access_keys WHERE key_id != ?1 LIMIT 1",
        params![master.id],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)
}

impl SecretStore {
    /// Creates an access key: a new id and a random 240-bit secret (40 base64 characters),
    /// stored sealed. The returned secret is the only time it leaves the store in clear, apart
    /// from [`SecretStore::access_key_secrets`] for the verifier.
    pub fn create_access_key(&self) -> Result<NewAccessKey, SecretError> {
        let secret = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(random::<30>()));
        let mut inner = self.lock()?;
        let super::Inner { conn, master } = &mut *inner;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(storage)?;
        super::foreign_key_id(&tx, master)?;
        // 80 random bits make a collision all but impossible; a retry makes it impossible.
        let id = loop {
            let id = new_id();
            let taken = tx
                .query_row("SELECT 1 FROM access_keys WHERE id = ?1", params![id], |_| Ok(()))
                .optional()
                .map_err(storage)?
                .is_some();
            if !taken {
                break id;
            }
        };
        let data_key = Zeroizing::new(random::<KEY_LEN>());
        let data_cipher = XChaCha20Poly1305::new(Key::from_slice(&*data_key));
        let ciphertext = seal_with(&data_cipher, &random(), secret.as_bytes(), &value_aad(&id))?;
        let wrapped = seal_with(&master.cipher(), &random(), &*data_key, &key_aad(&master.id, &id))?;
        tx.execute(
            "INSERT INTO access_keys (id, format, key_id, wrapped_key, ciphertext, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                FORMAT,
                master.id,
                wrapped,
                ciphertext,
                unix_millis(SystemTime::now())
            ],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(NewAccessKey { id, secret })
    }

    /// Ids and creation times, in id order. Never secrets.
    pub fn access_keys(&self) -> Result<Vec<AccessKeyInfo>, SecretError> {
        let inner = self.lock()?;
        let mut stmt = inner
            .conn
            .prepare("SELECT id, created_at FROM access_keys ORDER BY id")
            .map_err(storage)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AccessKeyInfo {
                    id: r.get(0)?,
                    created_at: from_unix_millis(r.get(1)?),
                })
            })
            .map_err(storage)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(storage)
    }

    /// Every access key with its secret, decrypted: what a signature verifier holds.
    pub fn access_key_secrets(&self) -> Result<Vec<(String, Zeroizing<String>)>, SecretError> {
        let inner = self.lock()?;
        rows(&inner.conn)?
            .into_iter()
            .map(|row| Ok((row.id.clone(), open(&inner.master, &row)?)))
            .collect()
    }

    /// Returns whether the key existed.
    pub fn remove_access_key(&self, id: &str) -> Result<bool, SecretError> {
        let inner = self.lock()?;
        let n = inner
            .conn
            .execute("DELETE FROM access_keys WHERE id = ?1", params![id])
            .map_err(storage)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{contains, raw_files, temp};
    use super::*;

    #[test]
    fn create_list_open_remove() {
        let (_d, db) = temp();
        let store = SecretStore::open(&db, MasterKey::generate()).unwrap();
        let a = store.create_access_key().unwrap();
        let b = store.create_access_key().unwrap();
        assert!(is_valid_access_key_id(&a.id), "{}", a.id);
        assert_ne!(a.id, b.id);
        assert_eq!(a.secret.len(), 40);
        let ids: Vec<String> = store.access_keys().unwrap().into_iter().map(|k| k.id).collect();
        let mut want = vec![a.id.clone(), b.id.clone()];
        want.sort();
        assert_eq!(ids, want);
        let all = store.access_key_secrets().unwrap();
        assert!(all.iter().any(|(id, s)| *id == a.id && **s == *a.secret));
        assert!(store.remove_access_key(&a.id).unwrap());
        assert!(!store.remove_access_key(&a.id).unwrap());
        assert_eq!(store.access_keys().unwrap().len(), 1);
    }

    #[test]
    fn secrets_never_reach_the_files_and_survive_master_rotation() {
        let (_d, db) = temp();
        let store = SecretStore::open(&db, MasterKey::generate()).unwrap();
        let k = store.create_access_key().unwrap();
        store.set("S", b"value-1234").unwrap();
        let new = MasterKey::generate();
        assert_eq!(store.rotate_master(new.clone()).unwrap(), 2);
        let bytes = raw_files(&db);
        assert!(contains(&bytes, k.id.as_bytes()), "ids are public");
        assert!(!contains(&bytes, k.secret.as_bytes()));
        let reopened = SecretStore::open(&db, new).unwrap();
        reopened.verify_master().unwrap();
        assert_eq!(*reopened.access_key_secrets().unwrap()[0].1, *k.secret);
        // A store on another master key is told so, not handed garbage.
        let wrong = SecretStore::open(&db, MasterKey::generate()).unwrap();
        assert!(matches!(
            wrong.access_key_secrets(),
            Err(SecretError::WrongMasterKey { .. })
        ));
    }

    #[test]
    fn a_secret_row_does_not_open_as_an_access_key() {
        let (_d, db) = temp();
        let store = SecretStore::open(&db, MasterKey::generate()).unwrap();
        let k = store.create_access_key().unwrap();
        store.set("OTHER", b"not-an-access-key").unwrap();
        let c = Connection::open(&db).unwrap();
        let (w, ct): (Vec<u8>, Vec<u8>) = c
            .query_row(
                "SELECT wrapped_key, ciphertext FROM secrets WHERE name = 'OTHER'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        c.execute(
            "UPDATE access_keys SET wrapped_key = ?1, ciphertext = ?2 WHERE id = ?3",
            params![w, ct, k.id],
        )
        .unwrap();
        assert!(matches!(store.access_key_secrets(), Err(SecretError::Tampered { .. })));
    }
}
