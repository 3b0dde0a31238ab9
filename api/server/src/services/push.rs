//! What travels on a device's broker topic: a stored envelope pushed from memory (so an
//! online device needs no mailbox read), a bare wake-up (read the mailbox), or word that
//! the device may no longer be connected (revoked, or its user suspended).
//!
//! An envelope note carries its sequence number ahead of the ready-made `envelope` frame,
//! so the socket checks for a gap without parsing JSON and sends the text as it is.

use std::sync::Arc;

use cloak_proto::delivery::{Envelope, ServerFrame};
use uuid::Uuid;

use crate::broker::Broker;
use crate::clock::to_datetime;
use crate::store::{MailboxEntry, NewSend, SendOutcome};

const ENVELOPE: u8 = b'E';
const CLOSE: u8 = b'C';

/// The wire form of a mailbox entry.
pub fn envelope(e: MailboxEntry) -> Envelope {
    Envelope {
        seq: u64::try_from(e.seq).unwrap_or(0),
        conversation_id: e.conversation_id,
        sender_device_id: e.sender_device_id,
        kind: e.kind,
        epoch: u64::try_from(e.epoch).unwrap_or(0),
        body: e.body,
        sent_at: to_datetime(e.sent_at_ms),
        sent_at_ms: e.sent_at_ms,
        franking_tag: e.franking_tag,
        franking_stamp: e.franking_stamp,
    }
}

/// The broker topic of a device's socket.
pub fn device_topic(device_id: Uuid) -> String {
    format!("device:{device_id}")
}

/// A note on a device topic, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Note<'a> {
    /// Entry `seq` as the text of a `ServerFrame::Envelope`.
    Envelope { seq: u64, frame: &'a str },
    /// New entries may be waiting: read the mailbox.
    Wake,
    /// The device's standing changed: close its sockets.
    Close,
}

/// Decodes a note; anything unknown counts as a wake-up (a read is always safe).
pub fn decode(payload: &[u8]) -> Note<'_> {
    match payload.split_first() {
        Some((&ENVELOPE, rest)) if rest.len() > 8 => {
            let (seq, frame) = rest.split_at(8);
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(seq);
            match std::str::from_utf8(frame) {
                Ok(frame) => Note::Envelope {
                    seq: u64::from_be_bytes(bytes),
                    frame,
                },
                Err(_) => Note::Wake,
            }
        }
        Some((&CLOSE, _)) => Note::Close,
        _ => Note::Wake,
    }
}

/// Encodes an envelope note for one mailbox entry.
pub fn envelope_note(entry: MailboxEntry) -> Option<Arc<[u8]>> {
    let seq = u64::try_from(entry.seq).ok()?;
    let frame = serde_json::to_vec(&ServerFrame::Envelope(envelope(entry))).ok()?;
    let mut note = Vec::with_capacity(9 + frame.len());
    note.push(ENVELOPE);
    note.extend_from_slice(&seq.to_be_bytes());
    note.extend_from_slice(&frame);
    Some(Arc::from(note))
}

/// The close note.
pub fn close_note() -> Arc<[u8]> {
    Arc::from(&[CLOSE][..])
}

/// Pushes every newly stored message of a batch to its recipients' sockets, wherever
/// they are connected. Best effort: the entries are durable, and a socket that misses a
/// note finds the gap at the next one (or on resume) and reads the mailbox.
pub async fn push_batch(broker: &dyn Broker, sends: &[NewSend], outcomes: &[SendOutcome]) {
    let mut notes: Vec<(String, Arc<[u8]>)> = Vec::new();
    for (send, outcome) in sends.iter().zip(outcomes) {
        let SendOutcome::Stored(stored) = outcome else {
            continue;
        };
        if stored.duplicate {
            continue;
        }
        metrics::counter!("delivery_envelopes_stored_total")
            .increment(stored.recipients.len() as u64);
        for (device, seq) in stored.recipients.iter().zip(&stored.seqs) {
            let entry = MailboxEntry {
                seq: *seq,
                conversation_id: send.conversation_id,
                sender_device_id: send.sender.device_id,
                kind: cloak_proto::delivery::EnvelopeKind::Application,
                epoch: stored.epoch,
                body: send.body.clone(),
                sent_at_ms: send.now_ms,
                franking_tag: send.franking.as_ref().map(|f| f.0.clone()),
                franking_stamp: send.franking.as_ref().map(|f| f.1.clone()),
                viewable: send.viewable,
            };
            if let Some(note) = envelope_note(entry) {
                notes.push((device_topic(*device), note));
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    if let Err(e) = broker.publish_each(&notes).await {
        tracing::warn!(error = %e, "envelope push failed; recipients will read their mailboxes");
    }
}

/// Wakes recipients to read their mailboxes (commits and Welcomes).
pub async fn wake(broker: &dyn Broker, recipients: &[Uuid]) {
    let topics: Vec<String> = recipients.iter().map(|d| device_topic(*d)).collect();
    if let Err(e) = broker.publish_many(&topics, b"").await {
        tracing::warn!(error = %e, "wake-up publish failed");
    }
}

/// Tells every socket of these devices, on every node, to close.
pub async fn close_devices(broker: &dyn Broker, devices: &[Uuid]) {
    let topics: Vec<String> = devices.iter().map(|d| device_topic(*d)).collect();
    if let Err(e) = broker.publish_many(&topics, &close_note()).await {
        tracing::warn!(error = %e, "close publish failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_garbage_is_a_wake_up() {
        let entry = MailboxEntry {
            seq: 42,
            conversation_id: Uuid::new_v4(),
            sender_device_id: Uuid::new_v4(),
            kind: cloak_proto::delivery::EnvelopeKind::Application,
            epoch: 1,
            body: vec![9; 10],
            sent_at_ms: 5,
            franking_tag: None,
            franking_stamp: None,
            viewable: true,
        };
        let note = envelope_note(entry).expect("encodes");
        match decode(&note) {
            Note::Envelope { seq, frame } => {
                assert_eq!(seq, 42);
                let parsed: ServerFrame = serde_json::from_str(frame).expect("a frame");
                assert!(matches!(parsed, ServerFrame::Envelope(e) if e.seq == 42));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decode(&close_note()), Note::Close);
        assert_eq!(decode(b""), Note::Wake);
        assert_eq!(decode(b"E123"), Note::Wake);
        assert_eq!(decode(&[b'E', 0, 0, 0, 0, 0, 0, 0, 1, 0xff]), Note::Wake);
    }
}
