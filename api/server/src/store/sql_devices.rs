//! Devices and login challenges, written once for both backends (see `sql.rs`).

pub(crate) const DEVICE_COLUMNS: &str = "id, tenant_id, user_id, name, identity_key, status, created_at, \
     approved_by, approved_at_ms, approval_signature";

/// The same columns qualified by the alias `d`, for joins.
pub(crate) const DEVICE_COLUMNS_D: &str = "d.id, d.tenant_id, d.user_id, d.name, d.identity_key, d.status, \
     d.created_at, d.approved_by, d.approved_at_ms, d.approval_signature";

/// Parses the stored status text.
pub(crate) fn parse_status(
    s: &str,
) -> Result<cloak_proto::devices::DeviceStatus, crate::store::StoreError> {
    cloak_proto::devices::DeviceStatus::parse(s)
        .ok_or_else(|| crate::store::StoreError::Corrupt(format!("unknown device status {s:?}")))
}

macro_rules! device_from_row {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        $crate::store::DeviceRecord {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            user_id: row.try_get("user_id")?,
            name: row.try_get("name")?,
            identity_key: row.try_get("identity_key")?,
            status: $crate::store::sql_devices::parse_status(&status)?,
            created_at_ms: row.try_get("created_at")?,
            approved_by: row.try_get("approved_by")?,
            approved_at_ms: row.try_get("approved_at_ms")?,
            approval_signature: row.try_get("approval_signature")?,
        }
    }};
}

