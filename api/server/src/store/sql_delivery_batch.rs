//! Group commit: a batch of application messages and a batch of acknowledgements, each in
//! one transaction, written once for both backends (see `sql.rs`).
//!
//! A batch reads in one statement whatever its messages need (conversations with their
//! epochs, members, the senders' standing, blocks), applies its acknowledgements, claims
//! its send records and locks the recipients' mailbox counters in id order
//! (`sql_batch_claim.rs`), locks the payers' wallets, lets [`super::delivery_batch`]
//! decide every message in order, and writes the result with multi-row statements
//! (`sql_batch_writes.rs`). On PostgreSQL that is five round trips without acks or
//! charges: `BEGIN`, the read, the claim with its locks, the writes, `COMMIT`; SQLite runs
//! the claim, the locking read and each write as statements of their own, each a call on
//! its connection's thread.
//!
//! Lock order everywhere is send ids, then devices, then wallets, each by id in one run, so
//! batches and commits on several nodes cannot deadlock one another (a commit claims its
//! id before it locks anything else). The epoch is read without a lock, as a single send
//! always read it: a message checked against epoch e may land behind a commit to e + 1
//! that was accepted meanwhile, which members decrypt with the past epoch's secrets they
//! keep. (A share lock on the conversation rows would order them strictly, but costs every
//! batch a tuple write per conversation on PostgreSQL.)

use std::collections::HashMap;

use uuid::Uuid;

use super::delivery_batch::Routed;
use super::{MemoryMailbox, NewSend, SendOutcome, StoreError};

/// Most rows per multi-row statement: well under SQLite's 32,766 and PostgreSQL's 65,535
/// bind parameters with the widest row (14 columns).
pub(crate) const ROWS_PER_STATEMENT: usize = 512;

/// A run of rows for one statement, padded to a power-of-two length.
pub(crate) struct Padded<'a, T> {
    rows: &'a [T],
    pad: usize,
}

impl<'a, T> Padded<'a, T> {
    /// Rows in the statement, padding included.
    pub(crate) fn len(&self) -> usize {
        self.rows.len() + self.pad
    }

    /// The rows, then `pad` copies of the last one marked `false`: a statement's padding
    /// rows repeat a real row, so `IN` lists and `UPDATE … FROM (VALUES …)` are unchanged
    /// by them, and inserts leave them out with `WHERE` on the flag.
    pub(crate) fn flagged(&self) -> impl Iterator<Item = (&'a T, bool)> + '_ {
        let rows = self.rows;
        rows.iter().map(|r| (r, true)).chain(
            rows.last()
                .into_iter()
                .cycle()
                .take(self.pad)
                .map(|r| (r, false)),
        )
    }
}

/// Splits `items` into runs of at most [`ROWS_PER_STATEMENT`] rows, each padded to the
/// next power of two: one statement per run, and a statement has one of ten shapes
/// whatever the batch size, so both databases reuse their prepared statements instead of
/// parsing a new one per batch.
pub(crate) fn padded_chunks<T>(items: &[T]) -> impl Iterator<Item = Padded<'_, T>> {
    items.chunks(ROWS_PER_STATEMENT).map(|rows| Padded {
        rows,
        pad: rows.len().next_power_of_two() - rows.len(),
    })
}

/// `rows` (at most `size` of them) padded to exactly `size`: several lists that go into
/// one statement share one length, so the statement keeps one shape per power of two.
pub(crate) fn padded_to<T>(rows: &[T], size: usize) -> Padded<'_, T> {
    Padded {
        rows,
        pad: size.saturating_sub(rows.len()),
    }
}

/// `1` for a real row, `0` for padding.
pub(crate) fn flag(real: bool) -> i64 {
    i64::from(real)
}

