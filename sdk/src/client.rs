//! The device's HTTP client (thin I/O over the sans-IO core).
//!
//! Registers the device, logs in by signing the server's challenge, keeps a device token
//! fresh, manages the user's devices and the device's KeyPackages. Tokens live in
//! [`SecretString`]s and never appear in `Debug` output or errors.

use cloak_proto::delivery::{
    AckReceipt, AckRequest, CommitRequest, Conversation as ServerConversation,
    CreateConversationRequest, MailboxPage, SendMessageRequest, SendReceipt,
};
use cloak_proto::devices::{
    ApproveDeviceRequest, Challenge, ChallengeRequest, Device, DeviceList, DeviceStatus,
    DeviceToken, LoginRequest, RegisterDeviceRequest,
};
use cloak_proto::key_packages::{
    ClaimedKeyPackages, KeyPackageStock, KeyPackageUpload, MAX_BATCH, UploadKeyPackagesRequest,
};
use openmls::prelude::OpenMlsProvider;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::directory::verify_device_directory;
use crate::identity::{DeviceIdentity, fingerprint};
use crate::ids::DeviceIds;
use crate::mls::generate_key_packages;
use crate::{Error, problem_from_response};

/// A cached token is reused only while it has more than this long left.
pub const TOKEN_REFRESH_MARGIN_MS: i64 = 60_000;

/// Problem codes of a 401 that a fresh login cures: the token expired (e.g. the
/// device's clock is behind the server's) or the server no longer accepts it.
pub const RELOGIN_CODES: [cloak_proto::Code; 2] = [
    cloak_proto::Code::TokenExpired,
    cloak_proto::Code::InvalidToken,
];

struct CachedToken {
    token: SecretString,
    expires_at_ms: i64,
}

/// One device talking to a Cloak server.
pub struct DeviceClient<C: Clock = SystemClock> {
    http: reqwest::Client,
    base_url: String,
    identity: DeviceIdentity,
    clock: C,
    ids: Option<DeviceIds>,
    own_root: Option<[u8; 32]>,
    tls: Option<crate::Tls>,
    allow_plaintext: bool,
    token: Mutex<Option<CachedToken>>,
}

