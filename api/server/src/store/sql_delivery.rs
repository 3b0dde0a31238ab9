//! Conversations and mailboxes, written once for both backends (see `sql.rs`).
//!
//! A send is one transaction: check membership (and the epoch), record the client message
//! id (a retry finds it and stores nothing), then for each recipient take the next
//! sequence number of its mailbox and insert the entry. Recipients are locked in id order,
//! so concurrent sends to overlapping groups cannot deadlock.

/// Parses a stored envelope kind.
pub(crate) fn parse_kind(
    s: &str,
) -> Result<cloak_proto::delivery::EnvelopeKind, crate::store::StoreError> {
    cloak_proto::delivery::EnvelopeKind::parse(s)
        .ok_or_else(|| crate::store::StoreError::Corrupt(format!("unknown envelope kind {s:?}")))
}

/// What a commit appends to each mailbox: the commit itself, or the Welcome.
pub(crate) struct Entry<'a> {
    pub kind: cloak_proto::delivery::EnvelopeKind,
    pub epoch: i64,
    pub body: &'a [u8],
    pub expires_at: i64,
    /// Most entries a mailbox may hold before this one; fuller ones are left out.
    pub ceiling: i64,
    /// The tenant's memory mailbox when it keeps entries in memory only.
    pub memory: Option<&'a dyn super::MemoryMailbox>,
}

