//! What a benchmark message carries. The body (opaque ciphertext to the server) holds the
//! message's *intended* send time and a counter, so the receiver measures latency from the
//! schedule, not from when the client managed to write (no coordinated omission). The
//! `client_msg_id` carries the same two numbers, so a `sent` receipt is timed without a
//! lookup table.

use std::sync::OnceLock;
use std::time::Instant;

use uuid::Uuid;

/// Marks a benchmark body.
const MAGIC: [u8; 8] = *b"CLOAKBEN";

/// Nanoseconds since the process's benchmark origin (one clock for senders and receivers).
pub fn now_ns() -> u64 {
    u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The origin of [`now_ns`].
pub fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// One scheduled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Intended send time ([`now_ns`] scale).
    pub intended_ns: u64,
    /// Global message counter.
    pub counter: u64,
}

impl Stamp {
    /// A body of `len` bytes (at least 24): stamp, magic, zero padding.
    pub fn body(self, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len.max(24)];
        b[0..8].copy_from_slice(&self.intended_ns.to_le_bytes());
        b[8..16].copy_from_slice(&self.counter.to_le_bytes());
        b[16..24].copy_from_slice(&MAGIC);
        b
    }

    /// Reads the stamp back from a body; `None` if it is not a benchmark body.
    pub fn from_body(b: &[u8]) -> Option<Self> {
        if b.len() < 24 || b[16..24] != MAGIC {
            return None;
        }
        Some(Self {
            intended_ns: u64::from_le_bytes(b[0..8].try_into().ok()?),
            counter: u64::from_le_bytes(b[8..16].try_into().ok()?),
        })
    }

    /// The client message id (unique per message; the server does not interpret it).
    pub fn client_msg_id(self) -> Uuid {
        Uuid::from_u64_pair(self.intended_ns, self.counter)
    }

    /// Reads the stamp back from a client message id.
    pub fn from_client_msg_id(id: Uuid) -> Self {
        let (intended_ns, counter) = id.as_u64_pair();
        Self {
            intended_ns,
            counter,
        }
    }

    /// Microseconds from the intended send time to now (at least 1).
    pub fn latency_us(self, now_ns: u64) -> u64 {
        (now_ns.saturating_sub(self.intended_ns) / 1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_bodies_and_ids() {
        let s = Stamp {
            intended_ns: 123_456_789,
            counter: 42,
        };
        let body = s.body(256);
        assert_eq!(body.len(), 256);
        assert_eq!(Stamp::from_body(&body), Some(s));
        assert_eq!(Stamp::from_client_msg_id(s.client_msg_id()), s);
        assert_eq!(Stamp::from_body(b"welcome"), None);
        assert_eq!(s.latency_us(s.intended_ns + 2_500_000), 2500);
    }
}
