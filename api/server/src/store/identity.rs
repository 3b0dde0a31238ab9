//! Identity aggregates: users, contacts, devices and their login challenges, MLS
//! KeyPackages, and the server's token signing key.

use async_trait::async_trait;
use cloak_proto::devices::DeviceStatus;
use uuid::Uuid;

use super::StoreError;

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub external_id: String,
    pub display_name: String,
    pub trust_level: String,
    pub created_at_ms: i64,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub external_id: String,
    pub display_name: String,
    pub trust_level: String,
    pub suspended: bool,
    pub created_at_ms: i64,
}

/// Which users a listing keeps; `None` keeps all.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub trust_level: Option<String>,
    pub suspended: Option<bool>,
}

/// Fields to change on a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub trust_level: Option<String>,
    pub suspended: Option<bool>,
}

/// A device to register.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub identity_key: Vec<u8>,
    pub created_at_ms: i64,
}

/// A stored device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub identity_key: Vec<u8>,
    pub status: DeviceStatus,
    pub created_at_ms: i64,
    pub approved_by: Option<Uuid>,
    pub approved_at_ms: Option<i64>,
    pub approval_signature: Option<Vec<u8>>,
}

/// Result of [`DeviceStore::register_device`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// A new device; approved when the user had no approved device, else pending.
    Created(DeviceRecord),
    /// This user already registered this identity key: the existing device.
    Existing(DeviceRecord),
    /// The key belongs to another user of the tenant.
    KeyInUse,
}

/// An approval to record, already verified by the caller.
#[derive(Debug, Clone)]
pub struct Approval {
    pub approver_id: Uuid,
    pub approved_at_ms: i64,
    pub signature: Vec<u8>,
}

/// A device and whether its user is suspended (what authentication needs, in one read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthRecord {
    pub device: DeviceRecord,
    pub user_suspended: bool,
}

/// A KeyPackage to store.
#[derive(Debug, Clone)]
pub struct NewKeyPackage {
    pub hash_ref: Vec<u8>,
    pub data: Vec<u8>,
    pub expires_at_ms: i64,
}

/// A claimed KeyPackage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedPackage {
    pub device_id: Uuid,
    pub hash_ref: Vec<u8>,
    pub data: Vec<u8>,
    pub last_resort: bool,
}

/// End users and their contacts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `Conflict` when the external id is taken in the tenant.
    async fn create_user(&self, user: &NewUser) -> Result<(), StoreError>;
    async fn get_user(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<UserRecord>, StoreError>;
    async fn find_user_by_external_id(
        &self,
        tenant_id: Uuid,
        external_id: &str,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Applies a patch; `None` when there is no such user.
    async fn update_user(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        patch: &UserPatch,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Deletes a user with its devices, key packages, challenges and contacts.
    async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool, StoreError>;
    /// A page of the tenant's users in (creation time, id) order after `after`, with the
    /// optional trust level and suspension filters.
    async fn list_users(
        &self,
        tenant_id: Uuid,
        filter: &UserFilter,
        after: Option<(i64, Uuid)>,
        limit: i64,
    ) -> Result<Vec<UserRecord>, StoreError>;
    /// Makes two users of a tenant contacts of each other (idempotent); false when either is missing.
    async fn add_contact(
        &self,
        tenant_id: Uuid,
        a: Uuid,
        b: Uuid,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Whether `b` is a contact of `a`.
    async fn are_contacts(&self, tenant_id: Uuid, a: Uuid, b: Uuid) -> Result<bool, StoreError>;
    /// The contacts of `user_id` with the time each became one, by display name.
    async fn list_contacts(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<(UserRecord, i64)>, StoreError>;
}

/// Devices and login challenges.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Registers a device, deciding atomically whether it is the user's first (approved).
    async fn register_device(&self, device: &NewDevice) -> Result<RegisterOutcome, StoreError>;
    async fn get_device(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// A device by id in any tenant (login challenges name only the device).
    async fn find_device(&self, device_id: Uuid) -> Result<Option<DeviceRecord>, StoreError>;
    /// The device with its user's suspension state.
    async fn device_auth(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
    ) -> Result<Option<DeviceAuthRecord>, StoreError>;
    /// A user's devices, oldest first.
    async fn list_devices(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Marks a pending device approved; `None` unless it exists and is pending.
    async fn approve_device(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        approval: &Approval,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// Revokes a device and deletes its key packages and challenges; `None` when missing.
    async fn revoke_device(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        now_ms: i64,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// Stores a login challenge (by the hash of its nonce).
    async fn insert_challenge(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        nonce_hash: &[u8],
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;
    /// Consumes a challenge: true exactly once, for an unexpired challenge of that device.
    async fn consume_challenge(
        &self,
        device_id: Uuid,
        nonce_hash: &[u8],
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// The MLS KeyPackage directory.
#[async_trait]
pub trait KeyPackageStore: Send + Sync {
    /// Adds one-time packages (a hash_ref already on file is ignored) and replaces the
    /// last-resort package when one is given.
    async fn add_key_packages(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        one_time: &[NewKeyPackage],
        last_resort: Option<&NewKeyPackage>,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// (unexpired one-time packages, whether an unexpired last-resort package exists).
    async fn key_package_stock(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError>;
    /// Takes one package of the device: a one-time package (deleted, never handed out
    /// twice, even under concurrent claims from several nodes) or else the last-resort one.
    async fn claim_key_package(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        now_ms: i64,
    ) -> Result<Option<ClaimedPackage>, StoreError>;
    /// Deletes expired packages and challenges; returns how many rows went.
    async fn purge_expired(&self, now_ms: i64) -> Result<u64, StoreError>;
}

/// The server's token signing secret, shared by all nodes through the database.
#[async_trait]
pub trait TokenKeyStore: Send + Sync {
    /// Returns the stored secret, storing `candidate` first if there is none.
    async fn token_key_or_insert(
        &self,
        candidate: &[u8],
        now_ms: i64,
    ) -> Result<Vec<u8>, StoreError>;
}
