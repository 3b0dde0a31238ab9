//! Push registrations and `device.pending` coalescing, written once for both backends (see
//! `sql.rs`). Uses `enqueue_webhook_tx` of `sql_billing.rs`, expanded in the same module.
//! Devices are locked one at a time in id order, as batches of sends lock them.

/// Most windows opened or closed per pass.
pub(crate) const PUSH_BATCH: i64 = 500;

macro_rules! impl_push_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::PushStore for $store {
            async fn set_push(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                registration: Option<(&str, &str)>,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE devices SET push_token = $3, push_provider = $4, push_due_at = NULL, push_notified_seq = mailbox_seq \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant_id)
                .bind(device_id)
                .bind(registration.map(|r| r.0))
                .bind(registration.map(|r| r.1))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn push_tick(&self, now_ms: i64, coalesce_ms: i64) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row as _;
                let batch = $crate::store::sql_push::PUSH_BATCH;
                // Most passes find nothing: look on a reader first, so they take no write lock.
                let work = sqlx::query(
                    "SELECT 1 AS one FROM devices d WHERE d.push_token IS NOT NULL AND \
                     ((d.push_due_at IS NULL AND d.status = 'approved' AND d.mailbox_seq > d.push_notified_seq \
                     AND (EXISTS (SELECT 1 FROM mailbox m WHERE m.device_id = d.id AND m.seq > d.push_notified_seq AND m.expires_at > $1) \
                     OR EXISTS (SELECT 1 FROM tenants t WHERE t.id = d.tenant_id AND t.mailbox_storage = 'memory'))) \
                     OR d.push_due_at <= $1) LIMIT 1",
                )
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                if work.is_none() {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                // Open a window for each device with entries not announced yet.
                let to_arm: Vec<uuid::Uuid> = sqlx::query(
                    "SELECT d.id FROM devices d WHERE d.push_token IS NOT NULL AND d.push_due_at IS NULL \
                     AND d.status = 'approved' AND d.mailbox_seq > d.push_notified_seq \
                     AND (EXISTS (SELECT 1 FROM mailbox m WHERE m.device_id = d.id AND m.seq > d.push_notified_seq AND m.expires_at > $1) \
                     OR EXISTS (SELECT 1 FROM tenants t WHERE t.id = d.tenant_id AND t.mailbox_storage = 'memory')) \
                     ORDER BY d.id LIMIT $2",
                )
                .bind(now_ms)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?;
                for id in &to_arm {
                    sqlx::query("UPDATE devices SET push_due_at = $2, push_armed_seq = mailbox_seq WHERE id = $1 AND push_due_at IS NULL")
                        .bind(id)
                        .bind(now_ms.saturating_add(coalesce_ms))
                        .execute(&mut *tx)
                        .await?;
                }
                // Close the windows that are over.
                let due = sqlx::query(
                    "SELECT id, tenant_id, user_id, push_token, push_provider, push_armed_seq FROM devices \
                     WHERE push_token IS NOT NULL AND push_due_at <= $1 ORDER BY id LIMIT $2",
                )
                .bind(now_ms)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
                let mut sent = 0;
                for row in &due {
                    let id: uuid::Uuid = row.try_get("id")?;
                    let armed: i64 = row.try_get::<Option<i64>, _>("push_armed_seq")?.unwrap_or(0);
                    let closed = sqlx::query("UPDATE devices SET push_due_at = NULL WHERE id = $1 AND push_due_at <= $2")
                        .bind(id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    if closed.rows_affected() != 1 {
                        continue; // another node closed it
                    }
                    let waiting: i64 = sqlx::query(
                        "SELECT COUNT(*) AS n FROM mailbox WHERE device_id = $1 AND expires_at > $2",
                    )
                    .bind(id)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                    let mut stale = sqlx::query(
                        "SELECT 1 AS one FROM mailbox WHERE device_id = $1 AND seq <= $2 AND expires_at > $3 LIMIT 1",
                    )
                    .bind(id)
                    .bind(armed)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                    let mut waiting = waiting;
                    // Memory-only entries count the same (a memory tenant arms on its
                    // sequence numbers alone: the database cannot see those entries).
                    if let Some(memory) = self.memory.as_deref() {
                        let tenant_id: uuid::Uuid = row.try_get("tenant_id")?;
                        // Without Redis only the database's entries count: the other
                        // devices are still announced, and a memory tenant's device gets its
                        // next window from its next entry.
                        match memory.waiting(tenant_id, id, armed, now_ms).await {
                            Ok((held, held_stale)) => {
                                waiting += held;
                                stale |= held_stale;
                            }
                            Err(e) => tracing::warn!(error = %e, "memory mailbox not counted for push"),
                        }
                    }
                    // Taken (the device is online): entries after the window's start open
                    // the next one. Announced: everything waiting now is covered.
                    let notified = if stale { "mailbox_seq" } else { "push_armed_seq" };
                    let sql = sqlx::AssertSqlSafe(format!(
                        "UPDATE devices SET push_notified_seq = {notified} WHERE id = $1"
                    ));
                    sqlx::query(sql).bind(id).execute(&mut *tx).await?;
                    if !stale {
                        continue;
                    }
                    let tenant_id: uuid::Uuid = row.try_get("tenant_id")?;
                    let user_id: uuid::Uuid = row.try_get("user_id")?;
                    let token: Option<String> = row.try_get("push_token")?;
                    let provider: Option<String> = row.try_get("push_provider")?;
                    // Exactly these fields: nothing about a sender, conversation, size or
                    // time of any message.
                    let payload = cloak_proto::events::body(&cloak_proto::events::DevicePendingEvent {
                        kind: Default::default(),
                        data: cloak_proto::events::DevicePending {
                            tenant_id,
                            user_id,
                            device_id: id,
                            push_token: token,
                            provider,
                            pending: waiting,
                        },
                    });
                    enqueue_webhook_tx(&mut tx, tenant_id, "device.pending", &payload, now_ms).await?;
                    sent += 1;
                }
                tx.commit().await?;
                Ok(sent)
            }
        }
    };
}

pub(crate) use impl_push_store;
