//! Trust levels, blocks and reports, written once for both backends (see `sql.rs`).

pub(crate) const REPORT_COLUMNS: &str = "id, tenant_id, reporter_user_id, reported_user_id, reported_device_id, conversation_id, message_id, sent_at, text, reason, status, created_at";

macro_rules! report_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::ReportRecord {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            reporter_user_id: row.try_get("reporter_user_id")?,
            reported_user_id: row.try_get("reported_user_id")?,
            reported_device_id: row.try_get("reported_device_id")?,
            conversation_id: row.try_get("conversation_id")?,
            message_id: row.try_get("message_id")?,
            sent_at_ms: row.try_get("sent_at")?,
            text: row.try_get("text")?,
            reason: row.try_get("reason")?,
            status: row.try_get("status")?,
            created_at_ms: row.try_get("created_at")?,
        }
    }};
}

macro_rules! impl_abuse_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AbuseStore for $store {
            async fn get_trust_levels(&self, tenant_id: uuid::Uuid) -> Result<Option<String>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT levels FROM trust_levels WHERE tenant_id = $1")
                    .bind(tenant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some(row.try_get("levels")?),
                    None => None,
                })
            }

            async fn put_trust_levels(&self, tenant_id: uuid::Uuid, levels_json: &str, now_ms: i64) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO trust_levels (tenant_id, levels, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET levels = excluded.levels, updated_at = excluded.updated_at",
                )
                .bind(tenant_id)
                .bind(levels_json)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn upheld_reports(&self, tenant_id: uuid::Uuid, user_id: uuid::Uuid) -> Result<i64, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT upheld_reports FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => row.try_get("upheld_reports")?,
                    None => 0,
                })
            }

            async fn add_block(&self, tenant_id: uuid::Uuid, blocker: uuid::Uuid, blocked: uuid::Uuid, now_ms: i64) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO blocks (tenant_id, blocker_user_id, blocked_user_id, created_at) \
                     SELECT $1, $2, $3, $4 WHERE (SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND id IN ($2, $3)) = 2 \
                     ON CONFLICT (blocker_user_id, blocked_user_id) DO NOTHING",
                )
                .bind(tenant_id)
                .bind(blocker)
                .bind(blocked)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(true);
                }
                self.is_blocked(tenant_id, blocker, blocked).await
            }

            async fn remove_block(&self, tenant_id: uuid::Uuid, blocker: uuid::Uuid, blocked: uuid::Uuid) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM blocks WHERE tenant_id = $1 AND blocker_user_id = $2 AND blocked_user_id = $3")
                    .bind(tenant_id)
                    .bind(blocker)
                    .bind(blocked)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_blocks(&self, tenant_id: uuid::Uuid, blocker: uuid::Uuid) -> Result<Vec<uuid::Uuid>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query("SELECT blocked_user_id FROM blocks WHERE tenant_id = $1 AND blocker_user_id = $2 ORDER BY created_at")
                    .bind(tenant_id)
                    .bind(blocker)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(row.try_get("blocked_user_id")?);
                }
                Ok(out)
            }

            async fn is_blocked(&self, tenant_id: uuid::Uuid, blocker: uuid::Uuid, blocked: uuid::Uuid) -> Result<bool, $crate::store::StoreError> {
                let row = sqlx::query("SELECT 1 AS one FROM blocks WHERE tenant_id = $1 AND blocker_user_id = $2 AND blocked_user_id = $3")
                    .bind(tenant_id)
                    .bind(blocker)
                    .bind(blocked)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn create_report(&self, r: &$crate::store::ReportRecord) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO reports (id, tenant_id, reporter_user_id, reported_user_id, reported_device_id, conversation_id, message_id, sent_at, text, reason, status, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (tenant_id, reporter_user_id, message_id) DO NOTHING",
                )
                .bind(r.id)
                .bind(r.tenant_id)
                .bind(r.reporter_user_id)
                .bind(r.reported_user_id)
                .bind(r.reported_device_id)
                .bind(r.conversation_id)
                .bind(r.message_id)
                .bind(r.sent_at_ms)
                .bind(&r.text)
                .bind(&r.reason)
                .bind(&r.status)
                .bind(r.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_reports(&self, tenant_id: uuid::Uuid, status: &str) -> Result<Vec<$crate::store::ReportRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM reports WHERE tenant_id = $1 AND status = $2 ORDER BY created_at DESC, id LIMIT 500",
                    $crate::store::sql_abuse::REPORT_COLUMNS
                ));
                let rows = sqlx::query(sql).bind(tenant_id).bind(status).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(report_from_row!(row));
                }
                Ok(out)
            }

            async fn decide_report(&self, tenant_id: uuid::Uuid, id: uuid::Uuid, uphold: bool, now_ms: i64) -> Result<Option<$crate::store::Decision>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                let status = if uphold { "upheld" } else { "dismissed" };
                let changed = sqlx::query("UPDATE reports SET status = $3, decided_at = $4 WHERE tenant_id = $1 AND id = $2 AND status = 'open'")
                    .bind(tenant_id)
                    .bind(id)
                    .bind(status)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                if changed.rows_affected() != 1 {
                    return Ok(None);
                }
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM reports WHERE tenant_id = $1 AND id = $2",
                    $crate::store::sql_abuse::REPORT_COLUMNS
                ));
                let report = {
                    let row = sqlx::query(sql).bind(tenant_id).bind(id).fetch_one(&mut *tx).await?;
                    report_from_row!(&row)
                };
                let mut upheld = 0;
                let mut suspended = false;
                if uphold {
                    upheld = sqlx::query("UPDATE users SET upheld_reports = upheld_reports + 1 WHERE tenant_id = $1 AND id = $2 RETURNING upheld_reports")
                        .bind(tenant_id)
                        .bind(report.reported_user_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.try_get::<i64, _>("upheld_reports"))
                        .transpose()?
                        .unwrap_or(0);
                    let threshold: Option<i64> = sqlx::query("SELECT suspend_after_upheld FROM tenants WHERE id = $1")
                        .bind(tenant_id)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("suspend_after_upheld")?;
                    if threshold.is_some_and(|t| upheld >= t) {
                        let done = sqlx::query("UPDATE users SET suspended = TRUE WHERE tenant_id = $1 AND id = $2 AND suspended = FALSE")
                            .bind(tenant_id)
                            .bind(report.reported_user_id)
                            .execute(&mut *tx)
                            .await?;
                        suspended = done.rows_affected() == 1;
                    }
                }
                tx.commit().await?;
                Ok(Some($crate::store::Decision { report, upheld, suspended }))
            }

            async fn get_suspend_threshold(&self, tenant_id: uuid::Uuid) -> Result<Option<i64>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT suspend_after_upheld FROM tenants WHERE id = $1")
                    .bind(tenant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => row.try_get("suspend_after_upheld")?,
                    None => None,
                })
            }

            async fn set_suspend_threshold(&self, tenant_id: uuid::Uuid, threshold: Option<i64>) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE tenants SET suspend_after_upheld = $2 WHERE id = $1")
                    .bind(tenant_id)
                    .bind(threshold)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use {impl_abuse_store, report_from_row};