macro_rules! impl_delivery_batch {
    ($store:ty) => {
        $crate::store::sql_batch_claim::impl_batch_claim!($store);
        $crate::store::sql_batch_writes::impl_batch_writes!($store);

        type BatchDb = <$store as $crate::store::sql::Backend>::Db;
        type BatchTx<'t> = sqlx::Transaction<'t, BatchDb>;

        /// `IN (…)` over ids, bound.
        fn push_ids(qb: &mut sqlx::QueryBuilder<BatchDb>, ids: &$crate::store::sql_delivery_batch::Padded<'_, uuid::Uuid>) {
            qb.push("(");
            let mut list = qb.separated(", ");
            for (id, _) in ids.flagged() {
                list.push_bind(*id);
            }
            list.push_unseparated(")");
        }

        fn sorted_unique(mut ids: Vec<uuid::Uuid>) -> Vec<uuid::Uuid> {
            ids.sort_unstable();
            ids.dedup();
            ids
        }

        /// A column of the batch's read that its kind of row always fills.
        fn need<'r, T>(row: &'r <BatchDb as sqlx::Database>::Row, column: &str) -> Result<T, $crate::store::StoreError>
        where
            T: sqlx::Decode<'r, BatchDb> + sqlx::Type<BatchDb>,
        {
            use sqlx::Row as _;
            row.try_get::<Option<T>, _>(column)?
                .ok_or_else(|| $crate::store::StoreError::Corrupt(format!("batch read: {column} is empty")))
        }

        /// Reads conversations, members, senders and blocks for a batch in one statement:
        /// four `SELECT`s joined by `UNION ALL` into one row shape (kind `k`, four ids, two
        /// numbers, a text and a flag), one round trip instead of four. The id lists share
        /// one padded length, so the statement has one shape per power of two.
        async fn load_batch(
            tx: &mut BatchTx<'_>,
            sends: &[$crate::store::NewSend],
        ) -> Result<$crate::store::delivery_batch::Loaded, $crate::store::StoreError> {
            use sqlx::Row as _;
            use $crate::store::delivery_batch::{ConversationRow, Loaded, SenderRow};
            use $crate::store::sql_delivery_batch::{padded_to, ROWS_PER_STATEMENT};
            // Every branch names its columns: a compound statement takes its names from the
            // first, and a later round may leave some branches out.
            const CONVERSATIONS: &str = "SELECT CAST(0 AS BIGINT) AS k, c.id AS u1, c.tenant_id AS u2, CAST(NULL AS uuid) AS u3, CAST(NULL AS uuid) AS u4, \
                c.epoch AS n1, t.retention_ms AS n2, t.mailbox_storage AS s, CAST(NULL AS BOOLEAN) AS f \
                FROM conversations c JOIN tenants t ON t.id = c.tenant_id WHERE c.id IN ";
            const MEMBERS: &str = "SELECT CAST(1 AS BIGINT) AS k, conversation_id AS u1, tenant_id AS u2, device_id AS u3, user_id AS u4, \
                CAST(NULL AS BIGINT) AS n1, CAST(NULL AS BIGINT) AS n2, CAST(NULL AS TEXT) AS s, CAST(NULL AS BOOLEAN) AS f \
                FROM conversation_members WHERE conversation_id IN ";
            const SENDERS: &str = "SELECT CAST(2 AS BIGINT) AS k, d.id AS u1, CAST(NULL AS uuid) AS u2, CAST(NULL AS uuid) AS u3, CAST(NULL AS uuid) AS u4, \
                CAST(NULL AS BIGINT) AS n1, CAST(NULL AS BIGINT) AS n2, d.status AS s, u.suspended AS f \
                FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id IN ";
            const BLOCKS: &str = "SELECT CAST(3 AS BIGINT) AS k, tenant_id AS u1, blocker_user_id AS u2, blocked_user_id AS u3, CAST(NULL AS uuid) AS u4, \
                CAST(NULL AS BIGINT) AS n1, CAST(NULL AS BIGINT) AS n2, CAST(NULL AS TEXT) AS s, CAST(NULL AS BOOLEAN) AS f \
                FROM blocks WHERE blocked_user_id IN ";
            let mut loaded = Loaded::default();
            let conversations = sorted_unique(sends.iter().map(|s| s.conversation_id).collect());
            let senders = sorted_unique(sends.iter().map(|s| s.sender.device_id).collect());
            let blocked = sorted_unique(sends.iter().map(|s| s.sender.user_id).collect());
            let longest = conversations.len().max(senders.len()).max(blocked.len());
            // Each list holds at most one id per message: one round, unless a batch may
            // hold more messages than a statement rows.
            for round in 0..longest.div_ceil(ROWS_PER_STATEMENT) {
                fn part(ids: &[uuid::Uuid], round: usize) -> &[uuid::Uuid] {
                    ids.chunks(ROWS_PER_STATEMENT).nth(round).unwrap_or(&[])
                }
                let branches = [
                    (CONVERSATIONS, part(&conversations, round)),
                    (MEMBERS, part(&conversations, round)),
                    (SENDERS, part(&senders, round)),
                    (BLOCKS, part(&blocked, round)),
                ];
                let size = branches.iter().map(|(_, ids)| ids.len()).max().unwrap_or(0).next_power_of_two();
                let mut qb = sqlx::QueryBuilder::<BatchDb>::new("");
                for (n, (select, ids)) in branches.iter().filter(|(_, ids)| !ids.is_empty()).enumerate() {
                    if n > 0 {
                        qb.push(" UNION ALL ");
                    }
                    qb.push(*select);
                    push_ids(&mut qb, &padded_to(ids, size));
                }
                for row in qb.build().fetch_all(&mut **tx).await? {
                    match row.try_get::<i64, _>("k")? {
                        0 => {
                            let tenant_id: uuid::Uuid = need(&row, "u2")?;
                            loaded.conversations.insert(
                                (tenant_id, need(&row, "u1")?),
                                ConversationRow {
                                    tenant_id,
                                    epoch: need(&row, "n1")?,
                                    retention_ms: need(&row, "n2")?,
                                    memory: $crate::store::memory_mailbox::storage_from(&need::<String>(&row, "s")?)?
                                        == cloak_proto::tenants::MailboxStorage::Memory,
                                },
                            );
                        }
                        1 => {
                            loaded.members.entry((need(&row, "u2")?, need(&row, "u1")?)).or_default().push($crate::store::Member {
                                device_id: need(&row, "u3")?,
                                user_id: need(&row, "u4")?,
                            });
                        }
                        2 => {
                            loaded.senders.insert(
                                need(&row, "u1")?,
                                SenderRow {
                                    approved: need::<String>(&row, "s")? == "approved",
                                    suspended: need(&row, "f")?,
                                },
                            );
                        }
                        _ => {
                            loaded.blocks.insert((need(&row, "u1")?, need(&row, "u2")?, need(&row, "u3")?));
                        }
                    }
                }
            }
            // Members in device-id order, as the fan-out expects.
            for members in loaded.members.values_mut() {
                members.sort_unstable_by_key(|m| m.device_id);
            }
            Ok(loaded)
        }

        /// The highest acknowledged sequence number per device (its tenant beside it).
        fn highest_acks(acks: &[$crate::store::Ack]) -> std::collections::BTreeMap<uuid::Uuid, (uuid::Uuid, i64)> {
            let mut highest: std::collections::BTreeMap<uuid::Uuid, (uuid::Uuid, i64)> = std::collections::BTreeMap::new();
            for a in acks {
                let e = highest.entry(a.device_id).or_insert((a.tenant_id, a.up_to));
                if a.tenant_id == e.0 {
                    e.1 = e.1.max(a.up_to);
                }
            }
            highest
        }

        /// Deletes acknowledged entries and adds them to their devices' counts of deleted
        /// entries; how many per device. On PostgreSQL one statement per run of devices (the
        /// delete, the count and its upsert as `WITH` parts); on SQLite a delete per run,
        /// then the upserts.
        async fn delete_acked(
            tx: &mut BatchTx<'_>,
            highest: &std::collections::BTreeMap<uuid::Uuid, (uuid::Uuid, i64)>,
        ) -> Result<std::collections::HashMap<uuid::Uuid, i64>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let mut deleted: std::collections::HashMap<uuid::Uuid, i64> = std::collections::HashMap::new();
            let rows: Vec<(uuid::Uuid, (uuid::Uuid, i64))> = highest.iter().map(|(d, v)| (*d, *v)).collect();
            if <$store as $crate::store::sql::Backend>::MODIFYING_WITH {
                for chunk in $crate::store::sql_delivery_batch::padded_chunks(&rows) {
                    let mut qb = sqlx::QueryBuilder::<BatchDb>::new("WITH d AS (DELETE FROM mailbox m USING (");
                    qb.push_values(chunk.flagged(), |mut row, ((device, (tenant, up_to)), _)| {
                        row.push_bind(*device).push_bind(*tenant).push_bind(*up_to);
                    });
                    qb.push(
                        ") AS v WHERE m.device_id = v.column1 AND m.tenant_id = v.column2 AND m.seq <= v.column3 RETURNING m.device_id), \
                         n AS (SELECT device_id, COUNT(*) AS deleted FROM d GROUP BY device_id), \
                         u AS (INSERT INTO mailbox_acks (device_id, deleted) SELECT device_id, deleted FROM n ORDER BY device_id \
                         ON CONFLICT (device_id) DO UPDATE SET deleted = mailbox_acks.deleted + excluded.deleted) \
                         SELECT device_id, deleted FROM n",
                    );
                    for row in qb.build().fetch_all(&mut **tx).await? {
                        deleted.insert(row.try_get("device_id")?, row.try_get("deleted")?);
                    }
                }
                return Ok(deleted);
            }
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(&rows) {
                let mut qb = sqlx::QueryBuilder::<BatchDb>::new("DELETE FROM mailbox WHERE ");
                let mut any = qb.separated(" OR ");
                for ((device, (tenant, up_to)), _) in chunk.flagged() {
                    any.push("(device_id = ")
                        .push_bind_unseparated(*device)
                        .push_unseparated(" AND tenant_id = ")
                        .push_bind_unseparated(*tenant)
                        .push_unseparated(" AND seq <= ")
                        .push_bind_unseparated(*up_to)
                        .push_unseparated(")");
                }
                qb.push(" RETURNING device_id");
                for row in qb.build().fetch_all(&mut **tx).await? {
                    *deleted.entry(row.try_get("device_id")?).or_insert(0) += 1;
                }
            }
            let mut counts: Vec<(uuid::Uuid, i64)> = deleted.iter().map(|(d, n)| (*d, *n)).collect();
            counts.sort_unstable();
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(&counts) {
                let mut qb = sqlx::QueryBuilder::<BatchDb>::new(
                    "INSERT INTO mailbox_acks (device_id, deleted) SELECT column1, column2 FROM (",
                );
                qb.push_values(chunk.flagged(), |mut row, ((device, n), real)| {
                    row.push_bind(*device)
                        .push_bind(*n)
                        .push_bind($crate::store::sql_delivery_batch::flag(real));
                });
                qb.push(") AS v WHERE column3 = 1 ON CONFLICT (device_id) DO UPDATE SET deleted = mailbox_acks.deleted + excluded.deleted");
                qb.build().execute(&mut **tx).await?;
            }
            Ok(deleted)
        }

        /// Stores a batch of application messages and applies a batch of acknowledgements,
        /// in one transaction; see the module documentation.
        async fn delivery_batch(
            store: &$store,
            sends: &[$crate::store::NewSend],
            acks: &[$crate::store::Ack],
        ) -> Result<(Vec<$crate::store::SendOutcome>, Vec<u64>), $crate::store::StoreError> {
            use sqlx::Row as _;
            use $crate::store::delivery_batch::{self as plan, Routed};
            use $crate::store::{Charge, SendOutcome};
            if sends.is_empty() && acks.is_empty() {
                return Ok((Vec::new(), Vec::new()));
            }
            let mut tx = store.begin_batch().await?;
            let loaded = if sends.is_empty() {
                plan::Loaded::default()
            } else {
                load_batch(&mut tx, sends).await?
            };
            let mut routed = plan::route(sends, &loaded);
            let mut memory_depths = $crate::store::sql_delivery_batch::memory_depths(store.memory.as_deref(), sends, &mut routed).await;
            let go: Vec<(usize, &plan::Route)> = routed
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match r {
                    Routed::Go(route) => Some((i, route)),
                    _ => None,
                })
                .collect();
            // Acknowledgements first, so the messages after them see the room they freed.
            // They touch only the mailbox and their own counts, never the device rows that
            // sends lock, so a device's acks and the sends to it never wait for each other.
            let highest = highest_acks(acks);
            let mut deleted = delete_acked(&mut tx, &highest).await?;
            // Entries in memory go too (a tenant may have switched modes with some waiting,
            // so every acknowledgement looks there). Their depth is their set's size, so
            // nothing is counted in the database.
            if let Some(memory) = store.memory.as_deref()
                && !highest.is_empty()
            {
                let list: Vec<(uuid::Uuid, uuid::Uuid, i64)> = highest.iter().map(|(d, (t, up_to))| (*t, *d, *up_to)).collect();
                match memory.ack(&list).await {
                    Ok(counts) => {
                        for ((_, device, _), n) in list.iter().zip(counts) {
                            let n = i64::try_from(n).unwrap_or(i64::MAX);
                            *deleted.entry(*device).or_insert(0) += n;
                            // The depths were read before: the room freed here counts too.
                            if let Some(depth) = memory_depths.get_mut(device) {
                                *depth = depth.saturating_sub(n).max(0);
                            }
                        }
                    }
                    // Redis does not answer: the database's part of each acknowledgement
                    // still holds. What Redis keeps expires with its TTL, and a device skips
                    // entries at or below its cursor, so a late copy is never shown twice.
                    Err(e) => tracing::warn!(error = %e, "memory mailbox acknowledgement skipped"),
                }
            }
            // The recipients of every routed message are locked, claimed or not: which ones
            // a retry's record holds back is only known from the claim, in the same statement
            // on PostgreSQL, and locking a replay's recipients too costs nothing.
            let devices = sorted_unique(go.iter().flat_map(|(_, r)| r.recipients.iter().copied()).collect());
            let (claimed, mut counters) = claim_and_lock(&mut tx, sends, &go, &devices).await?;
            let mut claimed_routes: Vec<Option<&plan::Route>> = vec![None; sends.len()];
            for (i, route) in &go {
                if claimed.contains(i) {
                    claimed_routes[*i] = Some(route);
                }
            }
            // Memory-only recipients: their depth adds the entries held in memory.
            let in_memory: std::collections::HashMap<uuid::Uuid, uuid::Uuid> = sends
                .iter()
                .zip(&claimed_routes)
                .filter_map(|(s, r)| r.filter(|r| r.memory).map(|r| (s.tenant_id, r)))
                .flat_map(|(tenant, r)| r.recipients.iter().map(move |d| (*d, tenant)))
                .collect();
            let memory = if in_memory.is_empty() {
                None
            } else {
                // Routed to memory only where Redis answered (`memory_depths`).
                let memory = store.memory.as_deref().ok_or_else(|| {
                    $crate::store::StoreError::Unavailable("the tenant's mailboxes are memory-only and this node has no Redis".into())
                })?;
                for (device, c) in counters.iter_mut() {
                    if let Some(depth) = memory_depths.get(device) {
                        c.depth = c.depth.saturating_add(*depth);
                    }
                }
                Some(memory)
            };
            let before: std::collections::HashMap<uuid::Uuid, i64> =
                counters.iter().map(|(d, c)| (*d, c.seq)).collect();
            let wallets = sorted_unique(
                sends
                    .iter()
                    .zip(&claimed_routes)
                    .filter(|(_, r)| r.is_some())
                    .filter_map(|(s, _)| match &s.charge {
                        Some(Charge::Prepaid { wallet_id, .. }) => Some(*wallet_id),
                        _ => None,
                    })
                    .collect(),
            );
            let mut balances = std::collections::HashMap::with_capacity(wallets.len());
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(&wallets) {
                let mut qb = sqlx::QueryBuilder::<BatchDb>::new("SELECT id, tenant_id, balance FROM wallets WHERE id IN ");
                push_ids(&mut qb, &chunk);
                qb.push(" ORDER BY id");
                qb.push(<$store as $crate::store::sql::Backend>::LOCK_ROWS);
                for row in qb.build().fetch_all(&mut *tx).await? {
                    let id: uuid::Uuid = row.try_get("id")?;
                    let tenant: uuid::Uuid = row.try_get("tenant_id")?;
                    // A wallet is only ever charged for its own tenant's sends.
                    if sends.iter().any(|s| s.tenant_id == tenant) {
                        balances.insert(id, row.try_get::<i64, _>("balance")?);
                    }
                }
            }
            let alloc = plan::allocate(sends, &claimed_routes, &mut counters, balances);
            let moved: Vec<(uuid::Uuid, i64, i64)> = alloc
                .counters
                .iter()
                .map(|(d, c)| {
                    let added = if in_memory.contains_key(d) { 0 } else { c.seq - before.get(d).copied().unwrap_or(c.seq) };
                    (*d, c.seq, added)
                })
                .collect();
            let (queued, durable): (Vec<_>, Vec<_>) = alloc.entries.iter().copied().partition(|e| in_memory.contains_key(&e.device_id));
            let mut writes = Vec::new();
            counter_parts(&mut writes, &moved);
            entry_parts(&mut writes, sends, &claimed_routes, &durable);
            debit_parts(&mut writes, sends, &alloc.debits, &alloc.balances);
            meter_parts(&mut writes, sends, &alloc.meters);
            run_writes(&mut tx, writes).await?;
            for d in alloc.debits.iter().filter(|d| d.crossed_threshold.is_some()) {
                let send = &sends[d.send];
                let wallet = if d.wallet_id == send.tenant_id { "tenant".to_owned() } else { d.wallet_id.to_string() };
                let payload = cloak_proto::events::body(&cloak_proto::events::WalletLowBalanceEvent {
                    kind: Default::default(),
                    created_at_ms: send.now_ms,
                    data: cloak_proto::events::WalletLowBalance {
                        wallet,
                        balance: d.balance_after,
                        threshold: d.crossed_threshold.unwrap_or_default(),
                    },
                });
                enqueue_webhook_tx(&mut tx, send.tenant_id, "wallet.low_balance", &payload, send.now_ms).await?;
            }
            // Memory entries last, just before the commit: a Redis failure rolls it back.
            if let Some(memory) = memory {
                let rows: Vec<$crate::store::Queued> = queued
                    .iter()
                    .map(|e| {
                        let send = &sends[e.send];
                        let expires_at = claimed_routes[e.send].map_or(send.now_ms, |r| r.expires_at);
                        $crate::store::Queued {
                            tenant_id: send.tenant_id,
                            device_id: e.device_id,
                            seq: e.seq,
                            ttl_ms: expires_at.saturating_sub(send.now_ms),
                            member: $crate::store::memory_mailbox::encode(&$crate::store::EntryParts {
                                tenant_id: send.tenant_id,
                                seq: e.seq,
                                conversation_id: send.conversation_id,
                                sender_device_id: send.sender.device_id,
                                kind: cloak_proto::delivery::EnvelopeKind::Application,
                                epoch: claimed_routes[e.send].map_or(send.epoch, |r| r.epoch),
                                body: &send.body,
                                sent_at_ms: send.now_ms,
                                expires_at_ms: expires_at,
                                franking: send.franking.as_ref().map(|f| (f.0.as_slice(), f.1.as_slice())),
                                viewable: send.viewable,
                            }),
                        }
                    })
                    .collect();
                memory.put(&rows).await?;
            }
            // Claimed but refused (402, full mailbox): their records go again.
            for i in &alloc.unclaim {
                sqlx::query("DELETE FROM sends WHERE sender_device_id = $1 AND client_msg_id = $2")
                    .bind(sends[*i].sender.device_id)
                    .bind(sends[*i].client_msg_id)
                    .execute(&mut *tx)
                    .await?;
            }
            // Routed but not claimed: an earlier or concurrent send holds the record.
            let mut replays = std::collections::HashMap::new();
            for (i, _) in go.iter().filter(|(i, _)| !claimed.contains(i)) {
                let send = &sends[*i];
                let previous = sends_lookup(&mut *tx, send.tenant_id, send.sender.device_id, send.client_msg_id).await?;
                replays.insert(*i, previous);
            }
            tx.commit().await?;

            let mut outcomes: Vec<SendOutcome> = Vec::with_capacity(sends.len());
            for (i, r) in routed.iter().enumerate() {
                let outcome = match r {
                    Routed::Refused(o) => o.clone(),
                    Routed::SameAs(first) => match outcomes.get(*first) {
                        Some(o) => plan::repeat_of(o),
                        None => return Err($crate::store::StoreError::Corrupt("batch repeat before its first".into())),
                    },
                    Routed::Go(_) => match (&alloc.outcomes[i], replays.remove(&i)) {
                        (Some(o), _) => o.clone(),
                        (None, Some(Some(previous))) => SendOutcome::Stored(previous),
                        // Its record vanished between the conflict and the look-up (purged):
                        // the caller may retry.
                        (None, _) => return Err($crate::store::StoreError::Corrupt("send record conflict without a record".into())),
                    },
                };
                outcomes.push(outcome);
            }
            // Each device's count goes to its first acknowledgement in the batch.
            let acked = acks
                .iter()
                .map(|a| u64::try_from(deleted.remove(&a.device_id).unwrap_or(0)).unwrap_or(0))
                .collect();
            Ok((outcomes, acked))
        }

    };
}

