//! The local history (sans-IO): what a conversation's timeline holds and how received
//! payloads change it. Edits, deletions, reactions and receipts are applied to the
//! message they name; only the message's own sender (by user) may edit or delete it.
//! The store ([`crate::LocalStore`]) keeps the timeline encrypted and pages through it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{ConversationId, DeviceIds, MessageId};
use crate::payload::{Attachment, Payload, PayloadKind};

/// What a message shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A text (its latest edit).
    Text(String),
    /// An encrypted file.
    Attachment(Attachment),
    /// Deleted by its sender.
    Deleted,
}

/// Where one of this device's own messages is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendState {
    /// Stored here, not yet accepted by the server.
    Sending,
    /// The server stored it for every recipient.
    Sent,
    /// The server refused it (see the error the send returned).
    Failed,
    /// Received (from another device, or from another device of this user).
    Received,
}

/// One reaction: a user and what they reacted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// Who reacted.
    pub user_id: Uuid,
    /// With what.
    pub emoji: String,
}

/// The franking evidence kept to report a received text later.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Evidence {
    pub key: [u8; 32],
    pub tag: Vec<u8>,
    pub stamp: Vec<u8>,
    pub sent_at_ms: i64,
    pub original_text: String,
}

/// A message in a conversation's timeline, with everything applied to it since.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineMessage {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message.
    pub id: MessageId,
    /// The sending device (from its MLS credential).
    pub sender: DeviceIds,
    /// When the sender sent it (Unix ms, by the sender's clock: untrusted).
    pub sent_at_ms: i64,
    /// What it shows now.
    pub content: Content,
    /// Whether its sender edited it.
    pub edited: bool,
    /// Reactions, oldest first.
    pub reactions: Vec<Reaction>,
    /// Users whose devices said they received it.
    pub delivered_to: Vec<Uuid>,
    /// Users who read it.
    pub read_by: Vec<Uuid>,
    /// For this device's own messages, whether the server has it.
    pub state: SendState,
    pub(crate) evidence: Option<Evidence>,
}

impl std::fmt::Debug for TimelineMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimelineMessage")
            .field("conversation_id", &self.conversation_id)
            .field("id", &self.id)
            .field("sender", &self.sender)
            .field("edited", &self.edited)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TimelineMessage {
    /// The text it shows, if it is a text.
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            Content::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// A change to the timeline.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// A new message (ignored when one with its id is there already).
    Insert(Box<TimelineMessage>),
    /// A change to the message `target` by `by_user`.
    Change {
        conversation_id: ConversationId,
        target: MessageId,
        by_user: Uuid,
        change: Change,
    },
    /// Several messages at once (receipts).
    Receipts {
        conversation_id: ConversationId,
        targets: Vec<MessageId>,
        by_user: Uuid,
        read: bool,
    },
}

/// What a [`Op::Change`] does.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Edit(String),
    Delete,
    React { emoji: String, add: bool },
    State(SendState),
}

/// The timeline change a payload makes, if any. `evidence` is kept for franked texts.
pub(crate) fn op_for(
    conversation_id: ConversationId,
    sender: DeviceIds,
    payload: &Payload,
    evidence: Option<Evidence>,
    state: SendState,
) -> Option<Op> {
    let change = |target: Uuid, change: Change| {
        Some(Op::Change {
            conversation_id,
            target: MessageId(target),
            by_user: sender.user_id,
            change,
        })
    };
    let insert = |content: Content| {
        Some(Op::Insert(Box::new(TimelineMessage {
            conversation_id,
            id: MessageId(payload.message_id),
            sender,
            sent_at_ms: payload.sent_at_ms,
            content,
            edited: false,
            reactions: Vec::new(),
            delivered_to: Vec::new(),
            read_by: Vec::new(),
            state,
            evidence: evidence.clone(),
        })))
    };
    match &payload.kind {
        PayloadKind::Text { text } => insert(Content::Text(text.clone())),
        PayloadKind::Attachment(a) => insert(Content::Attachment(a.clone())),
        PayloadKind::Edit { target, text } => change(*target, Change::Edit(text.clone())),
        PayloadKind::Delete { target } => change(*target, Change::Delete),
        PayloadKind::Reaction { target, emoji, add } => change(
            *target,
            Change::React {
                emoji: emoji.clone(),
                add: *add,
            },
        ),
        PayloadKind::Receipt { targets, read } => Some(Op::Receipts {
            conversation_id,
            targets: targets.iter().copied().map(MessageId).collect(),
            by_user: sender.user_id,
            read: *read,
        }),
        PayloadKind::Typing { .. }
        | PayloadKind::Leave
        | PayloadKind::Topic { .. }
        | PayloadKind::Call(_)
        | PayloadKind::Unknown => None,
    }
}

