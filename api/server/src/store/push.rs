//! Push registrations and the coalescing of `device.pending` webhooks.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// Push registrations, and the outbox of content-free `device.pending` webhooks.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// Sets (`Some((token, provider))`) or clears the device's push registration; false
    /// when the device does not exist in the tenant.
    async fn set_push(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        registration: Option<(&str, &str)>,
    ) -> Result<bool, StoreError>;
    /// One pass of the coalescing, in one transaction: opens a window of `coalesce_ms` for
    /// every registered device with entries not yet announced; for every window that has
    /// closed, enqueues one `device.pending` webhook (tenant, user, device, token, provider,
    /// pending count: nothing about any message) if an entry from before the window is
    /// still waiting, else just closes it. Returns how many webhooks were enqueued.
    async fn push_tick(&self, now_ms: i64, coalesce_ms: i64) -> Result<u64, StoreError>;
}
