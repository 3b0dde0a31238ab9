//! The device's local store: a SQLite file encrypted at rest, so a copied file reveals
//! nothing without the app's key.
//!
//! Every value is sealed with XChaCha20-Poly1305 under the store key, with a fresh random
//! nonce, and bound (as associated data) to its row id; row ids are HMAC-SHA256 of the
//! entry's name under the same key, so names (group ids, key references) do not show
//! either. The MLS state (OpenMLS's storage, a key/value map), the app state (identity,
//! ids, mailbox cursor, seen message ids, pinned root, commits in flight), the event queue
//! and the timeline ([`history`]) are written together in one transaction, staged while
//! the caller holds its state lock (only the MLS entries that changed since the last write
//! are copied, into zeroizing buffers) and written after it lets go. A store can also
//! live in memory only ([`LocalStore::in_memory`]).
//!
//! The key is 32 bytes the app provides ([`StoreKey::from_bytes`]) or derives from a
//! passphrase with Argon2id ([`StoreKey::from_passphrase`], with a random salt kept in the
//! file). A wrong key is detected on open ([`Error::WrongStoreKey`](crate::Error)).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::Error;
use crate::ids::DeviceIds;

pub mod history;

const NONCE_LEN: usize = 24;
const CHECK_PLAINTEXT: &[u8] = b"cloak local store v1";
const MLS_PREFIX: &[u8] = b"mls\0";
const APP_NAME: &[u8] = b"app\0state";

/// The key that encrypts the local store. Zeroized on drop; no `Debug`.
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    /// A key the app keeps (for example in the platform keychain).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        let key = Self::from_bytes(k);
        k.zeroize();
        key
    }

    /// Derives the key from a passphrase with Argon2id (OWASP parameters: 19 MiB, t=2, p=1).
    pub fn from_passphrase(passphrase: &str, salt: &[u8; 16]) -> Result<Self, Error> {
        let mut out = Zeroizing::new([0u8; 32]);
        argon2::Argon2::default()
            .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
            .map_err(|e| Error::Crypto(format!("argon2: {e}")))?;
        Ok(Self(out))
    }
}

/// What the device keeps besides MLS state. Crate-private: it holds the identity secret.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct AppState {
    /// The device's identity secret key (restored into a [`crate::DeviceIdentity`]).
    pub identity_secret: Zeroizing<[u8; 32]>,
    /// The device's ids.
    pub ids: Option<DeviceIds>,
    /// The last mailbox sequence number processed.
    pub cursor: u64,
    /// The conversations this device is in.
    pub conversations: Vec<Uuid>,
    /// Message ids already delivered to the app (deduplication).
    pub seen: Vec<Uuid>,
    /// Users whose safety number was verified, with the root key verified then.
    #[serde(default)]
    pub verified: Vec<(Uuid, [u8; 32])>,
    /// The root key of this device's own user, pinned at registration (or at the first
    /// directory that lists this device as approved).
    #[serde(default)]
    pub own_root: Option<[u8; 32]>,
    /// Commits written here before they were sent and not yet answered: resubmitted (same
    /// `client_msg_id`, so the server stores each once) when the device starts again.
    #[serde(default)]
    pub pending_commits: Vec<(Uuid, cloak_proto::delivery::CommitRequest)>,
    /// (conversation, user) pairs whose devices are to be removed after they left.
    #[serde(default)]
    pub leavers: Vec<(Uuid, Uuid)>,
    /// Conversation names.
    #[serde(default)]
    pub topics: Vec<(Uuid, String)>,
}

/// The keys of a store: the value cipher and the row-id MAC key. No `Debug`.
#[derive(Clone)]
pub(crate) struct Keys {
    cipher: XChaCha20Poly1305,
    mac_key: Zeroizing<[u8; 32]>,
}

/// The encrypted store file.
pub struct LocalStore {
    pool: SqlitePool,
    keys: Keys,
    /// The next event queue position.
    next_event: i64,
    /// The MLS entries as last written, to write only changes (zeroized when replaced).
    persisted: HashMap<Vec<u8>, Zeroizing<Vec<u8>>>,
}