macro_rules! impl_device_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::DeviceStore for $store {
            async fn register_device(
                &self,
                device: &$crate::store::NewDevice,
            ) -> Result<$crate::store::RegisterOutcome, $crate::store::StoreError> {
                use $crate::store::RegisterOutcome;
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                // Locks the user row: two devices registering at once cannot both be "first".
                let locked = sqlx::query("UPDATE users SET devices_changed_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(device.tenant_id)
                    .bind(device.user_id)
                    .bind(device.created_at_ms)
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() != 1 {
                    return Err($crate::store::StoreError::Conflict("user_missing".to_owned()));
                }
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE tenant_id = $1 AND identity_key = $2",
                    $crate::store::sql_devices::DEVICE_COLUMNS
                ));
                let existing = sqlx::query(sql)
                    .bind(device.tenant_id)
                    .bind(&device.identity_key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = existing {
                    let record = device_from_row!(&row);
                    return Ok(if record.user_id == device.user_id {
                        RegisterOutcome::Existing(record)
                    } else {
                        RegisterOutcome::KeyInUse
                    });
                }
                let approved: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM devices WHERE tenant_id = $1 AND user_id = $2 AND status = 'approved'",
                )
                .bind(device.tenant_id)
                .bind(device.user_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                let status = if approved == 0 {
                    cloak_proto::devices::DeviceStatus::Approved
                } else {
                    cloak_proto::devices::DeviceStatus::Pending
                };
                sqlx::query(
                    "INSERT INTO devices (id, tenant_id, user_id, name, identity_key, status, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(device.id)
                .bind(device.tenant_id)
                .bind(device.user_id)
                .bind(&device.name)
                .bind(&device.identity_key)
                .bind(status.as_str())
                .bind(device.created_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(RegisterOutcome::Created($crate::store::DeviceRecord {
                    id: device.id,
                    tenant_id: device.tenant_id,
                    user_id: device.user_id,
                    name: device.name.clone(),
                    identity_key: device.identity_key.clone(),
                    status,
                    created_at_ms: device.created_at_ms,
                    approved_by: None,
                    approved_at_ms: None,
                    approval_signature: None,
                }))
            }

            async fn get_device(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
            ) -> Result<Option<$crate::store::DeviceRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE tenant_id = $1 AND id = $2",
                    $crate::store::sql_devices::DEVICE_COLUMNS
                ));
                let row = sqlx::query(sql).bind(tenant_id).bind(device_id).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some(device_from_row!(&row)),
                    None => None,
                })
            }

            async fn find_device(&self, device_id: uuid::Uuid) -> Result<Option<$crate::store::DeviceRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE id = $1",
                    $crate::store::sql_devices::DEVICE_COLUMNS
                ));
                let row = sqlx::query(sql).bind(device_id).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some(device_from_row!(&row)),
                    None => None,
                })
            }

            async fn device_auth(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
            ) -> Result<Option<$crate::store::DeviceAuthRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {}, u.suspended AS user_suspended FROM devices d JOIN users u ON u.id = d.user_id \
                     WHERE d.tenant_id = $1 AND d.id = $2",
                    $crate::store::sql_devices::DEVICE_COLUMNS_D
                ));
                let row = sqlx::query(sql).bind(tenant_id).bind(device_id).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some($crate::store::DeviceAuthRecord {
                        device: device_from_row!(&row),
                        user_suspended: row.try_get("user_suspended")?,
                    }),
                    None => None,
                })
            }

            async fn list_devices(
                &self,
                tenant_id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> Result<Vec<$crate::store::DeviceRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM devices WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id",
                    $crate::store::sql_devices::DEVICE_COLUMNS
                ));
                let rows = sqlx::query(sql).bind(tenant_id).bind(user_id).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(device_from_row!(row));
                }
                Ok(out)
            }

            async fn approve_device(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                approval: &$crate::store::Approval,
            ) -> Result<Option<$crate::store::DeviceRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE devices SET status = 'approved', approved_by = $3, approved_at_ms = $4, \
                     approval_signature = $5 WHERE tenant_id = $1 AND id = $2 AND status = 'pending' \
                     RETURNING {}",
                    $crate::store::sql_devices::DEVICE_COLUMNS
                ));
                let row = sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(device_id)
                    .bind(approval.approver_id)
                    .bind(approval.approved_at_ms)
                    .bind(&approval.signature)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some(device_from_row!(&row)),
                    None => None,
                })
            }

            async fn revoke_device(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<Option<$crate::store::DeviceRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE devices SET status = 'revoked', revoked_at = COALESCE(revoked_at, $3) \
                     WHERE tenant_id = $1 AND id = $2 RETURNING {}",
                    $crate::store::sql_devices::DEVICE_COLUMNS
                ));
                let row = sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(device_id)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let record = device_from_row!(&row);
                // The server proposes its removal from each MLS group (where its leaf is
                // known) until a member commits it.
                sqlx::query(
                    "INSERT INTO member_removals (tenant_id, conversation_id, device_id, leaf_index, reason, proposed_epoch, created_at) \
                     SELECT tenant_id, conversation_id, device_id, leaf_index, 'revoked', NULL, $3 FROM conversation_members \
                     WHERE tenant_id = $1 AND device_id = $2 AND leaf_index IS NOT NULL \
                     ON CONFLICT (tenant_id, conversation_id, device_id) DO UPDATE SET reason = 'revoked'",
                )
                .bind(tenant_id)
                .bind(device_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                // A revoked device leaves every conversation at once (so no sender waits on
                // its mailbox), and what was waiting for it goes.
                for sql in [
                    "DELETE FROM key_packages WHERE tenant_id = $1 AND device_id = $2",
                    "DELETE FROM login_challenges WHERE tenant_id = $1 AND device_id = $2",
                    "DELETE FROM conversation_members WHERE tenant_id = $1 AND device_id = $2",
                    "DELETE FROM mailbox WHERE tenant_id = $1 AND device_id = $2",
                    "DELETE FROM mailbox_acks WHERE device_id = $2 AND EXISTS (SELECT 1 FROM devices WHERE id = $2 AND tenant_id = $1)",
                    "UPDATE devices SET mailbox_depth = 0 WHERE tenant_id = $1 AND id = $2",
                ] {
                    sqlx::query(sql).bind(tenant_id).bind(device_id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                if let Some(memory) = self.memory.as_deref()
                    && let Err(e) = memory.clear(tenant_id, device_id).await
                {
                    // The device can no longer fetch them; the set's TTL removes them.
                    tracing::warn!(error = %e, "could not clear a revoked device's memory mailbox");
                }
                Ok(Some(record))
            }

            async fn insert_challenge(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                nonce_hash: &[u8],
                expires_at_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("INSERT INTO login_challenges (nonce_hash, tenant_id, device_id, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(nonce_hash)
                    .bind(tenant_id)
                    .bind(device_id)
                    .bind(expires_at_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn consume_challenge(
                &self,
                device_id: uuid::Uuid,
                nonce_hash: &[u8],
                now_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                // One DELETE: of two concurrent logins with the same nonce, exactly one wins.
                let done = sqlx::query("DELETE FROM login_challenges WHERE nonce_hash = $1 AND device_id = $2 AND expires_at > $3")
                    .bind(nonce_hash)
                    .bind(device_id)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use {device_from_row, impl_device_store};
