//! The plaintext inside an MLS application message (sans-IO): a versioned, extensible
//! [`Payload`].
//!
//! # Encoding (version 1)
//!
//! A payload is one CBOR map (RFC 8949) with text keys:
//!
//! | key  | CBOR type        | meaning                                        |
//! |------|------------------|------------------------------------------------|
//! | `v`  | unsigned         | format version, `1`                            |
//! | `id` | bytes (16)       | the message id (UUID bytes)                    |
//! | `at` | integer          | when the sender sent it, Unix milliseconds     |
//! | `k`  | text             | the kind (`text`, `edit`, `delete`, `receipt`, `typing`, `attachment`, `call`) |
//! | `b`  | map, optional    | the kind's fields, as a map with text keys     |
//!
//! The kinds' fields (UUIDs, keys and digests are byte strings of 16 or 32 bytes):
//! `text {text}`, `edit {target, text}`, `delete {target}`, `receipt {targets: [..], read}`,
//! `typing {active}`, `attachment {id, size, name, mime, key, digest, chunk_size}`,
//! `call {c: call id, to?: device, s: invite|offer|answer|ice|accept|decline|hangup, m?: audio|video,
//! sdp?, cand?, mid?, idx?}` (see [`crate::call_signal`]).
//!
//! Extending it: new kinds and new fields are added without changing `v`. A reader ignores
//! map keys it does not know, and decodes a kind it does not know to
//! [`PayloadKind::Unknown`], which callers ignore (it is never an error). `v` changes only
//! for an incompatible change; a reader rejects versions other than its own.
//!
//! Limits ([`MAX_ENCODED_BYTES`] for the whole payload and the per-field `MAX_*`) are
//! checked when encoding and when decoding. Decoding never panics, whatever the input.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteArray;
use uuid::Uuid;
use zeroize::Zeroize;

use crate::Error;

/// The format version this SDK writes and reads.
pub const VERSION: u8 = 1;
/// Largest encoded payload, in bytes (the server's envelope limit is 256 KiB; the rest is
/// left for MLS framing and padding).
pub const MAX_ENCODED_BYTES: usize = 128 * 1024;
/// Longest text (of a message or an edit), in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Most messages one receipt names.
pub const MAX_RECEIPT_TARGETS: usize = 1000;
/// Longest attachment MIME type, in bytes.
pub const MAX_MIME_BYTES: usize = 255;
/// Longest attachment file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Largest reaction, in bytes.
pub const MAX_REACTION_BYTES: usize = 64;
/// Longest conversation name, in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;

/// One message's plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Format version; [`VERSION`] for everything this SDK builds.
    pub version: u8,
    /// The sender-chosen message id (edits, deletions and receipts refer to it).
    pub message_id: Uuid,
    /// When the sender sent it (Unix milliseconds, the sender's clock: untrusted).
    pub sent_at_ms: i64,
    /// What it is.
    pub kind: PayloadKind,
    /// The per-message franking key: the sender's commitment to this text (in the
    /// envelope) opens with it, so a recipient can report the message verifiably.
    pub franking_key: Option<[u8; 32]>,
}

/// What a payload carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadKind {
    /// A text message.
    Text {
        /// The text.
        text: String,
    },
    /// A new text for an earlier message of the same sender.
    Edit {
        /// The edited message.
        target: Uuid,
        /// Its new text.
        text: String,
    },
    /// Deletes an earlier message of the same sender.
    Delete {
        /// The deleted message.
        target: Uuid,
    },
    /// Delivery (or read) receipts.
    Receipt {
        /// The messages received or read.
        targets: Vec<Uuid>,
        /// `true` for read, `false` for delivered.
        read: bool,
    },
    /// The sender started or stopped typing.
    Typing {
        /// Whether they are typing.
        active: bool,
    },
    /// A file, stored encrypted on the server's blob store: where, and how to decrypt it.
    Attachment(Attachment),
    /// Adds or takes back a reaction to an earlier message.
    Reaction {
        /// The message reacted to.
        target: Uuid,
        /// The reaction (an emoji, at most [`MAX_REACTION_BYTES`]).
        emoji: String,
        /// `true` adds it, `false` takes it back.
        add: bool,
    },
    /// The sending device's user leaves the conversation: members remove its devices.
    Leave,
    /// Names (or renames) the conversation.
    Topic {
        /// The name, at most [`MAX_TOPIC_BYTES`].
        name: String,
    },
    /// A call's signaling (invite, SDP, ICE, accept, decline, hang-up).
    Call(crate::call_signal::CallSignal),
    /// A kind this version does not know. Callers ignore it.
    Unknown,
}

