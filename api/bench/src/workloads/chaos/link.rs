//! A device's connection across node failures: which node to try next, the reconnect
//! backoff, and opening a socket that resumes after a given sequence number.

use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::ws::{self, Socket, Target};

/// First retry delay; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A handshake (TCP, upgrade, `ready`) that takes longer is abandoned.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Doubling delays between retries.
#[derive(Debug, Clone, Copy)]
pub struct Backoff(Duration);

impl Backoff {
    /// Starts at [`BACKOFF_START`].
    pub fn new() -> Self {
        Self(BACKOFF_START)
    }

    /// Sleeps the current delay, then doubles it (up to [`BACKOFF_MAX`]).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.0 = BACKOFF_START;
    }
}

/// One device's way to the nodes: its home node first, the others after.
#[derive(Debug, Clone)]
pub struct Link {
    /// `ws://` bases, home first.
    bases: Vec<String>,
    token: String,
    /// Failed attempts since the last success (picks the next node to try).
    failures: usize,
}

impl Link {
    /// A device with `token` whose home is `nodes[home % nodes.len()]` (`http://` URLs).
    pub fn new(nodes: &[String], home: usize, token: &str) -> Self {
        let n = nodes.len().max(1);
        let bases = (0..nodes.len())
            .map(|k| ws::ws_base(&nodes[(home + k) % n]))
            .collect();
        Self {
            bases,
            token: token.to_owned(),
            failures: 0,
        }
    }

    /// Opens a socket that resumes after `after`: the home node after a success, then
    /// each node in turn while attempts fail.
    pub async fn open(&mut self, after: u64) -> Result<Socket> {
        let base = self
            .bases
            .get(self.failures % self.bases.len().max(1))
            .ok_or_else(|| anyhow!("no node to connect to"))?;
        let target = Target::Cloak {
            base: base.clone(),
            token: self.token.clone(),
        };
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, ws::open_after(&target, None, after))
            .await
            .map_err(|_| anyhow!("connecting to {base} timed out"))
            .and_then(|r| r);
        match opened {
            Ok(socket) => {
                self.failures = 0;
                Ok(socket)
            }
            Err(e) => {
                self.failures += 1;
                Err(e)
            }
        }
    }
}