macro_rules! impl_delivery_store {
    ($store:ty) => {
        /// Members of a conversation, by device id.
        async fn members_of<'c, E>(executor: E, tenant_id: uuid::Uuid, conversation_id: uuid::Uuid) -> Result<Vec<$crate::store::Member>, $crate::store::StoreError>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::store::sql::Backend>::Db>,
        {
            use sqlx::Row as _;
            let rows = sqlx::query("SELECT device_id, user_id FROM conversation_members WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY device_id")
                .bind(tenant_id)
                .bind(conversation_id)
                .fetch_all(executor)
                .await?;
            let mut members = Vec::with_capacity(rows.len());
            for row in &rows {
                members.push($crate::store::Member {
                    device_id: row.try_get("device_id")?,
                    user_id: row.try_get("user_id")?,
                });
            }
            Ok(members)
        }

        /// A previous send with this client message id, as its stored answer.
        async fn previous_send<'c, E>(
            executor: E,
            send: &$crate::store::NewSend,
        ) -> Result<Option<$crate::store::StoredSend>, $crate::store::StoreError>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::store::sql::Backend>::Db>,
        {
            sends_lookup(executor, send.tenant_id, send.sender.device_id, send.client_msg_id).await
        }

        /// The record of an accepted send, by sender device and client message id.
        async fn sends_lookup<'c, E>(
            executor: E,
            tenant_id: uuid::Uuid,
            sender_device_id: uuid::Uuid,
            client_msg_id: uuid::Uuid,
        ) -> Result<Option<$crate::store::StoredSend>, $crate::store::StoreError>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::store::sql::Backend>::Db>,
        {
            use sqlx::Row as _;
            let row = sqlx::query(
                "SELECT epoch, recipients, sent_at FROM sends WHERE sender_device_id = $1 AND client_msg_id = $2 AND tenant_id = $3",
            )
            .bind(sender_device_id)
            .bind(client_msg_id)
            .bind(tenant_id)
            .fetch_optional(executor)
            .await?;
            Ok(match row {
                None => None,
                Some(row) => Some($crate::store::StoredSend {
                    seqs: Vec::new(),
                    recipients: Vec::with_capacity(usize::try_from(row.try_get::<i64, _>("recipients")?).unwrap_or(0)),
                    epoch: row.try_get("epoch")?,
                    sent_at_ms: row.try_get("sent_at")?,
                    duplicate: true,
                    skipped: Vec::new(),
                }),
            })
        }

        /// Appends the entry to each recipient's mailbox that holds fewer than
        /// `entry.ceiling` entries; returns the devices left out because theirs is full.
        async fn append_entries(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::Backend>::Db>,
            send: &$crate::store::NewSend,
            recipients: &[uuid::Uuid],
            entry: &$crate::store::sql_delivery::Entry<'_>,
        ) -> Result<Vec<uuid::Uuid>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let $crate::store::sql_delivery::Entry { kind, epoch, body, expires_at, ceiling, memory } = *entry;
            let mut skipped = Vec::new();
            // Memory-only: the depth is the set's size plus what the database still holds.
            let held = match memory {
                Some(m) => {
                    let list: Vec<(uuid::Uuid, uuid::Uuid)> = recipients.iter().map(|d| (send.tenant_id, *d)).collect();
                    m.depths(&list).await?
                }
                None => vec![0; recipients.len()],
            };
            let mut queued = Vec::new();
            for (&device, held) in recipients.iter().zip(held) {
                let row = sqlx::query(
                    "UPDATE devices SET mailbox_seq = mailbox_seq + 1, mailbox_depth = mailbox_depth + $4 \
                     WHERE id = $1 AND tenant_id = $2 \
                     AND mailbox_depth - COALESCE((SELECT deleted FROM mailbox_acks WHERE device_id = $1), 0) < $3 \
                     RETURNING mailbox_seq, mailbox_depth - COALESCE((SELECT deleted FROM mailbox_acks WHERE device_id = $1), 0) AS mailbox_depth",
                )
                .bind(device)
                .bind(send.tenant_id)
                .bind(ceiling.saturating_sub(held))
                .bind(if memory.is_some() { 0_i64 } else { 1 })
                .fetch_optional(&mut **tx)
                .await?;
                let Some(row) = row else {
                    metrics::counter!("delivery_skipped_full_mailboxes_total").increment(1);
                    skipped.push(device);
                    continue;
                };
                let seq: i64 = row.try_get("mailbox_seq")?;
                let depth: i64 = row.try_get("mailbox_depth")?;
                // How many entries recipients have waiting when a new one arrives.
                metrics::histogram!("mailbox_depth_entries").record((depth + held) as f64);
                if memory.is_some() {
                    queued.push($crate::store::Queued {
                        tenant_id: send.tenant_id,
                        device_id: device,
                        seq,
                        ttl_ms: expires_at.saturating_sub(send.now_ms),
                        member: $crate::store::memory_mailbox::encode(&$crate::store::EntryParts {
                            tenant_id: send.tenant_id,
                            seq,
                            conversation_id: send.conversation_id,
                            sender_device_id: send.sender.device_id,
                            kind,
                            epoch,
                            body,
                            sent_at_ms: send.now_ms,
                            expires_at_ms: expires_at,
                            franking: send.franking.as_ref().map(|f| (f.0.as_slice(), f.1.as_slice())),
                            viewable: false,
                        }),
                    });
                    continue;
                }
                sqlx::query(
                    "INSERT INTO mailbox (device_id, seq, tenant_id, conversation_id, sender_device_id, kind, epoch, body, sent_at, expires_at, franking_tag, franking_stamp) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(device)
                .bind(seq)
                .bind(send.tenant_id)
                .bind(send.conversation_id)
                .bind(send.sender.device_id)
                .bind(kind.as_str())
                .bind(epoch)
                .bind(body)
                .bind(send.now_ms)
                .bind(expires_at)
                .bind(send.franking.as_ref().map(|f| f.0.clone()))
                .bind(send.franking.as_ref().map(|f| f.1.clone()))
                .execute(&mut **tx)
                .await?;
            }
            // Written last, before the caller commits: a Redis failure rolls it back.
            if let Some(m) = memory {
                m.put(&queued).await?;
            }
            Ok(skipped)
        }

        async fn is_revoked(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::Backend>::Db>,
            tenant_id: uuid::Uuid,
            device_id: uuid::Uuid,
        ) -> Result<bool, $crate::store::StoreError> {
            let row = sqlx::query("SELECT 1 AS one FROM devices WHERE id = $1 AND tenant_id = $2 AND status = 'revoked'")
                .bind(device_id)
                .bind(tenant_id)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(row.is_some())
        }

        /// Loads the conversation (epoch, tenant retention) and checks the sender; `Err` is
        /// the outcome to return as is.
        async fn open_send(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::Backend>::Db>,
            send: &$crate::store::NewSend,
        ) -> Result<Result<(i64, i64, String, Vec<$crate::store::Member>), $crate::store::SendOutcome>, $crate::store::StoreError> {
            use sqlx::Row as _;
            use $crate::store::SendOutcome;
            let row = sqlx::query(
                "SELECT c.epoch, t.retention_ms, t.mailbox_storage FROM conversations c JOIN tenants t ON t.id = c.tenant_id \
                 WHERE c.id = $1 AND c.tenant_id = $2",
            )
            .bind(send.conversation_id)
            .bind(send.tenant_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else {
                return Ok(Err(SendOutcome::NoConversation));
            };
            let epoch: i64 = row.try_get("epoch")?;
            let retention: i64 = row.try_get("retention_ms")?;
            let storage: String = row.try_get("mailbox_storage")?;
            let members = members_of(&mut **tx, send.tenant_id, send.conversation_id).await?;
            if !members.iter().any(|m| m.device_id == send.sender.device_id) {
                return Ok(Err(SendOutcome::NotMember));
            }
            Ok(Ok((epoch, retention, storage, members)))
        }

        /// Claims the send's id for a commit before anything else is locked, as a batch
        /// claims its sends before it locks their recipients: whoever holds an id first,
        /// the other waits for it here holding nothing, so a commit and a message sent with
        /// one id cannot deadlock. `false`: the id was taken (the caller answers the replay).
        /// Epoch and recipients are filled in by [`finish_send`] once known.
        async fn claim_send(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::Backend>::Db>,
            send: &$crate::store::NewSend,
        ) -> Result<bool, $crate::store::StoreError> {
            let claimed = sqlx::query(
                "INSERT INTO sends (sender_device_id, client_msg_id, tenant_id, conversation_id, epoch, recipients, sent_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (sender_device_id, client_msg_id) DO NOTHING",
            )
            .bind(send.sender.device_id)
            .bind(send.client_msg_id)
            .bind(send.tenant_id)
            .bind(send.conversation_id)
            .bind(send.epoch)
            .bind(send.now_ms)
            .execute(&mut **tx)
            .await?;
            Ok(claimed.rows_affected() == 1)
        }

        /// Completes the record [`claim_send`] made, for idempotent replays.
        async fn finish_send(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::Backend>::Db>,
            send: &$crate::store::NewSend,
            epoch: i64,
            recipients: usize,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query("UPDATE sends SET epoch = $3, recipients = $4 WHERE sender_device_id = $1 AND client_msg_id = $2")
                .bind(send.sender.device_id)
                .bind(send.client_msg_id)
                .bind(epoch)
                .bind(i64::try_from(recipients).unwrap_or(i64::MAX))
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::store::DeliveryStore for $store {
            async fn create_conversation(
                &self,
                tenant_id: uuid::Uuid,
                id: uuid::Uuid,
                creator: $crate::store::Member,
                now_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let inserted = sqlx::query(
                    "INSERT INTO conversations (id, tenant_id, epoch, created_at) VALUES ($1, $2, 0, $3) ON CONFLICT (tenant_id, id) DO NOTHING",
                )
                .bind(id)
                .bind(tenant_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(false);
                }
                // The creator holds the group's first leaf.
                sqlx::query(
                    "INSERT INTO conversation_members (conversation_id, device_id, tenant_id, user_id, joined_at, leaf_index) VALUES ($1, $2, $3, $4, $5, 0)",
                )
                .bind(id)
                .bind(creator.device_id)
                .bind(tenant_id)
                .bind(creator.user_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn get_conversation(
                &self,
                tenant_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::store::ConversationRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT epoch FROM conversations WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::store::ConversationRecord {
                    id,
                    tenant_id,
                    epoch: row.try_get("epoch")?,
                    members: members_of(&self.pool, tenant_id, id).await?,
                }))
            }

            async fn device_conversations(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                after: Option<(i64, uuid::Uuid)>,
                limit: i64,
            ) -> Result<Vec<(i64, $crate::store::ConversationRecord)>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let (after_ms, after_id) = after.unwrap_or((i64::MIN, uuid::Uuid::nil()));
                let rows = sqlx::query(
                    "SELECT p.id, p.epoch, p.created_at, m.device_id, m.user_id FROM \
                     (SELECT c.id, c.epoch, c.created_at FROM conversations c JOIN conversation_members own ON own.tenant_id = c.tenant_id AND own.conversation_id = c.id \
                      WHERE own.device_id = $1 AND c.tenant_id = $2 AND (c.created_at > $3 OR (c.created_at = $3 AND c.id > $4)) \
                      ORDER BY c.created_at, c.id LIMIT $5) p \
                     JOIN conversation_members m ON m.tenant_id = $2 AND m.conversation_id = p.id \
                     ORDER BY p.created_at, p.id, m.device_id",
                )
                .bind(device_id)
                .bind(tenant_id)
                .bind(after_ms)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<(i64, $crate::store::ConversationRecord)> = Vec::new();
                for row in &rows {
                    let id: uuid::Uuid = row.try_get("id")?;
                    let member = $crate::store::Member {
                        device_id: row.try_get("device_id")?,
                        user_id: row.try_get("user_id")?,
                    };
                    match out.last_mut() {
                        Some((_, c)) if c.id == id => c.members.push(member),
                        _ => out.push((
                            row.try_get("created_at")?,
                            $crate::store::ConversationRecord {
                                id,
                                tenant_id,
                                epoch: row.try_get("epoch")?,
                                members: vec![member],
                            },
                        )),
                    }
                }
                Ok(out)
            }

            async fn users_share_conversation(
                &self,
                tenant_id: uuid::Uuid,
                a: uuid::Uuid,
                b: uuid::Uuid,
            ) -> Result<bool, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT 1 AS one FROM conversation_members m1 JOIN conversation_members m2 \
                     ON m2.tenant_id = m1.tenant_id AND m2.conversation_id = m1.conversation_id \
                     WHERE m1.tenant_id = $1 AND m1.user_id = $2 AND m2.tenant_id = $1 AND m2.user_id = $3 LIMIT 1",
                )
                .bind(tenant_id)
                .bind(a)
                .bind(b)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn store_batch(
                &self,
                sends: &[$crate::store::NewSend],
                acks: &[$crate::store::Ack],
            ) -> Result<(Vec<$crate::store::SendOutcome>, Vec<u64>), $crate::store::StoreError> {
                delivery_batch(self, sends, acks).await
            }

            async fn find_send(
                &self,
                tenant_id: uuid::Uuid,
                sender_device_id: uuid::Uuid,
                client_msg_id: uuid::Uuid,
            ) -> Result<Option<$crate::store::StoredSend>, $crate::store::StoreError> {
                sends_lookup(&self.pool, tenant_id, sender_device_id, client_msg_id).await
            }

            async fn store_commit(
                &self,
                send: &$crate::store::NewSend,
                changes: &$crate::store::CommitChanges,
            ) -> Result<$crate::store::SendOutcome, $crate::store::StoreError> {
                use $crate::store::SendOutcome;
                let mut tx = self.begin_write().await?;
                if !claim_send(&mut tx, send).await? {
                    // Taken by an earlier send or commit, or a concurrent retry of this one
                    // that committed while the claim waited for it: answer it as a replay.
                    return match previous_send(&mut *tx, send).await? {
                        Some(previous) => Ok(SendOutcome::Stored(previous)),
                        None => Err($crate::store::StoreError::Conflict("sends: the id was taken and is gone".into())),
                    };
                }
                // Compare-and-swap on (conversation, epoch); the row lock orders commits.
                let swapped = sqlx::query("UPDATE conversations SET epoch = epoch + 1 WHERE id = $1 AND tenant_id = $2 AND epoch = $3")
                    .bind(send.conversation_id)
                    .bind(send.tenant_id)
                    .bind(send.epoch)
                    .execute(&mut *tx)
                    .await?;
                let (epoch, retention, storage, members) = match open_send(&mut tx, send).await? {
                    Ok(v) => v,
                    Err(outcome) => return Ok(outcome),
                };
                if swapped.rows_affected() != 1 {
                    // (A concurrent retry of this very commit waited at the claim above.)
                    return Ok(SendOutcome::StaleEpoch(epoch));
                }
                for added in &changes.add {
                    if members.iter().any(|m| m.device_id == added.device_id) {
                        return Ok(SendOutcome::BadMembership(added.device_id));
                    }
                }
                for removed in &changes.remove {
                    if !members.iter().any(|m| m.device_id == *removed)
                        && !is_revoked(&mut tx, send.tenant_id, *removed).await?
                    {
                        // (A revoked device left the member list when it was revoked; members
                        // still remove it from the MLS group.)
                        return Ok(SendOutcome::BadMembership(*removed));
                    }
                }
                let recipients: Vec<uuid::Uuid> = members
                    .iter()
                    .map(|m| m.device_id)
                    .filter(|d| *d != send.sender.device_id)
                    .collect();
                // Every device whose counter this commit moves is locked first, in one id
                // order, as batches of sends lock them: no deadlock against a send.
                let every: Vec<uuid::Uuid> = sorted_unique(
                    recipients.iter().copied().chain(changes.add.iter().map(|m| m.device_id)).collect(),
                );
                lock_counters(&mut tx, &every).await?;
                // The charge locks the payer's wallet: after the devices, as everywhere.
                if let Some(charge) = &send.charge {
                    let key = format!("commit:{}:{}", send.sender.device_id, send.client_msg_id);
                    let reference = Some(send.conversation_id.to_string());
                    if let Err(balance) = apply_charge(&mut tx, send.tenant_id, charge, key, reference, send.now_ms).await? {
                        return Ok(SendOutcome::InsufficientCredits(balance));
                    }
                }
                let expires = send.now_ms.saturating_add(retention);
                let commit = cloak_proto::delivery::EnvelopeKind::Commit;
                // Commits may go past the quota (to twice it) so that members stay in step;
                // a mailbox beyond that is left out, never the conversation.
                let ceiling = send.mailbox_quota.saturating_mul(2);
                let memory = $crate::store::memory_mailbox::for_storage(self.memory.as_deref(), &storage)?;
                let mut skipped = append_entries(
                    &mut tx,
                    send,
                    &recipients,
                    &$crate::store::sql_delivery::Entry { kind: commit, epoch, body: &send.body, expires_at: expires, ceiling, memory },
                )
                .await?;
                for removed in &changes.remove {
                    // The removal is done: the server stops proposing it.
                    for sql in [
                        "DELETE FROM conversation_members WHERE tenant_id = $1 AND conversation_id = $2 AND device_id = $3",
                        "DELETE FROM member_removals WHERE tenant_id = $1 AND conversation_id = $2 AND device_id = $3",
                    ] {
                        sqlx::query(sql)
                            .bind(send.tenant_id)
                            .bind(send.conversation_id)
                            .bind(removed)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let mut added: Vec<uuid::Uuid> = Vec::with_capacity(changes.add.len());
                for (i, member) in changes.add.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO conversation_members (conversation_id, device_id, tenant_id, user_id, joined_at, leaf_index) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(send.conversation_id)
                    .bind(member.device_id)
                    .bind(send.tenant_id)
                    .bind(member.user_id)
                    .bind(send.now_ms)
                    .bind(changes.leaves.get(i).map(|l| i64::from(*l)))
                    .execute(&mut *tx)
                    .await?;
                    added.push(member.device_id);
                }
                added.sort();
                if let Some(welcome) = &changes.welcome {
                    let kind = cloak_proto::delivery::EnvelopeKind::Welcome;
                    let entry = $crate::store::sql_delivery::Entry { kind, epoch, body: welcome, expires_at: expires, ceiling, memory };
                    skipped.extend(append_entries(&mut tx, send, &added, &entry).await?);
                }
                let mut all = recipients;
                all.extend(added);
                all.retain(|d| !skipped.contains(d));
                finish_send(&mut tx, send, epoch, all.len()).await?;
                tx.commit().await?;
                Ok(SendOutcome::Stored($crate::store::StoredSend {
                    recipients: all,
                    seqs: Vec::new(),
                    epoch,
                    sent_at_ms: send.now_ms,
                    duplicate: false,
                    skipped,
                }))
            }

            async fn fetch_mailbox_page(
                &self,
                tenant_id: uuid::Uuid,
                device_id: uuid::Uuid,
                after: i64,
                limit: i64,
                max_bytes: i64,
                now_ms: i64,
            ) -> Result<Vec<$crate::store::MailboxEntry>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT seq, conversation_id, sender_device_id, kind, epoch, body, sent_at, franking_tag, franking_stamp, viewable FROM \
                     (SELECT seq, conversation_id, sender_device_id, kind, epoch, body, sent_at, franking_tag, franking_stamp, viewable, \
                      SUM(LENGTH(body)) OVER (ORDER BY seq) - LENGTH(body) AS before_bytes FROM mailbox \
                      WHERE device_id = $1 AND tenant_id = $2 AND seq > $3 AND expires_at > $4 ORDER BY seq LIMIT $5) page \
                     WHERE before_bytes <= $6 ORDER BY seq",
                )
                .bind(device_id)
                .bind(tenant_id)
                .bind(after)
                .bind(now_ms)
                .bind(limit)
                .bind(max_bytes)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let kind: String = row.try_get("kind")?;
                    out.push($crate::store::MailboxEntry {
                        seq: row.try_get("seq")?,
                        conversation_id: row.try_get("conversation_id")?,
                        sender_device_id: row.try_get("sender_device_id")?,
                        kind: $crate::store::sql_delivery::parse_kind(&kind)?,
                        epoch: row.try_get("epoch")?,
                        body: row.try_get("body")?,
                        sent_at_ms: row.try_get("sent_at")?,
                        franking_tag: row.try_get("franking_tag")?,
                        franking_stamp: row.try_get("franking_stamp")?,
                        viewable: row.try_get::<Option<bool>, _>("viewable")?.unwrap_or(false),
                    });
                }
                // Memory-only entries, in the same sequence (a tenant may have switched
                // modes with entries waiting in either place).
                match self.memory.as_deref() {
                    Some(memory) => match memory.page(tenant_id, device_id, after, limit, max_bytes, now_ms).await {
                        Ok(held) => Ok($crate::store::memory_mailbox::merge_pages(out, held, limit, max_bytes)),
                        // Redis does not answer: a durable tenant is served from the database.
                        Err(e) => {
                            let storage: String = sqlx::query_scalar("SELECT mailbox_storage FROM tenants WHERE id = $1")
                                .bind(tenant_id)
                                .fetch_one(&self.pool)
                                .await?;
                            $crate::store::memory_mailbox::without_memory(out, &storage, e)
                        }
                    },
                    None => Ok(out),
                }
            }

            async fn purge_mailboxes(&self, now_ms: i64, sends_before_ms: i64) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                let rows = sqlx::query("DELETE FROM mailbox WHERE expires_at <= $1 RETURNING device_id")
                    .bind(now_ms)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut touched = std::collections::BTreeSet::new();
                for row in &rows {
                    touched.insert(row.try_get::<uuid::Uuid, _>("device_id")?);
                }
                for device in touched {
                    sqlx::query("UPDATE devices SET mailbox_depth = (SELECT COUNT(*) FROM mailbox WHERE device_id = $1) WHERE id = $1")
                        .bind(device)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE mailbox_acks SET deleted = 0 WHERE device_id = $1")
                        .bind(device)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM sends WHERE sent_at < $1")
                    .bind(sends_before_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
            }
        }
    };
}

pub(crate) use impl_delivery_store;
