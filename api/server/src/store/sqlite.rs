//! The SQLite store (the embedded default: one node, no external services).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

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
use super::sql_key_packages::{CLAIM_ONE_TIME_SQLITE, impl_key_package_store};
use super::sql_push::impl_push_store;
use super::sql_removals::impl_removal_store;
use super::sql_users::{impl_user_stores, user_from_row};
use super::{PoolOptions, PoolStats, Store, StoreError};

/// A SQLite connection pool on one database file.
///
/// Write transactions go through a pool of one connection of their own: they queue here,
/// in order, instead of meeting in SQLite's lock, whose busy handler sleeps for up to
/// 100 ms at a time. Readers use the other pool (WAL lets them run beside the writer).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    max: u32,
    /// Where memory-only tenants' mailbox entries go (a node with Redis).
    memory: Option<std::sync::Arc<dyn super::MemoryMailbox>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file named by a `sqlite:` URL, creating its
    /// parent directory too.
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a transaction acknowledged to a client survives power loss, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Statement journals (a batch's multi-row statements each keep one for
            // statement-level rollback) and temporary tables in memory, not in files.
            .pragma("temp_store", "memory")
            // Batches use a few statement kinds in ten sizes each: room for all of them.
            .statement_cache_capacity(super::STATEMENT_CACHE);
        if let Some(parent) = connect.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Config(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self {
            pool,
            writer,
            max: options.max_connections,
            memory: None,
        })
    }
}

impl SqliteStore {
    /// Keeps memory-only tenants' mailbox entries in `memory` (see [`super::MemoryMailbox`]).
    pub fn with_memory_mailbox(mut self, memory: std::sync::Arc<dyn super::MemoryMailbox>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Begins a transaction that will write. `BEGIN IMMEDIATE` takes the write lock up front: a deferred transaction that reads and then writes fails with SQLITE_BUSY when another writer got in between, whatever the busy timeout.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Begins a delivery batch's transaction (SQLite has one writer: the same queue).
    pub(crate) async fn begin_batch(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_write().await
    }
}

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;
    const LOCK_ROWS: &'static str = "";
    const LOCK_DEVICES: &'static str = "";
    const MODIFYING_WITH: bool = false;
}

impl_tenant_and_key_stores!(SqliteStore);
impl_user_stores!(SqliteStore);
impl_device_store!(SqliteStore);
impl_delivery_store!(SqliteStore);
impl_delivery_batch!(SqliteStore);
impl_invite_store!(SqliteStore);
impl_billing_store!(SqliteStore);
impl_console_store!(SqliteStore);
impl_insight_store!(SqliteStore);
impl_abuse_store!(SqliteStore);
impl_removal_store!(SqliteStore);
impl_push_store!(SqliteStore);
impl_attachment_store!(SqliteStore);
impl_key_package_store!(SqliteStore, CLAIM_ONE_TIME_SQLITE);

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
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
