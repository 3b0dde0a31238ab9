//! One WebSocket connection: authentication, resume, envelopes pushed from memory,
//! pipelined sends and acknowledgements, heartbeats, and backpressure.
//!
//! A connection keeps reading frames while its earlier sends are being stored: each send
//! joins the node's group-commit pipeline and its answer waits in an ordered queue, so
//! receipts leave in the order the sends came in; at most [`WINDOW`] answers may wait
//! before the connection stops reading. Envelopes arrive on the device's broker topic
//! with their sequence numbers: the next one is sent as it is, one already sent is
//! skipped, and a gap (a missed note, a lagging subscription) makes the connection read
//! the mailbox from its cursor instead, so nothing is skipped. Memory per connection is
//! bounded: each frame to the client waits on actix-ws's bounded channel, and a reader
//! that stalls for [`SEND_TIMEOUT`] is disconnected (its entries stay in the mailbox).
//! The work a frame or a note starts is boxed while it runs, so an idle connection's task
//! holds only its waiting state, not the largest of those futures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use cloak_proto::Code;
use cloak_proto::delivery::{ClientFrame, SendMessageRequest, ServerFrame};
use cloak_proto::devices::DeviceStatus;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt as _};
use secrecy::SecretString;
use uuid::Uuid;
use validator::Validate as _;

use super::conversations::receipt;
use super::mailbox::envelope;
use super::problem::ApiError;
use crate::broker::{Notification, Subscription};
use crate::services::pipeline::settle;
use crate::services::principals::DevicePrincipal;
use crate::services::push::{self, Note};
use crate::services::socket_limits::{FrameRate, Registration, Verdict};
use crate::services::{ServiceError, delivery, devices};
use crate::state::AppState;

/// Largest frame accepted from a client.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// How long an unauthenticated connection may stay open.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// A connection silent for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A frame the client does not take within this long closes the connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Mailbox page size when reading.
const PAGE: u32 = 100;
/// Answers (receipts, acks) that may be outstanding before the connection stops reading.
pub const WINDOW: usize = 64;
/// Longest a frame waits for the rates before the connection is closed.
const MAX_THROTTLE: Duration = Duration::from_secs(30);
/// How long a closing connection waits for its outstanding answers.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer still being worked out, in frame order (`None`: nothing to say, as for a
/// quiet ack that succeeded).
type Answer = BoxFuture<'static, Option<ServerFrame>>;

struct Connection {
    state: Arc<AppState>,
    session: Session,
    device: Option<DevicePrincipal>,
    /// Last sequence number sent; `None` until the client resumes.
    cursor: Option<u64>,
    wakeups: Option<Subscription>,
    last_heard: Instant,
    answers: FuturesOrdered<Answer>,
    /// This socket's place among the device's sockets on this node.
    registration: Option<Registration>,
    frames: FrameRate,
    /// The last read was refused for unpaid viewing (told to the client once).
    unpaid: bool,
    /// Why the connection ends, when a frame's handling ends it for a reason the client
    /// is told in the close frame.
    closing: Option<CloseReason>,
}