/// An encrypted file's reference: where it is and how to decrypt and check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The stored blob's id.
    pub id: Uuid,
    /// Plaintext size, in bytes.
    pub size: u64,
    /// The file's name (untrusted: sanitise before using it as a path).
    pub name: String,
    /// MIME type.
    pub mime: String,
    /// The file's random key.
    pub key: AttachmentKey,
    /// SHA-256 of the ciphertext.
    pub digest: [u8; 32],
    /// Plaintext bytes per encrypted chunk.
    pub chunk_size: u32,
}

/// A 256-bit attachment key. Wiped on drop; its `Debug` prints no key bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentKey(pub [u8; 32]);

impl std::fmt::Debug for AttachmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachmentKey(<redacted>)")
    }
}

impl Drop for AttachmentKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

// --- wire shapes ---------------------------------------------------------------------

type UuidBytes = ByteArray<16>;

fn uuid_bytes(id: &Uuid) -> UuidBytes {
    ByteArray::new(id.into_bytes())
}

#[derive(Serialize)]
struct WireOut<'a, B> {
    v: u8,
    id: UuidBytes,
    at: i64,
    k: &'a str,
    b: B,
    #[serde(skip_serializing_if = "Option::is_none")]
    fk: Option<ByteArray<32>>,
}

#[derive(Deserialize)]
struct WireIn {
    v: u8,
    id: UuidBytes,
    at: i64,
    k: String,
    #[serde(default)]
    b: Option<ciborium::Value>,
    #[serde(default)]
    fk: Option<ByteArray<32>>,
}

#[derive(Serialize, Deserialize)]
struct TextBody {
    text: String,
}

#[derive(Serialize, Deserialize)]
struct EditBody {
    target: UuidBytes,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct DeleteBody {
    target: UuidBytes,
}

#[derive(Serialize, Deserialize)]
struct ReceiptBody {
    targets: Vec<UuidBytes>,
    read: bool,
}

#[derive(Serialize, Deserialize)]
struct TypingBody {
    active: bool,
}

#[derive(Serialize, Deserialize)]
struct AttachmentBody {
    id: UuidBytes,
    size: u64,
    #[serde(default)]
    name: String,
    mime: String,
    key: ByteArray<32>,
    digest: ByteArray<32>,
    chunk_size: u32,
}

impl Drop for AttachmentBody {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct ReactionBody {
    target: UuidBytes,
    emoji: String,
    add: bool,
}

#[derive(Serialize, Deserialize)]
struct TopicBody {
    name: String,
}

#[derive(Serialize, Deserialize)]
struct LeaveBody {}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Malformed(format!("payload: {what}"))
}

fn check(ok: bool, what: &str) -> Result<(), Error> {
    if ok { Ok(()) } else { Err(malformed(what)) }
}

impl PayloadKind {
    /// Checks the per-field limits.
    fn check_limits(&self) -> Result<(), Error> {
        match self {
            Self::Text { text } | Self::Edit { text, .. } => {
                check(text.len() <= MAX_TEXT_BYTES, "text too long")
            }
            Self::Receipt { targets, .. } => check(
                targets.len() <= MAX_RECEIPT_TARGETS,
                "too many receipt targets",
            ),
            Self::Attachment(a) => check(
                a.mime.len() <= MAX_MIME_BYTES && a.name.len() <= MAX_FILE_NAME_BYTES,
                "MIME type or file name too long",
            ),
            Self::Call(signal) => signal.check_limits(),
            Self::Reaction { emoji, .. } => check(
                !emoji.is_empty() && emoji.len() <= MAX_REACTION_BYTES,
                "reaction empty or too long",
            ),
            Self::Topic { name } => check(name.len() <= MAX_TOPIC_BYTES, "name too long"),
            Self::Delete { .. } | Self::Typing { .. } | Self::Leave | Self::Unknown => Ok(()),
        }
    }
}

impl Payload {
    /// A version-1 payload.
    pub fn new(message_id: Uuid, sent_at_ms: i64, kind: PayloadKind) -> Self {
        Self {
            version: VERSION,
            message_id,
            sent_at_ms,
            kind,
            franking_key: None,
        }
    }

