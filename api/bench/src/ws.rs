//! Opening WebSocket connections: to Cloak (authenticated by header, `ready`, `resume`) or
//! to the naive relay (a room per pair, nothing else).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use cloak_proto::delivery::{ClientFrame, ServerFrame};
use futures_util::{SinkExt as _, StreamExt as _};
use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
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

/// Client connections per loopback source address. Every connection goes to the same
/// server address and port, so each source address has only the ephemeral port range
/// (`net.ipv4.ip_local_port_range`, about 28 000 ports) to tell its connections apart.
/// The first `PER_SOURCE` connections of the process leave the source to the kernel
/// (127.0.0.1); the next go out from 127.0.0.2, then 127.0.0.3, and so on.
const PER_SOURCE: usize = 16_000;

/// Connections opened so far by this process (to pick their source addresses).
static OPENED: AtomicUsize = AtomicUsize::new(0);

/// The source address for the next connection to `dest`: `None` (the kernel's choice)
/// for the first [`PER_SOURCE`] connections or a non-loopback destination, then
/// 127.0.0.2, 127.0.0.3, … (all of 127.0.0.0/8 is local on Linux).
fn next_source(dest: SocketAddr) -> Option<SocketAddr> {
    let SocketAddr::V4(d) = dest else {
        return None;
    };
    if !d.ip().is_loopback() {
        return None;
    }
    let k = OPENED.fetch_add(1, Ordering::Relaxed) / PER_SOURCE;
    if k == 0 {
        return None;
    }
    // 127.0.0.2 ..= 127.0.0.253, then round again.
    let octet = u8::try_from(2 + (k - 1) % 252).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(127, 0, 0, octet),
        0,
    )))
}

/// Opens a TCP connection (Nagle off), from a spread loopback source address when many
/// connections are open (see [`PER_SOURCE`]). The source is bound with
/// `IP_BIND_ADDRESS_NO_PORT`, so the port is chosen at connect time by the 4-tuple and no
/// ephemeral port is reserved machine-wide.
async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut last_error = None;
    for dest in tokio::net::lookup_host((host, port)).await? {
        let socket = if dest.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(source) = next_source(dest) {
            setsockopt(&socket, sockopt::IpBindAddressNoPort, &true)
                .context("setting IP_BIND_ADDRESS_NO_PORT")?;
            socket
                .bind(source)
                .with_context(|| format!("binding the client socket to {source}"))?;
        }
        match socket.connect(dest).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(anyhow!(e).context(format!("connecting to {dest}"))),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow!("{host}:{port} resolves to no address")))
}

/// A small read buffer (tungstenite's default is 128 KiB per connection, all of it
/// touched on the first read): for many silent connections.
pub fn idle_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// Connects (Nagle off). For Cloak: waits for `ready`, then resumes after 0.
pub async fn open(target: &Target) -> Result<Socket> {
    open_with(target, None).await
}

/// [`open`] with a WebSocket configuration (`None`: tungstenite's defaults).
pub async fn open_with(target: &Target, config: Option<WebSocketConfig>) -> Result<Socket> {
    open_after(target, config, 0).await
}

/// [`open_with`], resuming delivery after sequence number `after` (for Cloak).
pub async fn open_after(
    target: &Target,
    config: Option<WebSocketConfig>,
    after: u64,
) -> Result<Socket> {
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
    let host = request
        .uri()
        .host()
        .ok_or_else(|| anyhow!("no host in {}", request.uri()))?
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let (mut ws, _) = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let stream = tcp_connect(&host, port).await?;
        tokio_tungstenite::client_async_with_config(request, MaybeTlsStream::Plain(stream), config)
            .await
            .context("WebSocket handshake")
    })
    .await
    .context("WebSocket handshake timed out")??;
    if let Target::Cloak { .. } = target {
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, next_text(&mut ws))
            .await
            .context("no ready frame")??;
        match serde_json::from_str::<ServerFrame>(&first)? {
            ServerFrame::Ready { .. } => {}
            other => bail!("expected a ready frame, got {other:?}"),
        }
        let resume = serde_json::to_string(&ClientFrame::Resume { after })?;
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
    open_all_with(targets, concurrency, None).await
}

/// [`open_all`] with a WebSocket configuration.
pub async fn open_all_with(
    targets: &[Target],
    concurrency: usize,
    config: Option<WebSocketConfig>,
) -> Result<Vec<Socket>> {
    use futures_util::TryStreamExt as _;
    futures_util::stream::iter(targets)
        .map(|t| open_with(t, config))
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}
