//! The PostgreSQL store (production; shared by several API nodes).

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::sql::{Backend, api_key_from_row, impl_tenant_and_key_stores};
use super::sql_abuse::{impl_abuse_store, report_from_row};
use super::sql_attachments::impl_attachment_store;
use super::sql_billing::{delivery_from_row, impl_billing_store, ledger_from_row};
use super::sql_console::{console_account_from_row, impl_console_store};
use super::sql_delivery::impl_delivery_store;
use super::sql_delivery_batch::impl_delivery_batch;
use super::sql_devices::{device_from_row, impl_device_store};
use super::sql_insights::impl_insight_store;
use super::sql_invites::{impl_invite_store, invite_from_row};
use super::sql_key_packages::{CLAIM_ONE_TIME_POSTGRES, impl_key_package_store};
use super::sql_push::impl_push_store;
use super::sql_removals::impl_removal_store;
use super::sql_users::{impl_user_stores, user_from_row};
use super::{PoolOptions, PoolStats, Store, StoreError};

/// A PostgreSQL connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections of the delivery batches alone: a batch never queues behind requests.
    batches: PgPool,
    max: u32,
    /// Where memory-only tenants' mailbox entries go (a node with Redis).
    memory: Option<std::sync::Arc<dyn super::MemoryMailbox>>,
}

/// Connections kept for delivery batches (more than the batcher's shards ever use).
const BATCH_CONNECTIONS: u32 = 4;

impl PgStore {
    /// Connects (lazily verified by the first query).
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, StoreError> {
        // Batches use a few statement kinds in ten sizes each: room for all of them.
        let connect =
            PgConnectOptions::from_str(url)?.statement_cache_capacity(super::STATEMENT_CACHE);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let batches = PgPoolOptions::new()
            .max_connections(BATCH_CONNECTIONS)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        Ok(Self {
            pool,
            batches,
            max: options.max_connections,
            memory: None,
        })
    }
}

impl PgStore {
    /// Keeps memory-only tenants' mailbox entries in `memory` (see [`super::MemoryMailbox`]).
    pub fn with_memory_mailbox(mut self, memory: std::sync::Arc<dyn super::MemoryMailbox>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Begins a transaction that will write. PostgreSQL locks rows as statements need them; a plain `BEGIN` is right.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Begins a delivery batch's transaction, on the batches' own connections.
    pub(crate) async fn begin_batch(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.batches.begin().await
    }
}

impl Backend for PgStore {
    type Db = sqlx::Postgres;
    const LOCK_ROWS: &'static str = " FOR NO KEY UPDATE";
    const LOCK_DEVICES: &'static str = " FOR NO KEY UPDATE OF d";
    const MODIFYING_WITH: bool = true;
}

impl_tenant_and_key_stores!(PgStore);
impl_user_stores!(PgStore);
impl_device_store!(PgStore);
impl_delivery_store!(PgStore);
impl_delivery_batch!(PgStore);
impl_invite_store!(PgStore);
impl_billing_store!(PgStore);
impl_console_store!(PgStore);
impl_insight_store!(PgStore);
impl_abuse_store!(PgStore);
impl_removal_store!(PgStore);
impl_push_store!(PgStore);
impl_attachment_store!(PgStore);
impl_key_package_store!(PgStore, CLAIM_ONE_TIME_POSTGRES);

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn holds_memory_mailboxes(&self) -> bool {
        self.memory.is_some()
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.max,
        }
    }
}
