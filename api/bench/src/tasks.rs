//! The per-connection tasks: a sender writes scheduled messages and (in a second task)
//! reads its receipts; a receiver reads envelopes, times them and acks.

use std::sync::Arc;

use cloak_proto::ack_batch::AckBatch;
use cloak_proto::delivery::{ClientFrame, EnvelopeKind, SendMessageRequest, ServerFrame};
use futures_util::stream::SplitStream;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::message::{Stamp, now_ns};
use crate::stats::{Counters, Shared};
use crate::ws::Socket;

/// Which server the sockets talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Cloak: receipts, envelopes, acks.
    Cloak,
    /// The naive relay: the sender's frame arrives verbatim; no receipts, no acks.
    Naive,
}

/// When receivers acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    /// After every envelope.
    Each,
    /// Once per burst: after reading every frame already buffered, ack the highest.
    Burst,
    /// As the SDK's real-time task does (`cloak_proto::ack_batch`, the same code): the
    /// highest, one second after the first unacknowledged envelope, or at once when 64 are
    /// unacknowledged.
    Sdk,
}

/// Everything a task needs besides its socket.
#[derive(Clone)]
pub struct TaskContext {
    /// Server kind.
    pub protocol: Protocol,
    /// Counters and histograms.
    pub shared: Arc<Shared>,
    /// Becomes true at the end of the run.
    pub stop: watch::Receiver<bool>,
    /// At the end of the run, hand the sockets back open (to run another load over the
    /// same connections) instead of closing them.
    pub keep_open: bool,
}

impl TaskContext {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn broken(&self, what: &str) {
        if !self.stopping() {
            Counters::bump(&self.shared.counters.broken_connections);
            self.shared.error(what);
        }
    }
}

fn send_frame(conversation_id: Uuid, stamp: Stamp, body_len: usize) -> Option<Message> {
    let frame = ClientFrame::Send {
        conversation_id,
        message: SendMessageRequest {
            client_msg_id: stamp.client_msg_id(),
            epoch: 1,
            body: stamp.body(body_len),
            class: Default::default(),
            franking_tag: None,
        },
    };
    serde_json::to_string(&frame).ok().map(Message::text)
}

/// Writes every scheduled message as soon as the pacer hands it over (batched when
/// several are due), then keeps the connection open until the run stops. Returns the
/// socket, still open, if `keep_open` and it did not break.
pub async fn sender(
    ws: Socket,
    conversation: Uuid,
    body_len: usize,
    mut schedule: UnboundedReceiver<Stamp>,
    mut cx: TaskContext,
) -> Option<Socket> {
    let (mut sink, stream) = ws.split();
    let reader = tokio::spawn(sender_receipts(stream, cx.clone()));
    let shared = cx.shared.clone();
    let mut batch: Vec<u64> = Vec::with_capacity(16);
    let mut intact = true;
    'outer: while let Some(first) = schedule.recv().await {
        let mut next = Some(first);
        while let Some(stamp) = next {
            let Some(frame) = send_frame(conversation, stamp, body_len) else {
                continue 'outer;
            };
            if sink.feed(frame).await.is_err() {
                cx.broken("sender write failed");
                intact = false;
                break 'outer;
            }
            batch.push(stamp.intended_ns);
            next = schedule.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            cx.broken("sender write failed");
            intact = false;
            break;
        }
        let now = now_ns();
        for intended_ns in batch.drain(..) {
            Counters::bump(&shared.counters.sent);
            if shared.measured(intended_ns) {
                shared
                    .send_lag
                    .record(now.saturating_sub(intended_ns) / 1000);
            }
        }
    }
    let _ = cx.stop.wait_for(|s| *s).await;
    let stream = reader.await.ok().flatten();
    if cx.keep_open && intact {
        return stream.and_then(|stream| sink.reunite(stream).ok());
    }
    let _ = sink.close().await;
    None
}

/// Reads a sender's `sent` and `error` frames until the run stops (then hands the stream
/// back) or the connection breaks.
async fn sender_receipts(
    mut stream: SplitStream<Socket>,
    mut cx: TaskContext,
) -> Option<SplitStream<Socket>> {
    let shared = cx.shared.clone();
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = cx.stop.wait_for(|s| *s) => return Some(stream),
        };
        match msg {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Sent(receipt)) => {
                    let stamp = Stamp::from_client_msg_id(receipt.client_msg_id);
                    // A late receipt of an earlier load over the same socket is not ours.
                    if shared.this_run(stamp.intended_ns) {
                        Counters::bump(&shared.counters.accepted);
                        if shared.measured(stamp.intended_ns) {
                            shared.accept.record(stamp.latency_us(now_ns()));
                        }
                    }
                }
                Ok(ServerFrame::Error { code, .. }) => {
                    Counters::bump(&shared.counters.rejected);
                    shared.error(code.as_str());
                }
                _ => {}
            },
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                cx.broken("sender connection closed");
                return None;
            }
        }
    }
}