impl<C: Clock> std::fmt::Debug for DeviceClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("base_url", &self.base_url)
            .field("fingerprint", &self.identity.fingerprint())
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> DeviceClient<C> {
    /// A client for a device that has not registered yet (call [`register`](Self::register)).
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        identity: DeviceIdentity,
        clock: C,
    ) -> Self {
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            identity,
            clock,
            ids: None,
            own_root: None,
            tls: None,
            allow_plaintext: false,
            token: Mutex::new(None),
        }
    }

    /// Uses `tls` for HTTP (replacing the client given to [`new`](Self::new)) and for the
    /// WebSocket, and its plaintext rule.
    pub fn with_tls(mut self, tls: crate::Tls) -> Result<Self, Error> {
        self.http = tls.http_client()?;
        self.allow_plaintext = tls.allows_plaintext();
        self.tls = Some(tls);
        Ok(self)
    }

    /// The TLS settings given with [`with_tls`](Self::with_tls), if any.
    pub fn tls(&self) -> Option<&crate::Tls> {
        self.tls.as_ref()
    }

    /// Refuses to send a token over plain `http` except to loopback.
    fn check_transport(&self) -> Result<(), Error> {
        crate::tls::check_base_url(&self.base_url, self.allow_plaintext)
    }

    /// Restores a device registered earlier (its ids kept in local storage).
    pub fn with_ids(mut self, ids: DeviceIds) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Now, by the client's clock (Unix ms).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The device's identity key.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// The root key of the device's own user when the server registered it as the user's
    /// first device (its own key then is the root); `None` before that or for later devices.
    pub fn own_root(&self) -> Option<[u8; 32]> {
        self.own_root
    }

    /// The device's ids, once registered.
    pub fn ids(&self) -> Option<DeviceIds> {
        self.ids
    }

    /// Registers the device's identity key for the user (`POST /v1/devices` with the user
    /// token). Registering the same key again returns the same device. A user's first
    /// device is approved; later ones are pending until another device approves them.
    pub async fn register(
        &mut self,
        user_token: &str,
        name: Option<&str>,
    ) -> Result<Device, Error> {
        self.check_transport()?;
        let body = RegisterDeviceRequest {
            identity_key: self.identity.public_key().to_vec(),
            name: name.map(str::to_owned),
        };
        let resp = send(
            self.request(Method::POST, "/v1/devices")
                .bearer_auth(user_token)
                .json(&body),
        )
        .await?;
        let device: Device = read_json(resp).await?;
        if device.identity_key != body.identity_key {
            return Err(Error::Protocol(
                "registered device has another identity key".into(),
            ));
        }
        let ids = DeviceIds {
            tenant_id: device.tenant_id,
            user_id: device.user_id,
            device_id: device.id,
        };
        if self.ids != Some(ids) {
            *self.token.get_mut() = None;
        }
        self.ids = Some(ids);
        if device.status == DeviceStatus::Approved && device.approved_by.is_none() {
            self.own_root = Some(self.identity.public_key());
        }
        Ok(device)
    }

    /// Logs in now (challenge → signature → device token), caches the token and returns
    /// the device's current state.
    pub async fn login(&self) -> Result<Device, Error> {
        let mut cached = self.token.lock().await;
        let (token, device) = self.fresh_token().await?;
        *cached = Some(token);
        Ok(device)
    }

    /// A device token valid for more than [`TOKEN_REFRESH_MARGIN_MS`]: the cached one, or
    /// a new one from logging in again.
    pub async fn token(&self) -> Result<SecretString, Error> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now_ms();
        if let Some(t) = cached.as_ref()
            && t.expires_at_ms.saturating_sub(now) > TOKEN_REFRESH_MARGIN_MS
        {
            return Ok(t.token.clone());
        }
        let (token, _) = self.fresh_token().await?;
        let secret = token.token.clone();
        *cached = Some(token);
        Ok(secret)
    }

    /// The user's own devices (`GET /v1/devices`), oldest first. Not verified: see
    /// [`verify_device_directory`].
    pub async fn devices(&self) -> Result<Vec<Device>, Error> {
        let list: DeviceList = self.authed(Method::GET, "/v1/devices", None::<&()>).await?;
        Ok(list.items)
    }

    /// Another user's devices (`GET /v1/users/{user_id}/devices`). Not verified.
    pub async fn user_devices(&self, user_id: Uuid) -> Result<Vec<Device>, Error> {
        let path = format!("/v1/users/{user_id}/devices");
        let list: DeviceList = self.authed(Method::GET, &path, None::<&()>).await?;
        Ok(list.items)
    }

    /// A user's devices after [`verify_device_directory`] accepted them.
    pub async fn verified_user_devices(&self, user_id: Uuid) -> Result<Vec<Device>, Error> {
        let devices = self.user_devices(user_id).await?;
        // Every entry must belong to the user (and tenant) asked for.
        let tenant = self.ids.map(|i| i.tenant_id);
        if devices
            .iter()
            .any(|d| d.user_id != user_id || tenant.is_some_and(|t| t != d.tenant_id))
        {
            return Err(Error::Verification(
                "the directory lists a device of another user".into(),
            ));
        }
        verify_device_directory(&devices)?;
        Ok(devices)
    }

    /// Approves a pending device of the same user: fetches its identity key from the
    /// directory and signs `(tenant, user, key, now)`.
    ///
    /// The key comes from the server; prefer
    /// [`approve_device_with_fingerprint`](Self::approve_device_with_fingerprint) with the
    /// fingerprint the new device displays, so a server cannot substitute its own key.
    pub async fn approve_device(&self, device_id: Uuid) -> Result<Device, Error> {
        self.approve(device_id, None).await
    }

    /// Like [`approve_device`](Self::approve_device), but refuses unless the device's key
    /// has `expected_fingerprint` (see [`fingerprint`]; case, spaces and colons ignored).
    pub async fn approve_device_with_fingerprint(
        &self,
        device_id: Uuid,
        expected_fingerprint: &str,
    ) -> Result<Device, Error> {
        self.approve(device_id, Some(expected_fingerprint)).await
    }

    /// Revokes a device of the user (`DELETE /v1/devices/{id}`); its tokens stop working.
    pub async fn revoke_device(&self, device_id: Uuid) -> Result<(), Error> {
        let path = format!("/v1/devices/{device_id}");
        self.authed_response(Method::DELETE, &path, None::<&()>)
            .await?;
        if self.ids.is_some_and(|ids| ids.device_id == device_id) {
            *self.token.lock().await = None;
        }
        Ok(())
    }

    /// Registers where the tenant's push service reaches this device
    /// (`PUT /v1/devices/me/push`): the server then tells the tenant, in a content-free
    /// `device.pending` webhook, when entries wait for this device.
    pub async fn set_push_token(&self, token: &str, provider: &str) -> Result<(), Error> {
        let body = cloak_proto::devices::PushRegistration {
            token: token.to_owned(),
            provider: provider.to_owned(),
        };
        self.authed_response(Method::PUT, "/v1/devices/me/push", Some(&body))
            .await
            .map(|_| ())
    }

    /// Removes this device's push registration (`DELETE /v1/devices/me/push`).
    pub async fn clear_push_token(&self) -> Result<(), Error> {
        self.authed_response(Method::DELETE, "/v1/devices/me/push", None::<&()>)
            .await
            .map(|_| ())
    }

    /// Uploads one-time KeyPackages and optionally replaces the last-resort one.
    pub async fn upload_key_packages(
        &self,
        key_packages: Vec<KeyPackageUpload>,
        last_resort: Option<KeyPackageUpload>,
    ) -> Result<KeyPackageStock, Error> {
        let body = UploadKeyPackagesRequest {
            key_packages,
            last_resort,
        };
        self.authed(Method::POST, "/v1/key-packages", Some(&body))
            .await
    }

    /// Time-limited TURN relay credentials for a call (`POST /v1/calls/turn-credentials`),
    /// for the WebRTC `iceServers`. Each grant may cost credits (`call_minute`).
    pub async fn turn_credentials(&self) -> Result<cloak_proto::calls::TurnCredentials, Error> {
        self.authed(Method::POST, "/v1/calls/turn-credentials", None::<&()>)
            .await
    }

    /// The server's credential as an MLS external sender (for new groups'
    /// `external_senders` extension).
    pub async fn external_sender(&self) -> Result<cloak_proto::delivery::ExternalSender, Error> {
        self.authed(Method::GET, "/v1/mls/external-sender", None::<&()>)
            .await
    }

    /// The device's KeyPackage stock (`GET /v1/key-packages/stock`).
    pub async fn stock(&self) -> Result<KeyPackageStock, Error> {
        self.authed(Method::GET, "/v1/key-packages/stock", None::<&()>)
            .await
    }

    /// When the stock is `low`, generates and uploads enough one-time KeyPackages to reach
    /// `target` (in batches of [`MAX_BATCH`]); uploads a last-resort package when none is
    /// on file. Returns the resulting stock. Private parts go to `provider`'s storage.
    pub async fn top_up_key_packages(
        &self,
        provider: &impl OpenMlsProvider,
        target: u32,
    ) -> Result<KeyPackageStock, Error> {
        let ids = self.require_ids()?;
        let mut stock = self.stock().await?;
        let mut missing = if stock.low {
            usize::try_from(target.saturating_sub(stock.one_time)).unwrap_or(usize::MAX)
        } else {
            0
        };
        let mut last_resort = if stock.last_resort {
            None
        } else {
            generate_key_packages(provider, &self.identity, &ids, 1, true)?.pop()
        };
        while missing > 0 || last_resort.is_some() {
            let n = missing.min(MAX_BATCH);
            let batch = generate_key_packages(provider, &self.identity, &ids, n, false)?;
            stock = self.upload_key_packages(batch, last_resort.take()).await?;
            missing -= n;
        }
        Ok(stock)
    }

    /// Claims one KeyPackage per approved device of `user_id` that has one, this device
    /// excepted (`POST /v1/users/{user_id}/key-packages/claim`): a one-time package, or the
    /// device's last-resort one when it has run out. The caller must be approved and be
    /// the user or one of the user's contacts (else `device_pending`, `not_found`).
    /// Validate each with
    /// [`crate::mls::parse_key_package`] and [`crate::mls::check_key_package_device`]
    /// against the verified directory before use.
    pub async fn claim_key_packages(&self, user_id: Uuid) -> Result<ClaimedKeyPackages, Error> {
        let path = format!("/v1/users/{user_id}/key-packages/claim");
        self.authed(Method::POST, &path, None::<&()>).await
    }

    /// Creates a conversation on the server with this device as its only member
    /// (`POST /v1/conversations`); the MLS group is created locally with the same id.
    pub async fn create_conversation(
        &self,
        conversation_id: Uuid,
    ) -> Result<ServerConversation, Error> {
        let body = CreateConversationRequest { conversation_id };
        self.authed(Method::POST, "/v1/conversations", Some(&body))
            .await
    }

    /// Submits an MLS commit (`POST /v1/conversations/{id}/commits`). A commit made at an
    /// epoch the conversation has left fails with the problem code `stale_epoch`.
    pub async fn submit_commit(
        &self,
        conversation_id: Uuid,
        commit: &CommitRequest,
    ) -> Result<SendReceipt, Error> {
        let path = format!("/v1/conversations/{conversation_id}/commits");
        self.authed(Method::POST, &path, Some(commit)).await
    }

    /// Sends an MLS application message (`POST /v1/conversations/{id}/messages`); stored
    /// for every recipient before this returns. Retrying with the same `client_msg_id` is safe.
    pub async fn send_message(
        &self,
        conversation_id: Uuid,
        message: &SendMessageRequest,
    ) -> Result<SendReceipt, Error> {
        let path = format!("/v1/conversations/{conversation_id}/messages");
        self.authed(Method::POST, &path, Some(message)).await
    }

    /// Redeems an invite code (`POST /v1/invites/{code}/redeem`): the inviter and this
    /// device's user become contacts.
    pub async fn redeem_invite(
        &self,
        code: &str,
    ) -> Result<cloak_proto::invites::Redemption, Error> {
        if code.is_empty()
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Malformed("not an invite code".into()));
        }
        let path = format!("/v1/invites/{code}/redeem");
        self.authed(Method::POST, &path, None::<&()>).await
    }

    /// Mints an invite as this device's user (`POST /v1/invites`). The `url` carries the
    /// fingerprint the server's directory holds; [`crate::Messenger::create_invite`] puts in
    /// the one this device knows.
    pub async fn create_invite(
        &self,
        max_uses: u32,
        expires_in_secs: u32,
    ) -> Result<cloak_proto::invites::Invite, Error> {
        let body = cloak_proto::invites::CreateInviteRequest {
            inviter_user_id: None,
            max_uses,
            expires_in_secs,
            note: None,
        };
        self.authed(Method::POST, "/v1/invites", Some(&body)).await
    }

    /// This device's user's contacts (`GET /v1/contacts`), by display name.
    pub async fn contacts(&self) -> Result<Vec<cloak_proto::invites::Contact>, Error> {
        let list: cloak_proto::invites::ContactList = self
            .authed(Method::GET, "/v1/contacts", None::<&()>)
            .await?;
        Ok(list.items)
    }

    /// Files a report (`POST /v1/reports`).
    pub async fn report(
        &self,
        report: &cloak_proto::abuse::ReportRequest,
    ) -> Result<cloak_proto::abuse::Report, Error> {
        self.authed(Method::POST, "/v1/reports", Some(report)).await
    }

    /// Blocks a user (`POST /v1/blocks`).
    pub async fn block(&self, user_id: Uuid) -> Result<(), Error> {
        let body = cloak_proto::abuse::BlockRequest { user_id };
        self.authed_response(Method::POST, "/v1/blocks", Some(&body))
            .await
            .map(|_| ())
    }

    /// Mailbox entries after `after` (`GET /v1/mailbox`).
    pub async fn fetch_mailbox(&self, after: u64, limit: u32) -> Result<MailboxPage, Error> {
        let path = format!("/v1/mailbox?after={after}&limit={limit}");
        self.authed(Method::GET, &path, None::<&()>).await
    }

    /// Deletes mailbox entries up to and including `up_to` (`POST /v1/mailbox/ack`).
    pub async fn ack_mailbox(&self, up_to: u64) -> Result<AckReceipt, Error> {
        self.authed(Method::POST, "/v1/mailbox/ack", Some(&AckRequest { up_to }))
            .await
    }

    async fn approve(&self, device_id: Uuid, expected_fp: Option<&str>) -> Result<Device, Error> {
        let ids = self.require_ids()?;
        let devices = self.devices().await?;
        let target = devices
            .iter()
            .find(|d| d.id == device_id)
            .ok_or(Error::InvalidState(
                "device is not among the user's devices",
            ))?;
        if target.status != DeviceStatus::Pending {
            return Err(Error::InvalidState("device is not pending"));
        }
        if target.tenant_id != ids.tenant_id || target.user_id != ids.user_id {
            return Err(Error::Protocol(
                "listed device belongs to another user".into(),
            ));
        }
        let key = <[u8; 32]>::try_from(target.identity_key.as_slice())
            .map_err(|_| Error::Protocol("device identity key is not 32 bytes".into()))?;
        if let Some(expected) = expected_fp
            && normalize_fingerprint(expected) != fingerprint(&key)
        {
            return Err(Error::Verification(
                "device key does not match the expected fingerprint".into(),
            ));
        }
        let approved_at_ms = self.clock.now_ms();
        let body = ApproveDeviceRequest {
            approved_at_ms,
            signature: self
                .identity
                .sign_approval(ids.tenant_id, ids.user_id, &key, approved_at_ms)
                .to_vec(),
        };
        let path = format!("/v1/devices/{device_id}/approve");
        self.authed(Method::POST, &path, Some(&body)).await
    }

    /// Challenge → sign → login. Does not touch the cache.
    async fn fresh_token(&self) -> Result<(CachedToken, Device), Error> {
        self.check_transport()?;
        let ids = self.require_ids()?;
        let challenge: Challenge = read_json(
            send(
                self.request(Method::POST, "/v1/auth/challenge")
                    .json(&ChallengeRequest {
                        device_id: ids.device_id,
                    }),
            )
            .await?,
        )
        .await?;
        let nonce = <[u8; 32]>::try_from(challenge.nonce.as_slice())
            .map_err(|_| Error::Protocol("challenge nonce is not 32 bytes".into()))?;
        let body = LoginRequest {
            device_id: ids.device_id,
            nonce: nonce.to_vec(),
            signature: self
                .identity
                .sign_login(ids.tenant_id, ids.device_id, &nonce)
                .to_vec(),
        };
        let resp = send(self.request(Method::POST, "/v1/auth/login").json(&body)).await?;
        let server_date_ms = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date_ms);
        let now_ms = self.clock.now_ms();
        let DeviceToken {
            token,
            expires_at,
            device,
        } = read_json(resp).await?;
        if device.id != ids.device_id {
            return Err(Error::Protocol("token issued for another device".into()));
        }
        let cached = CachedToken {
            token: SecretString::from(token),
            expires_at_ms: local_expiry_ms(unix_ms(expires_at), server_date_ms, now_ms),
        };
        Ok((cached, device))
    }

    /// A device-token request whose JSON answer is parsed.
    async fn authed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        read_json(self.authed_response(method, path, body).await?).await
    }

    /// Sends with the device token; when the server refuses the token itself
    /// ([`RELOGIN_CODES`]: expired early, or unknown to it) logs in again and retries once.
    /// Other refusals, such as `device_revoked` or `user_suspended`, which a new login
    /// cannot cure, are returned as they are. Non-success answers become errors.
    async fn authed_response(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Response, Error> {
        self.authed_with(method, path, |req| match body {
            Some(b) => req.json(b),
            None => req,
        })
        .await
    }

    /// As [`authed_response`](Self::authed_response), with the request completed by
    /// `finish` (headers, a raw body); `finish` may run twice (a retry after a new login).
    pub(crate) async fn authed_with(
        &self,
        method: Method,
        path: &str,
        finish: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Error> {
        self.check_transport()?;
        let build = |token: &SecretString| {
            finish(
                self.request(method.clone(), path)
                    .bearer_auth(token.expose_secret()),
            )
        };
        let resp = build(&self.token().await?)
            .send()
            .await
            .map_err(transport)?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return check(resp).await;
        }
        match problem_from_response(resp).await {
            Error::Problem(p) if RELOGIN_CODES.contains(&p.code) => {}
            other => return Err(other),
        }
        *self.token.lock().await = None;
        check(
            build(&self.token().await?)
                .send()
                .await
                .map_err(transport)?,
        )
        .await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
    }

    fn require_ids(&self) -> Result<DeviceIds, Error> {
        self.ids
            .ok_or(Error::InvalidState("the device is not registered"))
    }
}

