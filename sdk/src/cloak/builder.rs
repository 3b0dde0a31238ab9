//! [`CloakBuilder`]: the store, the user-token provider, the device name and TLS.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use super::Cloak;
use crate::client::DeviceClient;
use crate::clock::SystemClock;
use crate::identity::DeviceIdentity;
use crate::messenger::Messenger;
use crate::store::{LocalStore, StoreKey};
use crate::{Error, Tls};

type TokenFuture = Pin<Box<dyn Future<Output = Result<String, Error>> + Send>>;
type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

enum StoreChoice {
    File(PathBuf, StoreKey),
    Memory,
}

/// Configures and builds a [`Cloak`] client.
pub struct CloakBuilder {
    server_url: String,
    store: StoreChoice,
    user_token: Option<TokenProvider>,
    device_name: Option<String>,
    roots_pem: Vec<Vec<u8>>,
    allow_plaintext: bool,
    key_packages: u32,
    ring_timeout: std::time::Duration,
}

impl CloakBuilder {
    pub(super) fn new(server_url: String) -> Self {
        Self {
            server_url: server_url.trim_end_matches('/').to_owned(),
            store: StoreChoice::Memory,
            user_token: None,
            device_name: None,
            roots_pem: Vec::new(),
            allow_plaintext: false,
            key_packages: 50,
            ring_timeout: std::time::Duration::from_millis(
                u64::try_from(crate::calls::RING_TIMEOUT_MS).unwrap_or(45_000),
            ),
        }
    }

    /// Keeps the device (identity, MLS state, history) in the encrypted SQLite file at
    /// `path`, sealed with `key`. Without it the device lives in memory only.
    pub fn store(mut self, path: impl Into<PathBuf>, key: StoreKey) -> Self {
        self.store = StoreChoice::File(path.into(), key);
        self
    }

    /// Keeps everything in memory only (the default): the device is gone when the app ends.
    pub fn in_memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// How to get a user token (`cu_…`) from the app's backend, which mints it through the
    /// tenant API; called when the device must register.
    pub fn user_token<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Error>> + Send + 'static,
    {
        self.user_token = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// The name this device registers with (shown in the user's device list).
    pub fn device_name(mut self, name: impl Into<String>) -> Self {
        self.device_name = Some(name.into());
        self
    }

    /// Also trusts the CA certificates in `pem` (for a self-hosted server).
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots_pem.push(pem.into());
        self
    }

    /// Allows plain `http` to hosts other than loopback (development only).
    pub fn allow_plaintext(mut self) -> Self {
        self.allow_plaintext = true;
        self
    }

    /// How many one-time KeyPackages to keep on the server (default 50).
    pub fn key_packages(mut self, count: u32) -> Self {
        self.key_packages = count.max(1);
        self
    }

    /// How long calls ring before they are given up (default 45 s).
    pub fn ring_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.ring_timeout = timeout;
        self
    }

    fn tls(&self) -> Result<Tls, Error> {
        let tls = if self.roots_pem.is_empty() {
            Tls::new()?
        } else {
            Tls::with_root_pem(&self.roots_pem.concat())?
        };
        let tls = if self.allow_plaintext {
            tls.allow_plaintext()
        } else {
            tls
        };
        tls.check_url(&self.server_url)?;
        Ok(tls)
    }

    /// For a notification extension (an iOS Notification Service Extension, an Android
    /// background handler woken by a `device.pending` push): decrypts up to `limit` of the
    /// messages waiting in the mailbox, for display, and returns them as
    /// [`Event::Message`](crate::Event::Message)s. Nothing is acknowledged and nothing is
    /// written: the stored state is read into memory, and what decrypting changes stays
    /// there and is dropped. The main app later receives and decrypts the same messages as
    /// usual. Configure the builder as the app does (same store file and key, same server
    /// and roots); no background task starts and no device is registered.
    pub async fn peek(self, limit: usize) -> Result<Vec<crate::Event>, Error> {
        let tls = self.tls()?;
        let StoreChoice::File(path, key) = &self.store else {
            return Err(Error::InvalidState("peek reads the app's store file"));
        };
        let store = LocalStore::open(path, key).await?;
        let http = tls.http_client()?;
        let client = |identity: DeviceIdentity| {
            DeviceClient::new(http.clone(), &self.server_url, identity, SystemClock)
                .with_tls(tls.clone())
        };
        let messenger = Messenger::restore_with(store, client)
            .await?
            .ok_or(Error::InvalidState("the store holds no device"))?;
        messenger.peek(limit).await
    }

    /// Restores the stored device, or registers a new one with a user token; logs in,
    /// tops up KeyPackages and starts the real-time connection.
    pub async fn build(self) -> Result<Cloak, Error> {
        let tls = self.tls()?;
        let store = match &self.store {
            StoreChoice::File(path, key) => LocalStore::open(path, key).await?,
            StoreChoice::Memory => LocalStore::in_memory().await?,
        };
        let reader = store.reader();
        let http = tls.http_client()?;
        let client = |identity: DeviceIdentity| {
            DeviceClient::new(http.clone(), &self.server_url, identity, SystemClock)
                .with_tls(tls.clone())
        };
        let mut messenger = match Messenger::restore_with(store.clone_handle(), client).await? {
            Some(m) => {
                m.client().login().await?;
                m
            }
            None => {
                let provider = self.user_token.as_ref().ok_or(Error::InvalidState(
                    "a new device needs a user-token provider",
                ))?;
                let token = zeroize::Zeroizing::new(provider().await?);
                let mut device = client(DeviceIdentity::generate_os())?;
                device.register(&token, self.device_name.as_deref()).await?;
                device.login().await?;
                Messenger::with_store(device, store).await?
            }
        };
        messenger.publish_key_packages(self.key_packages).await?;
        messenger
            .set_ring_timeout_ms(i64::try_from(self.ring_timeout.as_millis()).unwrap_or(i64::MAX));
        Cloak::start(messenger, reader)
    }
}
