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

/// What is wrong with a tus header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusHeaderError(pub &'static str);

/// The conversation an `Upload-Metadata` header names (`conversation_id <base64 id>`,
/// among other comma-separated pairs, which are ignored).
pub fn metadata_conversation(metadata: &str) -> Result<Uuid, TusHeaderError> {
    use base64::Engine as _;
    for pair in metadata.split(',') {
        let mut it = pair.trim().splitn(2, ' ');
        if it.next() != Some(METADATA_CONVERSATION) {
            continue;
        }
        let value = it.next().unwrap_or("").trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| TusHeaderError("Upload-Metadata values are base64"))?;
        let text = std::str::from_utf8(&decoded)
            .map_err(|_| TusHeaderError("conversation_id is not a UUID"))?;
        return Uuid::parse_str(text).map_err(|_| TusHeaderError("conversation_id is not a UUID"));
    }
    Err(TusHeaderError(
        "Upload-Metadata must name the conversation: conversation_id <base64 id>",
    ))
}

/// A tus length or offset header: a non-negative decimal integer.
pub fn tus_number(value: &str) -> Result<i64, TusHeaderError> {
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TusHeaderError("must be a non-negative integer"));
    }
    value
        .parse()
        .map_err(|_| TusHeaderError("must be a non-negative integer"))
}

/// An `Upload-Checksum` algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn upload_checksum(value: &str) -> Result<(ChecksumAlgorithm, Vec<u8>), TusHeaderError> {
    use base64::Engine as _;
    let (algorithm, digest) = value.trim().split_once(' ').ok_or(TusHeaderError(
        "Upload-Checksum is `<algorithm> <base64 digest>`",
    ))?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| TusHeaderError("the Upload-Checksum digest is base64"))?;
    let algorithm = match algorithm {
        "sha1" => ChecksumAlgorithm::Sha1,
        "sha256" => ChecksumAlgorithm::Sha256,
        _ => return Err(TusHeaderError("Upload-Checksum algorithms: sha1, sha256")),
    };
    Ok((algorithm, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tus_headers_parse_or_say_why_not() {
        let id = Uuid::from_u128(42);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(id.to_string());
        assert_eq!(
            metadata_conversation(&format!("filename eA==, conversation_id {b64}")),
            Ok(id)
        );
        assert!(metadata_conversation("filename eA==").is_err());
        assert!(metadata_conversation("conversation_id ???").is_err());
        assert_eq!(tus_number("1024"), Ok(1024));
        for bad in ["", "-1", "+1", "1e3", "99999999999999999999"] {
            assert!(tus_number(bad).is_err(), "{bad}");
        }
        assert_eq!(
            upload_checksum("sha1 AAAA").map(|c| c.0),
            Ok(ChecksumAlgorithm::Sha1)
        );
        assert!(upload_checksum("md5 AAAA").is_err());
        assert!(upload_checksum("sha256").is_err());
    }

    #[test]
    fn tiers_follow_the_size() {
        assert_eq!(AttachmentSize::for_size(1), AttachmentSize::Small);
        assert_eq!(
            AttachmentSize::for_size(SMALL_MAX_BYTES),
            AttachmentSize::Small
        );
        assert_eq!(
            AttachmentSize::for_size(SMALL_MAX_BYTES + 1),
            AttachmentSize::Medium
        );
        assert_eq!(
            AttachmentSize::for_size(MEDIUM_MAX_BYTES + 1),
            AttachmentSize::Large
        );
    }
}
