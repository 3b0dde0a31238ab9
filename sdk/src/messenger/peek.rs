//! A read-only look at the mailbox, for notification extensions.

use super::{Event, Messenger, PAGE};
use crate::Error;
use crate::clock::Clock;

impl<C: Clock> Messenger<C> {
    /// Decrypts up to `limit` of the messages waiting in the mailbox and returns them,
    /// without acknowledging anything or writing the store. It takes the messenger, whose
    /// in-memory state (ratchets moved by decrypting, commits merged on the way) is dropped
    /// afterwards: the app that owns the store later processes the same entries from its
    /// own, unchanged state. Entries that do not decrypt are skipped; a transient failure
    /// ends the look with what was decrypted so far (an error if nothing was).
    pub async fn peek(mut self, limit: usize) -> Result<Vec<Event>, Error> {
        // Without a store, nothing this messenger does can be written.
        self.store = None;
        let mut events = Vec::new();
        let mut after = self.cursor;
        loop {
            let page = self.client.fetch_mailbox(after, PAGE).await?;
            for envelope in &page.items {
                if envelope.seq <= after {
                    continue;
                }
                after = envelope.seq;
                match self.handle(envelope).await {
                    Ok(Some(event @ Event::Message { .. })) => events.push(event),
                    Ok(_) => {}
                    Err(e) if events.is_empty() => return Err(e),
                    Err(_) => return Ok(events),
                }
                if events.len() >= limit {
                    return Ok(events);
                }
            }
            if !page.more || page.items.is_empty() {
                return Ok(events);
            }
        }
    }
}
