//! What a device's conversations produce for the app: joins, messages, membership
//! changes and refusals, in mailbox order (stored in the event queue, see
//! [`crate::store::history`]).

use uuid::Uuid;

use crate::ids::DeviceIds;
use crate::payload::Payload;

/// What a sync produced, in mailbox order.
// Events are short-lived values handed to the app; boxing the message would only add an
// allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// This device joined a conversation (from a Welcome whose members all check out).
    Joined {
        /// The conversation.
        conversation_id: Uuid,
        /// Its members.
        members: Vec<DeviceIds>,
    },
    /// A decrypted message.
    Message {
        /// The conversation.
        conversation_id: Uuid,
        /// The sending device (from its MLS credential).
        sender: DeviceIds,
        /// The payload.
        #[serde(with = "crate::payload::as_bytes")]
        payload: Payload,
        /// The evidence to report it with, when the sender franked it (checked on receipt).
        franking: Option<Franking>,
    },
    /// Another member's commit changed the members.
    MembersChanged {
        /// The conversation.
        conversation_id: Uuid,
        /// Added devices.
        added: Vec<DeviceIds>,
        /// Removed devices.
        removed: Vec<DeviceIds>,
    },
    /// A call in the conversation changed (see [`crate::calls`]): rang, was answered,
    /// sent SDP or ICE for this device, or ended. Reach the call with
    /// [`crate::Cloak::call`].
    Call {
        /// The conversation.
        conversation_id: Uuid,
        /// The call.
        call_id: Uuid,
        /// What happened.
        event: crate::calls::CallEvent,
    },
    /// An envelope was refused: it did not decrypt or verify, or it named a device that is
    /// not an approved device in the directory. It is dropped; later ones still work.
    Rejected {
        /// The conversation.
        conversation_id: Uuid,
        /// The mailbox sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// A received message's franking evidence: the sender's commitment and the server's stamp
/// from the envelope (the key and text are in the payload).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Franking {
    /// The sender's commitment.
    pub tag: Vec<u8>,
    /// The server's stamp.
    pub stamp: Vec<u8>,
    /// When the server accepted the message (Unix ms; part of the stamp).
    pub sent_at_ms: i64,
}
