//! Per-node caches of what every send and every WebSocket frame reads: a device's
//! standing (its record and whether its user is suspended), a user's trust level, and a
//! tenant's billing plan (prices, who pays).
//!
//! Correct across nodes: every change is announced on the broker's [`CACHE_TOPIC`] and
//! each node drops what it holds (its own entries at once, before the change is answered).
//! A load that raced with an invalidation is not kept (a generation counter), and every
//! entry also expires after a short time as a backstop, so a node that missed an
//! announcement (broker down) converges by itself. The authoritative checks stay in the
//! database: the send batch re-reads the sender's standing, membership and epoch inside
//! its transaction.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cloak_proto::abuse::TrustLevel;
use uuid::Uuid;

use super::ServiceError;
use crate::broker::{Broker, Notification};
use crate::store::{BillingPlan, DeviceAuthRecord, Store, StoreError};

/// The broker topic that carries invalidations.
pub const CACHE_TOPIC: &str = "cache";

/// How long an entry may be served without an announcement having dropped it: each
/// entry lives between half of this and all of it (spread by its key, so entries loaded
/// together do not all expire together and reload in one burst).
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// Most entries per map before it is emptied (a bound, not an LRU).
const MAX_ENTRIES: usize = 200_000;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Trust levels, prices or billing settings of a tenant.
    Tenant(Uuid),
    /// A user's level, suspension or existence (and so their devices' standing).
    User { tenant_id: Uuid, user_id: Uuid },
    /// A device's status.
    Device { tenant_id: Uuid, device_id: Uuid },
}

impl Invalidation {
    fn encode(&self) -> String {
        match self {
            Self::Tenant(t) => format!("t:{t}"),
            Self::User { tenant_id, user_id } => format!("u:{tenant_id}:{user_id}"),
            Self::Device {
                tenant_id,
                device_id,
            } => format!("d:{tenant_id}:{device_id}"),
        }
    }

    fn decode(payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut parts = text.split(':');
        let kind = parts.next()?;
        let a = Uuid::parse_str(parts.next()?).ok()?;
        let b = parts.next().map(Uuid::parse_str);
        match (kind, b) {
            ("t", None) => Some(Self::Tenant(a)),
            ("u", Some(Ok(user_id))) => Some(Self::User {
                tenant_id: a,
                user_id,
            }),
            ("d", Some(Ok(device_id))) => Some(Self::Device {
                tenant_id: a,
                device_id,
            }),
            _ => None,
        }
    }
}

struct Timed<V> {
    at: Instant,
    value: V,
}

struct Map<K, V> {
    entries: Mutex<HashMap<K, Timed<V>>>,
}

impl<K: Eq + Hash, V: Clone> Map<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Timed<V>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &K, ttl: Duration) -> Option<V> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        // Between ttl/2 and ttl, by key.
        let spread = ttl / 2 + ttl.mul_f64((hasher.finish() % 1024) as f64 / 2048.0);
        let map = self.lock();
        map.get(key)
            .filter(|t| t.at.elapsed() < spread)
            .map(|t| t.value.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Timed {
                at: Instant::now(),
                value,
            },
        );
    }

    fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.lock().retain(|k, t| keep(k, &t.value));
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// The node's caches.
pub struct HotCache {
    ttl: Duration,
    /// Bumped by every invalidation: a load that started before one is not kept.
    generation: AtomicU64,
    devices: Map<Uuid, Option<DeviceAuthRecord>>,
    levels: Map<(Uuid, Uuid), TrustLevel>,
    plans: Map<Uuid, BillingPlan>,
}

impl Default for HotCache {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl HotCache {
    /// Empty caches whose entries live at most `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            devices: Map::new(),
            levels: Map::new(),
            plans: Map::new(),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A device with its user's suspension, as `DeviceStore::device_auth` returns it.
    pub async fn device_auth(
        &self,
        store: &dyn Store,
        tenant_id: Uuid,
        device_id: Uuid,
    ) -> Result<Option<DeviceAuthRecord>, StoreError> {
        if let Some(hit) = self.devices.get(&device_id, self.ttl) {
            return Ok(hit.filter(|a| a.device.tenant_id == tenant_id));
        }
        let generation = self.generation();
        let auth = store.device_auth(tenant_id, device_id).await?;
        if self.generation() == generation {
            self.devices.put(device_id, auth.clone());
        }
        Ok(auth)
    }

