//! Who a device is: the (tenant, user, device) triple.

use uuid::Uuid;

/// The ids that name a registered device. MLS credentials carry them (see
/// [`crate::mls::encode_credential_identity`]) and the client keeps them after registering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DeviceIds {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The owning user.
    pub user_id: Uuid,
    /// The device.
    pub device_id: Uuid,
}
