//! A chaos receiver: reads its mailbox over a WebSocket through every fault (reconnecting
//! and resuming after its cursor), acks each burst, resumes again on the same socket when
//! it lags behind an acknowledged message for too long (a lost wake-up: a stall), and at
//! the end drains what is left over REST.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cloak_proto::delivery::{ClientFrame, ServerFrame};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use super::control::Control;
use super::inbox::Inbox;
use super::link::{Backoff, Link};
use super::rest::Rest;
use super::sender::Progress;
use crate::ws::Socket;

/// How often the stall check runs.
const TICK: Duration = Duration::from_millis(250);

/// What a receiver saw.
#[derive(Debug)]
pub struct ReceiverOutcome {
    /// The processed mailbox.
    pub inbox: Inbox,
    /// Resumes sent because an acknowledged message did not arrive in time.
    pub stalls: u64,
    /// Sockets opened (the first, then one per reconnection).
    pub sockets: u64,
    /// `error` frames, by code.
    pub errors: BTreeMap<String, u64>,
    /// Why the final REST drain failed, if it did.
    pub drain_error: Option<String>,
}

/// One receiver's settings.
pub struct Receiver {
    /// Pair index.
    pub pair: usize,
    /// Its connection to the nodes.
    pub link: Link,
    /// Its device token (for the REST drain).
    pub token: String,
    /// REST over every node.
    pub rest: Rest,
    /// The pair's sender progress.
    pub progress: Arc<Progress>,
    /// Lag behind an acknowledged message that counts as a stall.
    pub stall_after: Duration,
    /// Turns true once every sender has finished: then the receiver drains over REST.
    pub stop: watch::Receiver<bool>,
    /// Where stalls are logged.
    pub control: Arc<Control>,
}

impl Receiver {
    /// Receives until `stop`, then drains the mailbox over REST.
    pub async fn run(mut self) -> ReceiverOutcome {
        let mut out = ReceiverOutcome {
            inbox: Inbox::new(self.pair),
            stalls: 0,
            sockets: 0,
            errors: BTreeMap::new(),
            drain_error: None,
        };
        let mut socket: Option<Socket> = None;
        let mut backoff = Backoff::new();
        let mut acked = 0u64;
        // Since when the receiver has been behind its sender's receipts without progress
        // (restarted at each resume it sends), and since when without a resume helping.
        let mut behind_since: Option<Instant> = None;
        let mut stuck_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stop = self.stop.clone();
        while !*stop.borrow() {
            let Some(ws) = socket.as_mut() else {
                match self.link.open(out.inbox.cursor).await {
                    Ok(ws) => {
                        socket = Some(ws);
                        out.sockets += 1;
                        backoff.reset();
                    }
                    Err(_) => {
                        tokio::select! {
                            () = backoff.wait() => {}
                            () = stopped(&mut stop) => {}
                        }
                    }
                }
                continue;
            };
            tokio::select! {
                first = ws.next() => {
                    let before = out.inbox.highest;
                    if !read_burst(ws, first, &mut out) {
                        socket = None;
                        continue;
                    }
                    if out.inbox.highest > before {
                        behind_since = None;
                        stuck_since = None;
                    }
                    if out.inbox.cursor > acked {
                        if !send(ws, &ClientFrame::Ack {
                                up_to: out.inbox.cursor,
                                quiet: false,
                            }).await {
                            socket = None;
                            continue;
                        }
                        acked = out.inbox.cursor;
                    }
                }
                _ = tick.tick() => {
                    let sent = self.progress.acked.load(Ordering::Acquire);
                    if sent <= out.inbox.highest {
                        behind_since = None;
                        stuck_since = None;
                        continue;
                    }
                    let since = *behind_since.get_or_insert_with(Instant::now);
                    let stuck = *stuck_since.get_or_insert(since);
                    if since.elapsed() >= self.stall_after {
                        out.stalls += 1;
                        self.control.event("stall", self.pair, stuck.elapsed());
                        behind_since = Some(Instant::now());
                        if !send(ws, &ClientFrame::Resume { after: out.inbox.cursor }).await {
                            socket = None;
                        }
                    }
                }
                () = stopped(&mut stop) => {}
            }
        }
        if let Some(mut ws) = socket {
            let _ = ws.close(None).await;
        }
        if let Err(e) = self.drain(&mut out.inbox).await {
            out.drain_error = Some(format!("{e:#}"));
        }
        out
    }

    /// Fetches and acknowledges the rest of the mailbox over REST.
    async fn drain(&self, inbox: &mut Inbox) -> anyhow::Result<()> {
        loop {
            let page = self.rest.mailbox(&self.token, inbox.cursor).await?;
            if page.items.is_empty() {
                return Ok(());
            }
            for e in &page.items {
                inbox.accept(e);
            }
            self.rest.ack(&self.token, inbox.cursor).await?;
        }
    }
}

/// Handles `first` and every frame already buffered; false if the socket broke.
fn read_burst(
    ws: &mut Socket,
    first: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    out: &mut ReceiverOutcome,
) -> bool {
    let mut next = first;
    loop {
        match next {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Envelope(e)) => {
                    out.inbox.accept(&e);
                }
                Ok(ServerFrame::Error { code, .. }) => {
                    *out.errors.entry(code.as_str().to_owned()).or_default() += 1;
                }
                _ => {}
            },
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return false,
        }
        match ws.next().now_or_never() {
            Some(m) => next = m,
            None => return true,
        }
    }
}

async fn send(ws: &mut Socket, frame: &ClientFrame) -> bool {
    match serde_json::to_string(frame) {
        Ok(text) => ws.send(Message::text(text)).await.is_ok(),
        Err(_) => false,
    }
}

/// Resolves once the flag is true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
