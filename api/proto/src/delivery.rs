//! Delivery: conversations (MLS groups), sends, commits, mailboxes and WebSocket frames.
//! Every `body` is opaque ciphertext (an MLS message); the server never sees plaintext.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

/// Largest accepted envelope body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Request body of `POST /v1/conversations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "conversation_id": "3f6c1b7e-8a2d-4c1e-9b5a-2d7e4f1a0c93"
}))]
pub struct CreateConversationRequest {
    /// The conversation's id: the MLS group id the creating device chose (a UUID).
    pub conversation_id: Uuid,
}

/// A conversation as the server knows it: its epoch and member devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    /// Id (the MLS group id).
    pub id: Uuid,
    /// The MLS epoch the server has ordered up to.
    pub epoch: u64,
    /// Member devices.
    pub members: Vec<ConversationMember>,
}

/// One member device of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConversationMember {
    /// The device.
    pub device_id: Uuid,
    /// Its user.
    pub user_id: Uuid,
}

/// Response of `GET /v1/mls/external-sender`: the server's credential as an MLS external
/// sender. Devices put it in the `external_senders` extension of every group they create,
/// so the server can propose (never commit) the removal of revoked and long-inactive
/// devices; members check each proposal before they commit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExternalSender {
    /// The MLS ciphersuite the key is for (1: `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`).
    pub ciphersuite: u16,
    /// The Ed25519 public key the server signs its proposals with (32 bytes, base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub signature_key: Vec<u8>,
    /// The identity of the server's MLS `BasicCredential` (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub identity: Vec<u8>,
}

/// The identity in the server's external-sender credential.
pub const EXTERNAL_SENDER_IDENTITY: &[u8] = b"cloak-delivery-service";

/// The conversations a device belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationList {
    /// Conversations, oldest first.
    pub items: Vec<Conversation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Request body of `POST /v1/conversations/{id}/messages`: one MLS application message,
/// fanned out to every other member device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "client_msg_id": "6e2b8f4a-9c1d-4a7e-b3f5-8d0c2e6a4b19",
    "epoch": 3,
    "body": "AAEAAhA/bBt+ii1MHptaLX5PGgyTAAAAAAAAAAMBABADBCz4EA2zhoGM7k/w8pckGDBVMdzFDryjHPHVsx6fx27VH2aztt1aAw==",
    "class": "text",
    "franking_tag": "hW3Xq9z32+DPAZ0ZPhyInWUWFDfNr61FIByYqYQc2CQ="
}))]
pub struct SendMessageRequest {
    /// The sender's id for this message; a retry with the same id is not stored twice.
    pub client_msg_id: Uuid,
    /// The epoch the message was encrypted in; must be the conversation's current epoch.
    #[validate(range(max = 9_223_372_036_854_775_807_u64))]
    pub epoch: u64,
    /// The MLS message (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    #[validate(length(min = 1, max = 262144))]
    pub body: Vec<u8>,
    /// What the message is, for pricing (the server cannot read it): the SDK sets it from
    /// the payload. Defaults to `text`.
    #[serde(default)]
    pub class: MessageClass,
    /// The sender's franking commitment to the plaintext (32 bytes, base64): the server
    /// stamps it on delivery so a recipient can later report the message verifiably.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::bytes::option"
    )]
    #[schema(value_type = Option<String>, format = Byte, pattern = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
    pub franking_tag: Option<Vec<u8>>,
}

/// What an encrypted message is, as its sender declares for pricing and limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageClass {
    /// A text message.
    #[default]
    Text,
    /// An edit of an earlier message.
    Edit,
    /// A deletion of an earlier message.
    Delete,
    /// A file up to 1 MiB.
    AttachmentSmall,
    /// A file up to 25 MiB.
    AttachmentMedium,
    /// A larger file.
    AttachmentLarge,
    /// A minute of a call.
    CallMinute,
    /// Receipts and typing indicators: free, and at most 1 KiB.
    Control,
}

