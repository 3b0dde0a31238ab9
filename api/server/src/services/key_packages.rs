//! The MLS KeyPackage directory: devices publish packages, others claim one per device.

use cloak_proto::Code;
use cloak_proto::devices::DeviceStatus;
use cloak_proto::key_packages::{KeyPackageUpload, LOW_STOCK, UploadKeyPackagesRequest};
use uuid::Uuid;

use super::ServiceError;
use super::devices::{may_see_user, require_approved};
use super::limits::{self, Policy};
use super::principals::{Caller, DevicePrincipal};
use crate::broker::Broker;
use crate::store::{ClaimedPackage, NewKeyPackage, Store};

/// Longest a package is kept, whatever its own lifetime says.
pub const MAX_RETENTION_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// A device's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub one_time: u32,
    pub last_resort: bool,
}

impl Stock {
    /// Whether the device should top up.
    pub fn low(&self) -> bool {
        self.one_time < LOW_STOCK || !self.last_resort
    }
}

fn to_new(kp: &KeyPackageUpload, now_ms: i64) -> Result<NewKeyPackage, ServiceError> {
    let expires = kp
        .not_after
        .saturating_mul(1000)
        .min(now_ms.saturating_add(MAX_RETENTION_MS));
    if expires <= now_ms {
        return Err(ServiceError::invalid(
            Code::KeyPackageExpired,
            "a key package's not_after is in the past",
        ));
    }
    Ok(NewKeyPackage {
        hash_ref: kp.hash_ref.clone(),
        data: kp.data.clone(),
        expires_at_ms: expires,
    })
}

/// Publishes a device's packages (pending devices too, so they can be added once approved),
/// up to `max_stock` unclaimed one-time packages per device.
pub async fn upload(
    store: &dyn Store,
    device: &DevicePrincipal,
    request: &UploadKeyPackagesRequest,
    max_stock: i64,
    now_ms: i64,
) -> Result<Stock, ServiceError> {
    let before = stock(store, device, now_ms).await?;
    let after = i64::from(before.one_time)
        .saturating_add(i64::try_from(request.key_packages.len()).unwrap_or(i64::MAX));
    if !request.key_packages.is_empty() && after > max_stock {
        return Err(ServiceError::conflict(
            Code::KeyPackageStockFull,
            format!(
                "the device holds {} unclaimed key packages; the server keeps at most {max_stock}",
                before.one_time
            ),
        ));
    }
    let one_time = request
        .key_packages
        .iter()
        .map(|kp| to_new(kp, now_ms))
        .collect::<Result<Vec<_>, _>>()?;
    let last_resort = request
        .last_resort
        .as_ref()
        .map(|kp| to_new(kp, now_ms))
        .transpose()?;
    store
        .add_key_packages(
            device.tenant_id,
            device.device_id,
            &one_time,
            last_resort.as_ref(),
            now_ms,
        )
        .await?;
    stock(store, device, now_ms).await
}

/// The device's own stock.
pub async fn stock(
    store: &dyn Store,
    device: &DevicePrincipal,
    now_ms: i64,
) -> Result<Stock, ServiceError> {
    let (one_time, last_resort) = store
        .key_package_stock(device.tenant_id, device.device_id, now_ms)
        .await?;
    Ok(Stock {
        one_time,
        last_resort,
    })
}

/// Claims one package for each approved device of `user_id` (except the caller's own),
/// within the caller device's claim rate, so a contact cannot drain a victim's one-time
/// packages.
pub async fn claim(
    store: &dyn Store,
    broker: &dyn Broker,
    caller: &DevicePrincipal,
    user_id: Uuid,
    claims_per_minute: u32,
    now_ms: i64,
) -> Result<Vec<ClaimedPackage>, ServiceError> {
    require_approved(caller)?;
    limits::hit(
        broker,
        &format!("{}:{}", caller.tenant_id, caller.device_id),
        &Policy::key_package_claims(claims_per_minute),
        now_ms,
    )
    .await?;
    may_see_user(store, &Caller::Device(*caller), user_id).await?;
    let devices = store.list_devices(caller.tenant_id, user_id).await?;
    let mut claimed = Vec::new();
    for device in devices
        .iter()
        .filter(|d| d.status == DeviceStatus::Approved && d.id != caller.device_id)
    {
        if let Some(package) = store
            .claim_key_package(caller.tenant_id, device.id, now_ms)
            .await?
        {
            claimed.push(package);
        }
    }
    Ok(claimed)
}
