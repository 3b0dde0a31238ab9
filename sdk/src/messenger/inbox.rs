//! The inbox: received messages kept in the encrypted store until the app takes them, for
//! apps (such as a command-line client) that may receive while doing something else.

use super::{Event, Messenger};
use crate::clock::Clock;
use crate::{Error, InboxMessage};

impl<C: Clock> Messenger<C> {
    /// From now on every received message is also kept in the inbox (written to the store
    /// with the state, before the mailbox entry is acknowledged) until
    /// [`Messenger::clear_inbox`]. The setting is stored.
    pub fn keep_inbox(&mut self) {
        if self.inbox.is_none() {
            self.inbox = Some(Vec::new());
        }
    }

    /// The messages in the inbox, oldest first.
    pub fn inbox(&self) -> &[InboxMessage] {
        self.inbox.as_deref().unwrap_or_default()
    }

    /// Removes the oldest `count` messages (those the app has shown) and stores that.
    pub async fn clear_inbox(&mut self, count: usize) -> Result<(), Error> {
        if let Some(inbox) = self.inbox.as_mut() {
            inbox.drain(..count.min(inbox.len()));
        }
        self.persist().await
    }

    /// Keeps a message event in the inbox, if there is one.
    pub(super) fn stash(&mut self, event: &Event) {
        let (
            Some(inbox),
            Event::Message {
                conversation_id,
                sender,
                payload,
                ..
            },
        ) = (self.inbox.as_mut(), event)
        else {
            return;
        };
        // A payload that decoded re-encodes; one that would not is not kept.
        if let Ok(bytes) = payload.encode() {
            inbox.push(InboxMessage {
                conversation_id: *conversation_id,
                sender: *sender,
                payload: bytes,
            });
        }
    }
}
