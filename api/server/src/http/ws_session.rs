//! One WebSocket connection: authentication, resume, push of mailbox entries on wake-up,
//! acknowledgements, sends, heartbeats, and backpressure.
//!
//! Memory per connection is bounded: entries are read from the mailbox in pages only when
//! the socket accepts frames (each send waits on actix-ws's bounded channel, and a reader
//! that stalls for [`SEND_TIMEOUT`] is disconnected; its entries stay in the mailbox), and
//! wake-ups carry no data (a lagging subscription just triggers a re-read).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use cloak_proto::delivery::{ClientFrame, ServerFrame};
use cloak_proto::devices::DeviceStatus;
use secrecy::SecretString;

use super::conversations::receipt;
use super::mailbox::envelope;
use super::problem::ApiError;
use crate::broker::{Notification, Subscription};
use crate::services::principals::DevicePrincipal;
use crate::services::{ServiceError, delivery, devices};
use crate::state::AppState;

/// Largest frame accepted from a client.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// How long an unauthenticated connection may stay open.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings (and re-checks the device's standing).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// A connection silent for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A frame the client does not take within this long closes the connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Mailbox page size when pushing.
const PAGE: u32 = 100;

struct Connection {
    state: Arc<AppState>,
    session: Session,
    device: Option<DevicePrincipal>,
    /// Last sequence number pushed; `None` until the client resumes.
    cursor: Option<u64>,
    wakeups: Option<Subscription>,
    last_heard: Instant,
}

/// Runs a connection to its end.
pub async fn run(
    state: Arc<AppState>,
    device: Option<DevicePrincipal>,
    session: Session,
    mut stream: AggregatedMessageStream,
) {
    metrics::gauge!("ws_connected_devices").increment(1.0);
    let mut conn = Connection {
        state,
        session,
        device: None,
        cursor: None,
        wakeups: None,
        last_heard: Instant::now(),
    };
    let mut open = match device {
        Some(d) => conn.authenticated(d).await,
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
            message = stream.recv() => match message {
                Some(Ok(message)) => {
                    conn.last_heard = Instant::now();
                    open = conn.on_message(message).await;
                }
                Some(Err(e)) => {
                    close_reason = Some(CloseReason { code: CloseCode::Protocol, description: Some(e.to_string()) });
                    open = false;
                }
                None => open = false,
            },
            note = next_wakeup(&mut conn.wakeups) => {
                open = match note {
                    Some(_) => conn.pump().await,
                    None => false,
                };
            }
            _ = heartbeat.tick() => {
                open = conn.heartbeat().await;
                if !open {
                    close_reason = Some(CloseReason { code: CloseCode::Policy, description: Some("idle or no longer authorised".into()) });
                }
            }
            _ = &mut auth_deadline, if conn.device.is_none() => {
                close_reason = Some(CloseReason { code: CloseCode::Policy, description: Some("authentication timeout".into()) });
                open = false;
            }
        }
    }
    let _ = conn.session.close(close_reason).await;
    metrics::gauge!("ws_connected_devices").decrement(1.0);
}

async fn next_wakeup(wakeups: &mut Option<Subscription>) -> Option<Notification> {
    match wakeups {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    /// Sends a frame, waiting (bounded) for the client to take it. False: drop the connection.
    async fn send(&mut self, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, self.session.text(text)).await,
            Ok(Ok(()))
        )
    }

    async fn send_error(&mut self, e: ServiceError, client_msg_id: Option<uuid::Uuid>) -> bool {
        let error = ApiError::from(e);
        let retry_after_ms = error
            .retry_after_ms()
            .map(|ms| u64::try_from(ms).unwrap_or(0));
        let problem = error.problem();
        self.send(&ServerFrame::Error {
            code: problem.code,
            detail: problem.detail,
            client_msg_id,
            retry_after_ms,
        })
        .await
    }

    /// Subscribes to the device's wake-ups, then says `ready`.
    async fn authenticated(&mut self, device: DevicePrincipal) -> bool {
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

    async fn on_message(&mut self, message: AggregatedMessage) -> bool {
        match message {
            AggregatedMessage::Text(text) => match serde_json::from_str::<ClientFrame>(&text) {
                Ok(frame) => self.on_frame(frame).await,
                Err(e) => {
                    self.send_error(ServiceError::invalid("invalid_frame", e.to_string()), None)
                        .await
                }
            },
            AggregatedMessage::Binary(_) => {
                self.send_error(
                    ServiceError::invalid("invalid_frame", "frames are JSON text"),
                    None,
                )
                .await
            }
            AggregatedMessage::Ping(bytes) => self.session.pong(&bytes).await.is_ok(),
            AggregatedMessage::Pong(_) => true,
            AggregatedMessage::Close(_) => false,
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
        let state = self.state.clone();
        match frame {
            ClientFrame::Auth { .. } => {
                self.send_error(
                    ServiceError::invalid("already_authenticated", "send auth only once"),
                    None,
                )
                .await
            }
            ClientFrame::Resume { after } => {
                self.cursor = Some(after);
                self.pump().await
            }
            ClientFrame::Ack { up_to } => {
                match delivery::ack(state.store.as_ref(), &device, up_to).await {
                    Ok(deleted) => self.send(&ServerFrame::Acked { up_to, deleted }).await,
                    Err(e) => self.send_error(e, None).await,
                }
            }
            ClientFrame::Send {
                conversation_id,
                message,
            } => {
                let result = delivery::send(
                    state.store.as_ref(),
                    state.broker.as_ref(),
                    &state.tokens,
                    &device,
                    conversation_id,
                    &message,
                    state.clock.now_ms(),
                    state.settings.mailbox_quota,
                )
                .await;
                match result {
                    Ok(stored) => {
                        let r = receipt(message.client_msg_id, conversation_id, &stored);
                        self.send(&ServerFrame::Sent(r)).await
                    }
                    Err(e) => self.send_error(e, Some(message.client_msg_id)).await,
                }
            }
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

    /// Pushes every entry after the cursor, page by page.
    async fn pump(&mut self) -> bool {
        let (Some(device), Some(mut cursor)) = (self.device, self.cursor) else {
            return true;
        };
        let state = self.state.clone();
        loop {
            let now = state.clock.now_ms();
            let entries =
                match delivery::fetch(state.store.as_ref(), &device, cursor, PAGE, now).await {
                    Ok(e) => e,
                    Err(e) => return self.send_error(e, None).await,
                };
            let full_page = entries.len() == PAGE as usize;
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
            if !full_page {
                return true;
            }
        }
    }

    /// Pings, closes idle connections, and drops devices revoked or suspended meanwhile.
    async fn heartbeat(&mut self) -> bool {
        if self.last_heard.elapsed() > IDLE_TIMEOUT {
            return false;
        }
        if let Some(device) = self.device {
            match self
                .state
                .store
                .device_auth(device.tenant_id, device.device_id)
                .await
            {
                Ok(Some(auth))
                    if auth.device.status == DeviceStatus::Approved && !auth.user_suspended => {}
                Ok(_) => return false,
                Err(e) => tracing::warn!(error = %e, "websocket standing check failed"),
            }
        }
        self.session.ping(b"").await.is_ok()
    }
}
