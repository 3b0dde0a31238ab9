//! Store implementations written once for both sqlx backends.
//!
//! The SQL here is portable between PostgreSQL and SQLite (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`), and sqlx maps the Rust types identically (`Uuid` is `uuid`/`BLOB`,
//! `i64` is `BIGINT`/`INTEGER`, `Vec<u8>` is `bytea`/`BLOB`). The macro stamps the same
//! bodies onto `PgStore` and `SqliteStore`; where a backend needs different SQL it
//! implements that method in its own module instead.

/// Decodes an `api_keys` row.
macro_rules! api_key_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::ApiKeyRecord {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            key_hash: row.try_get("key_hash")?,
            created_at_ms: row.try_get("created_at")?,
            last_used_at_ms: row.try_get("last_used_at")?,
            revoked_at_ms: row.try_get("revoked_at")?,
        }
    }};
}

pub(crate) const API_KEY_COLUMNS: &str =
    "id, tenant_id, name, prefix, key_hash, created_at, last_used_at, revoked_at";

/// Implements the tenant and API-key stores for a type with a `pool: sqlx::Pool<_>` field.
macro_rules! impl_tenant_and_key_stores {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::TenantStore for $store {
            async fn create_tenant(
                &self,
                tenant: &$crate::store::NewTenant,
                first_key: &$crate::store::NewApiKey,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(tenant.id)
                    .bind(&tenant.name)
                    .bind(tenant.created_at_ms)
                    .execute(&mut *tx)
                    .await?;
                insert_key(&mut *tx, first_key).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_tenant(
                &self,
                tenant_id: uuid::Uuid,
            ) -> Result<Option<$crate::store::Tenant>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT id, name, created_at, retention_ms, open_in_app_template, mailbox_storage FROM tenants WHERE id = $1",
                )
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    None => Ok(None),
                    Some(row) => Ok(Some($crate::store::Tenant {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        created_at_ms: row.try_get("created_at")?,
                        retention_ms: row.try_get("retention_ms")?,
                        open_in_app_template: row.try_get("open_in_app_template")?,
                        mailbox_storage: $crate::store::memory_mailbox::storage_from(&row.try_get::<String, _>("mailbox_storage")?)?,
                    })),
                }
            }

            async fn update_tenant_settings(
                &self,
                tenant_id: uuid::Uuid,
                update: &$crate::store::TenantSettingsUpdate,
            ) -> Result<bool, $crate::store::StoreError> {
                let template = update.open_in_app_template.as_ref();
                let done = sqlx::query(
                    "UPDATE tenants SET \
                     open_in_app_template = CASE WHEN $2 THEN $3 ELSE open_in_app_template END, \
                     retention_ms = COALESCE($4, retention_ms), \
                     mailbox_storage = COALESCE($5, mailbox_storage) WHERE id = $1",
                )
                .bind(tenant_id)
                .bind(template.is_some())
                .bind(template.cloned().flatten())
                .bind(update.retention_ms)
                .bind(update.mailbox_storage.map(|m| m.as_str()))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        async fn insert_key<'c, E>(
            executor: E,
            key: &$crate::store::NewApiKey,
        ) -> Result<(), $crate::store::StoreError>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::store::sql::Backend>::Db>,
        {
            sqlx::query(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(key.id)
            .bind(key.tenant_id)
            .bind(&key.name)
            .bind(&key.prefix)
            .bind(&key.key_hash)
            .bind(key.created_at_ms)
            .execute(executor)
            .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::store::ApiKeyStore for $store {
            async fn insert_api_key(
                &self,
                key: &$crate::store::NewApiKey,
            ) -> Result<(), $crate::store::StoreError> {
                insert_key(&self.pool, key).await
            }

            async fn find_api_key_by_hash(
                &self,
                key_hash: &[u8],
            ) -> Result<Option<$crate::store::ApiKeyRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM api_keys WHERE key_hash = $1",
                    $crate::store::sql::API_KEY_COLUMNS
                ));
                let row = sqlx::query(sql)
                    .bind(key_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(None),
                    Some(row) => Ok(Some(api_key_from_row!(&row))),
                }
            }

            async fn list_api_keys(
                &self,
                tenant_id: uuid::Uuid,
            ) -> Result<Vec<$crate::store::ApiKeyRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id",
                    $crate::store::sql::API_KEY_COLUMNS
                ));
                let rows = sqlx::query(sql)
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?;
                let mut keys = Vec::with_capacity(rows.len());
                for row in &rows {
                    keys.push(api_key_from_row!(row));
                }
                Ok(keys)
            }

            async fn revoke_api_key(
                &self,
                tenant_id: uuid::Uuid,
                key_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<$crate::store::RevokeOutcome, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::RevokeOutcome;
                let mut tx = self.begin_write().await?;
                // Writing the tenant row first locks it (a row lock in PostgreSQL, the write
                // lock in SQLite), so concurrent revocations of one tenant's keys serialise and
                // cannot together revoke its last active key.
                sqlx::query("UPDATE tenants SET keys_changed_at = $2 WHERE id = $1")
                    .bind(tenant_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                let row =
                    sqlx::query("SELECT revoked_at FROM api_keys WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant_id)
                        .bind(key_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(row) = row else {
                    return Ok(RevokeOutcome::NotFound);
                };
                if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
                    return Ok(RevokeOutcome::AlreadyRevoked);
                }
                let others: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM api_keys \
                     WHERE tenant_id = $1 AND id <> $2 AND revoked_at IS NULL",
                )
                .bind(tenant_id)
                .bind(key_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if others == 0 {
                    return Ok(RevokeOutcome::LastActiveKey);
                }
                sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(key_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RevokeOutcome::Revoked)
            }

            async fn touch_api_key(
                &self,
                tenant_id: uuid::Uuid,
                key_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant_id)
                .bind(key_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use {api_key_from_row, impl_tenant_and_key_stores};

/// Names the sqlx database type behind a store, for the shared macro bodies.
pub(crate) trait Backend {
    type Db: sqlx::Database;
    /// Appended to a `SELECT … ORDER BY id` that locks the rows it reads for an update
    /// (PostgreSQL; SQLite's write transactions already hold the database's write lock).
    /// `NO KEY UPDATE`, as an `UPDATE` of non-key columns takes: it does not block the
    /// foreign-key checks of concurrent inserts that reference the row.
    const LOCK_ROWS: &'static str;
    /// The same for the batch's read of device counters, which joins (alias `d`).
    const LOCK_DEVICES: &'static str;
    /// Whether statements may hold data-modifying `WITH` parts (PostgreSQL): a batch then
    /// packs its claim with its locking read, and its writes, into one statement each
    /// (see `sql_batch_claim.rs`, `sql_batch_writes.rs`), and deletes acknowledged entries
    /// with `DELETE … USING (VALUES …)`. SQLite runs them one by one and deletes with an `OR`
    /// of index ranges.
    const MODIFYING_WITH: bool;
}
