//! Creates the benchmark's users, devices and conversations over the REST API, exactly as
//! a tenant backend and its apps would: users and contacts with the API key, devices by
//! Ed25519 challenge login, conversations by a commit that adds the peer device.

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloak_proto::mls_frame;
use cloak_proto::signing::login_message;
use ed25519_dalek::{Signer as _, SigningKey};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::server::Tenant;

/// A logged-in device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Device id.
    pub id: Uuid,
    /// Device token (`cd_…`).
    pub token: String,
}

/// A sender and a receiver device sharing a conversation at epoch 1.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Sends.
    pub sender: Device,
    /// Receives and acks.
    pub receiver: Device,
    /// The conversation.
    pub conversation: Uuid,
}

/// The tenant API, for set-up.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    tenant: Tenant,
    /// Distinguishes this run's external ids.
    run: Uuid,
}

impl Api {
    /// A client for the node at `base` (`http://…`).
    pub fn new(base: &str, tenant: Tenant) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            http,
            base: base.to_owned(),
            tenant,
            run: Uuid::new_v4(),
        })
    }

    /// Sets the tenant's trust levels (`PUT /v1/trust-levels`).
    pub async fn put_trust_levels(&self, levels: Value) -> Result<()> {
        let resp = self
            .http
            .put(format!("{}/v1/trust-levels", self.base))
            .bearer_auth(&self.tenant.api_key)
            .json(&levels)
            .send()
            .await
            .context("PUT /v1/trust-levels")?;
        if resp.status().as_u16() != 200 {
            bail!(
                "PUT /v1/trust-levels: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The same API with fresh external ids (to set up more users in one run).
    pub fn renamed(&self) -> Self {
        Self {
            run: Uuid::new_v4(),
            ..self.clone()
        }
    }

    /// Sets the trust level of a device's user (`PATCH /v1/users/{id}`).
    pub async fn set_trust_level(&self, device: &Device, level: &str) -> Result<()> {
        let user = self.user_of(device).await?;
        let resp = self
            .http
            .patch(format!("{}/v1/users/{user}", self.base))
            .bearer_auth(&self.tenant.api_key)
            .json(&json!({"trust_level": level}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("PATCH user: {}", resp.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn user_of(&self, device: &Device) -> Result<Uuid> {
        let v: Value = self
            .http
            .get(format!("{}/v1/devices", self.base))
            .bearer_auth(&device.token)
            .send()
            .await?
            .json()
            .await?;
        let user = v["items"][0]["user_id"]
            .as_str()
            .ok_or_else(|| anyhow!("no device list: {v}"))?;
        Ok(user.parse()?)
    }

    /// Lifts the message limits, for workloads that measure delivery rather than limits.
    pub async fn unlimited(&self) -> Result<()> {
        self.put_trust_levels(
            json!({"levels": [{"name": "new", "messages_per_window": 1_000_000,
            "window_secs": 1, "max_attachment": "large", "invites_per_day": 1_000_000,
            "new_contacts_per_day": 1_000_000}]}),
        )
        .await
    }

    async fn post(&self, path: &str, token: &str, body: Option<Value>, want: u16) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = resp.status().as_u16();
        if status != want {
            let text = resp.text().await.unwrap_or_default();
            bail!("POST {path}: expected {want}, got {status}: {text}");
        }
        if status == 204 {
            return Ok(Value::Null);
        }
        Ok(resp.json().await?)
    }

    fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
        v[key]
            .as_str()
            .ok_or_else(|| anyhow!("response has no string `{key}`: {v}"))
    }

    /// Creates a user; returns its id.
    pub async fn create_user(&self, label: &str) -> Result<Uuid> {
        let external_id = format!("bench-{}-{label}", self.run);
        let v = self
            .post(
                "/v1/users",
                &self.tenant.api_key,
                Some(json!({"external_id": external_id, "display_name": label})),
                201,
            )
            .await?;
        Ok(Self::str_field(&v, "id")?.parse()?)
    }

    /// Makes two users contacts.
    pub async fn make_contacts(&self, a: Uuid, b: Uuid) -> Result<()> {
        self.post(
            "/v1/contacts",
            &self.tenant.api_key,
            Some(json!({"user_id": a, "contact_user_id": b})),
            204,
        )
        .await?;
        Ok(())
    }

    /// Registers a fresh device for the user (its first, so approved) and logs it in.
    pub async fn new_device(&self, user: Uuid) -> Result<Device> {
        let v = self
            .post(
                &format!("/v1/users/{user}/tokens"),
                &self.tenant.api_key,
                None,
                201,
            )
            .await?;
        let user_token = Self::str_field(&v, "token")?.to_owned();
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let v = self
            .post(
                "/v1/devices",
                &user_token,
                Some(json!({"identity_key": STANDARD.encode(key.verifying_key().as_bytes())})),
                201,
            )
            .await?;
        let id: Uuid = Self::str_field(&v, "id")?.parse()?;
        let challenge = self
            .post(
                "/v1/auth/challenge",
                "",
                Some(json!({"device_id": id})),
                200,
            )
            .await?;
        let nonce: [u8; 32] = STANDARD
            .decode(Self::str_field(&challenge, "nonce")?)?
            .try_into()
            .map_err(|_| anyhow!("challenge nonce is not 32 bytes"))?;
        let sig = key.sign(&login_message(self.tenant.tenant_id, id, &nonce));
        let login = self
            .post(
                "/v1/auth/login",
                "",
                Some(json!({
                    "device_id": id,
                    "nonce": STANDARD.encode(nonce),
                    "signature": STANDARD.encode(sig.to_bytes()),
                })),
                200,
            )
            .await?;
        Ok(Device {
            id,
            token: Self::str_field(&login, "token")?.to_owned(),
        })
    }

    /// `owner` creates a conversation and commits `peer` into it (epoch 0 → 1).
    pub async fn conversation(&self, owner: &Device, peer: &Device) -> Result<Uuid> {
        let id = Uuid::new_v4();
        self.post(
            "/v1/conversations",
            &owner.token,
            Some(json!({"conversation_id": id})),
            201,
        )
        .await?;
        self.post(
            &format!("/v1/conversations/{id}/commits"),
            &owner.token,
            Some(json!({
                "client_msg_id": Uuid::new_v4(),
                "epoch": 0,
                "commit": STANDARD.encode(mls_frame::private_message(id.as_bytes(), 0, mls_frame::ContentType::Commit, b"bench commit")),
                "welcome": STANDARD.encode(mls_frame::welcome(1, b"bench welcome")),
                "add": [peer.id],
            })),
            201,
        )
        .await?;
        Ok(id)
    }

    /// One sender/receiver pair: two contact users, a device each, a conversation.
    pub async fn pair(&self, i: usize) -> Result<Pair> {
        let (s_label, r_label) = (format!("s{i}"), format!("r{i}"));
        let (s, r) = tokio::try_join!(self.create_user(&s_label), self.create_user(&r_label))?;
        self.make_contacts(s, r).await?;
        let (sender, receiver) = tokio::try_join!(self.new_device(s), self.new_device(r))?;
        let conversation = self.conversation(&sender, &receiver).await?;
        Ok(Pair {
            sender,
            receiver,
            conversation,
        })
    }

    /// `n` pairs, `concurrency` set up at a time.
    pub async fn pairs(&self, n: usize, concurrency: usize) -> Result<Vec<Pair>> {
        futures_util::stream::iter(0..n)
            .map(|i| self.pair(i))
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    /// `n` lone devices (one user each), `concurrency` set up at a time.
    pub async fn devices(&self, n: usize, concurrency: usize) -> Result<Vec<Device>> {
        futures_util::stream::iter(0..n)
            .map(|i| async move {
                let user = self.create_user(&format!("idle{i}")).await?;
                self.new_device(user).await
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }
}