    /// The user's effective trust level (see [`super::limits::standing`]).
    pub async fn standing(
        &self,
        store: &dyn Store,
        tenant_id: Uuid,
        user_id: Uuid,
        now_ms: i64,
    ) -> Result<TrustLevel, ServiceError> {
        if let Some(hit) = self.levels.get(&(tenant_id, user_id), self.ttl) {
            return Ok(hit);
        }
        let generation = self.generation();
        let level = super::limits::standing(store, tenant_id, user_id, now_ms).await?;
        if self.generation() == generation {
            self.levels.put((tenant_id, user_id), level.clone());
        }
        Ok(level)
    }

    /// The tenant's prices and payer.
    pub async fn billing_plan(
        &self,
        store: &dyn Store,
        tenant_id: Uuid,
    ) -> Result<BillingPlan, StoreError> {
        if let Some(hit) = self.plans.get(&tenant_id, self.ttl) {
            return Ok(hit);
        }
        let generation = self.generation();
        let plan = store.billing_plan(tenant_id).await?;
        if self.generation() == generation {
            self.plans.put(tenant_id, plan.clone());
        }
        Ok(plan)
    }

    /// Drops what `change` makes stale, on this node.
    pub fn apply(&self, change: &Invalidation) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match *change {
            Invalidation::Tenant(tenant) => {
                self.levels.retain(|(t, _), _| *t != tenant);
                self.plans.retain(|t, _| *t != tenant);
            }
            Invalidation::User { tenant_id, user_id } => {
                self.levels
                    .retain(|(t, u), _| !(*t == tenant_id && *u == user_id));
                self.devices.retain(|_, auth| {
                    auth.as_ref().is_none_or(|a| {
                        a.device.user_id != user_id || a.device.tenant_id != tenant_id
                    })
                });
            }
            Invalidation::Device { device_id, .. } => {
                self.devices.retain(|d, _| *d != device_id);
            }
        }
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.devices.clear();
        self.levels.clear();
        self.plans.clear();
    }

    /// Drops what `change` makes stale here at once, and tells every other node.
    pub async fn invalidate(&self, broker: &dyn Broker, change: Invalidation) {
        self.apply(&change);
        if let Err(e) = broker
            .publish(CACHE_TOPIC, change.encode().as_bytes())
            .await
        {
            // The other nodes converge within the TTL.
            tracing::warn!(error = %e, "cache invalidation publish failed");
        }
    }

    /// Follows the other nodes' announcements until the broker goes away. A missed
    /// stretch (lag, or a broker reconnect) empties every cache.
    pub async fn listen(self: Arc<Self>, broker: Arc<dyn Broker>) {
        loop {
            let mut subscription = match broker.subscribe(CACHE_TOPIC).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cache invalidation subscribe failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.clear();
            loop {
                match subscription.recv().await {
                    Some(Notification::Message(payload)) => match Invalidation::decode(&payload) {
                        Some(change) => self.apply(&change),
                        None => self.clear(),
                    },
                    Some(Notification::Lagged(_)) => self.clear(),
                    None => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_round_trip() {
        let (t, u) = (Uuid::new_v4(), Uuid::new_v4());
        for change in [
            Invalidation::Tenant(t),
            Invalidation::User {
                tenant_id: t,
                user_id: u,
            },
            Invalidation::Device {
                tenant_id: t,
                device_id: u,
            },
        ] {
            assert_eq!(
                Invalidation::decode(change.encode().as_bytes()),
                Some(change)
            );
        }
        assert_eq!(Invalidation::decode(b"x:1"), None);
        assert_eq!(Invalidation::decode(b"t:not-a-uuid"), None);
    }

    #[test]
    fn a_tenant_change_drops_its_plans_and_levels_only() {
        let cache = HotCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let level = super::super::limits::default_levels().remove(0);
        cache.levels.put((a, Uuid::new_v4()), level.clone());
        cache.levels.put((b, Uuid::new_v4()), level);
        cache.apply(&Invalidation::Tenant(a));
        assert_eq!(cache.levels.lock().len(), 1);
        assert!(cache.levels.lock().keys().all(|(t, _)| *t == b));
    }

    #[test]
    fn entries_expire() {
        let cache = HotCache::new(Duration::ZERO);
        let t = Uuid::new_v4();
        let level = super::super::limits::default_levels().remove(0);
        cache.levels.put((t, t), level);
        assert!(cache.levels.get(&(t, t), cache.ttl).is_none());
    }
}
