//! The profile directory: the device's encrypted store (`store.db`), the key that opens it
//! (`store.key`, readable by the owner only), and the server it talks to (`profile.json`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use cloak_sdk::{LocalStore, Messenger, StoreKey, SystemClock};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
struct ProfileFile {
    server: String,
}

/// A profile directory.
pub struct Profile {
    dir: PathBuf,
}

impl Profile {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The server: the flag, else the one saved at login.
    pub fn server(&self, flag: Option<&str>) -> Result<String> {
        if let Some(s) = flag {
            return Ok(s.trim_end_matches('/').to_owned());
        }
        let text = std::fs::read_to_string(self.path("profile.json"))
            .context("no --server given and this profile has not logged in yet")?;
        let file: ProfileFile = serde_json::from_str(&text).context("profile.json is damaged")?;
        Ok(file.server)
    }

    pub fn save_server(&self, server: &str) -> Result<()> {
        let text = serde_json::to_string_pretty(&ProfileFile {
            server: server.to_owned(),
        })?;
        std::fs::write(self.path("profile.json"), text)?;
        Ok(())
    }

    /// The store key, created on first use.
    fn key(&self) -> Result<StoreKey> {
        let path = self.path("store.key");
        if path.exists() {
            let hex_text = Zeroizing::new(std::fs::read_to_string(&path)?);
            let mut bytes = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(hex_text.trim(), bytes.as_mut())
                .context("store.key is damaged")?;
            return Ok(StoreKey::from_bytes(*bytes));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
        write_private(&path, hex::encode(bytes.as_ref()).as_bytes())?;
        Ok(StoreKey::from_bytes(*bytes))
    }

    /// Opens the store, creating the directory and key when they do not exist.
    pub async fn store(&self) -> Result<LocalStore> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let key = self.key()?;
        Ok(LocalStore::open(&self.path("store.db"), &key).await?)
    }

    /// The device of this profile, restored from its store.
    pub async fn messenger(&self, server: &str) -> Result<Messenger> {
        if !self.path("store.db").exists() {
            bail!("no device in this profile: run `cloak-chat login --user-token …` first");
        }
        let store = self.store().await?;
        match Messenger::restore(reqwest::Client::new(), server, SystemClock, store).await? {
            Some(mut m) => {
                m.keep_inbox();
                Ok(m)
            }
            None => bail!("no device in this profile: run `cloak-chat login --user-token …` first"),
        }
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}
