//! Attachments, written once for both backends (see `sql.rs`). Uses `apply_charge` of
//! `sql_billing.rs`, expanded in the same module, so the tier's price is taken in the
//! transaction that records the last part.

pub(crate) const ATTACHMENT_COLUMNS: &str = "id, tenant_id, conversation_id, uploader_user_id, uploader_device_id, size, received, tier, created_at, completed_at, expires_at";

macro_rules! attachment_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::AttachmentRecord {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            conversation_id: row.try_get("conversation_id")?,
            uploader_user_id: row.try_get("uploader_user_id")?,
            uploader_device_id: row.try_get("uploader_device_id")?,
            size: row.try_get("size")?,
            received: row.try_get("received")?,
            tier: row.try_get("tier")?,
            created_at_ms: row.try_get("created_at")?,
            completed_at_ms: row.try_get("completed_at")?,
            expires_at_ms: row.try_get("expires_at")?,
        }
    }};
}

macro_rules! impl_attachment_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AttachmentStore for $store {
            async fn create_upload(
                &self,
                u: &$crate::store::NewUpload,
                quota_bytes: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                use sqlx::Row as _;
                let lock = <$store as $crate::store::sql::Backend>::LOCK_ROWS;
                let mut tx = self.begin_write().await?;
                // The tenant row serialises the quota check of concurrent uploads.
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM tenants WHERE id = $1{lock}")))
                    .bind(u.tenant_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let used: i64 = sqlx::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS used FROM attachments WHERE tenant_id = $1")
                    .bind(u.tenant_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("used")?;
                if used.saturating_add(u.size) > quota_bytes {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO attachments (id, tenant_id, conversation_id, uploader_user_id, uploader_device_id, size, received, tier, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)",
                )
                .bind(u.id)
                .bind(u.tenant_id)
                .bind(u.conversation_id)
                .bind(u.user_id)
                .bind(u.device_id)
                .bind(u.size)
                .bind(u.tier)
                .bind(u.now_ms)
                .bind(u.expires_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn attachment(
                &self,
                tenant_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::store::AttachmentRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let cols = $crate::store::sql_attachments::ATTACHMENT_COLUMNS;
                let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {cols} FROM attachments WHERE tenant_id = $1 AND id = $2")))
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some($crate::store::sql_attachments::attachment_from_row!(row)),
                    None => None,
                })
            }

            async fn append_part(
                &self,
                tenant_id: uuid::Uuid,
                id: uuid::Uuid,
                part: &$crate::store::Part,
                completion: &$crate::store::Completion,
                now_ms: i64,
            ) -> Result<$crate::store::AppendOutcome, $crate::store::StoreError> {
                use $crate::store::AppendOutcome;
                use sqlx::Row as _;
                let lock = <$store as $crate::store::sql::Backend>::LOCK_ROWS;
                let cols = $crate::store::sql_attachments::ATTACHMENT_COLUMNS;
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {cols} FROM attachments WHERE tenant_id = $1 AND id = $2 AND completed_at IS NULL AND expires_at > $3{lock}"
                )))
                .bind(tenant_id)
                .bind(id)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(AppendOutcome::Missing);
                };
                let upload = $crate::store::sql_attachments::attachment_from_row!(row);
                if part.offset != upload.received || part.len <= 0 || upload.received + part.len > upload.size {
                    return Ok(AppendOutcome::OffsetMismatch(upload.received));
                }
                let received = upload.received + part.len;
                let completed = received == upload.size;
                if completed {
                    if let Some(charge) = &completion.charge {
                        if let Err(balance) = apply_charge(&mut tx, tenant_id, charge, completion.key.clone(), Some(id.to_string()), now_ms).await? {
                            return Ok(AppendOutcome::Insufficient(balance));
                        }
                    }
                    sqlx::query(
                        "INSERT INTO attachment_recipients (attachment_id, device_id) \
                         SELECT $1, device_id FROM conversation_members WHERE tenant_id = $2 AND conversation_id = $3 AND device_id <> $4",
                    )
                    .bind(id)
                    .bind(tenant_id)
                    .bind(upload.conversation_id)
                    .bind(upload.uploader_device_id)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("INSERT INTO attachment_parts (attachment_id, \"offset\", len, blob_key) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(part.offset)
                    .bind(part.len)
                    .bind(&part.key)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE attachments SET received = $2, completed_at = CASE WHEN $3 THEN $4 ELSE NULL END, \
                     expires_at = CASE WHEN $3 THEN $5 ELSE expires_at END WHERE id = $1",
                )
                .bind(id)
                .bind(received)
                .bind(completed)
                .bind(now_ms)
                .bind(completion.expires_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(AppendOutcome::Appended { received, completed })
            }

            async fn parts(&self, id: uuid::Uuid) -> Result<Vec<$crate::store::Part>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query("SELECT \"offset\", len, blob_key FROM attachment_parts WHERE attachment_id = $1 ORDER BY \"offset\"")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|r| Ok($crate::store::Part { offset: r.try_get("offset")?, len: r.try_get("len")?, key: r.try_get("blob_key")? }))
                    .collect()
            }

            async fn is_member(
                &self,
                tenant_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
                device_id: uuid::Uuid,
            ) -> Result<bool, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT 1 AS one FROM conversation_members WHERE tenant_id = $1 AND conversation_id = $2 AND device_id = $3",
                )
                .bind(tenant_id)
                .bind(conversation_id)
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn mark_downloaded(
                &self,
                tenant_id: uuid::Uuid,
                id: uuid::Uuid,
                device_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE attachment_recipients SET downloaded_at = $4 WHERE attachment_id = $2 AND device_id = $3 \
                     AND downloaded_at IS NULL AND EXISTS (SELECT 1 FROM attachments a WHERE a.id = $2 AND a.tenant_id = $1)",
                )
                .bind(tenant_id)
                .bind(id)
                .bind(device_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn attachments_due(
                &self,
                now_ms: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::DueAttachment>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT a.tenant_id, a.id FROM attachments a WHERE a.expires_at <= $1 \
                     OR (a.completed_at IS NOT NULL \
                         AND EXISTS (SELECT 1 FROM attachment_recipients r WHERE r.attachment_id = a.id) \
                         AND NOT EXISTS (SELECT 1 FROM attachment_recipients r WHERE r.attachment_id = a.id AND r.downloaded_at IS NULL)) \
                     ORDER BY a.id LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| Ok($crate::store::DueAttachment { tenant_id: r.try_get("tenant_id")?, id: r.try_get("id")? }))
                    .collect()
            }

            async fn delete_attachment(&self, id: uuid::Uuid) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM attachments WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use {attachment_from_row, impl_attachment_store};