/// Sends and turns a non-success answer into an error.
async fn send(req: RequestBuilder) -> Result<Response, Error> {
    check(req.send().await.map_err(transport)?).await
}

async fn check(resp: Response) -> Result<Response, Error> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(problem_from_response(resp).await)
    }
}

pub(crate) async fn read_json<T: DeserializeOwned>(resp: Response) -> Result<T, Error> {
    resp.json()
        .await
        .map_err(|e| Error::Protocol(e.without_url().to_string()))
}

pub(crate) fn transport(e: reqwest::Error) -> Error {
    Error::Transport(e.to_string())
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// An HTTP `Date` header (IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`) in Unix ms.
fn parse_http_date_ms(value: &str) -> Option<i64> {
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(unix_ms)
}

/// When a token expires by the device's clock: its lifetime by the server's clock (the
/// expiry minus the response's `Date`) counted from the device's `now`. Device clocks are
/// often off by minutes or more; comparing the server's absolute expiry with them would
/// keep using an expired token, or log in again on every call. `Date` has one-second
/// resolution and may be a little stale, so the lifetime can come out a second or two
/// long; the refresh margin absorbs that. Without a usable `Date`, the server's expiry
/// is taken as it is.
fn local_expiry_ms(expires_at_ms: i64, server_date_ms: Option<i64>, now_ms: i64) -> i64 {
    match server_date_ms {
        Some(date) => now_ms.saturating_add(expires_at_ms.saturating_sub(date).max(0)),
        None => expires_at_ms,
    }
}

/// Lowercase hex digits only, so `AB:CD ef` compares equal to `abcdef`.
fn normalize_fingerprint(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedClock;
    impl Clock for FixedClock {
        fn now_ms(&self) -> i64 {
            0
        }
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let identity = DeviceIdentity::generate_os();
        let secret_hex = hex::encode(*identity.to_secret_bytes());
        let client = DeviceClient::new(
            crate::Tls::new().and_then(|t| t.http_client()).unwrap(),
            "http://localhost:1/",
            identity,
            FixedClock,
        );
        let debug = format!("{client:?}");
        assert!(debug.contains("http://localhost:1\""));
        assert!(!debug.contains(&secret_hex));
        assert!(!debug.contains("token"));
    }

    #[test]
    fn fingerprints_are_normalised() {
        assert_eq!(normalize_fingerprint("AB:cd Ef\n01"), "abcdef01");
    }

    #[test]
    fn times_become_unix_ms() {
        assert_eq!(unix_ms(OffsetDateTime::UNIX_EPOCH), 0);
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(1_234_567);
        assert_eq!(unix_ms(t), 1_234_567);
    }

    #[test]
    fn http_dates_are_parsed() {
        assert_eq!(
            parse_http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date_ms("yesterday"), None);
    }

    #[test]
    fn token_expiry_follows_the_servers_lifetime_not_its_clock() {
        let server_now = 1_700_000_000_000;
        let expires = server_now + 3_600_000;
        // A device clock two hours ahead or behind still gets one hour.
        for skew in [-7_200_000, 0, 7_200_000] {
            let device_now = server_now + skew;
            assert_eq!(
                local_expiry_ms(expires, Some(server_now), device_now),
                device_now + 3_600_000
            );
        }
        // Already expired by the server's clock: expires now.
        assert_eq!(local_expiry_ms(expires, Some(expires + 5), 42), 42);
        // No Date header: the server's expiry as it is.
        assert_eq!(local_expiry_ms(expires, None, 42), expires);
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn client_and_futures_are_send() {
        let client = DeviceClient::new(
            crate::Tls::new().and_then(|t| t.http_client()).unwrap(),
            "http://127.0.0.1:1",
            DeviceIdentity::generate_os(),
            SystemClock,
        );
        let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
        assert_send(&client);
        assert_send(&client.login());
        assert_send(&client.approve_device(Uuid::nil()));
        assert_send(&client.top_up_key_packages(&provider, 1));
        assert_send(&client.claim_key_packages(Uuid::nil()));
    }

    #[tokio::test]
    async fn unregistered_devices_cannot_log_in() {
        let client = DeviceClient::new(
            crate::Tls::new().and_then(|t| t.http_client()).unwrap(),
            "http://127.0.0.1:1",
            DeviceIdentity::generate_os(),
            FixedClock,
        );
        assert!(matches!(client.login().await, Err(Error::InvalidState(_))));
        assert!(matches!(client.stock().await, Err(Error::InvalidState(_))));
    }
}