    /// The sender's franking commitment for `conversation_id`: HMAC-SHA256 under the
    /// franking key over [`cloak_proto::signing::franking_commitment_input`]. Only text
    /// messages with a franking key have one.
    pub fn franking_tag(&self, conversation_id: Uuid) -> Option<Vec<u8>> {
        use hmac::Mac as _;
        let (Some(key), PayloadKind::Text { text }) = (&self.franking_key, &self.kind) else {
            return None;
        };
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).ok()?;
        mac.update(&cloak_proto::signing::franking_commitment_input(
            conversation_id,
            self.message_id,
            text,
        ));
        Some(mac.finalize().into_bytes().to_vec())
    }

    /// What the message is, as declared to the server for pricing and limits (the server
    /// cannot read the payload).
    pub fn class(&self) -> cloak_proto::delivery::MessageClass {
        use cloak_proto::delivery::MessageClass;
        match &self.kind {
            // An attachment's message is priced as a text: its upload was charged its tier
            // (from the stored size, which the server measures itself).
            PayloadKind::Text { .. } | PayloadKind::Unknown | PayloadKind::Attachment(_) => {
                MessageClass::Text
            }
            PayloadKind::Edit { .. } => MessageClass::Edit,
            PayloadKind::Delete { .. } => MessageClass::Delete,
            PayloadKind::Receipt { .. }
            | PayloadKind::Typing { .. }
            | PayloadKind::Reaction { .. }
            | PayloadKind::Leave
            | PayloadKind::Topic { .. }
            // Call signaling is control traffic: calls are priced by their TURN minutes.
            | PayloadKind::Call(_) => MessageClass::Control,
        }
    }

    /// Encodes the payload (see the module documentation). Fails on a version other than
    /// [`VERSION`], on [`PayloadKind::Unknown`] and when a limit is exceeded.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        check(self.version == VERSION, "unsupported version")?;
        self.kind.check_limits()?;
        let out = match &self.kind {
            PayloadKind::Text { text } => self.write("text", TextBody { text: text.clone() }),
            PayloadKind::Edit { target, text } => self.write(
                "edit",
                EditBody {
                    target: uuid_bytes(target),
                    text: text.clone(),
                },
            ),
            PayloadKind::Delete { target } => self.write(
                "delete",
                DeleteBody {
                    target: uuid_bytes(target),
                },
            ),
            PayloadKind::Receipt { targets, read } => self.write(
                "receipt",
                ReceiptBody {
                    targets: targets.iter().map(uuid_bytes).collect(),
                    read: *read,
                },
            ),
            PayloadKind::Typing { active } => self.write("typing", TypingBody { active: *active }),
            PayloadKind::Attachment(a) => self.write(
                "attachment",
                AttachmentBody {
                    id: uuid_bytes(&a.id),
                    size: a.size,
                    name: a.name.clone(),
                    mime: a.mime.clone(),
                    key: ByteArray::new(a.key.0),
                    digest: ByteArray::new(a.digest),
                    chunk_size: a.chunk_size,
                },
            ),
            PayloadKind::Reaction { target, emoji, add } => self.write(
                "reaction",
                ReactionBody {
                    target: uuid_bytes(target),
                    emoji: emoji.clone(),
                    add: *add,
                },
            ),
            PayloadKind::Leave => self.write("leave", LeaveBody {}),
            PayloadKind::Topic { name } => self.write("topic", TopicBody { name: name.clone() }),
            PayloadKind::Call(signal) => self.write("call", signal.to_body()),
            PayloadKind::Unknown => Err(malformed("an unknown kind cannot be encoded")),
        }?;
        check(out.len() <= MAX_ENCODED_BYTES, "encoded payload too large")?;
        Ok(out)
    }

    fn write<B: Serialize>(&self, kind: &str, body: B) -> Result<Vec<u8>, Error> {
        let wire = WireOut {
            v: self.version,
            id: uuid_bytes(&self.message_id),
            at: self.sent_at_ms,
            k: kind,
            b: body,
            fk: self.franking_key.map(ByteArray::new),
        };
        let mut out = Vec::new();
        ciborium::into_writer(&wire, &mut out).map_err(malformed)?;
        Ok(out)
    }

    /// Decodes a payload. Unknown kinds give [`PayloadKind::Unknown`]; unknown fields are
    /// ignored; anything malformed, oversized or of another version is an
    /// [`Error::Malformed`]. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Payload, Error> {
        check(
            bytes.len() <= MAX_ENCODED_BYTES,
            "encoded payload too large",
        )?;
        let mut reader = bytes;
        let wire: WireIn = ciborium::from_reader(&mut reader).map_err(malformed)?;
        check(reader.is_empty(), "trailing bytes")?;
        check(wire.v == VERSION, "unsupported version")?;
        let kind = decode_kind(&wire.k, wire.b)?;
        kind.check_limits()?;
        Ok(Payload {
            version: wire.v,
            message_id: Uuid::from_bytes(wire.id.into_array()),
            sent_at_ms: wire.at,
            kind,
            franking_key: wire.fk.map(|k| k.into_array()),
        })
    }
}

