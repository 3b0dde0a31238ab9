//! The background task of a [`super::Cloak`] client: catches up over REST (settling
//! commits whose answers were lost), then holds the WebSocket, stores each pushed
//! envelope before acknowledging it, and reconnects with jittered exponential backoff.
//! It holds the client's lock only while it processes an envelope, never while it waits.

use std::sync::Arc;
use std::time::Duration;

use cloak_proto::ack_batch::AckBatch;
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

/// Processes pushed envelopes until the socket fails, acknowledging in batches
/// ([`AckBatch`]: a second after the first unacknowledged envelope, or per 64).
async fn listen(shared: &Shared, channel: &mut Channel) -> Result<(), Error> {
    let mut unacked: AckBatch<Instant> = AckBatch::new();
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
