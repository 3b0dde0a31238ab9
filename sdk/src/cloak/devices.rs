//! [`Devices`]: this user's devices: list, approve (after comparing fingerprints), revoke.

use cloak_proto::devices::Device;
use uuid::Uuid;

use super::Cloak;
use crate::Error;

/// This user's devices (from [`Cloak::devices`]).
#[derive(Debug, Clone)]
pub struct Devices {
    cloak: Cloak,
}

impl Devices {
    pub(super) fn new(cloak: Cloak) -> Self {
        Self { cloak }
    }

    /// The user's devices, from a directory whose signatures verify and whose root is
    /// this user's pinned root.
    pub async fn list(&self) -> Result<Vec<Device>, Error> {
        let m = self.cloak.shared().messenger.lock().await;
        m.own_directory().await
    }

    /// Approves a pending device after checking that its key has the fingerprint the new
    /// device shows, and adds it to every conversation this device is in.
    pub async fn approve(&self, device_id: Uuid, fingerprint: &str) -> Result<(), Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        m.approve_device(device_id, fingerprint).await.map(|_| ())
    }

    /// Revokes a device (its tokens stop at once) and removes it from every conversation
    /// this device is in.
    pub async fn revoke(&self, device_id: Uuid) -> Result<(), Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        m.revoke_device(device_id).await.map(|_| ())
    }
}
