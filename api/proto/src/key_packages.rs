//! The MLS KeyPackage directory. Packages are opaque bytes to the server.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

/// Most packages in one upload.
pub const MAX_BATCH: usize = 100;
/// Largest package, in bytes.
pub const MAX_PACKAGE_BYTES: usize = 16 * 1024;
/// Below this many one-time packages the stock is reported `low`.
pub const LOW_STOCK: u32 = 10;

/// One KeyPackage to publish.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct KeyPackageUpload {
    /// The package's MLS hash reference (base64), unique per device.
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    #[validate(length(min = 1, max = 64))]
    pub hash_ref: Vec<u8>,
    /// The TLS-serialised MLS KeyPackage (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    #[validate(length(min = 1, max = 16384))]
    pub data: Vec<u8>,
    /// The package's own expiry (its lifetime's `not_after`, Unix seconds).
    pub not_after: i64,
}

/// Request body of `POST /v1/key-packages`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "key_packages": [
        {
            "hash_ref": "k/Jlbp8ZzznXzsAMP9Y6Wr/UqOqIwxpQF8ElhqlmD9U=",
            "data": "AAEABQABAAEgu1QGiuqF+qfkh1MAgzZr6ZYjkK+CLkxx7xrKcDPIPmY=",
            "not_after": 1893456000
        }
    ],
    "last_resort": {
        "hash_ref": "33Fs89ryzSbtthzWyz5GqjMhiZZKnB5eOBMEdniK9CQ=",
        "data": "AAEABQABAAEgtH3AYNWQRZtlT9GalEBKa1N2PbFCZa44pBHid4zaJOo=",
        "not_after": 1893456000
    }
}))]
pub struct UploadKeyPackagesRequest {
    /// One-time packages: each is handed out at most once.
    #[validate(length(max = 100), nested)]
    #[serde(default)]
    pub key_packages: Vec<KeyPackageUpload>,
    /// Replaces the device's last-resort package, handed out when one-time stock is empty.
    #[validate(nested)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resort: Option<KeyPackageUpload>,
}

/// A device's stock (`GET /v1/key-packages/stock`, and the answer to an upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyPackageStock {
    /// Unexpired one-time packages waiting to be claimed.
    pub one_time: u32,
    /// Whether an unexpired last-resort package is on file.
    pub last_resort: bool,
    /// True when the device should upload more.
    pub low: bool,
}

/// One claimed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedKeyPackage {
    /// The device the package belongs to.
    pub device_id: Uuid,
    /// Its hash reference (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub hash_ref: Vec<u8>,
    /// The package (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub data: Vec<u8>,
    /// True when it is the device's last-resort package (it may be handed out again).
    pub last_resort: bool,
}

/// Response of `POST /v1/users/{id}/key-packages/claim`: one package per approved device
/// of the user that has one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimedKeyPackages {
    /// The user whose devices' packages these are.
    pub user_id: Uuid,
    /// One per device; devices without any unexpired package are absent.
    pub items: Vec<ClaimedKeyPackage>,
}
