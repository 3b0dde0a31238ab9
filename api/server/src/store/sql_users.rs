//! Users, contacts and the token signing key, written once for both backends (see `sql.rs`).

pub(crate) const USER_COLUMNS: &str =
    "id, tenant_id, external_id, display_name, trust_level, suspended, created_at";
/// [`USER_COLUMNS`] of a table aliased `u`.
pub(crate) const USER_COLUMNS_U: &str =
    "u.id, u.tenant_id, u.external_id, u.display_name, u.trust_level, u.suspended, u.created_at";

macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::UserRecord {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            external_id: row.try_get("external_id")?,
            display_name: row.try_get("display_name")?,
            trust_level: row.try_get("trust_level")?,
            suspended: row.try_get("suspended")?,
            created_at_ms: row.try_get("created_at")?,
        }
    }};
}

macro_rules! impl_user_stores {
    ($store:ty) => {
        /// Makes `a` and `b` contacts of each other (both directions; idempotent).
        async fn insert_contacts(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::Backend>::Db>,
            tenant_id: uuid::Uuid,
            a: uuid::Uuid,
            b: uuid::Uuid,
            now_ms: i64,
        ) -> Result<(), $crate::store::StoreError> {
            for (x, y) in [(a, b), (b, a)] {
                sqlx::query(
                    "INSERT INTO contacts (tenant_id, user_id, contact_user_id, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, contact_user_id) DO NOTHING",
                )
                .bind(tenant_id)
                .bind(x)
                .bind(y)
                .bind(now_ms)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn create_user(&self, user: &$crate::store::NewUser) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, tenant_id, external_id, display_name, trust_level, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user.id)
                .bind(user.tenant_id)
                .bind(&user.external_id)
                .bind(&user.display_name)
                .bind(&user.trust_level)
                .bind(user.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_user(
                &self,
                tenant_id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM users WHERE tenant_id = $1 AND id = $2",
                    $crate::store::sql_users::USER_COLUMNS
                ));
                let row = sqlx::query(sql).bind(tenant_id).bind(user_id).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some(user_from_row!(&row)),
                    None => None,
                })
            }

            async fn find_user_by_external_id(
                &self,
                tenant_id: uuid::Uuid,
                external_id: &str,
            ) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM users WHERE tenant_id = $1 AND external_id = $2",
                    $crate::store::sql_users::USER_COLUMNS
                ));
                let row = sqlx::query(sql).bind(tenant_id).bind(external_id).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some(user_from_row!(&row)),
                    None => None,
                })
            }

            async fn list_users(
                &self,
                tenant_id: uuid::Uuid,
                filter: &$crate::store::UserFilter,
                after: Option<(i64, uuid::Uuid)>,
                limit: i64,
            ) -> Result<Vec<$crate::store::UserRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let (t, id) = after.unwrap_or((i64::MIN, uuid::Uuid::nil()));
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM users WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR trust_level = $2) AND ($3 IS NULL OR suspended = $3) \
                     AND (created_at > $4 OR (created_at = $4 AND id > $5)) \
                     ORDER BY created_at, id LIMIT $6",
                    $crate::store::sql_users::USER_COLUMNS
                ));
                let rows = sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(filter.trust_level.as_deref())
                    .bind(filter.suspended)
                    .bind(t)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(user_from_row!(row));
                }
                Ok(out)
            }

            async fn update_user(
                &self,
                tenant_id: uuid::Uuid,
                user_id: uuid::Uuid,
                patch: &$crate::store::UserPatch,
            ) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE users SET display_name = COALESCE($3, display_name), \
                     trust_level = COALESCE($4, trust_level), suspended = COALESCE($5, suspended) \
                     WHERE tenant_id = $1 AND id = $2 RETURNING {}",
                    $crate::store::sql_users::USER_COLUMNS
                ));
                let row = sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(user_id)
                    .bind(&patch.display_name)
                    .bind(&patch.trust_level)
                    .bind(patch.suspended)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some(user_from_row!(&row)),
                    None => None,
                })
            }

            async fn delete_user(&self, tenant_id: uuid::Uuid, user_id: uuid::Uuid) -> Result<bool, $crate::store::StoreError> {
                // Devices, key packages, challenges and contacts go by ON DELETE CASCADE.
                let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn add_contact(
                &self,
                tenant_id: uuid::Uuid,
                a: uuid::Uuid,
                b: uuid::Uuid,
                now_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                let found: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1 AND (id = $2 OR id = $3)")
                    .bind(tenant_id)
                    .bind(a)
                    .bind(b)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if found != 2 {
                    return Ok(false);
                }
                insert_contacts(&mut tx, tenant_id, a, b, now_ms).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn are_contacts(&self, tenant_id: uuid::Uuid, a: uuid::Uuid, b: uuid::Uuid) -> Result<bool, $crate::store::StoreError> {
                let row = sqlx::query("SELECT 1 AS one FROM contacts WHERE tenant_id = $1 AND user_id = $2 AND contact_user_id = $3")
                    .bind(tenant_id)
                    .bind(a)
                    .bind(b)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn list_contacts(
                &self,
                tenant_id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> Result<Vec<($crate::store::UserRecord, i64)>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {}, c.created_at AS since FROM contacts c JOIN users u ON u.id = c.contact_user_id \
                     WHERE c.tenant_id = $1 AND u.tenant_id = $1 AND c.user_id = $2 ORDER BY u.display_name, u.id",
                    $crate::store::sql_users::USER_COLUMNS_U
                ));
                let rows = sqlx::query(sql).bind(tenant_id).bind(user_id).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push((user_from_row!(row), row.try_get("since")?));
                }
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::TokenKeyStore for $store {
            async fn token_key_or_insert(&self, candidate: &[u8], now_ms: i64) -> Result<Vec<u8>, $crate::store::StoreError> {
                use sqlx::Row as _;
                sqlx::query("INSERT INTO token_keys (id, secret, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
                    .bind(candidate)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                let row = sqlx::query("SELECT secret FROM token_keys WHERE id = 1").fetch_one(&self.pool).await?;
                Ok(row.try_get("secret")?)
            }
        }
    };
}

pub(crate) use {impl_user_stores, user_from_row};
