//! Users and devices for identity tests: a device is an Ed25519 key the test holds.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloak_proto::signing::{approval_message, login_message};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub fn unb64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

/// A device the test controls.
pub struct TestDevice {
    pub key: SigningKey,
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub status: String,
    pub token: String,
}

impl TestDevice {
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

impl TestApp {
    /// The server's current time.
    pub fn clock_ms(&self) -> i64 {
        cloak_api::clock::Clock::now_ms(self.clock.as_ref())
    }

    /// Creates a user with the tenant's API key; returns its id.
    pub async fn create_user(&self, external_id: &str) -> Uuid {
        let resp = self
            .post_json(
                "/v1/users",
                &self.api_key,
                &json!({"external_id": external_id, "display_name": external_id}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// Mints a user token.
    pub async fn user_token(&self, user_id: Uuid) -> String {
        let resp = self
            .client
            .post(self.url(&format!("/v1/users/{user_id}/tokens")))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Mints an invite for `inviter` with the tenant's key (valid an hour).
    pub async fn mint_invite(&self, inviter: Uuid, max_uses: u32) -> Value {
        let resp = self
            .post_json(
                "/v1/invites",
                &self.api_key,
                &json!({"inviter_user_id": inviter, "max_uses": max_uses, "expires_in_secs": 3600}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// A user (`external_id`) of the tenant whose API key is `api_key`, with one device
    /// logged in: for tests with a second tenant.
    pub async fn tenant_device(&self, api_key: &str, external_id: &str) -> TestDevice {
        let user: Value = self
            .post_json(
                "/v1/users",
                api_key,
                &json!({"external_id": external_id, "display_name": external_id}),
            )
            .await
            .json()
            .await
            .unwrap();
        let user_id: Uuid = user["id"].as_str().unwrap().parse().unwrap();
        let token: Value = self
            .client
            .post(self.url(&format!("/v1/users/{user_id}/tokens")))
            .bearer_auth(api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let v: Value = self
            .post_json(
                "/v1/devices",
                token["token"].as_str().unwrap(),
                &json!({"identity_key": b64(key.verifying_key().as_bytes())}),
            )
            .await
            .json()
            .await
            .unwrap();
        let mut device = TestDevice {
            key,
            id: v["id"].as_str().unwrap().parse().unwrap(),
            tenant_id: v["tenant_id"].as_str().unwrap().parse().unwrap(),
            user_id,
            status: v["status"].as_str().unwrap_or_default().to_owned(),
            token: String::new(),
        };
        device.token = self.login(&device).await;
        device
    }

    /// Registers a new random device for the user and logs it in.
    pub async fn new_device(&self, user_id: Uuid) -> TestDevice {
        let token = self.user_token(user_id).await;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let resp = self
            .post_json(
                "/v1/devices",
                &token,
                &json!({"identity_key": b64(key.verifying_key().as_bytes()), "name": "test"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        let mut device = TestDevice {
            key,
            id: v["id"].as_str().unwrap().parse().unwrap(),
            tenant_id: v["tenant_id"].as_str().unwrap().parse().unwrap(),
            user_id,
            status: v["status"].as_str().unwrap().to_owned(),
            token: String::new(),
        };
        device.token = self.login(&device).await;
        device
    }

    /// Requests a challenge for the device.
    pub async fn challenge(&self, device_id: Uuid) -> reqwest::Response {
        self.client
            .post(self.url("/v1/auth/challenge"))
            .json(&json!({"device_id": device_id}))
            .send()
            .await
            .unwrap()
    }

    /// Signs a fresh challenge; returns (nonce, signature).
    pub async fn signed_challenge(&self, device: &TestDevice) -> ([u8; 32], Vec<u8>) {
        let resp = self.challenge(device.id).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        let nonce: [u8; 32] = unb64(&v["nonce"]).try_into().unwrap();
        let sig = device
            .key
            .sign(&login_message(device.tenant_id, device.id, &nonce));
        (nonce, sig.to_bytes().to_vec())
    }

    pub async fn login_with(
        &self,
        device_id: Uuid,
        nonce: &[u8],
        signature: &[u8],
    ) -> reqwest::Response {
        self.client
            .post(self.url("/v1/auth/login"))
            .json(
                &json!({"device_id": device_id, "nonce": b64(nonce), "signature": b64(signature)}),
            )
            .send()
            .await
            .unwrap()
    }

    /// Full challenge login; returns the device token.
    pub async fn login(&self, device: &TestDevice) -> String {
        let (nonce, sig) = self.signed_challenge(device).await;
        let resp = self.login_with(device.id, &nonce, &sig).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert!(v["token"].as_str().unwrap().starts_with("cd_"));
        v["token"].as_str().unwrap().to_owned()
    }

    /// `approver` signs and posts the approval of `target`.
    pub async fn approve(
        &self,
        approver: &TestDevice,
        target: &TestDevice,
        approved_at_ms: i64,
    ) -> reqwest::Response {
        let msg = approval_message(
            approver.tenant_id,
            approver.user_id,
            &target.public_key(),
            approved_at_ms,
        );
        let sig = approver.key.sign(&msg).to_bytes();
        self.post_json(
            &format!("/v1/devices/{}/approve", target.id),
            &approver.token,
            &json!({"approved_at_ms": approved_at_ms, "signature": b64(&sig)}),
        )
        .await
    }

    /// Claims key packages of `user`'s devices.
    pub async fn claim(&self, token: &str, user: Uuid) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/users/{user}/key-packages/claim")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Makes two users contacts.
    pub async fn make_contacts(&self, a: Uuid, b: Uuid) {
        let resp = self
            .post_json(
                "/v1/contacts",
                &self.api_key,
                &json!({"user_id": a, "contact_user_id": b}),
            )
            .await;
        assert_eq!(resp.status(), 204);
    }
}
