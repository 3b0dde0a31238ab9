//! Content-free push: a device's push registration, and the worker pass that tells the
//! tenant (a `device.pending` webhook, through the retried outbox) when a device has not
//! taken its waiting entries within the coalescing window.
//!
//! "Offline" is decided from what the device did, not from whether a socket looks open: a
//! device that takes (acknowledges) the entries of a window gets no webhook, whether it
//! fetched over REST or a socket; one that does not gets one per window however many
//! messages arrived. A phone asleep behind a half-open socket is woken too.

use cloak_proto::Code;
use cloak_proto::devices::PushRegistration;

use super::ServiceError;
use super::devices::require_approved;
use super::principals::DevicePrincipal;
use crate::store::{Store, StoreError};

/// Registers (or replaces) the calling device's push token.
pub async fn register(
    store: &dyn Store,
    device: &DevicePrincipal,
    registration: &PushRegistration,
) -> Result<(), ServiceError> {
    require_approved(device)?;
    if !registration.provider_is_valid() {
        return Err(ServiceError::invalid(
            Code::ValidationFailed,
            "provider is 1 to 32 lowercase letters, digits, '-', '_' or '.'",
        ));
    }
    let pair = (registration.token.as_str(), registration.provider.as_str());
    if !store
        .set_push(device.tenant_id, device.device_id, Some(pair))
        .await?
    {
        return Err(ServiceError::NotFound("device"));
    }
    Ok(())
}

/// Removes the calling device's push registration (no more `device.pending` webhooks).
pub async fn unregister(store: &dyn Store, device: &DevicePrincipal) -> Result<(), ServiceError> {
    if !store
        .set_push(device.tenant_id, device.device_id, None)
        .await?
    {
        return Err(ServiceError::NotFound("device"));
    }
    Ok(())
}

/// One pass of the coalescing (see [`crate::store::PushStore::push_tick`]).
pub async fn tick(store: &dyn Store, now_ms: i64, coalesce_secs: u64) -> Result<u64, StoreError> {
    let coalesce_ms = i64::try_from(coalesce_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    store.push_tick(now_ms, coalesce_ms).await
}
