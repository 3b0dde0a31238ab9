//! Pending removals and the server's proposals, written once for both backends (see
//! `sql.rs`). Uses the mailbox helpers of `sql_delivery.rs`, expanded in the same module.

macro_rules! impl_removal_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::RemovalStore for $store {
            async fn removals_due(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::store::RemovalsDue>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    // An inactivity removal of a device that logged in since it was marked is
                    // not proposed (a login racing the marking can leave such a row behind).
                    "SELECT r.tenant_id, r.conversation_id, c.epoch, r.device_id, r.leaf_index FROM member_removals r \
                     JOIN conversations c ON c.tenant_id = r.tenant_id AND c.id = r.conversation_id \
                     JOIN devices d ON d.id = r.device_id \
                     WHERE (r.proposed_epoch IS NULL OR r.proposed_epoch < c.epoch) \
                     AND NOT (r.reason = 'inactive' AND COALESCE(d.last_login_at, d.created_at) >= r.created_at) \
                     ORDER BY r.tenant_id, r.conversation_id, r.leaf_index LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<$crate::store::RemovalsDue> = Vec::new();
                for row in &rows {
                    let tenant_id: uuid::Uuid = row.try_get("tenant_id")?;
                    let conversation_id: uuid::Uuid = row.try_get("conversation_id")?;
                    let leaf: i64 = row.try_get("leaf_index")?;
                    let removal = $crate::store::PendingRemoval {
                        device_id: row.try_get("device_id")?,
                        leaf_index: u32::try_from(leaf).map_err(|_| {
                            $crate::store::StoreError::Corrupt(format!("leaf index {leaf} out of range"))
                        })?,
                    };
                    match out.last_mut() {
                        Some(due) if due.tenant_id == tenant_id && due.conversation_id == conversation_id => {
                            due.removals.push(removal)
                        }
                        _ => out.push($crate::store::RemovalsDue {
                            tenant_id,
                            conversation_id,
                            epoch: row.try_get("epoch")?,
                            removals: vec![removal],
                        }),
                    }
                }
                Ok(out)
            }

            async fn store_proposals(
                &self,
                p: &$crate::store::NewProposals,
            ) -> Result<Option<Vec<uuid::Uuid>>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                // Locks the conversation at this epoch: a commit waits, or has moved it on.
                let held = sqlx::query("UPDATE conversations SET epoch = epoch WHERE tenant_id = $1 AND id = $2 AND epoch = $3")
                    .bind(p.tenant_id)
                    .bind(p.conversation_id)
                    .bind(p.epoch)
                    .execute(&mut *tx)
                    .await?;
                if held.rows_affected() != 1 {
                    return Ok(None);
                }
                // Every member, the device to remove included (an inactive device that
                // returns needs the proposal to process the commit that removes it; a
                // revoked one is no member any more).
                let recipients: Vec<uuid::Uuid> = members_of(&mut *tx, p.tenant_id, p.conversation_id)
                    .await?
                    .into_iter()
                    .map(|m| m.device_id)
                    .collect();
                let tenant = sqlx::query("SELECT retention_ms, mailbox_storage FROM tenants WHERE id = $1")
                    .bind(p.tenant_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let retention: i64 = tenant.try_get("retention_ms")?;
                let memory = $crate::store::memory_mailbox::for_storage(
                    self.memory.as_deref(),
                    &tenant.try_get::<String, _>("mailbox_storage")?,
                )?;
                // Devices before removal rows, as commits and revocations lock them.
                lock_counters(&mut tx, &recipients).await?;
                let mut fresh = Vec::with_capacity(p.proposals.len());
                for (device, body) in &p.proposals {
                    let marked = sqlx::query(
                        "UPDATE member_removals SET proposed_epoch = $4 WHERE tenant_id = $1 AND conversation_id = $2 AND device_id = $3 \
                         AND (proposed_epoch IS NULL OR proposed_epoch < $4)",
                    )
                    .bind(p.tenant_id)
                    .bind(p.conversation_id)
                    .bind(device)
                    .bind(p.epoch)
                    .execute(&mut *tx)
                    .await?;
                    if marked.rows_affected() == 1 {
                        fresh.push(body);
                    }
                }
                if fresh.is_empty() {
                    return Ok(None);
                }
                let server = $crate::store::Member { device_id: uuid::Uuid::nil(), user_id: uuid::Uuid::nil() };
                let send = $crate::store::NewSend {
                    tenant_id: p.tenant_id,
                    conversation_id: p.conversation_id,
                    sender: server,
                    client_msg_id: uuid::Uuid::nil(),
                    epoch: p.epoch,
                    body: Vec::new(),
                    now_ms: p.now_ms,
                    mailbox_quota: p.mailbox_quota,
                    charge: None,
                    franking: None,
                    viewable: false,
                };
                let mut skipped = Vec::new();
                for body in fresh {
                    // Like commits, proposals may go past the quota (to twice it).
                    let entry = $crate::store::sql_delivery::Entry {
                        kind: cloak_proto::delivery::EnvelopeKind::Proposal,
                        epoch: p.epoch,
                        body,
                        expires_at: p.now_ms.saturating_add(retention),
                        ceiling: p.mailbox_quota.saturating_mul(2),
                        memory,
                    };
                    skipped.extend(append_entries(&mut tx, &send, &recipients, &entry).await?);
                }
                tx.commit().await?;
                Ok(Some(recipients.into_iter().filter(|d| !skipped.contains(d)).collect()))
            }

            async fn mark_inactive(&self, now_ms: i64) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "INSERT INTO member_removals (tenant_id, conversation_id, device_id, leaf_index, reason, proposed_epoch, created_at) \
                     SELECT m.tenant_id, m.conversation_id, m.device_id, m.leaf_index, 'inactive', NULL, $1 \
                     FROM conversation_members m JOIN devices d ON d.id = m.device_id JOIN tenants t ON t.id = m.tenant_id \
                     WHERE m.leaf_index IS NOT NULL AND d.status = 'approved' \
                     AND COALESCE(d.last_login_at, d.created_at) < $1 - t.retention_ms \
                     ON CONFLICT (tenant_id, conversation_id, device_id) DO UPDATE SET created_at = excluded.created_at \
                     WHERE member_removals.reason = 'inactive' AND member_removals.created_at <= \
                     (SELECT COALESCE(d2.last_login_at, d2.created_at) FROM devices d2 WHERE d2.id = member_removals.device_id)",
                )
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn record_login(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                // Two transactions, so a login never holds its device row while it waits
                // for removal rows (which the proposal worker locks before devices). The
                // login time first: a marking that runs in between no longer finds the
                // device inactive, and a row it wrote before is deleted next (one that
                // still slips in is older than the login, which `removals_due` skips).
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE devices SET last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(device_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM member_removals WHERE tenant_id = $1 AND device_id = $2 AND reason = 'inactive'")
                    .bind(tenant_id)
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_removal_store;
