//! A receiver's view of its mailbox as the SDK's messenger processes it: entries at or
//! below the cursor are skipped (a resume can repeat them), and a message id already seen
//! is not handed to the app again (the `seen` set, cleared when it grows past 10 000).
//! On top of that it checks what the server must guarantee: each message stored once,
//! for this pair only, and in the sender's order.

use std::collections::{HashMap, HashSet};

use cloak_proto::delivery::{Envelope, EnvelopeKind};
use uuid::Uuid;

use super::sender::split_counter;
use crate::message::Stamp;

/// The SDK's cap on remembered message ids (`SEEN_LIMIT` in sdk/src/messenger.rs).
pub const SEEN_LIMIT: usize = 10_000;

/// One receiver's processed mailbox.
#[derive(Debug, Default)]
pub struct Inbox {
    /// The pair this receiver belongs to.
    pair: usize,
    /// The last sequence number processed.
    pub cursor: u64,
    /// The SDK's remembered ids.
    seen: HashSet<Uuid>,
    /// Deliveries to the app, per message id.
    pub app: HashMap<Uuid, u32>,
    /// The sequence number each message id was stored at.
    seq_of: HashMap<Uuid, u64>,
    /// Message ids stored at two different sequence numbers (a retry stored twice).
    pub stored_twice: u64,
    /// Messages handed to the app after a later one of the same sender.
    pub order_violations: u64,
    /// Messages of another pair in this mailbox.
    pub misrouted: u64,
    /// Entries at or below the cursor, skipped.
    pub repeats: u64,
    /// The highest message number stored for this pair (for the stall check).
    pub highest: u64,
    /// The message number last handed to the app.
    last_app: u64,
}

impl Inbox {
    /// An empty inbox for `pair`.
    pub fn new(pair: usize) -> Self {
        Self {
            pair,
            ..Self::default()
        }
    }

    /// Processes one entry; true if it was new (above the cursor).
    pub fn accept(&mut self, e: &Envelope) -> bool {
        if e.seq <= self.cursor {
            self.repeats += 1;
            return false;
        }
        self.cursor = e.seq;
        let stamp = match e.kind {
            EnvelopeKind::Application => Stamp::from_body(&e.body),
            _ => None,
        };
        // The conversation's Welcome, or anything else that is not a chaos message.
        let Some(stamp) = stamp else { return true };
        let id = stamp.client_msg_id();
        let (pair, n) = split_counter(stamp.counter);
        if pair != self.pair {
            self.misrouted += 1;
        }
        self.highest = self.highest.max(n);
        match self.seq_of.get(&id) {
            Some(&seq) if seq != e.seq => self.stored_twice += 1,
            Some(_) => {}
            None => {
                self.seq_of.insert(id, e.seq);
            }
        }
        if self.seen.insert(id) {
            *self.app.entry(id).or_default() += 1;
            if n <= self.last_app {
                self.order_violations += 1;
            }
            self.last_app = self.last_app.max(n);
        }
        if self.seen.len() > SEEN_LIMIT {
            self.seen.clear();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::workloads::chaos::sender::counter;

    fn entry(seq: u64, pair: usize, n: u64) -> Envelope {
        let stamp = Stamp {
            intended_ns: 7,
            counter: counter(pair, n),
        };
        let body = base64::engine::general_purpose::STANDARD.encode(stamp.body(32));
        serde_json::from_value(serde_json::json!({
            "seq": seq,
            "conversation_id": Uuid::nil(),
            "sender_device_id": Uuid::nil(),
            "kind": "application",
            "epoch": 1,
            "body": body,
            "sent_at": "1970-01-01T00:00:00Z",
        }))
        .expect("a valid envelope")
    }

    #[test]
    fn repeats_are_skipped_and_retries_stored_twice_reach_the_app_once() {
        let mut inbox = Inbox::new(3);
        assert!(inbox.accept(&entry(2, 3, 1)));
        assert!(!inbox.accept(&entry(2, 3, 1)));
        assert!(inbox.accept(&entry(3, 3, 2)));
        // The same message stored again at a later sequence number.
        assert!(inbox.accept(&entry(4, 3, 2)));
        assert_eq!(inbox.repeats, 1);
        assert_eq!(inbox.stored_twice, 1);
        assert_eq!(inbox.app.values().sum::<u32>(), 2);
        assert_eq!(inbox.order_violations, 0);
        assert_eq!(inbox.cursor, 4);
    }

    #[test]
    fn order_and_routing_are_checked() {
        let mut inbox = Inbox::new(1);
        inbox.accept(&entry(1, 1, 2));
        inbox.accept(&entry(2, 1, 1));
        inbox.accept(&entry(3, 2, 9));
        assert_eq!(inbox.order_violations, 1);
        assert_eq!(inbox.misrouted, 1);
    }
}
