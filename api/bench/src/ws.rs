//! Opening WebSocket connections: to Cloak (authenticated by header, `ready`, `resume`) or
//! to the naive relay (a room per pair, nothing else).

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use cloak_proto::delivery::{ClientFrame, ServerFrame};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Where one connection goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// `GET /v1/ws` on a Cloak node (`ws://…`), with a device token.
    Cloak {
        /// `ws://127.0.0.1:port`.
        base: String,
        /// Device token.
        token: String,
    },
    /// The naive relay, in a room shared by one sender and one receiver.
    Naive {
        /// `ws://127.0.0.1:port`.
        base: String,
        /// The room.
        room: String,
    },
}

/// `http://…` → `ws://…`.
pub fn ws_base(http_base: &str) -> String {
    http_base.replacen("http://", "ws://", 1)
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects (Nagle off). For Cloak: waits for `ready`, then resumes after 0.
pub async fn open(target: &Target) -> Result<Socket> {
    let request = match target {
        Target::Cloak { base, token } => {
            let mut request = format!("{base}/v1/ws").into_client_request()?;
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}"))?,
            );
            request
        }
        Target::Naive { base, room } => format!("{base}/?room={room}").into_client_request()?,
    };
    let (mut ws, _) = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, None, true),
    )
    .await
    .context("WebSocket handshake timed out")?
    .context("WebSocket handshake")?;
    if let Target::Cloak { .. } = target {
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, next_text(&mut ws))
            .await
            .context("no ready frame")??;
        match serde_json::from_str::<ServerFrame>(&first)? {
            ServerFrame::Ready { .. } => {}
            other => bail!("expected a ready frame, got {other:?}"),
        }
        let resume = serde_json::to_string(&ClientFrame::Resume { after: 0 })?;
        ws.send(Message::text(resume)).await?;
    }
    Ok(ws)
}

async fn next_text(ws: &mut Socket) -> Result<String> {
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg? {
            return Ok(t.as_str().to_owned());
        }
    }
    Err(anyhow!("socket closed"))
}

/// Opens every target, `concurrency` handshakes at a time, in order.
pub async fn open_all(targets: &[Target], concurrency: usize) -> Result<Vec<Socket>> {
    use futures_util::TryStreamExt as _;
    futures_util::stream::iter(targets)
        .map(open)
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}
