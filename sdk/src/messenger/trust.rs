//! What this device trusts: a user's device directory only after its signatures verify
//! ([`crate::verify_device_directory`]) and its root key is the one pinned for that user.
//!
//! - **Its own user.** The root is pinned when the device registers as its user's first
//!   device (its own key is the root), or else at the first directory that lists this
//!   device as approved (trust on first use, while the user is approving it). From then
//!   on every own-user directory must have that root *and* list this device, approved,
//!   with its key: a server that answers with a directory of its own making (say, one
//!   device whose key it holds) is refused, so it cannot get a device of its own added to
//!   new conversations.
//! - **Other users.** Pinned by an invite's fingerprint or a safety-number comparison;
//!   until then the verified directory is taken as it is.

use cloak_proto::devices::{Device, DeviceStatus};
use openmls::prelude::{KeyPackage, OpenMlsProvider as _};
use uuid::Uuid;

use super::Messenger;
use crate::Error;
use crate::clock::Clock;
use crate::ids::DeviceIds;
use crate::mls::{check_key_package_device, parse_key_package};
use crate::safety::root_key;

impl<C: Clock> Messenger<C> {
    /// A user's verified directory, checked against the root pinned for that user.
    pub(super) async fn trusted_directory(&self, user_id: Uuid) -> Result<Vec<Device>, Error> {
        let ids = self.ids()?;
        let directory = self.client.verified_user_devices(user_id).await?;
        if user_id == ids.user_id {
            self.check_own_directory(&directory, &ids)?;
        } else if let Some(pinned) = self.verified.get(&user_id)
            && root_key(&directory)? != *pinned
        {
            return Err(Error::Verification(
                "the user's root key differs from the verified one".into(),
            ));
        }
        Ok(directory)
    }

    /// This user's devices, from a directory that verifies and chains to the pinned root.
    pub async fn own_directory(&self) -> Result<Vec<Device>, Error> {
        self.trusted_directory(self.ids()?.user_id).await
    }

    /// The verified directories of `users`, one after the other.
    pub(super) async fn directory_of(&self, users: &[Uuid]) -> Result<Vec<Device>, Error> {
        let mut directory = Vec::new();
        for user in users {
            directory.extend(self.trusted_directory(*user).await?);
        }
        Ok(directory)
    }

    /// This device's own user's root key, from a directory that passes
    /// [`check_own_directory`](Self::check_own_directory).
    pub(super) async fn own_root_key(&self) -> Result<[u8; 32], Error> {
        let ids = self.ids()?;
        let own = self.client.verified_user_devices(ids.user_id).await?;
        self.check_own_directory(&own, &ids)
    }

    /// The own user's directory must list this device, approved, with its identity key,
    /// and chain to the pinned root (pinned here if nothing was yet). Returns the root.
    fn check_own_directory(
        &self,
        directory: &[Device],
        ids: &DeviceIds,
    ) -> Result<[u8; 32], Error> {
        let me = self.client.identity().public_key();
        let listed = directory.iter().any(|d| {
            d.id == ids.device_id
                && d.status == DeviceStatus::Approved
                && d.identity_key.as_slice() == me.as_slice()
        });
        if !listed {
            return Err(Error::Verification(
                "this device is not an approved device in its own user's directory".into(),
            ));
        }
        let root = root_key(directory)?;
        let mut pinned = self
            .own_root
            .lock()
            .map_err(|_| Error::Storage("state lock poisoned".into()))?;
        match *pinned {
            Some(p) if p != root => Err(Error::Verification(
                "the own user's root key differs from the one pinned at registration".into(),
            )),
            Some(_) => Ok(root),
            None => {
                *pinned = Some(root);
                Ok(root)
            }
        }
    }

    /// Verified KeyPackages of every approved device of `user_id` (this device excepted).
    pub(super) async fn key_packages_of(&self, user_id: Uuid) -> Result<Vec<KeyPackage>, Error> {
        let directory = self.trusted_directory(user_id).await?;
        let claimed = self.client.claim_key_packages(user_id).await?;
        let mut packages = Vec::with_capacity(claimed.items.len());
        for item in claimed.items {
            let device = directory
                .iter()
                .find(|d| d.id == item.device_id && d.status == DeviceStatus::Approved)
                .ok_or_else(|| {
                    Error::Verification("a key package names a device not in the directory".into())
                })?;
            let kp = parse_key_package(self.provider.crypto(), &item.data)?;
            check_key_package_device(&kp, device)?;
            packages.push(kp);
        }
        Ok(packages)
    }

    /// The safety number between this device's user and `contact`, from both users' root
    /// keys (this user's as pinned, the contact's from the verified directory). Compare it
    /// in person, then [`mark_verified`](Self::mark_verified).
    pub async fn safety_number(&self, contact: Uuid) -> Result<crate::SafetyNumber, Error> {
        let ids = self.ids()?;
        let mine = self.own_root_key().await?;
        let theirs = root_key(&self.client.verified_user_devices(contact).await?)?;
        Ok(crate::safety::safety_number(
            (ids.user_id, mine),
            (contact, theirs),
        ))
    }

    /// Records that the safety number with `contact` was compared and matched.
    pub async fn mark_verified(&mut self, contact: Uuid) -> Result<(), Error> {
        let root = root_key(&self.client.verified_user_devices(contact).await?)?;
        self.verified.insert(contact, root);
        self.persist().await
    }

    /// Whether `contact` is verified and still has the root key that was verified (a new
    /// root key, such as after all devices were replaced, makes this false).
    pub async fn is_verified(&self, contact: Uuid) -> Result<bool, Error> {
        let Some(verified) = self.verified.get(&contact) else {
            return Ok(false);
        };
        let root = root_key(&self.client.verified_user_devices(contact).await?)?;
        Ok(&root == verified)
    }
}