/// Request body of `POST /v1/conversations/{id}/commits`: an MLS commit, accepted only if
/// the conversation is still at `epoch` (compare-and-swap), with the Welcome for added
/// devices. The member list changes only through accepted commits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "client_msg_id": "a4d3c2b1-7e6f-4a5b-9c8d-2f1e0d9c8b7a",
    "epoch": 3,
    "commit": "AAEAAhA/bBt+ii1MHptaLX5PGgyTAAAAAAAAAAMDABADBCz4EA2zhoGM7k/w8pckGNpd/BZ7+4iuvEuUNBuPRff/shQOMVCiBQ==",
    "welcome": "AAEAAwABQFMg0CfiUTk1QbW5NzTjfxaQ340jH66Ot2Qjsmd4ajqm/eAgIIAVCn9pFOnQ6faGUVc+4IP3P+7r1zzavmjySSbUiQsQ+NyzQwjlxp9GozyvpivZIhBGu47+FQpXzuPuBMeJxAuc",
    "add": [
        "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"
    ],
    "remove": [],
    "leaf_indices": [
        2
    ]
}))]
pub struct CommitRequest {
    /// The sender's id for this commit; a retry with the same id is not applied twice.
    pub client_msg_id: Uuid,
    /// The epoch the commit was created in.
    #[validate(range(max = 9_223_372_036_854_775_807_u64))]
    pub epoch: u64,
    /// The MLS commit (base64): an `MLSMessage` holding a commit for this conversation's
    /// group at `epoch`. The server also caps it (`CLOAK_MAX_COMMIT_BYTES`, 256 KiB by
    /// default).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    #[validate(length(min = 1, max = 1048576))]
    pub commit: Vec<u8>,
    /// The MLS Welcome for the added devices (base64), one secret per device; required
    /// when `add` is not empty. Capped by `CLOAK_MAX_WELCOME_BYTES` (512 KiB by default),
    /// and its size times the devices added by `CLOAK_MAX_WELCOME_FANOUT_BYTES`.
    #[validate(length(min = 1, max = 1048576))]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::bytes::option"
    )]
    #[schema(value_type = Option<String>, format = Byte)]
    pub welcome: Option<Vec<u8>>,
    /// Devices the commit adds.
    #[serde(default)]
    #[validate(length(max = 1000))]
    pub add: Vec<Uuid>,
    /// Devices the commit removes.
    #[serde(default)]
    #[validate(length(max = 1000))]
    pub remove: Vec<Uuid>,
    /// The MLS leaf index each added device takes, in `add` order: empty, or one per
    /// device in `add`. The committer knows them (removes blank their leaves first, then
    /// each add takes the leftmost blank leaf). The server keeps them only to propose
    /// removals as the group's external sender; a wrong index can at worst propose
    /// removing another member, which any member may commit anyway, and never adds one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[validate(length(max = 1000))]
    pub leaf_indices: Vec<u32>,
}

/// The server's answer to an accepted send or commit. Written durably before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SendReceipt {
    /// The sender's id for the message.
    pub client_msg_id: Uuid,
    /// The conversation.
    pub conversation_id: Uuid,
    /// The conversation's epoch after this send (a commit advances it by one).
    pub epoch: u64,
    /// How many mailboxes received it.
    pub recipients: u32,
    /// When the server accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// True when this answers a retry of an already accepted send.
    pub duplicate: bool,
    /// Member devices that did not get it because their mailbox is full (they must fetch
    /// and acknowledge first). The others got it. Empty when answering a retry.
    #[serde(default)]
    pub skipped: Vec<Uuid>,
}

/// What a mailbox entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeKind {
    /// An MLS application message.
    Application,
    /// An MLS commit.
    Commit,
    /// An MLS Welcome for this device.
    Welcome,
    /// An MLS proposal by the server as the group's external sender (RFC 9420 §12.1.8.1):
    /// the Remove of a revoked or long-inactive device, for a member to commit. Its
    /// `sender_device_id` is the nil UUID.
    Proposal,
}

