//! When a client acknowledges what it stored: the policy the SDK's real-time task follows
//! and cloak-bench emulates, as a log consumer commits offsets. The stored cursor is
//! acknowledged [`ACK_DELAY`] after the first unacknowledged envelope, or at once when
//! [`ACK_EVERY`] wait, so a device receiving a steady stream costs the server one `ack`
//! (and one deletion) per batch, not per message. Entries not yet acknowledged come again
//! on the next resume, and the cursor skips them.
//!
//! Sans-IO: the caller passes the time, in whatever clock it sleeps on.

use std::ops::Add;
use std::time::Duration;

/// How long a stored envelope may wait for its acknowledgement.
pub const ACK_DELAY: Duration = Duration::from_secs(1);
/// How many stored envelopes make the acknowledgement go at once.
pub const ACK_EVERY: u32 = 64;

/// Envelopes stored but not yet acknowledged.
#[derive(Debug, Clone)]
pub struct AckBatch<I> {
    /// The cursor to acknowledge, when the first waiting envelope was stored, how many wait.
    waiting: Option<(u64, I, u32)>,
    /// The last cursor acknowledged.
    acked: u64,
}

impl<I> Default for AckBatch<I> {
    fn default() -> Self {
        Self {
            waiting: None,
            acked: 0,
        }
    }
}

impl<I: Copy + Ord + Add<Duration, Output = I>> AckBatch<I> {
    /// Nothing waits; nothing acknowledged yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client has stored everything up to `cursor`.
    pub fn stored(&mut self, cursor: u64, now: I) {
        if cursor <= self.acked {
            return;
        }
        let (first, count) = self.waiting.map_or((now, 0), |(_, f, c)| (f, c));
        self.waiting = Some((cursor, first, count.saturating_add(1)));
    }

    /// When the waiting acknowledgement is due, if one waits.
    pub fn due(&self) -> Option<I> {
        self.waiting.map(|(_, first, count)| {
            if count >= ACK_EVERY {
                first
            } else {
                first + ACK_DELAY
            }
        })
    }

    /// The cursor to acknowledge now, if it is due.
    pub fn take_if_due(&mut self, now: I) -> Option<u64> {
        if now < self.due()? {
            return None;
        }
        let (cursor, _, _) = self.waiting.take()?;
        self.acked = cursor;
        Some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn one_ack_per_delay_or_per_batch() {
        let t0 = Instant::now();
        let mut u = AckBatch::new();
        assert_eq!(u.due(), None);
        assert_eq!(u.take_if_due(t0), None);
        u.stored(1, t0);
        u.stored(2, t0 + Duration::from_millis(300));
        // Not due before the delay from the first one, due after it, with the latest cursor.
        assert_eq!(u.take_if_due(t0 + Duration::from_millis(999)), None);
        assert_eq!(u.take_if_due(t0 + ACK_DELAY), Some(2));
        assert_eq!(u.take_if_due(t0 + ACK_DELAY * 2), None);
        // A cursor already acknowledged waits for nothing.
        u.stored(2, t0 + ACK_DELAY * 2);
        assert_eq!(u.due(), None);
        // A full batch is due at once.
        let t1 = t0 + ACK_DELAY * 3;
        for seq in 3..3 + u64::from(ACK_EVERY) {
            assert_eq!(u.take_if_due(t1), None, "early at {seq}");
            u.stored(seq, t1);
        }
        assert_eq!(u.take_if_due(t1), Some(2 + u64::from(ACK_EVERY)));
    }
}