fn body<B: for<'de> Deserialize<'de>>(b: Option<ciborium::Value>) -> Result<B, Error> {
    b.ok_or_else(|| malformed("missing body"))?
        .deserialized()
        .map_err(malformed)
}

fn decode_kind(kind: &str, b: Option<ciborium::Value>) -> Result<PayloadKind, Error> {
    let uuid = |u: UuidBytes| Uuid::from_bytes(u.into_array());
    Ok(match kind {
        "text" => {
            let TextBody { text } = body(b)?;
            PayloadKind::Text { text }
        }
        "edit" => {
            let EditBody { target, text } = body(b)?;
            PayloadKind::Edit {
                target: uuid(target),
                text,
            }
        }
        "delete" => PayloadKind::Delete {
            target: uuid(body::<DeleteBody>(b)?.target),
        },
        "receipt" => {
            let ReceiptBody { targets, read } = body(b)?;
            PayloadKind::Receipt {
                targets: targets.into_iter().map(uuid).collect(),
                read,
            }
        }
        "typing" => PayloadKind::Typing {
            active: body::<TypingBody>(b)?.active,
        },
        "attachment" => {
            let a: AttachmentBody = body(b)?;
            PayloadKind::Attachment(Attachment {
                id: uuid(a.id),
                size: a.size,
                name: a.name.clone(),
                mime: a.mime.clone(),
                key: AttachmentKey(*a.key),
                digest: *a.digest,
                chunk_size: a.chunk_size,
            })
        }
        "reaction" => {
            let ReactionBody { target, emoji, add } = body(b)?;
            PayloadKind::Reaction {
                target: uuid(target),
                emoji,
                add,
            }
        }
        "leave" => PayloadKind::Leave,
        "topic" => PayloadKind::Topic {
            name: body::<TopicBody>(b)?.name,
        },
        "call" => match crate::call_signal::CallSignal::from_body(body(b)?)? {
            Some(signal) => PayloadKind::Call(signal),
            None => PayloadKind::Unknown,
        },
        _ => PayloadKind::Unknown,
    })
}

/// Serde for a [`Payload`] inside other stored values: its own encoding, as bytes.
pub(crate) mod as_bytes {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use super::Payload;

