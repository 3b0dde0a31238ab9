//! Encrypted attachments, uploaded with the tus 1.0 resumable-upload protocol (core,
//! creation, checksum, expiration and termination extensions).
//!
//! The bytes are ciphertext the SDK made; the server stores and serves them without a key.
//! An upload's tier (small, medium, large) — and so its price and whether the sender's
//! trust level may send it — follows from its declared total size, never from the client.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::abuse::AttachmentSize;

/// The tus protocol version this server speaks (`Tus-Resumable`, `Tus-Version`).
pub const TUS_RESUMABLE: &str = "1.0.0";
/// The tus extensions this server supports (`Tus-Extension`).
pub const TUS_EXTENSIONS: &str = "creation,checksum,expiration,termination";
/// The checksum algorithms `Upload-Checksum` may name (`Tus-Checksum-Algorithm`).
pub const TUS_CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
/// The `Content-Type` of a tus `PATCH` body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// The `Upload-Metadata` key naming the conversation (value: the id, base64).
pub const METADATA_CONVERSATION: &str = "conversation_id";
/// Largest small attachment, in bytes.
pub const SMALL_MAX_BYTES: u64 = 1 << 20;
/// Largest medium attachment, in bytes.
pub const MEDIUM_MAX_BYTES: u64 = 25 << 20;

impl AttachmentSize {
    /// The tier of an attachment of `bytes` (its stored, encrypted size).
    pub fn for_size(bytes: u64) -> Self {
        if bytes <= SMALL_MAX_BYTES {
            Self::Small
        } else if bytes <= MEDIUM_MAX_BYTES {
            Self::Medium
        } else {
            Self::Large
        }
    }

    /// `none`, `small`, `medium` or `large`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }
}

/// An upload or stored attachment, as `POST /v1/attachments` creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentUpload {
    /// Its id (the last segment of `Location`).
    pub id: Uuid,
    /// The conversation whose members may download it.
    pub conversation_id: Uuid,
    /// Total bytes (`Upload-Length`).
    pub size: u64,
    /// Bytes stored so far (`Upload-Offset`).
    pub offset: u64,
    /// The tier its size falls in: what it costs and which trust levels may send it.
    pub tier: AttachmentSize,
    /// Credits the tier costs, charged once when the last byte arrives.
    pub price: i64,
    /// Whether every byte arrived.
    pub complete: bool,
    /// When an unfinished upload is discarded, or a finished attachment deleted at the
    /// latest (the tenant's retention).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
