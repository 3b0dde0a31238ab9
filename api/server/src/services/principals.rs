//! Who is calling, once authenticated.

use cloak_proto::devices::DeviceStatus;
use uuid::Uuid;

use super::api_keys::TenantPrincipal;

/// An end user, by a valid user token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPrincipal {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
}

/// A device, by a valid device token; never revoked, its user never suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePrincipal {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Uuid,
    pub status: DeviceStatus,
}

/// A caller that may be either the tenant's backend or a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Tenant(TenantPrincipal),
    Device(DevicePrincipal),
}

impl Caller {
    /// The tenant either way.
    pub fn tenant_id(&self) -> Uuid {
        match self {
            Self::Tenant(t) => t.tenant_id,
            Self::Device(d) => d.tenant_id,
        }
    }
}