/// Applies a change by `by_user` to `message`; returns whether anything changed. Edits
/// and deletions by anyone but the sender's user are ignored, as is anything done to a
/// deleted message.
pub(crate) fn apply(message: &mut TimelineMessage, by_user: Uuid, change: &Change) -> bool {
    if message.content == Content::Deleted {
        return false;
    }
    let own = message.sender.user_id == by_user;
    match change {
        Change::Edit(text) if own && matches!(message.content, Content::Text(_)) => {
            message.content = Content::Text(text.clone());
            message.edited = true;
            true
        }
        Change::Delete if own => {
            message.content = Content::Deleted;
            message.reactions.clear();
            message.evidence = None;
            true
        }
        Change::React { emoji, add: true } => {
            let reaction = Reaction {
                user_id: by_user,
                emoji: emoji.clone(),
            };
            if message.reactions.contains(&reaction) {
                return false;
            }
            message.reactions.push(reaction);
            true
        }
        Change::React { emoji, add: false } => {
            let before = message.reactions.len();
            message
                .reactions
                .retain(|r| !(r.user_id == by_user && &r.emoji == emoji));
            message.reactions.len() != before
        }
        Change::State(state) => {
            let changed = message.state != *state;
            message.state = *state;
            changed
        }
        Change::Edit(_) | Change::Delete => false,
    }
}

/// Records a receipt by `by_user` on `message`; returns whether anything changed. A
/// read receipt implies delivery. The sender's own user is not recorded.
pub(crate) fn apply_receipt(message: &mut TimelineMessage, by_user: Uuid, read: bool) -> bool {
    if message.sender.user_id == by_user {
        return false;
    }
    let mut changed = false;
    for (list, wanted) in [
        (&mut message.delivered_to, true),
        (&mut message.read_by, read),
    ] {
        if wanted && !list.contains(&by_user) {
            list.push(by_user);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Uuid = Uuid::from_u128(0xa);
    const BOB: Uuid = Uuid::from_u128(0xb);
    const CONV: ConversationId = ConversationId(Uuid::from_u128(0xc));

    fn device(user: Uuid) -> DeviceIds {
        DeviceIds {
            tenant_id: Uuid::from_u128(1),
            user_id: user,
            device_id: Uuid::from_u128(user.as_u128() + 100),
        }
    }

    fn text_from_alice(text: &str) -> TimelineMessage {
        let payload = Payload::new(
            Uuid::from_u128(7),
            1_000,
            PayloadKind::Text { text: text.into() },
        );
        match op_for(CONV, device(ALICE), &payload, None, SendState::Received) {
            Some(Op::Insert(m)) => *m,
            _ => panic!("a text inserts"),
        }
    }

    #[test]
    fn texts_insert_and_controls_change_their_target() {
        let m = text_from_alice("hi");
        assert_eq!(m.text(), Some("hi"));
        assert_eq!(m.id, MessageId(Uuid::from_u128(7)));
        let edit = Payload::new(
            Uuid::from_u128(8),
            2_000,
            PayloadKind::Edit {
                target: Uuid::from_u128(7),
                text: "hello".into(),
            },
        );
        assert!(matches!(
            op_for(CONV, device(ALICE), &edit, None, SendState::Received),
            Some(Op::Change { target: MessageId(t), change: Change::Edit(_), by_user: ALICE, .. }) if t == Uuid::from_u128(7)
        ));
        let typing = Payload::new(Uuid::nil(), 0, PayloadKind::Typing { active: true });
        assert!(op_for(CONV, device(BOB), &typing, None, SendState::Received).is_none());
    }

    #[test]
    fn only_the_sender_edits_or_deletes() {
        let mut m = text_from_alice("hi");
        assert!(!apply(&mut m, BOB, &Change::Edit("forged".into())));
        assert!(!apply(&mut m, BOB, &Change::Delete));
        assert_eq!(m.text(), Some("hi"));
        assert!(apply(&mut m, ALICE, &Change::Edit("hello".into())));
        assert_eq!((m.text(), m.edited), (Some("hello"), true));
        assert!(apply(&mut m, ALICE, &Change::Delete));
        assert_eq!(m.content, Content::Deleted);
        // Nothing happens to a deleted message.
        assert!(!apply(&mut m, ALICE, &Change::Edit("again".into())));
        assert!(!apply(
            &mut m,
            BOB,
            &Change::React {
                emoji: "x".into(),
                add: true
            }
        ));
    }

    #[test]
    fn reactions_add_once_and_come_off() {
        let mut m = text_from_alice("hi");
        let thumbs = |add| Change::React {
            emoji: "👍".into(),
            add,
        };
        assert!(apply(&mut m, BOB, &thumbs(true)));
        assert!(!apply(&mut m, BOB, &thumbs(true)));
        assert!(apply(&mut m, ALICE, &thumbs(true)));
        assert_eq!(m.reactions.len(), 2);
        assert!(apply(&mut m, BOB, &thumbs(false)));
        assert_eq!(
            m.reactions,
            vec![Reaction {
                user_id: ALICE,
                emoji: "👍".into()
            }]
        );
        assert!(!apply(&mut m, BOB, &thumbs(false)));
    }

    #[test]
    fn receipts_record_other_users_and_read_implies_delivered() {
        let mut m = text_from_alice("hi");
        assert!(!apply_receipt(&mut m, ALICE, true));
        assert!(apply_receipt(&mut m, BOB, false));
        assert_eq!(
            (m.delivered_to.clone(), m.read_by.clone()),
            (vec![BOB], vec![])
        );
        assert!(apply_receipt(&mut m, BOB, true));
        assert!(!apply_receipt(&mut m, BOB, true));
        assert_eq!(
            (m.delivered_to.clone(), m.read_by.clone()),
            (vec![BOB], vec![BOB])
        );
    }
}
