//! The background task of a [`super::Cloak`] client: catches up over REST (settling
//! commits whose answers were lost), then holds the WebSocket, stores each pushed
//! envelope before acknowledging it, and reconnects with jittered exponential backoff.
//! It holds the client's lock only while it processes an envelope, never while it waits.

use std::sync::Arc;
use std::time::Duration;

use cloak_proto::delivery::ClientFrame;
use secrecy::ExposeSecret as _;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Shared;
use crate::Error;
use crate::realtime::{Channel, backoff};

/// How long one wait for a frame lasts before the task looks at its stop signal again.
const WAIT: Duration = Duration::from_secs(25);
/// How long opening the socket (TCP, TLS, upgrade, `ready`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the real-time connection is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting (or catching up over REST).
    Connecting,
    /// The WebSocket is open: messages arrive as they are sent.
    Online,
    /// The server could not be reached; trying again after `retry_in`.
    Offline {
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// The server ended this device's access (revoked, suspended): nothing more arrives.
    Closed {
        /// Why, as the SDK error says it.
        reason: String,
    },
}

fn is_final(e: &Error) -> bool {
    matches!(e, Error::Revoked | Error::Suspended)
}

pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let _ = shared.connection.send(ConnectionState::Connecting);
        let opened = tokio::select! {
            _ = stop.changed() => return,
            opened = open(&shared) => opened,
        };
        match opened {
            Ok(mut channel) => {
                attempt = 0;
                let _ = shared.connection.send(ConnectionState::Online);
                let ended = tokio::select! {
                    _ = stop.changed() => return,
                    ended = listen(&shared, &mut channel) => ended,
                };
                if let Err(e) = ended
                    && is_final(&e)
                {
                    close(&shared, &e);
                    return;
                }
            }
            Err(e) if is_final(&e) => {
                close(&shared, &e);
                return;
            }
            Err(_) => {
                let delay = backoff(attempt, &mut rand::thread_rng());
                attempt = attempt.saturating_add(1);
                let _ = shared
                    .connection
                    .send(ConnectionState::Offline { retry_in: delay });
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

fn close(shared: &Shared, e: &Error) {
    let _ = shared.connection.send(ConnectionState::Closed {
        reason: e.to_string(),
    });
}

/// Catches up over REST, then opens the socket resuming after the stored cursor. The
/// client's lock is not held while the socket connects, so the app's calls go on.
async fn open(shared: &Shared) -> Result<Channel, Error> {
    let (base_url, token, cursor, tls) = {
        let mut m = shared.messenger.lock().await;
        m.sync().await?;
        shared.note_calls(&m);
        m.remove_leavers().await?;
        let token = m.client().token().await?;
        (
            m.client().base_url().to_owned(),
            token,
            m.cursor(),
            m.client().tls().cloned(),
        )
    };
    let connect = Channel::connect(&base_url, token.expose_secret(), cursor, tls.as_ref());
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| Error::Transport("the socket did not open in time".into()))?
}

/// Processes pushed envelopes until the socket fails. Acknowledgements are batched, as a
/// log consumer commits offsets: the stored cursor is acknowledged [`ACK_DELAY`] after the
/// first unacknowledged envelope, or at once when [`ACK_EVERY`] are waiting, so a device
/// that receives a steady stream costs the server one `ack` frame (and one deletion) per
/// batch, not per message. Until then the entries stay in the mailbox: after a crash they
/// come again on resume, and the cursor skips them.
async fn listen(shared: &Shared, channel: &mut Channel) -> Result<(), Error> {
    let mut unacked = Unacked::default();
    loop {
        let wait = unacked
            .due()
            .map_or(WAIT, |due| due.saturating_duration_since(Instant::now()));
        if let Some(envelope) = channel.next_envelope(wait).await? {
            let cursor = {
                let mut m = shared.messenger.lock().await;
                // A transient failure ends this connection: the next one resumes at this entry.
                m.receive(&envelope).await?;
                shared.note_calls(&m);
                m.remove_leavers().await?;
                m.cursor()
            };
            unacked.stored(cursor, Instant::now());
        }
        if let Some(up_to) = unacked.take_if_due(Instant::now()) {
            channel
                .send(&ClientFrame::Ack { up_to, quiet: true })
                .await?;
        }
    }
}

/// How long a stored envelope may wait for its acknowledgement.
const ACK_DELAY: Duration = Duration::from_secs(1);
/// How many stored envelopes make an acknowledgement go at once.
const ACK_EVERY: u32 = 64;

/// Envelopes stored but not yet acknowledged (sans-IO: the caller passes the time).
#[derive(Debug, Default)]
struct Unacked {
    /// The cursor to acknowledge, when the first waiting envelope was stored, how many wait.
    waiting: Option<(u64, Instant, u32)>,
    /// The last cursor acknowledged.
    acked: u64,
}

impl Unacked {
    fn stored(&mut self, cursor: u64, now: Instant) {
        if cursor <= self.acked {
            return;
        }
        let (first, count) = self.waiting.map_or((now, 0), |(_, f, c)| (f, c));
        self.waiting = Some((cursor, first, count.saturating_add(1)));
    }

    /// When the waiting acknowledgement is due, if one waits.
    fn due(&self) -> Option<Instant> {
        self.waiting.map(|(_, first, count)| {
            if count >= ACK_EVERY {
                first
            } else {
                first + ACK_DELAY
            }
        })
    }

    /// The cursor to acknowledge now, if it is due.
    fn take_if_due(&mut self, now: Instant) -> Option<u64> {
        let due = self.due()?;
        if now < due {
            return None;
        }
        let (cursor, _, _) = self.waiting.take()?;
        self.acked = cursor;
        Some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ack_per_delay_or_per_batch() {
        let t0 = Instant::now();
        let mut u = Unacked::default();
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