pub(crate) use impl_delivery_batch;

/// The depths of the memory-only recipients' mailboxes, read from Redis before anything is
/// claimed. Where Redis does not answer (or this node has none), the messages to memory-only
/// tenants are refused one by one with [`SendOutcome::StorageUnavailable`], never the whole
/// batch: the others go to the database as usual.
pub(crate) async fn memory_depths(
    memory: Option<&dyn MemoryMailbox>,
    sends: &[NewSend],
    routed: &mut [Routed],
) -> HashMap<Uuid, i64> {
    let mut list: Vec<(Uuid, Uuid)> = sends
        .iter()
        .zip(routed.iter())
        .filter_map(|(s, r)| match r {
            Routed::Go(route) if route.memory => Some((s.tenant_id, route)),
            _ => None,
        })
        .flat_map(|(tenant, route)| route.recipients.iter().map(move |d| (tenant, *d)))
        .collect();
    if list.is_empty() {
        return HashMap::new();
    }
    list.sort_unstable();
    list.dedup();
    let depths = match memory {
        Some(memory) => memory.depths(&list).await,
        None => Err(StoreError::Unavailable(
            "the tenant's mailboxes are memory-only and this node has no Redis".into(),
        )),
    };
    match depths {
        Ok(depths) => list.iter().map(|(_, d)| *d).zip(depths).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "memory mailboxes unreachable: their messages are refused");
            for r in routed.iter_mut() {
                if matches!(r, Routed::Go(route) if route.memory) {
                    *r = Routed::Refused(SendOutcome::StorageUnavailable);
                }
            }
            HashMap::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_are_padded_to_powers_of_two_with_copies_of_the_last_row() {
        let items: Vec<u32> = (0..1300).collect();
        let runs: Vec<Vec<(u32, bool)>> = super::padded_chunks(&items)
            .map(|p| p.flagged().map(|(v, real)| (*v, real)).collect())
            .collect();
        let sizes: Vec<usize> = runs.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![512, 512, 512]);
        let real: Vec<u32> = runs
            .iter()
            .flatten()
            .filter(|(_, r)| *r)
            .map(|(v, _)| *v)
            .collect();
        assert_eq!(real, items);
        assert!(runs[2][276..].iter().all(|(v, r)| *v == 1299 && !*r));
        assert_eq!(super::padded_chunks::<u32>(&[]).count(), 0);
        let three: Vec<(u8, bool)> = super::padded_chunks(&[1u8, 2, 3])
            .flat_map(|p| p.flagged().map(|(v, r)| (*v, r)).collect::<Vec<_>>())
            .collect();
        assert_eq!(three, vec![(1, true), (2, true), (3, true), (3, false)]);
    }
}
