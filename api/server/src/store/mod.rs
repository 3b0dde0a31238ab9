//! Persistence: one trait per aggregate, implemented for PostgreSQL and SQLite (sqlx).
//!
//! Every row carries its `tenant_id` and every query that reads tenant data filters by it:
//! the tenant is part of each method's signature, so a handler cannot forget it.
//! Times are Unix milliseconds (`i64`) in both backends so comparisons behave identically.
//! Both implementations run the same conformance suite (`tests/api/store_conformance.rs`).

mod abuse;
mod attachments;
mod billing;
mod console;
mod delivery;
mod delivery_batch;
mod error;
mod identity;
mod insights;
mod invites;
mod memory_mailbox;
pub mod postgres;
mod push;
mod records;
mod redis_mailbox;
mod removals;
mod sql;
mod sql_abuse;
mod sql_attachments;
mod sql_batch_claim;
mod sql_batch_writes;
mod sql_billing;
mod sql_console;
mod sql_delivery;
mod sql_delivery_batch;
mod sql_devices;
mod sql_insights;
mod sql_invites;
mod sql_key_packages;
mod sql_push;
mod sql_removals;
mod sql_users;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub use abuse::{AbuseStore, Decision, ReportRecord};
pub use attachments::{
    AppendOutcome, AttachmentRecord, AttachmentStore, Completion, DueAttachment, NewUpload, Part,
};
pub use billing::{
    BillingPlan, BillingSettingsUpdate, BillingStore, Charge, CheckoutRecord, CreditPack,
    LedgerEntry, LedgerOutcome, MeterBatch, NewLedgerEntry, Prices, StripeEventMeta, StripeOutcome,
    ViewKey, WalletRecord, WebhookDelivery, WebhookEndpoint,
};
pub use console::{ConsoleAccount, ConsoleSession, ConsoleStore};
pub use delivery::{
    Ack, CommitChanges, ConversationRecord, DeliveryStore, MailboxEntry, Member, NewSend,
    SendOutcome, StoredSend,
};
pub use error::StoreError;
pub use identity::{
    Approval, ClaimedPackage, DeviceAuthRecord, DeviceRecord, DeviceStore, KeyPackageStore,
    NewDevice, NewKeyPackage, NewUser, RegisterOutcome, TokenKeyStore, UserFilter, UserPatch,
    UserRecord, UserStore,
};
pub use insights::{
    DAY_MS, DayTotal, InsightStore, LedgerFilter, Spender, WalletQuery, WalletRow, WalletSort,
};
pub use invites::{InviteRecord, InviteStore, NewInvite, RedeemOutcome};
pub use memory_mailbox::{EntryParts, MemoryMailbox, Queued};
pub use push::PushStore;
pub use records::{
    ApiKeyRecord, NewApiKey, NewTenant, RevokeOutcome, Tenant, TenantSettingsUpdate,
};
pub use redis_mailbox::RedisMailbox;
pub use removals::{NewProposals, PendingRemoval, RemovalStore, RemovalsDue};

/// Prepared statements kept per connection.
pub(crate) const STATEMENT_CACHE: usize = 512;

/// Tenants (host platforms).
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant together with its first API key, atomically.
    async fn create_tenant(
        &self,
        tenant: &NewTenant,
        first_key: &NewApiKey,
    ) -> Result<(), StoreError>;
    /// A tenant by id.
    async fn get_tenant(&self, tenant_id: Uuid) -> Result<Option<Tenant>, StoreError>;
    /// Changes the given settings; false when there is no such tenant.
    async fn update_tenant_settings(
        &self,
        tenant_id: Uuid,
        update: &TenantSettingsUpdate,
    ) -> Result<bool, StoreError>;
}

/// Tenant API keys (stored as SHA-256 of the secret).
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Adds a key to an existing tenant.
    async fn insert_api_key(&self, key: &NewApiKey) -> Result<(), StoreError>;
    /// The key whose secret hashes to `key_hash`, revoked or not.
    async fn find_api_key_by_hash(
        &self,
        key_hash: &[u8],
    ) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// All keys of a tenant, newest first.
    async fn list_api_keys(&self, tenant_id: Uuid) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes a key unless it is the tenant's last active one.
    async fn revoke_api_key(
        &self,
        tenant_id: Uuid,
        key_id: Uuid,
        now_ms: i64,
    ) -> Result<RevokeOutcome, StoreError>;
    /// Records that a key authenticated at `now_ms`.
    async fn touch_api_key(
        &self,
        tenant_id: Uuid,
        key_id: Uuid,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Connection pool usage, exported as metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The pool's maximum.
    pub max: u32,
}

/// Everything the server persists.
#[async_trait]
pub trait Store:
    TenantStore
    + ApiKeyStore
    + UserStore
    + DeviceStore
    + KeyPackageStore
    + TokenKeyStore
    + DeliveryStore
    + InviteStore
    + BillingStore
    + ConsoleStore
    + InsightStore
    + AbuseStore
    + RemovalStore
    + PushStore
    + AttachmentStore
    + Send
    + Sync
    + 'static
{
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    /// Whether this node can keep memory-only mailboxes (it has Redis).
    fn holds_memory_mailboxes(&self) -> bool;
    /// Connection pool usage.
    fn pool_stats(&self) -> PoolStats;
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Maximum open connections.
    pub max_connections: u32,
    /// How long a request waits for a connection before failing with 503.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(2),
        }
    }
}

/// Opens the database named by `url` (`postgres://…` or `sqlite://…`).
/// Does not migrate: call [`Store::migrate`].
pub async fn connect(
    url: &SecretString,
    options: &PoolOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, options, None).await
}

/// As [`connect`], keeping memory-only tenants' mailbox entries in `memory`.
pub async fn connect_with(
    url: &SecretString,
    options: &PoolOptions,
    memory: Option<Arc<dyn MemoryMailbox>>,
) -> Result<Arc<dyn Store>, StoreError> {
    let raw = url.expose_secret();
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        let store = postgres::PgStore::connect(raw, options).await?;
        Ok(Arc::new(match memory {
            Some(m) => store.with_memory_mailbox(m),
            None => store,
        }))
    } else if raw.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::connect(raw, options).await?;
        Ok(Arc::new(match memory {
            Some(m) => store.with_memory_mailbox(m),
            None => store,
        }))
    } else {
        Err(StoreError::Config(
            "database URL must start with postgres://, postgresql:// or sqlite:".to_owned(),
        ))
    }
}
