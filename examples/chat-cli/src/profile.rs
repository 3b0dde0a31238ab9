//! The profile directory: the device's encrypted store (`store.db`), the key that opens it
//! (`store.key`, readable by the owner only), and the server it talks to (`profile.json`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use cloak_sdk::{Cloak, StoreKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// KeyPackages kept on the server so others can add this device.
const KEY_PACKAGES: u32 = 20;

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

    /// The profile's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
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

    /// Whether the profile holds a device.
    pub fn has_device(&self) -> bool {
        self.path("store.db").exists()
    }

    /// The profile's device as a [`Cloak`] client: restored from its store, or (with a
    /// user token) registered. `ca_cert` is a PEM file of extra roots for a self-hosted
    /// server.
    pub async fn cloak(
        &self,
        server: &str,
        ca_cert: Option<&Path>,
        user_token: Option<String>,
        name: &str,
    ) -> Result<Cloak> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        if user_token.is_none() && !self.path("store.db").exists() {
            bail!("no device in this profile: run `cloak-chat login --user-token …` first");
        }
        let mut builder = Cloak::builder(server)
            .store(self.path("store.db"), self.key()?)
            .device_name(name)
            .key_packages(KEY_PACKAGES);
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            builder = builder.root_certificates_pem(pem);
        }
        if let Some(token) = user_token {
            let token = Zeroizing::new(token);
            builder = builder.user_token(move || {
                let token = token.clone();
                async move { Ok(token.to_string()) }
            });
        }
        Ok(builder.build().await?)
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
