//! The control directory shared with `scripts/chaos`: `ready` (written once set-up is
//! done), `stop` (created by the script after its last fault has recovered) and
//! `events.log` (one line per receiver stall, for the script to attribute to a fault:
//! `stall <unix ms> <pair> <unix ms when the receiver fell behind>`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use tokio::sync::watch;

/// The control directory.
pub struct Control {
    dir: PathBuf,
    events: Mutex<std::fs::File>,
}

impl Control {
    /// Uses (and creates) `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let events = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.log"))
            .context("opening events.log")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            events: Mutex::new(events),
        })
    }

    /// Says that set-up is done and the load is running.
    pub fn ready(&self) -> Result<()> {
        std::fs::write(self.dir.join("ready"), b"ready\n").context("writing ready")
    }

    /// A flag that turns true once `stop` exists (polled every 100 ms).
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        let path = self.dir.join("stop");
        tokio::spawn(async move {
            while !path.exists() {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = tx.send(true);
        });
        rx
    }

    /// Logs an event: `<kind> <unix ms> <pair> <unix ms it began>` (it began `ago`).
    pub fn event(&self, kind: &str, pair: usize, ago: Duration) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let began = ms.saturating_sub(ago.as_millis());
        if let Ok(mut file) = self.events.lock() {
            let _ = writeln!(file, "{kind} {ms} {pair} {began}");
        }
    }
}