/// Sealed rows ready to write, computed while the caller holds its state lock.
pub(crate) struct Changes {
    upserts: Vec<(Vec<u8>, Vec<u8>)>,
    deletes: Vec<Vec<u8>>,
    /// The MLS entries written (name, plaintext) and the names deleted, applied to
    /// `persisted` once the transaction commits.
    written: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    removed: Vec<Vec<u8>>,
    /// Events for the queue and timeline changes, written in the same transaction.
    history: Vec<history::Record>,
}

impl Keys {
    pub(crate) fn row_id(&self, name: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.mac_key.as_ref())
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        mac.update(name);
        mac.finalize().into_bytes().to_vec()
    }

    pub(crate) fn seal(&self, row_id: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                AeadPayload {
                    msg: plaintext,
                    aad: row_id,
                },
            )
            .map_err(|_| Error::Crypto("seal".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    pub(crate) fn open_sealed(
        &self,
        row_id: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Storage("sealed value too short".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(storage_error)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                AeadPayload {
                    msg: body,
                    aad: row_id,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::Storage("a stored value does not decrypt (tampered or another key)".into())
            })
    }
}

pub(crate) fn storage_error(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

impl LocalStore {
    /// Opens (creating) the store at `path`; fails with `WrongStoreKey` for another key.
    pub async fn open(path: &Path, key: &StoreKey) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(storage_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        Self::open_with(options, key).await
    }

    /// A store that lives in memory only (gone when the process ends), sealed all the same.
    pub async fn in_memory() -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(storage_error)?;
        Self::open_with(options, &StoreKey::generate()).await
    }

    async fn open_with(options: SqliteConnectOptions, key: &StoreKey) -> Result<Self, Error> {
        // One connection, never closed: an in-memory database lives as long as it does.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(storage_error)?;
        let schema = [
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS kv (id BLOB PRIMARY KEY NOT NULL, sealed BLOB NOT NULL)",
        ];
        for sql in schema.into_iter().chain(history::SCHEMA) {
            sqlx::query(sql)
                .execute(&pool)
                .await
                .map_err(storage_error)?;
        }
        let cipher = XChaCha20Poly1305::new_from_slice(key.0.as_ref())
            .map_err(|e| Error::Crypto(e.to_string()))?;
        let mut mac_key = Zeroizing::new([0u8; 32]);
        let mut kdf = <Hmac<Sha256> as Mac>::new_from_slice(key.0.as_ref())
            .map_err(|e| Error::Crypto(e.to_string()))?;
        kdf.update(b"cloak local store row ids");
        mac_key.copy_from_slice(&kdf.finalize().into_bytes());
        let mut store = Self {
            pool,
            keys: Keys { cipher, mac_key },
            next_event: 1,
            persisted: HashMap::new(),
        };
        store.next_event = history::next_event(&store.pool).await?;
        store.check_key().await?;
        Ok(store)
    }

    /// Stores a sealed check value on first open; verifies it afterwards.
    async fn check_key(&mut self) -> Result<(), Error> {
        let row = sqlx::query("SELECT value FROM meta WHERE name = 'check'")
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?;
        match row {
            Some(row) => {
                let sealed: Vec<u8> = row.try_get("value").map_err(storage_error)?;
                match self.open_sealed(b"check", &sealed) {
                    Ok(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(()),
                    _ => Err(Error::WrongStoreKey),
                }
            }
            None => {
                let sealed = self.seal(b"check", CHECK_PLAINTEXT)?;
                sqlx::query("INSERT INTO meta (name, value) VALUES ('check', $1)")
                    .bind(sealed)
                    .execute(&self.pool)
                    .await
                    .map_err(storage_error)?;
                Ok(())
            }
        }
    }

    fn row_id(&self, name: &[u8]) -> Vec<u8> {
        self.keys.row_id(name)
    }

    fn seal(&self, row_id: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        self.keys.seal(row_id, plaintext)
    }

    fn open_sealed(&self, row_id: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.keys.open_sealed(row_id, sealed)
    }

    /// Seals the MLS entries that changed since the last write, and the app state. Only
    /// the changed entries are copied (into zeroizing buffers).
    pub(crate) fn stage(
        &self,
        mls: &HashMap<Vec<u8>, Vec<u8>>,
        app: &AppState,
    ) -> Result<Changes, Error> {
        let mut changes = Changes {
            upserts: Vec::new(),
            deletes: Vec::new(),
            written: Vec::new(),
            removed: Vec::new(),
            history: Vec::new(),
        };
        for (name, value) in mls {
            if self.persisted.get(name).map(|v| v.as_slice()) == Some(value.as_slice()) {
                continue;
            }
            let id = self.mls_row_id(name);
            // The plaintext carries the entry's name so the map can be rebuilt on load.
            let mut plain = Zeroizing::new(Vec::with_capacity(8 + name.len() + value.len()));
            plain.extend_from_slice(&(name.len() as u64).to_be_bytes());
            plain.extend_from_slice(name);
            plain.extend_from_slice(value);
            let sealed = self.seal(&id, &plain)?;
            changes.upserts.push((id, sealed));
            changes
                .written
                .push((name.clone(), Zeroizing::new(value.clone())));
        }
        for name in self.persisted.keys().filter(|k| !mls.contains_key(*k)) {
            changes.deletes.push(self.mls_row_id(name));
            changes.removed.push(name.clone());
        }
        let app_id = self.row_id(APP_NAME);
        let encoded = Zeroizing::new(serde_json::to_vec(app).map_err(storage_error)?);
        let sealed = self.seal(&app_id, &encoded)?;
        changes.upserts.push((app_id, sealed));
        Ok(changes)
    }

    /// Adds events and timeline changes to staged changes.
    pub(crate) fn with_history(mut changes: Changes, history: Vec<history::Record>) -> Changes {
        changes.history = history;
        changes
    }

    /// Writes staged changes in one transaction; returns the events it queued.
    pub(crate) async fn write(&mut self, changes: Changes) -> Result<Vec<history::Update>, Error> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(storage_error)?;
        for (id, sealed) in changes.upserts {
            sqlx::query("INSERT INTO kv (id, sealed) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed")
                .bind(id)
                .bind(sealed)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
        }
        for id in changes.deletes {
            sqlx::query("DELETE FROM kv WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
        }
        let (updates, next_event) =
            history::record(&mut tx, &self.keys, self.next_event, changes.history).await?;
        tx.commit().await.map_err(storage_error)?;
        self.next_event = next_event;
        for name in changes.removed {
            self.persisted.remove(&name);
        }
        self.persisted.extend(changes.written);
        Ok(updates)
    }

    /// A second handle on the same file, for a caller that hands one to a function which
    /// may give it back unused. Only one of the two may ever write.
    pub(crate) fn clone_handle(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            keys: self.keys.clone(),
            next_event: self.next_event,
            persisted: self.persisted.clone(),
        }
    }

    /// A reader of the timeline and the event queue that works beside the writer.
    pub fn reader(&self) -> history::HistoryReader {
        history::HistoryReader::new(self.pool.clone(), self.keys.clone())
    }

    /// Writes the MLS entries that changed since the last call and the app state, in one
    /// transaction.
    #[cfg(test)]
    pub(crate) async fn persist(
        &mut self,
        mls: &HashMap<Vec<u8>, Vec<u8>>,
        app: &AppState,
    ) -> Result<(), Error> {
        let changes = self.stage(mls, app)?;
        self.write(changes).await.map(|_| ())
    }

    fn mls_row_id(&self, name: &[u8]) -> Vec<u8> {
        let mut full_name = MLS_PREFIX.to_vec();
        full_name.extend_from_slice(name);
        self.row_id(&full_name)
    }

    /// Reads everything back: the MLS entries and the app state (none in a new store).
    pub(crate) async fn load(
        &mut self,
    ) -> Result<(HashMap<Vec<u8>, Vec<u8>>, Option<AppState>), Error> {
        let rows = sqlx::query("SELECT id, sealed FROM kv")
            .fetch_all(&self.pool)
            .await
            .map_err(storage_error)?;
        let app_id = self.row_id(APP_NAME);
        let mut mls = HashMap::new();
        let mut app = None;
        for row in rows {
            let id: Vec<u8> = row.try_get("id").map_err(storage_error)?;
            let sealed: Vec<u8> = row.try_get("sealed").map_err(storage_error)?;
            let plain = self.open_sealed(&id, &sealed)?;
            if id == app_id {
                app = Some(serde_json::from_slice(&plain).map_err(storage_error)?);
                continue;
            }
            let (len, rest) = plain
                .split_at_checked(8)
                .ok_or_else(|| storage_error("short entry"))?;
            let len = usize::try_from(u64::from_be_bytes(len.try_into().map_err(storage_error)?))
                .map_err(storage_error)?;
            let (name, value) = rest
                .split_at_checked(len)
                .ok_or_else(|| storage_error("short entry"))?;
            let mut full_name = MLS_PREFIX.to_vec();
            full_name.extend_from_slice(name);
            if self.row_id(&full_name) != id {
                return Err(Error::Storage("an entry was moved to another row".into()));
            }
            mls.insert(name.to_vec(), value.to_vec());
        }
        self.persisted = mls
            .iter()
            .map(|(k, v)| (k.clone(), Zeroizing::new(v.clone())))
            .collect();
        Ok((mls, app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(cursor: u64) -> AppState {
        AppState {
            identity_secret: Zeroizing::new([7; 32]),
            ids: None,
            cursor,
            conversations: vec![Uuid::from_u128(1)],
            seen: vec![],
            verified: vec![],
            own_root: None,
            pending_commits: vec![],
            leavers: vec![],
            topics: vec![],
        }
    }

    #[tokio::test]
    async fn round_trip_changes_only_and_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.db");
        let key = [3u8; 32];
        let mut store = LocalStore::open(&path, &StoreKey::from_bytes(key))
            .await
            .unwrap();
        let mut mls = HashMap::new();
        mls.insert(b"group-1".to_vec(), b"SECRET-STATE-1".to_vec());
        mls.insert(b"group-2".to_vec(), b"SECRET-STATE-2".to_vec());
        store.persist(&mls, &app(5)).await.unwrap();
        mls.remove(b"group-2".as_slice());
        mls.insert(b"group-1".to_vec(), b"SECRET-STATE-1b".to_vec());
        store.persist(&mls, &app(9)).await.unwrap();
        drop(store);

        let mut again = LocalStore::open(&path, &StoreKey::from_bytes(key))
            .await
            .unwrap();
        let (loaded, state) = again.load().await.unwrap();
        assert_eq!(loaded, mls);
        assert_eq!(state.unwrap().cursor, 9);
        drop(again);

        assert!(matches!(
            LocalStore::open(&path, &StoreKey::from_bytes([4; 32])).await,
            Err(Error::WrongStoreKey)
        ));
        // Nothing readable in the files: neither values nor names.
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        for needle in [b"SECRET-STATE".as_slice(), b"group-1", &[7u8; 32]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{needle:?} is readable"
            );
        }
    }

    #[test]
    fn passphrase_keys_depend_on_passphrase_and_salt() {
        let a = StoreKey::from_passphrase("correct horse", &[1; 16]).unwrap();
        let b = StoreKey::from_passphrase("correct horse", &[1; 16]).unwrap();
        let c = StoreKey::from_passphrase("correct horse", &[2; 16]).unwrap();
        let d = StoreKey::from_passphrase("wrong horse", &[1; 16]).unwrap();
        assert_eq!(*a.0, *b.0);
        assert_ne!(*a.0, *c.0);
        assert_ne!(*a.0, *d.0);
    }
}