async fn replaced(registration: &mut Option<Registration>) {
    match registration {
        Some(r) => {
            if (&mut r.replaced).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Runs a connection to its end.
pub async fn run(
    state: Arc<AppState>,
    device: Option<DevicePrincipal>,
    session: Session,
    mut stream: AggregatedMessageStream,
) {
    metrics::gauge!("ws_connected_devices").increment(1.0);
    let frames = FrameRate::new(state.settings.guards.ws_frames_per_sec, Instant::now());
    let mut conn = Connection {
        frames,
        registration: None,
        state,
        session,
        device: None,
        cursor: None,
        wakeups: None,
        last_heard: Instant::now(),
        answers: FuturesOrdered::new(),
        unpaid: false,
        closing: None,
    };
    let mut open = match device {
        Some(d) => Box::pin(conn.authenticated(d)).await,
        None => true,
    };
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let auth_deadline = tokio::time::sleep(AUTH_TIMEOUT);
    tokio::pin!(auth_deadline);
    let mut close_reason = None;
    let mut shutdown = conn.state.shutdown.clone();
    while open {
        tokio::select! {
            _ = shutdown.wait_for(|stopping| *stopping) => {
                close_reason = Some(CloseReason { code: CloseCode::Away, description: Some("server shutting down".into()) });
                open = false;
            }
            () = replaced(&mut conn.registration) => {
                close_reason = Some(CloseReason { code: CloseCode::Policy, description: Some("replaced by a newer connection of this device".into()) });
                open = false;
            }
            Some(answer) = conn.answers.next(), if !conn.answers.is_empty() => {
                if let Some(frame) = answer {
                    open = Box::pin(conn.send(&frame)).await;
                }
            }
            message = stream.recv(), if conn.answers.len() < WINDOW => match message {
                Some(Ok(message)) => {
                    conn.last_heard = Instant::now();
                    open = Box::pin(conn.on_message(message)).await;
                }
                Some(Err(e)) => {
                    close_reason = Some(CloseReason { code: CloseCode::Protocol, description: Some(e.to_string()) });
                    open = false;
                }
                None => open = false,
            },
            note = next_note(&mut conn.wakeups) => {
                open = match note {
                    Some(Notification::Message(payload)) => match push::decode(&payload) {
                        Note::Envelope { seq, frame } => Box::pin(conn.pushed(seq, frame)).await,
                        Note::Wake => Box::pin(conn.pump()).await,
                        Note::Close => {
                            close_reason = Some(no_longer_authorised());
                            false
                        }
                    },
                    Some(Notification::Lagged(_)) => Box::pin(conn.pump()).await,
                    None => false,
                };
            }
            _ = heartbeat.tick() => {
                open = Box::pin(conn.heartbeat()).await;
                if !open {
                    close_reason = Some(CloseReason { code: CloseCode::Policy, description: Some("idle".into()) });
                }
            }
            _ = &mut auth_deadline, if conn.device.is_none() => {
                close_reason = Some(CloseReason { code: CloseCode::Policy, description: Some("authentication timeout".into()) });
                open = false;
            }
        }
    }
    Box::pin(conn.drain_answers()).await;
    let close_reason = close_reason.or_else(|| conn.closing.take());
    let _ = conn.session.close(close_reason).await;
    metrics::gauge!("ws_connected_devices").decrement(1.0);
}

fn no_longer_authorised() -> CloseReason {
    CloseReason {
        code: CloseCode::Policy,
        description: Some("no longer authorised".into()),
    }
}

async fn next_note(wakeups: &mut Option<Subscription>) -> Option<Notification> {
    match wakeups {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The `error` frame for a failure, as the REST API would answer it.
fn error_frame(e: ApiError, client_msg_id: Option<Uuid>) -> ServerFrame {
    let retry_after_ms = e.retry_after_ms().map(|ms| u64::try_from(ms).unwrap_or(0));
    let problem = e.problem();
    ServerFrame::Error {
        code: problem.code,
        detail: problem.detail,
        client_msg_id,
        retry_after_ms,
    }
}

fn ready(frame: ServerFrame) -> Answer {
    Box::pin(std::future::ready(Some(frame)))
}

impl Connection {
    /// Sends a frame, waiting (bounded) for the client to take it. False: drop the connection.
    async fn send(&mut self, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        self.send_text(text).await
    }

    async fn send_text(&mut self, text: String) -> bool {
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, self.session.text(text)).await,
            Ok(Ok(()))
        )
    }

    async fn send_error(&mut self, e: ServiceError, client_msg_id: Option<Uuid>) -> bool {
        self.send(&error_frame(ApiError::from(e), client_msg_id))
            .await
    }

    /// Queues an answer behind the outstanding ones.
    fn answer(&mut self, answer: Answer) {
        self.answers.push_back(answer);
    }

    /// Sends what is still outstanding (the sends are stored either way), for a while.
    async fn drain_answers(&mut self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while !self.answers.is_empty() {
            match tokio::time::timeout_at(deadline, self.answers.next()).await {
                Ok(Some(Some(frame))) => {
                    if !self.send(&frame).await {
                        return;
                    }
                }
                Ok(Some(None)) => {}
                _ => return,
            }
        }
    }

    /// Subscribes to the device's topic, then says `ready`.
    async fn authenticated(&mut self, device: DevicePrincipal) -> bool {
        let cap = self.state.settings.guards.ws_per_device;
        self.registration = Some(self.state.sockets.register(device.device_id, cap));
        match self
            .state
            .broker
            .subscribe(&delivery::device_topic(device.device_id))
            .await
        {
            Ok(sub) => self.wakeups = Some(sub),
            Err(e) => {
                tracing::warn!(error = %e, "websocket subscribe failed");
                return false;
            }
        }
        self.device = Some(device);
        self.send(&ServerFrame::Ready {
            device_id: device.device_id,
        })
        .await
    }

    /// Counts a frame against the socket's rate and, once authenticated, the tenant's
    /// request rate. A frame beyond either waits (the connection stops reading, so TCP
    /// slows the client down): frames are never refused, so a pipelining client keeps
    /// its order, and a flood costs the server no more than the rate. False: close (a
    /// client still over the tenant's rate after [`MAX_THROTTLE`] of waiting).
    async fn admit(&mut self) -> bool {
        let started = Instant::now();
        let too_long = |started: Instant| {
            let over = started.elapsed() >= MAX_THROTTLE;
            if over {
                metrics::counter!("ws_closed_for_flooding_total").increment(1);
            }
            over
        };
        while let Verdict::Refused(wait) = self.frames.check(Instant::now()) {
            if too_long(started) {
                return false;
            }
            metrics::counter!("ws_throttled_total", "rate" => "socket").increment(1);
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        }
        let Some(device) = self.device else {
            return true;
        };
        let state = self.state.clone();
        while let Some(wait) = state.sockets.tenant_frame(
            device.tenant_id,
            state.clock.now_ms(),
            state.settings.tenant_requests_per_sec,
        ) {
            if too_long(started) {
                return false;
            }
            metrics::counter!("ws_throttled_total", "rate" => "tenant").increment(1);
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        }
        true
    }

    async fn on_message(&mut self, message: AggregatedMessage) -> bool {
        match message {
            AggregatedMessage::Text(text) => match serde_json::from_str::<ClientFrame>(&text) {
                Ok(frame) => {
                    if !self.admit().await {
                        return false;
                    }
                    self.on_frame(frame).await
                }
                Err(e) => {
                    if !self.admit().await {
                        return false;
                    }
                    self.answer(ready(error_frame(
                        ServiceError::invalid(Code::InvalidFrame, e.to_string()).into(),
                        None,
                    )));
                    true
                }
            },
            AggregatedMessage::Binary(_) => {
                if !self.admit().await {
                    return false;
                }
                self.answer(ready(error_frame(
                    ServiceError::invalid(Code::InvalidFrame, "frames are JSON text").into(),
                    None,
                )));
                true
            }
            AggregatedMessage::Ping(bytes) => self.session.pong(&bytes).await.is_ok(),
            AggregatedMessage::Pong(_) => true,
            AggregatedMessage::Close(_) => false,
        }
    }

    /// Whether the device may still act, by its current (cached) standing.
    async fn still_authorised(&mut self, device: &DevicePrincipal) -> bool {
        let state = self.state.clone();
        match state
            .hot
            .device_auth(state.store.as_ref(), device.tenant_id, device.device_id)
            .await
        {
            Ok(Some(auth)) => auth.device.status == DeviceStatus::Approved && !auth.user_suspended,
            Ok(None) => false,
            // The database is unreachable: the frame itself will fail with a 503 frame.
            Err(_) => true,
        }
    }

    async fn on_frame(&mut self, frame: ClientFrame) -> bool {
        let Some(device) = self.device else {
            return match frame {
                ClientFrame::Auth { token } => self.authenticate(SecretString::from(token)).await,
                _ => {
                    // Anything before authentication ends the connection, after saying why.
                    let _ = self
                        .send_error(ServiceError::MissingCredentials, None)
                        .await;
                    false
                }
            };
        };
        if !self.still_authorised(&device).await {
            let _ = self
                .send_error(
                    ServiceError::unauthorized(
                        Code::DeviceRevoked,
                        "the device is revoked or its user suspended",
                    ),
                    None,
                )
                .await;
            // The same close as when the broker's note comes first: a client racing a
            // revocation with a frame hears the same reason either way.
            self.closing = Some(no_longer_authorised());
            return false;
        }
        match frame {
            ClientFrame::Auth { .. } => {
                self.answer(ready(error_frame(
                    ServiceError::invalid(Code::AlreadyAuthenticated, "send auth only once").into(),
                    None,
                )));
                true
            }
            ClientFrame::Resume { after } => {
                self.cursor = Some(after);
                self.pump().await
            }
            ClientFrame::Ack { up_to, quiet } => {
                let answer: Answer = match delivery::ack(&self.state.pipeline, &device, up_to).await
                {
                    Ok(pending) => Box::pin(async move {
                        match settle(pending).await {
                            Ok(_) if quiet => None,
                            Ok(deleted) => Some(ServerFrame::Acked { up_to, deleted }),
                            Err(e) => Some(error_frame(e.into(), None)),
                        }
                    }),
                    Err(e) => ready(error_frame(e.into(), None)),
                };
                self.answer(answer);
                true
            }
            ClientFrame::Send {
                conversation_id,
                message,
            } => {
                let answer = self.queue_send(&device, conversation_id, message).await;
                self.answer(answer);
                true
            }
        }
    }

    /// Checks a send exactly as the REST endpoint does, and queues it in the pipeline.
    async fn queue_send(
        &mut self,
        device: &DevicePrincipal,
        conversation_id: Uuid,
        message: SendMessageRequest,
    ) -> Answer {
        let id = message.client_msg_id;
        if let Err(e) = message.validate() {
            return ready(error_frame(ApiError::validation(&e), Some(id)));
        }
        let state = self.state.clone();
        let ctx = state.delivery();
        let now = state.clock.now_ms();
        let queued = match delivery::prepare_send(ctx, device, conversation_id, &message, now).await
        {
            Ok(prepared) => delivery::queue_send(ctx, prepared).await,
            Err(e) => Err(e),
        };
        match queued {
            Ok(queued) => Box::pin(async move {
                Some(match queued.wait().await {
                    Ok(stored) => ServerFrame::Sent(receipt(id, conversation_id, &stored)),
                    Err(e) => error_frame(e.into(), Some(id)),
                })
            }),
            Err(e) => ready(error_frame(e.into(), Some(id))),
        }
    }

    async fn authenticate(&mut self, token: SecretString) -> bool {
        let state = self.state.clone();
        let result = devices::authenticate_device(
            state.store.as_ref(),
            &state.tokens,
            &token,
            state.clock.now_ms(),
        )
        .await;
        let checked = result.and_then(|d| devices::require_approved(&d).map(|()| d));
        match checked {
            Ok(device) => self.authenticated(device).await,
            Err(e) => {
                let _ = self.send_error(e, None).await;
                false
            }
        }
    }

    /// An envelope pushed from memory: the next one is sent as it is; one already sent is
    /// skipped; after a gap the mailbox is read from the cursor.
    async fn pushed(&mut self, seq: u64, frame: &str) -> bool {
        let Some(cursor) = self.cursor else {
            // Not resumed yet: the resume reads the mailbox.
            return true;
        };
        if seq <= cursor {
            return true;
        }
        if seq != cursor + 1 {
            metrics::counter!("delivery_push_gaps_total").increment(1);
            return self.pump().await;
        }
        // Priced views are charged on the way out: read (and charge) from the mailbox.
        if let Some(device) = self.device {
            let state = self.state.clone();
            if delivery::views_priced(state.store.as_ref(), &state.hot, device.tenant_id)
                .await
                .unwrap_or(false)
            {
                return self.pump().await;
            }
        }
        if !self.send_text(frame.to_owned()).await {
            return false;
        }
        self.cursor = Some(seq);
        metrics::counter!("delivery_pushed_total").increment(1);
        true
    }

    /// Sends every entry after the cursor, page by page, from the mailbox.
    async fn pump(&mut self) -> bool {
        let (Some(device), Some(mut cursor)) = (self.device, self.cursor) else {
            return true;
        };
        let state = self.state.clone();
        loop {
            let now = state.clock.now_ms();
            let page_bytes = state.settings.guards.mailbox_page_bytes;
            let (entries, more) = match delivery::fetch(
                state.store.as_ref(),
                &state.hot,
                &device,
                cursor,
                PAGE,
                page_bytes,
                now,
            )
            .await
            {
                Ok(e) => e,
                Err(e) => {
                    // Viewing unpaid: said once, then retried at each wake-up and
                    // heartbeat, so delivery resumes once credits arrive.
                    let unpaid = matches!(
                        &e,
                        ServiceError::PaymentRequired { code, .. } if *code == cloak_proto::Code::PaymentRequired
                    );
                    if unpaid && self.unpaid {
                        return true;
                    }
                    self.unpaid = unpaid;
                    return self.send_error(e, None).await;
                }
            };
            self.unpaid = false;
            for entry in entries {
                let seq = u64::try_from(entry.seq).unwrap_or(0);
                let latency = (now - entry.sent_at_ms).max(0) as f64 / 1000.0;
                if !self.send(&ServerFrame::Envelope(envelope(entry))).await {
                    return false;
                }
                metrics::histogram!("delivery_latency_seconds").record(latency);
                cursor = seq;
                self.cursor = Some(cursor);
            }
            if !more {
                return true;
            }
        }
    }

    /// Pings and closes idle connections. Standing is not polled: revocation and
    /// suspension close sockets through the broker, and every frame is checked.
    async fn heartbeat(&mut self) -> bool {
        if self.last_heard.elapsed() > IDLE_TIMEOUT {
            return false;
        }
        if self.unpaid && !self.pump().await {
            return false;
        }
        self.session.ping(b"").await.is_ok()
    }
}
