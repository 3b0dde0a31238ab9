//! Devices: identity keys, challenge login, approval by another device of the same user.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

/// Request body of `POST /v1/devices` (user token).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "identity_key": "HlE0p2jEfMKDZJ+5ztZuytZLxfIWIBtEZNHYC6tfHOM=",
    "name": "Alice's laptop"
}))]
pub struct RegisterDeviceRequest {
    /// The device's Ed25519 identity public key (32 bytes, base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub identity_key: Vec<u8>,
    /// A label such as `Alice's phone`.
    #[validate(length(min = 1, max = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Approval state of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// May log in and take part in conversations.
    Approved,
    /// Waits for an approved device of the same user to sign its approval.
    Pending,
    /// Revoked: its tokens no longer work.
    Revoked,
}

impl DeviceStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Pending => "pending",
            Self::Revoked => "revoked",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approved" => Some(Self::Approved),
            "pending" => Some(Self::Pending),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// A device as the directory shows it. Clients verify `approval_signature` with the
/// approver's identity key over `signing::approval_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    /// Device id.
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The owning user.
    pub user_id: Uuid,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ed25519 identity public key (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub identity_key: Vec<u8>,
    /// Approval state.
    pub status: DeviceStatus,
    /// When the device registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The device that approved this one; absent for a user's first device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<Uuid>,
    /// The approval time that was signed (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at_ms: Option<i64>,
    /// The approver's Ed25519 signature (base64).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::bytes::option"
    )]
    #[schema(value_type = Option<String>, format = Byte)]
    pub approval_signature: Option<Vec<u8>>,
}

/// A list of devices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    /// The devices, oldest first.
    pub items: Vec<Device>,
}

/// Request body of `POST /v1/devices/{id}/approve` (device token of an approved device of
/// the same user).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "approved_at_ms": 1_796_400_000_000_i64,
    "signature": "eEkgjZEZo6Isje/xwhwn6dmPFa/LasMUOBffzAUESvWYglEjcRcq9CEZfYhO9huiN5y1mP1t5uJsgKrr9PpNAg=="
}))]
pub struct ApproveDeviceRequest {
    /// The signed approval time (Unix ms); must be within five minutes of the server's clock.
    pub approved_at_ms: i64,
    /// Ed25519 signature over `signing::approval_message` (64 bytes, base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub signature: Vec<u8>,
}

/// Request body of `POST /v1/auth/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "device_id": "0d4e6f8a-2b1c-4d3e-8f5a-6b7c8d9e0f1a"
}))]
pub struct ChallengeRequest {
    /// The device that will sign.
    pub device_id: Uuid,
}

/// A single-use login challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// 32 random bytes (base64) to sign inside `signing::login_message`.
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub nonce: Vec<u8>,
    /// When the challenge stops being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Request body of `POST /v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "device_id": "0d4e6f8a-2b1c-4d3e-8f5a-6b7c8d9e0f1a",
    "nonce": "m3oxIwzT1vkfQ9xarY3QJAS2DszcNpka+kIZLR/XLR8=",
    "signature": "6UqgeRCrZ9rAe+XkNo9CAS2h0hpT1QE8T8nQDkNGbbthB60w+7THw6YS+XMip0taVAgGSjlCZ4PHlU0POFDACg=="
}))]
pub struct LoginRequest {
    /// The device logging in.
    pub device_id: Uuid,
    /// The challenge's nonce (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub nonce: Vec<u8>,
    /// Ed25519 signature over `signing::login_message` (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub signature: Vec<u8>,
}

/// Response of `POST /v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceToken {
    /// Bearer token (`cd_…`) for device endpoints.
    pub token: String,
    /// When the token stops working; log in again before then.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The device, with its current approval state.
    pub device: Device,
}

/// Request body of `PUT /v1/devices/me/push`: where the tenant's push service reaches this
/// device. The server stores both as given and hands them back, and nothing else, in
/// `device.pending` webhooks; it never contacts a push provider itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "token": "fa46832c97377ca0b5296fe7f40b53e4a0370dbc90882ac179dd764bfab46fd4",
    "provider": "apns"
}))]
pub struct PushRegistration {
    /// The provider's token for this app install (opaque to Cloak).
    #[validate(length(min = 1, max = 4096))]
    pub token: String,
    /// The push service: `apns`, `fcm`, or any short name the tenant uses (1 to 32 ASCII
    /// letters, digits, `-`, `_`, `.`; kept as given).
    #[validate(length(min = 1, max = 32))]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,32}$", example = "apns")]
    pub provider: String,
}

impl PushRegistration {
    /// Whether the provider name is short and plain: 1 to 32 ASCII letters (either case,
    /// kept as given), digits, `-`, `_` or `.`.
    pub fn provider_is_valid(&self) -> bool {
        !self.provider.is_empty()
            && self.provider.len() <= 32
            && self
                .provider
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    }
}
