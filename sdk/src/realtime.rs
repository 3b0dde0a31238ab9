//! The real-time channel: one WebSocket to `GET /v1/ws`, resumed after the last processed
//! sequence number, with reconnection by exponential backoff and full jitter.
//!
//! This module only moves frames; [`crate::Messenger`] decides what they mean.

use std::time::Duration;

use cloak_proto::delivery::{ClientFrame, Envelope, ServerFrame};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::Error;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// First reconnection delay.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest reconnection delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The delay before reconnection attempt `attempt` (0-based): a uniformly random duration
/// up to `min(BACKOFF_MAX, BACKOFF_BASE · 2^attempt)` ("full jitter"), so that many devices
/// reconnecting after an outage spread out.
pub fn backoff(attempt: u32, rng: &mut impl rand::Rng) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.gen_range(0..=ms))
}

/// An open, authenticated socket.
pub struct Channel {
    socket: Socket,
}

fn transport(e: impl std::fmt::Display) -> Error {
    Error::Transport(e.to_string())
}

impl Channel {
    /// Connects with the device token (sent as a header, never in the URL) and resumes
    /// after `after`. `wss` uses `tls` (or the default roots when it is `None`).
    pub async fn connect(
        base_url: &str,
        token: &str,
        after: u64,
        tls: Option<&crate::Tls>,
    ) -> Result<Self, Error> {
        let url = format!(
            "{}/v1/ws",
            base_url.trim_end_matches('/').replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request().map_err(transport)?;
        let value = format!("Bearer {token}").parse().map_err(transport)?;
        request.headers_mut().insert("authorization", value);
        let config = match tls {
            Some(tls) => tls.config(),
            None => crate::tls::default_config()?,
        };
        let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(config)),
        )
        .await
        .map_err(transport)?;
        let mut channel = Self { socket };
        match channel.next_frame(Duration::from_secs(10)).await? {
            Some(ServerFrame::Ready { .. }) => {}
            Some(ServerFrame::Error { code, detail, .. }) => {
                return Err(Error::Protocol(format!(
                    "socket refused: {code} {}",
                    detail.unwrap_or_default()
                )));
            }
            _ => return Err(Error::Protocol("socket did not say ready".into())),
        }
        channel.send(&ClientFrame::Resume { after }).await?;
        Ok(channel)
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        let text = serde_json::to_string(frame).map_err(transport)?;
        self.socket
            .send(Message::text(text))
            .await
            .map_err(transport)
    }

    /// The next server frame within `wait`; `None` when nothing came in time.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Option<ServerFrame>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next()).await;
            let message = match next {
                Err(_) => return Ok(None),
                Ok(None) => return Err(Error::Transport("socket closed".into())),
                Ok(Some(m)) => m.map_err(transport)?,
            };
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .map(Some)
                        .map_err(|e| Error::Protocol(format!("frame: {e}")));
                }
                Message::Close(_) => {
                    return Err(Error::Transport("socket closed by the server".into()));
                }
                // Pings are answered by tungstenite; binary frames are not part of the protocol.
                _ => continue,
            }
        }
    }

    /// The next envelope within `wait`, skipping other frames.
    pub async fn next_envelope(&mut self, wait: Duration) -> Result<Option<Envelope>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await? {
                None => return Ok(None),
                Some(ServerFrame::Envelope(e)) => return Ok(Some(e)),
                Some(ServerFrame::Error {
                    code: cloak_proto::Code::DeviceRevoked,
                    ..
                }) => return Err(Error::Revoked),
                Some(ServerFrame::Error {
                    code: cloak_proto::Code::UserSuspended,
                    ..
                }) => return Err(Error::Suspended),
                Some(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for attempt in 0..40 {
            let cap = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(16))
                .min(BACKOFF_MAX);
            let d = backoff(attempt, &mut rng);
            assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
        }
        let samples: Vec<Duration> = (0..50).map(|_| backoff(10, &mut rng)).collect();
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 40, "jitter spreads reconnections");
        assert!(samples.iter().all(|d| *d <= BACKOFF_MAX));
    }
}
