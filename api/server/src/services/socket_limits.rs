//! What one device may hold and send over WebSockets: at most `CLOAK_WS_PER_DEVICE` open
//! sockets on this node (a new one closes the oldest, as a phone that reconnects before
//! its old socket timed out expects), a frame rate per socket, and the tenant's request
//! rate applied to its frames on this node.
//!
//! The tenant's rate for frames is kept on the node, not in the broker: a broker round
//! trip per frame (Redis on production) tripled the server's CPU per delivered message in
//! the two-node benchmark. Each node protects itself from one tenant's flood; REST
//! requests (and socket upgrades) still count against the shared, exact limit.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use uuid::Uuid;

/// One device's sockets, oldest first: an id and the way to close it.
type DeviceSockets = VecDeque<(u64, oneshot::Sender<()>)>;

/// The sockets open on this node, by device, and the tenants' frame budgets here.
#[derive(Default)]
pub struct SocketRegistry {
    next_id: AtomicU64,
    open: Mutex<HashMap<Uuid, DeviceSockets>>,
    /// GCRA state (theoretical arrival time, µs) per tenant.
    tenant_frames: Mutex<HashMap<Uuid, i64>>,
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

    /// Counts one frame of `tenant_id` at `now_ms` against `per_sec` frames a second (a
    /// second's burst): `None` if allowed, else how long the frame must wait.
    pub fn tenant_frame(&self, tenant_id: Uuid, now_ms: i64, per_sec: u32) -> Option<Duration> {
        let rate = crate::broker::Rate {
            limit: per_sec.max(1),
            window_ms: 1000,
        };
        let mut tats = self.tenant_frames.lock().unwrap_or_else(|p| p.into_inner());
        if tats.len() > 100_000 {
            tats.retain(|_, tat| *tat > now_ms.saturating_mul(1000));
        }
        let (decision, tat) =
            crate::broker::gcra::decide(tats.get(&tenant_id).copied(), now_ms, rate);
        tats.insert(tenant_id, tat);
        (!decision.allowed).then(|| {
            Duration::from_millis(u64::try_from(decision.retry_after_ms).unwrap_or(1).max(1))
        })
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
    fn a_tenants_frames_beyond_its_rate_wait() {
        let r = SocketRegistry::default();
        let (t, other) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..5 {
            assert_eq!(r.tenant_frame(t, 1_000, 5), None);
        }
        assert!(r.tenant_frame(t, 1_000, 5).is_some());
        assert_eq!(r.tenant_frame(other, 1_000, 5), None, "tenants apart");
        assert_eq!(
            r.tenant_frame(t, 1_200, 5),
            None,
            "a fifth of a second later"
        );
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
