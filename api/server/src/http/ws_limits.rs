//! What one device may hold and send over WebSockets: at most `CLOAK_WS_PER_DEVICE` open
//! sockets on this node (a new one closes the oldest, as a phone that reconnects before
//! its old socket timed out expects), and a frame rate per socket.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use uuid::Uuid;

/// One device's sockets, oldest first: an id and the way to close it.
type DeviceSockets = VecDeque<(u64, oneshot::Sender<()>)>;

/// The sockets open on this node, by device.
#[derive(Default)]
pub struct SocketRegistry {
    next_id: AtomicU64,
    open: Mutex<HashMap<Uuid, DeviceSockets>>,
}

/// A socket's place in the registry; dropping it leaves.
pub struct Registration {
    registry: Arc<SocketRegistry>,
    device_id: Uuid,
    id: u64,
    /// Fires when a newer socket of the device replaced this one.
    pub replaced: oneshot::Receiver<()>,
}

impl SocketRegistry {
    /// Adds a socket of `device_id`; closes the device's oldest beyond `cap`.
    pub fn register(self: &Arc<Self>, device_id: Uuid, cap: usize) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let sockets = open.entry(device_id).or_default();
        sockets.push_back((id, tx));
        while sockets.len() > cap.max(1) {
            if let Some((_, oldest)) = sockets.pop_front() {
                metrics::counter!("ws_replaced_total").increment(1);
                let _ = oldest.send(());
            }
        }
        drop(open);
        Registration {
            registry: self.clone(),
            device_id,
            id,
            replaced: rx,
        }
    }

    /// Open sockets of a device on this node.
    pub fn count(&self, device_id: Uuid) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&device_id).map_or(0, VecDeque::len)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sockets) = open.get_mut(&self.device_id) {
            sockets.retain(|(id, _)| *id != self.id);
            if sockets.is_empty() {
                open.remove(&self.device_id);
            }
        }
    }
}

/// A socket's frame budget (GCRA): `per_sec` frames a second, bursts of one second's
/// worth.
pub struct FrameRate {
    interval: Duration,
    burst: Duration,
    /// Theoretical arrival time of the next frame.
    tat: Instant,
}

/// What the budget says of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused; the client may retry after this long.
    Refused(Duration),
}

impl FrameRate {
    pub fn new(per_sec: u32, now: Instant) -> Self {
        let interval = Duration::from_secs(1) / per_sec.max(1);
        Self {
            interval,
            burst: Duration::from_secs(1),
            tat: now,
        }
    }

    /// Counts one frame at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let tat = self.tat.max(now);
        let ahead = tat.saturating_duration_since(now);
        if ahead + self.interval > self.burst {
            return Verdict::Refused(ahead + self.interval - self.burst);
        }
        self.tat = tat + self.interval;
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_socket_beyond_the_cap_replaces_the_oldest() {
        let r = Arc::new(SocketRegistry::default());
        let d = Uuid::new_v4();
        let mut first = r.register(d, 2);
        let mut second = r.register(d, 2);
        assert_eq!(r.count(d), 2);
        let mut third = r.register(d, 2);
        assert_eq!(r.count(d), 2);
        assert!(first.replaced.try_recv().is_ok(), "the oldest is told");
        assert!(second.replaced.try_recv().is_err());
        drop(second);
        assert_eq!(r.count(d), 1);
        assert!(third.replaced.try_recv().is_err());
        drop(third);
        drop(first);
        assert_eq!(r.count(d), 0);
    }

    #[test]
    fn frames_beyond_a_second_of_burst_wait() {
        let t0 = Instant::now();
        let mut rate = FrameRate::new(10, t0);
        for _ in 0..10 {
            assert_eq!(rate.check(t0), Verdict::Allowed);
        }
        assert!(matches!(rate.check(t0), Verdict::Refused(_)));
        // A tenth of a second later, one more fits.
        let later = t0 + Duration::from_millis(100);
        assert_eq!(rate.check(later), Verdict::Allowed);
        assert!(matches!(rate.check(later), Verdict::Refused(_)));
    }
}