impl EnvelopeKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Commit => "commit",
            Self::Welcome => "welcome",
            Self::Proposal => "proposal",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "application" => Some(Self::Application),
            "commit" => Some(Self::Commit),
            "welcome" => Some(Self::Welcome),
            "proposal" => Some(Self::Proposal),
            _ => None,
        }
    }
}

/// One entry of a device's mailbox, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    /// Per-device sequence number (strictly increasing).
    pub seq: u64,
    /// The conversation.
    pub conversation_id: Uuid,
    /// The sending device.
    pub sender_device_id: Uuid,
    /// What it is.
    pub kind: EnvelopeKind,
    /// The epoch it belongs to (for a commit or Welcome, the epoch it creates).
    pub epoch: u64,
    /// The MLS message (base64).
    #[serde(with = "crate::bytes")]
    #[schema(value_type = String, format = Byte)]
    pub body: Vec<u8>,
    /// When the server accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// The same instant in Unix milliseconds (exact; part of the franking stamp).
    #[serde(default)]
    pub sent_at_ms: i64,
    /// The sender's franking commitment, if it sent one (base64).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::bytes::option"
    )]
    #[schema(value_type = Option<String>, format = Byte)]
    pub franking_tag: Option<Vec<u8>>,
    /// The server's stamp over the commitment, sender, conversation and time (base64).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::bytes::option"
    )]
    #[schema(value_type = Option<String>, format = Byte)]
    pub franking_stamp: Option<Vec<u8>>,
}

/// Query of `GET /v1/mailbox`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct MailboxQuery {
    /// Return entries with a sequence number above this (default 0).
    #[serde(default)]
    #[validate(range(max = 9_223_372_036_854_775_807_u64))]
    pub after: u64,
    /// At most this many (1 to 500, default 100).
    #[validate(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

/// Response of `GET /v1/mailbox`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MailboxPage {
    /// Entries in sequence order.
    pub items: Vec<Envelope>,
    /// Whether more entries follow the last one.
    pub more: bool,
}

/// Request body of `POST /v1/mailbox/ack`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "up_to": 42
}))]
pub struct AckRequest {
    /// Deletes every entry with a sequence number up to and including this.
    #[validate(range(max = 9_223_372_036_854_775_807_u64))]
    pub up_to: u64,
}

/// Response of `POST /v1/mailbox/ack`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AckReceipt {
    /// Entries deleted.
    pub deleted: u64,
}

/// A frame a client sends over `GET /v1/ws` (JSON text frames).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame when the token was not sent in the `Authorization` header.
    Auth {
        /// The device token.
        token: String,
    },
    /// Start (or restart) delivery after this sequence number (the last acknowledged one).
    Resume {
        /// Last sequence number the device has stored.
        after: u64,
    },
    /// Acknowledge and delete entries up to and including `up_to`. Answered by an `acked`
    /// frame unless `quiet`; a failure is always answered by an `error` frame.
    Ack {
        /// Sequence number.
        up_to: u64,
        /// Skip the `acked` answer (default false). A client that does not read `acked`
        /// frames (the SDK) saves the server a frame per acknowledgement.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        quiet: bool,
    },
    /// Send an application message (answered by a `sent` or `error` frame).
    Send {
        /// The conversation.
        conversation_id: Uuid,
        /// The message.
        #[serde(flatten)]
        message: SendMessageRequest,
    },
}

/// A frame the server sends over `GET /v1/ws`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Authenticated; delivery starts after a `resume` frame.
    Ready {
        /// The device.
        device_id: Uuid,
    },
    /// A mailbox entry.
    Envelope(Envelope),
    /// A send over the socket was accepted.
    Sent(SendReceipt),
    /// An `ack` was applied: entries up to `up_to` are deleted.
    Acked {
        /// The acknowledged sequence number.
        up_to: u64,
        /// Entries deleted.
        deleted: u64,
    },
    /// A request failed; `code` is the problem code the REST API would return.
    Error {
        /// Stable code.
        code: crate::Code,
        /// Human-readable detail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// The `client_msg_id` of the failed send, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<Uuid>,
        /// For rate limits: milliseconds to wait before retrying.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}
