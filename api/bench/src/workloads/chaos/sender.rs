//! A chaos sender: one message in flight at a time (so a refused send can never let a
//! later one overtake it), paced, each retried under the same `client_msg_id` until the
//! server acknowledges it with a `sent` receipt: after a transient error, a timeout or a
//! broken socket (then on a new socket, the home node first, the other node next).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cloak_proto::Code;
use cloak_proto::delivery::{ClientFrame, SendMessageRequest, ServerFrame};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::link::{Backoff, Link};
use crate::message::{Stamp, now_ns};
use crate::ws::Socket;

/// What one pair's sender has had acknowledged, for its receiver's stall check.
#[derive(Debug, Default)]
pub struct Progress {
    /// The pair's highest acknowledged message number (0: none yet).
    pub acked: AtomicU64,
}

/// A message's number within its pair, and the pair, in one stamp counter.
pub fn counter(pair: usize, n: u64) -> u64 {
    ((pair as u64) << 32) | (n & 0xffff_ffff)
}

/// The pair and the message number of a stamp counter.
pub fn split_counter(counter: u64) -> (usize, u64) {
    (
        usize::try_from(counter >> 32).unwrap_or(usize::MAX),
        counter & 0xffff_ffff,
    )
}

/// What a sender did.
#[derive(Debug, Default)]
pub struct SenderOutcome {
    /// Ids the server acknowledged with a `sent` receipt, in order.
    pub acknowledged: Vec<Uuid>,
    /// Of those, receipts marked `duplicate` (a retry of a send already stored).
    pub duplicate_receipts: u64,
    /// Resends, by cause (an error code, `timeout`, `socket`).
    pub retries: BTreeMap<String, u64>,
    /// Sockets opened (the first, then one per reconnection).
    pub sockets: u64,
    /// The message still unsettled when the finish timeout ran out.
    pub unresolved: Option<Uuid>,
    /// A refusal that a retry cannot fix (the run fails).
    pub fatal: Option<String>,
}

/// One sender's settings.
pub struct Sender {
    /// Pair index.
    pub pair: usize,
    /// Its connection to the nodes.
    pub link: Link,
    /// Its conversation.
    pub conversation: Uuid,
    /// Body size.
    pub body_len: usize,
    /// Time between sends.
    pub period: Duration,
    /// How long to wait for a receipt.
    pub send_timeout: Duration,
    /// After `stop`, how long the last message may take to settle.
    pub finish_timeout: Duration,
    /// The pair's progress, shared with its receiver.
    pub progress: Arc<Progress>,
    /// Turns true when the run stops.
    pub stop: watch::Receiver<bool>,
}

/// How one attempt ended.
enum Reply {
    Sent {
        duplicate: bool,
    },
    Refused {
        code: Code,
        retry_after_ms: Option<u64>,
    },
    Broken,
    TimedOut,
}

/// How a message ended.
enum Settled {
    Acked,
    Unresolved,
    Fatal(String),
}