    pub(crate) fn serialize<S: Serializer>(payload: &Payload, s: S) -> Result<S::Ok, S::Error> {
        let bytes = payload.encode().map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Payload::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(kind: PayloadKind) -> Payload {
        Payload::new(Uuid::from_u128(7), 1_700_000_000_000, kind)
    }

    #[test]
    fn franking_keys_round_trip_and_bind_the_text_and_conversation() {
        let mut p = payload(PayloadKind::Text { text: "hi".into() });
        assert_eq!(
            p.franking_tag(Uuid::from_u128(1)),
            None,
            "no key, no commitment"
        );
        p.franking_key = Some([9; 32]);
        let decoded = Payload::decode(&p.encode().unwrap()).unwrap();
        assert_eq!(decoded, p);
        let tag = p.franking_tag(Uuid::from_u128(1)).unwrap();
        assert_eq!(tag.len(), 32);
        assert_ne!(Some(tag.clone()), p.franking_tag(Uuid::from_u128(2)));
        let mut other = p.clone();
        other.kind = PayloadKind::Text { text: "ho".into() };
        assert_ne!(Some(tag), other.franking_tag(Uuid::from_u128(1)));
    }

    fn attachment() -> PayloadKind {
        PayloadKind::Attachment(Attachment {
            id: Uuid::from_u128(9),
            size: 12345,
            name: "cat.png".into(),
            mime: "image/png".into(),
            key: AttachmentKey([3; 32]),
            digest: [4; 32],
            chunk_size: 65536,
        })
    }

    #[test]
    fn every_kind_round_trips() -> Result<(), Error> {
        let kinds = [
            PayloadKind::Text { text: "hi".into() },
            PayloadKind::Edit {
                target: Uuid::from_u128(1),
                text: "hello".into(),
            },
            PayloadKind::Delete {
                target: Uuid::from_u128(1),
            },
            PayloadKind::Receipt {
                targets: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
                read: true,
            },
            PayloadKind::Typing { active: false },
            attachment(),
            PayloadKind::Call(crate::call_signal::CallSignal {
                call_id: Uuid::from_u128(9),
                to: Some(Uuid::from_u128(8)),
                signal: crate::call_signal::Signal::Ice {
                    candidate: "candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                },
            }),
            PayloadKind::Call(crate::call_signal::CallSignal {
                call_id: Uuid::from_u128(9),
                to: None,
                signal: crate::call_signal::Signal::Invite {
                    media: crate::call_signal::CallMedia::Video,
                },
            }),
            PayloadKind::Reaction {
                target: Uuid::from_u128(3),
                emoji: "👍".into(),
                add: false,
            },
            PayloadKind::Leave,
            PayloadKind::Topic {
                name: "Team".into(),
            },
        ];
        for kind in kinds {
            let p = payload(kind);
            assert_eq!(Payload::decode(&p.encode()?)?, p);
        }
        Ok(())
    }

    #[test]
    fn encoding_is_compact() -> Result<(), Error> {
        let bytes = payload(PayloadKind::Text { text: "hi".into() }).encode()?;
        assert!(bytes.len() <= 64, "{} bytes", bytes.len());
        // The message id is a 16-byte CBOR byte string (major type 2, length 16).
        let mut id = vec![0x50];
        id.extend_from_slice(Uuid::from_u128(7).as_bytes());
        assert!(bytes.windows(17).any(|w| w == id.as_slice()));
        Ok(())
    }

    #[test]
    fn unknown_kinds_and_fields_are_tolerated() -> Result<(), Error> {
        #[derive(Serialize)]
        struct Future<'a> {
            v: u8,
            id: UuidBytes,
            at: i64,
            k: &'a str,
            b: TextBody,
            extra: u32,
        }
        let encode = |k| {
            let mut out = Vec::new();
            let wire = Future {
                v: 1,
                id: uuid_bytes(&Uuid::from_u128(5)),
                at: 9,
                k,
                b: TextBody { text: "x".into() },
                extra: 42,
            };
            ciborium::into_writer(&wire, &mut out).map(|()| out)
        };
        let future = Payload::decode(&encode("poll").map_err(malformed)?)?;
        assert_eq!(future.kind, PayloadKind::Unknown);
        assert_eq!(future.message_id, Uuid::from_u128(5));
        let text = Payload::decode(&encode("text").map_err(malformed)?)?;
        assert_eq!(text.kind, PayloadKind::Text { text: "x".into() });
        assert!(payload(PayloadKind::Unknown).encode().is_err());
        Ok(())
    }

    #[test]
    fn other_versions_trailing_bytes_and_limits_are_rejected() -> Result<(), Error> {
        let mut p = payload(PayloadKind::Typing { active: true });
        p.version = 2;
        assert!(p.encode().is_err());
        let mut bytes = payload(PayloadKind::Typing { active: true }).encode()?;
        bytes.push(0);
        assert!(matches!(Payload::decode(&bytes), Err(Error::Malformed(_))));
        let long = "a".repeat(MAX_TEXT_BYTES + 1);
        assert!(payload(PayloadKind::Text { text: long }).encode().is_err());
        let many = vec![Uuid::nil(); MAX_RECEIPT_TARGETS + 1];
        let receipt = PayloadKind::Receipt {
            targets: many,
            read: false,
        };
        assert!(payload(receipt).encode().is_err());
        assert!(Payload::decode(&vec![0; MAX_ENCODED_BYTES + 1]).is_err());
        assert!(Payload::decode(&[]).is_err());
        Ok(())
    }

    #[test]
    fn hostile_lengths_and_nesting_are_errors() {
        let huge_len = [0x1b, 0, 0, 0x10, 0, 0, 0, 0, 0];
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        // Byte string, text, array and map headers claiming 2^44 items, at the top level
        // and as the body.
        for major in [0x40u8, 0x60, 0x80, 0xa0] {
            let mut top = vec![major | huge_len[0]];
            top.extend_from_slice(&huge_len[1..]);
            inputs.push(top.clone());
            let mut nested = vec![0xa1, 0x61, b'b'];
            nested.extend_from_slice(&top);
            inputs.push(nested);
        }
        // Deep nesting of arrays, and of indefinite-length arrays, inside the body.
        for open in [0x81u8, 0x9f] {
            let mut deep = vec![0xa1, 0x61, b'b'];
            deep.extend(std::iter::repeat_n(open, 100_000));
            inputs.push(deep);
        }
        for input in inputs {
            assert!(Payload::decode(&input).is_err());
        }
    }

    #[test]
    fn attachment_keys_are_not_printed() {
        let printed = format!("{:?}", payload(attachment()));
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("3, 3, 3"));
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn kind() -> impl Strategy<Value = PayloadKind> {
        prop_oneof![
            ".{0,40}".prop_map(|text| PayloadKind::Text { text }),
            (uuid(), ".{0,40}").prop_map(|(target, text)| PayloadKind::Edit { target, text }),
            uuid().prop_map(|target| PayloadKind::Delete { target }),
            (prop::collection::vec(uuid(), 0..8), any::<bool>())
                .prop_map(|(targets, read)| PayloadKind::Receipt { targets, read }),
            any::<bool>().prop_map(|active| PayloadKind::Typing { active }),
            (
                uuid(),
                any::<u64>(),
                "[a-z/+.-]{0,30}",
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<u32>(),
                ".{0,20}",
            )
                .prop_map(|(id, size, mime, key, digest, chunk_size, name)| {
                    PayloadKind::Attachment(Attachment {
                        id,
                        size,
                        name,
                        mime,
                        key: AttachmentKey(key),
                        digest,
                        chunk_size,
                    })
                }),
            (uuid(), prop::option::of(uuid()), ".{0,40}", any::<u8>()).prop_map(
                |(call_id, to, sdp, which)| {
                    use crate::call_signal::{CallMedia, CallSignal, Signal};
                    let signal = match which % 7 {
                        0 => Signal::Invite {
                            media: CallMedia::Audio,
                        },
                        1 => Signal::Offer { sdp },
                        2 => Signal::Answer { sdp },
                        3 => Signal::Ice {
                            candidate: sdp,
                            sdp_mid: None,
                            sdp_mline_index: Some(1),
                        },
                        4 => Signal::Accept,
                        5 => Signal::Decline,
                        _ => Signal::Hangup,
                    };
                    PayloadKind::Call(CallSignal {
                        call_id,
                        to,
                        signal,
                    })
                }
            ),
            (uuid(), ".{1,8}", any::<bool>())
                .prop_map(|(target, emoji, add)| PayloadKind::Reaction { target, emoji, add }),
            Just(PayloadKind::Leave),
            ".{0,40}".prop_map(|name| PayloadKind::Topic { name }),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(id in uuid(), at in any::<i64>(), kind in kind()) {
            let p = Payload::new(id, at, kind);
            let bytes = p.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = Payload::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, p);
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Payload::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_mutated_payloads(
            kind in kind(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = Payload::new(Uuid::nil(), 0, kind)
                .encode()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (i, x) in flips {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            let _ = Payload::decode(&bytes);
        }
    }
}
