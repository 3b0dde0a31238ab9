//! Ids: who a device is (the tenant, user, device triple), and typed conversation and
//! message ids.

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

/// A conversation's id (its MLS group id).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ConversationId(pub Uuid);

/// A message's id, chosen by its sender (edits, deletions, reactions and receipts refer
/// to it; the server stores a message once per id).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MessageId(pub Uuid);

impl std::fmt::Display for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