impl Sender {
    /// Sends until `stop`, then settles the message in flight.
    pub async fn run(mut self) -> SenderOutcome {
        let mut out = SenderOutcome::default();
        let offset = self.period.mul_f64(rand::random::<f64>());
        let mut ticker = tokio::time::interval_at(Instant::now() + offset, self.period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut socket: Option<Socket> = None;
        let mut stop = self.stop.clone();
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stopped(&mut stop) => break,
            }
            if *stop.borrow() {
                break;
            }
            n += 1;
            let stamp = Stamp {
                intended_ns: now_ns(),
                counter: counter(self.pair, n),
            };
            let id = stamp.client_msg_id();
            match self.settle(stamp, &mut socket, &mut out).await {
                Settled::Acked => {
                    out.acknowledged.push(id);
                    self.progress.acked.store(n, Ordering::Release);
                }
                Settled::Unresolved => {
                    out.unresolved = Some(id);
                    break;
                }
                Settled::Fatal(why) => {
                    out.fatal = Some(why);
                    break;
                }
            }
        }
        if let Some(mut ws) = socket {
            let _ = ws.close(None).await;
        }
        out
    }

    /// Sends one message until it is acknowledged, refused for good, or (after `stop`)
    /// the finish timeout runs out.
    async fn settle(
        &mut self,
        stamp: Stamp,
        socket: &mut Option<Socket>,
        out: &mut SenderOutcome,
    ) -> Settled {
        let id = stamp.client_msg_id();
        let frame = ClientFrame::Send {
            conversation_id: self.conversation,
            message: SendMessageRequest {
                client_msg_id: id,
                epoch: 1,
                body: stamp.body(self.body_len),
                class: Default::default(),
                franking_tag: None,
            },
        };
        let Ok(text) = serde_json::to_string(&frame) else {
            return Settled::Fatal("cannot encode a send frame".into());
        };
        let mut backoff = Backoff::new();
        let mut deadline: Option<Instant> = None;
        loop {
            if *self.stop.borrow() && deadline.is_none() {
                deadline = Some(Instant::now() + self.finish_timeout);
            }
            let wait = match deadline {
                Some(d) if Instant::now() >= d => return Settled::Unresolved,
                Some(d) => self.send_timeout.min(d - Instant::now()),
                None => self.send_timeout,
            };
            let Some(ws) = self.connected(socket, out).await else {
                backoff.wait().await;
                continue;
            };
            let reply = if ws.send(Message::text(text.clone())).await.is_err() {
                Reply::Broken
            } else {
                await_reply(ws, id, wait).await
            };
            match reply {
                Reply::Sent { duplicate } => {
                    out.duplicate_receipts += u64::from(duplicate);
                    return Settled::Acked;
                }
                Reply::Refused {
                    code: Code::RateLimited,
                    retry_after_ms,
                } => {
                    bump(out, "rate_limited");
                    let ms = retry_after_ms.unwrap_or(1000).clamp(10, 10_000);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Reply::Refused { code, .. } if code.status() >= 500 => {
                    bump(out, code.as_str());
                    backoff.wait().await;
                }
                Reply::Refused { code, .. } => {
                    return Settled::Fatal(format!("send refused: {code}"));
                }
                Reply::Broken | Reply::TimedOut => {
                    bump(
                        out,
                        if matches!(reply, Reply::Broken) {
                            "socket"
                        } else {
                            "timeout"
                        },
                    );
                    *socket = None;
                    backoff.wait().await;
                }
            }
        }
    }

    /// The open socket, or a new one (`None` if opening failed).
    async fn connected<'a>(
        &mut self,
        socket: &'a mut Option<Socket>,
        out: &mut SenderOutcome,
    ) -> Option<&'a mut Socket> {
        if socket.is_none() {
            *socket = Some(self.link.open(0).await.ok()?);
            out.sockets += 1;
        }
        socket.as_mut()
    }
}

fn bump(out: &mut SenderOutcome, cause: &str) {
    *out.retries.entry(cause.to_owned()).or_default() += 1;
}

/// Reads frames until the answer to `id` (other frames are ignored), the socket breaks
/// or `wait` passes.
async fn await_reply(ws: &mut Socket, id: Uuid, wait: Duration) -> Reply {
    let read = async {
        while let Some(msg) = ws.next().await {
            let Ok(msg) = msg else { return Reply::Broken };
            let Message::Text(text) = msg else { continue };
            match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Sent(r)) if r.client_msg_id == id => {
                    return Reply::Sent {
                        duplicate: r.duplicate,
                    };
                }
                Ok(ServerFrame::Error {
                    code,
                    client_msg_id: Some(m),
                    retry_after_ms,
                    ..
                }) if m == id => {
                    return Reply::Refused {
                        code,
                        retry_after_ms,
                    };
                }
                _ => {}
            }
        }
        Reply::Broken
    };
    tokio::time::timeout(wait, read)
        .await
        .unwrap_or(Reply::TimedOut)
}

/// Resolves once the flag is true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