/// What a receiver saw in one frame.
enum Seen {
    /// A mailbox entry with this sequence number (to ack).
    Entry(u64),
    Nothing,
}

fn on_receiver_frame(text: &str, cx: &TaskContext) -> Seen {
    let shared = &cx.shared;
    let (seq, body) = match cx.protocol {
        Protocol::Cloak => match serde_json::from_str::<ServerFrame>(text) {
            Ok(ServerFrame::Envelope(e)) if e.kind == EnvelopeKind::Application => {
                (Some(e.seq), e.body)
            }
            Ok(ServerFrame::Envelope(e)) => return Seen::Entry(e.seq),
            Ok(ServerFrame::Error { code, .. }) => {
                shared.error(&format!("receiver: {code}"));
                return Seen::Nothing;
            }
            _ => return Seen::Nothing,
        },
        Protocol::Naive => match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Send { message, .. }) => (None, message.body),
            _ => return Seen::Nothing,
        },
    };
    // A late envelope of an earlier load over the same socket is acked but not counted.
    if let Some(stamp) = Stamp::from_body(&body)
        && shared.this_run(stamp.intended_ns)
    {
        Counters::bump(&shared.counters.delivered);
        if shared.measured(stamp.intended_ns) {
            shared.delivery.record(stamp.latency_us(now_ns()));
        }
    }
    seq.map_or(Seen::Nothing, Seen::Entry)
}

async fn ack(ws: &mut Socket, up_to: u64, cx: &TaskContext) -> bool {
    let Ok(text) = serde_json::to_string(&ClientFrame::Ack { up_to, quiet: true }) else {
        return false;
    };
    if ws.send(Message::text(text)).await.is_err() {
        cx.broken("receiver ack failed");
        return false;
    }
    Counters::bump(&cx.shared.counters.acks);
    true
}

/// Reads envelopes until the run stops, acking as `ack_mode` says. Returns the socket,
/// still open, if `keep_open` and it did not break.
pub async fn receiver(mut ws: Socket, ack_mode: AckMode, mut cx: TaskContext) -> Option<Socket> {
    let mut highest = 0u64;
    let mut acked = 0u64;
    let acks = cx.protocol == Protocol::Cloak;
    let mut intact = true;
    // AckMode::Sdk: what waits for its acknowledgement.
    let mut batch: AckBatch<tokio::time::Instant> = AckBatch::new();
    'outer: loop {
        let next = tokio::select! {
            m = ws.next() => Some(m),
            _ = cx.stop.wait_for(|s| *s) => break,
            () = sleep_until(batch.due()) => None,
        };
        let Some(mut next) = next else {
            // The batched acknowledgement is due.
            if let Some(up_to) = batch.take_if_due(tokio::time::Instant::now()) {
                if !ack(&mut ws, up_to, &cx).await {
                    intact = false;
                    break;
                }
                acked = up_to;
            }
            continue;
        };
        // Handle this frame and every one already buffered, then ack once.
        loop {
            match next {
                Some(Ok(Message::Text(text))) => {
                    if let Seen::Entry(seq) = on_receiver_frame(&text, &cx) {
                        highest = highest.max(seq);
                        if ack_mode == AckMode::Sdk {
                            batch.stored(highest, tokio::time::Instant::now());
                        }
                        if acks && ack_mode == AckMode::Each {
                            if !ack(&mut ws, seq, &cx).await {
                                intact = false;
                                break 'outer;
                            }
                            acked = highest;
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    cx.broken("receiver connection closed");
                    intact = false;
                    break 'outer;
                }
            }
            match ws.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        if acks && ack_mode != AckMode::Sdk && highest > acked {
            if !ack(&mut ws, highest, &cx).await {
                intact = false;
                break;
            }
            acked = highest;
        }
    }
    if cx.keep_open && intact {
        return Some(ws);
    }
    let _ = ws.close(None).await;
    None
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Keeps an idle connection open (answering pings) until the run stops.
pub async fn idle(mut ws: Socket, mut cx: TaskContext) {
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = cx.stop.wait_for(|s| *s) => break,
        };
        if !matches!(msg, Some(Ok(_))) {
            cx.broken("idle connection closed");
            return;
        }
    }
    let _ = ws.close(None).await;
}
