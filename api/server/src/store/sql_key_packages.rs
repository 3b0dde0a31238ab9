//! The KeyPackage directory, written once for both backends (see `sql.rs`). Only the
//! one-time claim differs: PostgreSQL takes the row with `FOR UPDATE SKIP LOCKED` so that
//! concurrent claimers on several nodes get different packages; SQLite runs the same
//! single statement under its database-wide write lock.

/// PostgreSQL's one-time claim.
pub(crate) const CLAIM_ONE_TIME_POSTGRES: &str = "DELETE FROM key_packages WHERE device_id = $1 AND hash_ref = (\
     SELECT hash_ref FROM key_packages WHERE tenant_id = $2 AND device_id = $1 AND last_resort = FALSE \
     AND expires_at > $3 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING hash_ref, data";

/// SQLite's one-time claim.
pub(crate) const CLAIM_ONE_TIME_SQLITE: &str = "DELETE FROM key_packages WHERE device_id = $1 AND hash_ref = (\
     SELECT hash_ref FROM key_packages WHERE tenant_id = $2 AND device_id = $1 AND last_resort = FALSE \
     AND expires_at > $3 ORDER BY created_at LIMIT 1) RETURNING hash_ref, data";

macro_rules! impl_key_package_store {
    ($store:ty, $claim_one_time:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::KeyPackageStore for $store {
            async fn add_key_packages(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                one_time: &[$crate::store::NewKeyPackage],
                last_resort: Option<&$crate::store::NewKeyPackage>,
                now_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                const INSERT: &str = "INSERT INTO key_packages \
                     (device_id, hash_ref, tenant_id, data, last_resort, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, hash_ref) DO NOTHING";
                let mut tx = self.begin_write().await?;
                for (i, kp) in one_time.iter().enumerate() {
                    sqlx::query(INSERT)
                        .bind(device_id)
                        .bind(&kp.hash_ref)
                        .bind(tenant_id)
                        .bind(&kp.data)
                        .bind(false)
                        .bind(kp.expires_at_ms)
                        // Keeps upload order within a batch for first-in, first-out claims.
                        .bind(now_ms.saturating_add(i64::try_from(i).unwrap_or(0)))
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(kp) = last_resort {
                    sqlx::query("DELETE FROM key_packages WHERE tenant_id = $1 AND device_id = $2 AND last_resort = TRUE")
                        .bind(tenant_id)
                        .bind(device_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(INSERT)
                        .bind(device_id)
                        .bind(&kp.hash_ref)
                        .bind(tenant_id)
                        .bind(&kp.data)
                        .bind(true)
                        .bind(kp.expires_at_ms)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn key_package_stock(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<(u32, bool), $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT COALESCE(SUM(CASE WHEN last_resort THEN 0 ELSE 1 END), 0) AS one_time, \
                     COALESCE(SUM(CASE WHEN last_resort THEN 1 ELSE 0 END), 0) AS last_resort \
                     FROM key_packages WHERE tenant_id = $1 AND device_id = $2 AND expires_at > $3",
                )
                .bind(tenant_id)
                .bind(device_id)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await?;
                let one_time: i64 = row.try_get("one_time")?;
                let last_resort: i64 = row.try_get("last_resort")?;
                Ok((u32::try_from(one_time).unwrap_or(u32::MAX), last_resort > 0))
            }

            async fn claim_key_package(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<Option<$crate::store::ClaimedPackage>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query($claim_one_time)
                    .bind(device_id)
                    .bind(tenant_id)
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                let (row, last_resort) = match row {
                    Some(row) => (row, false),
                    None => {
                        let row = sqlx::query(
                            "SELECT hash_ref, data FROM key_packages WHERE tenant_id = $1 AND device_id = $2 \
                             AND last_resort = TRUE AND expires_at > $3 ORDER BY created_at DESC LIMIT 1",
                        )
                        .bind(tenant_id)
                        .bind(device_id)
                        .bind(now_ms)
                        .fetch_optional(&self.pool)
                        .await?;
                        match row {
                            Some(row) => (row, true),
                            None => return Ok(None),
                        }
                    }
                };
                Ok(Some($crate::store::ClaimedPackage {
                    device_id,
                    hash_ref: row.try_get("hash_ref")?,
                    data: row.try_get("data")?,
                    last_resort,
                }))
            }

            async fn purge_expired(&self, now_ms: i64) -> Result<u64, $crate::store::StoreError> {
                let mut purged = 0;
                for sql in [
                    "DELETE FROM key_packages WHERE expires_at <= $1",
                    "DELETE FROM login_challenges WHERE expires_at <= $1",
                ] {
                    purged += sqlx::query(sql).bind(now_ms).execute(&self.pool).await?.rows_affected();
                }
                Ok(purged)
            }
        }
    };
}

pub(crate) use impl_key_package_store;
