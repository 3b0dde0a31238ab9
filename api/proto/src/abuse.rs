//! Trust levels and their limits, blocks, verifiable reports and moderation.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

/// The largest attachment a level may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentSize {
    /// No attachments.
    None,
    /// Up to 1 MiB.
    Small,
    /// Up to 25 MiB.
    Medium,
    /// Any size.
    Large,
}

/// A level name: lowercase letters, digits, `_` and `-` (the schema's pattern).
fn level_name(name: &str) -> Result<(), validator::ValidationError> {
    if name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(validator::ValidationError::new("level_name")
            .with_message("lowercase letters, digits, _ and - only".into()))
    }
}

/// One trust level and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TrustLevel {
    /// Its name (lowercase letters, digits, `_`, `-`).
    #[validate(length(min = 1, max = 32), custom(function = "level_name"))]
    #[schema(pattern = r"^[a-z0-9_-]+$")]
    pub name: String,
    /// Messages allowed per window, across all recipients.
    #[validate(range(min = 1, max = 1_000_000))]
    pub messages_per_window: u32,
    /// The window, in seconds.
    #[validate(range(min = 1, max = 86_400))]
    pub window_secs: u32,
    /// The largest attachment.
    pub max_attachment: AttachmentSize,
    /// Invites a user may mint per day.
    #[validate(range(min = 0, max = 1_000_000))]
    pub invites_per_day: u32,
    /// New contacts (invite redemptions) per day.
    #[validate(range(min = 0, max = 1_000_000))]
    pub new_contacts_per_day: u32,
    /// TURN credential grants (calls) per hour; 0: the level may not call.
    #[serde(default = "default_calls_per_hour")]
    #[validate(range(min = 0, max = 1_000_000))]
    pub calls_per_hour: u32,
    /// Automatic promotion to the next level once the account is this old (seconds) and
    /// has no upheld reports. Absent: only the tenant promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 9_223_372_036_854_775_807_u64))]
    pub promote_after_secs: Option<u64>,
}

fn default_calls_per_hour() -> u32 {
    20
}

/// `GET`/`PUT /v1/trust-levels`: the tenant's levels, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "levels": [
        {
            "name": "new",
            "messages_per_window": 1,
            "window_secs": 10,
            "max_attachment": "small",
            "invites_per_day": 5,
            "new_contacts_per_day": 10,
            "calls_per_hour": 6,
            "promote_after_secs": 604800
        },
        {
            "name": "basic",
            "messages_per_window": 30,
            "window_secs": 60,
            "max_attachment": "small",
            "invites_per_day": 20,
            "new_contacts_per_day": 50,
            "calls_per_hour": 20
        },
        {
            "name": "trusted",
            "messages_per_window": 120,
            "window_secs": 60,
            "max_attachment": "large",
            "invites_per_day": 100,
            "new_contacts_per_day": 200,
            "calls_per_hour": 60
        },
        {
            "name": "verified",
            "messages_per_window": 600,
            "window_secs": 60,
            "max_attachment": "large",
            "invites_per_day": 1000,
            "new_contacts_per_day": 1000,
            "calls_per_hour": 240
        }
    ]
}))]
pub struct TrustLevels {
    /// Ordered from least to most trusted; new users start at the first.
    #[validate(nested, length(min = 1, max = 16))]
    pub levels: Vec<TrustLevel>,
}

/// `POST /v1/blocks`: stop a user's messages and invites from reaching this user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "user_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
}))]
pub struct BlockRequest {
    /// The user to block.
    pub user_id: Uuid,
}

/// `GET /v1/blocks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockList {
    /// Blocked users.
    pub user_ids: Vec<Uuid>,
}

/// `POST /v1/reports`: a recipient reveals a message so the tenant's moderators can act.
/// It verifies only if the server stamped exactly this commitment from this sender at this
/// time, and the commitment opens to exactly this text under the revealed key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "conversation_id": "3f6c1b7e-8a2d-4c1e-9b5a-2d7e4f1a0c93",
    "message_id": "6e2b8f4a-9c1d-4a7e-b3f5-8d0c2e6a4b19",
    "sender_device_id": "c2a7f1e9-3b4d-4c5e-9f6a-7b8c9d0e1f2a",
    "sent_at_ms": 1_796_398_234_567_i64,
    "text": "See you at 7?",
    "franking_key": "/Wi5pwwmBpYHSnk3/WJIPHon2uRZgYVQSfHOdtUHU4M=",
    "franking_tag": "hW3Xq9z32+DPAZ0ZPhyInWUWFDfNr61FIByYqYQc2CQ=",
    "franking_stamp": "4K/Nv2rUrfVmxXLX98NNTfuF5RIrunUNajpYQvkV05s=",
    "reason": "Harassment"
}))]
pub struct ReportRequest {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The sender's message id (inside the ciphertext).
    pub message_id: Uuid,
    /// The sending device (from the envelope).
    pub sender_device_id: Uuid,
    /// The envelope's `sent_at_ms`.
    pub sent_at_ms: i64,
    /// The message text.
    #[validate(length(max = 65536))]
    pub text: String,
    /// The per-message franking key from the decrypted payload (base64, 32 bytes).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub franking_key: Vec<u8>,
    /// The envelope's `franking_tag`.
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub franking_tag: Vec<u8>,
    /// The envelope's `franking_stamp`.
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub franking_stamp: Vec<u8>,
    /// Why (for the moderators).
    #[validate(length(max = 500))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A verified report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// Id.
    pub id: Uuid,
    /// Who reported.
    pub reporter_user_id: Uuid,
    /// Who sent the message (verified).
    pub reported_user_id: Uuid,
    /// The sending device.
    pub reported_device_id: Uuid,
    /// The conversation.
    pub conversation_id: Uuid,
    /// The message id.
    pub message_id: Uuid,
    /// The revealed text (verified against the sender's commitment).
    pub text: String,
    /// The reporter's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `open`, `upheld` or `dismissed`.
    #[schema(value_type = ReportStatus)]
    pub status: String,
    /// When the server accepted the message.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// When it was reported.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportList {
    /// Newest first.
    pub items: Vec<Report>,
}

/// Where a report stands: the closed set of `status` values (strings on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Not yet decided.
    Open,
    /// The tenant acted on it.
    Upheld,
    /// The tenant found nothing wrong.
    Dismissed,
}

impl ReportStatus {
    /// The status named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "upheld" => Some(Self::Upheld),
            "dismissed" => Some(Self::Dismissed),
            _ => None,
        }
    }

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Upheld => "upheld",
            Self::Dismissed => "dismissed",
        }
    }
}

/// Query of `GET /v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `open` (default), `upheld` or `dismissed`.
    #[serde(default)]
    #[param(value_type = Option<ReportStatus>)]
    pub status: Option<String>,
}

/// `GET`/`PUT /v1/moderation/settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "suspend_after_upheld_reports": 3
}))]
pub struct ModerationSettings {
    /// Suspend a user once this many reports against them are upheld (absent: never).
    #[validate(range(min = 1, max = 1000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_after_upheld_reports: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::ReportStatus;

    #[test]
    fn report_statuses_parse_their_wire_names() {
        for status in [
            ReportStatus::Open,
            ReportStatus::Upheld,
            ReportStatus::Dismissed,
        ] {
            let wire = serde_json::to_value(status).expect("serializes");
            assert_eq!(wire, status.as_str());
            assert_eq!(ReportStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ReportStatus::parse("closed"), None);
    }
}
