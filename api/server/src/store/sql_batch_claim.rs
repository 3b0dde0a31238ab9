//! Claiming a batch's send records and locking its recipients' mailbox counters.
//!
//! The claim is one `INSERT … ON CONFLICT DO NOTHING RETURNING` per run of rows: a record
//! that already exists marks a retry, answered as a replay. The counters are read with
//! their rows locked in id order (PostgreSQL; SQLite's write transaction holds the whole
//! database). On PostgreSQL both go as one statement when they fit one run each: the claim
//! as a data-modifying `WITH` part, the locking read as another, their rows joined by
//! `UNION ALL` under a kind column. The claim still runs before the locks are taken, as
//! when they were two statements, and the devices are still locked in id order before any
//! wallet. Send ids are claimed in key order, so two batches holding the same ids wait for
//! each other in one direction only.

macro_rules! impl_batch_claim {
    ($store:ty) => {
        /// Pushes the claim of `chunk` (index, route), returning the keys it inserted.
        fn push_claim(
            qb: &mut sqlx::QueryBuilder<BatchDb>,
            sends: &[$crate::store::NewSend],
            chunk: &$crate::store::sql_delivery_batch::Padded<'_, (usize, &$crate::store::delivery_batch::Route)>,
        ) {
            qb.push(
                "INSERT INTO sends (sender_device_id, client_msg_id, tenant_id, conversation_id, epoch, recipients, sent_at) \
                 SELECT column1, column2, column3, column4, column5, column6, column7 FROM (",
            );
            qb.push_values(chunk.flagged(), |mut row, ((i, route), real)| {
                let send = &sends[*i];
                row.push_bind(send.sender.device_id)
                    .push_bind(send.client_msg_id)
                    .push_bind(send.tenant_id)
                    .push_bind(send.conversation_id)
                    .push_bind(route.epoch)
                    .push_bind(i64::try_from(route.recipients.len()).unwrap_or(i64::MAX))
                    .push_bind(send.now_ms)
                    .push_bind($crate::store::sql_delivery_batch::flag(real));
            });
            qb.push(") AS v WHERE column8 = 1");
            qb.push(" ON CONFLICT (sender_device_id, client_msg_id) DO NOTHING RETURNING sender_device_id, client_msg_id");
        }

        /// Pushes the locking read of the counters of `chunk` (device ids): their next
        /// sequence number and their depth net of acknowledgements, which are counted apart
        /// (never locked here).
        fn push_lock(qb: &mut sqlx::QueryBuilder<BatchDb>, chunk: &$crate::store::sql_delivery_batch::Padded<'_, uuid::Uuid>) {
            qb.push(
                "SELECT d.id, d.mailbox_seq, d.mailbox_depth - COALESCE(a.deleted, 0) AS mailbox_depth \
                 FROM devices d LEFT JOIN mailbox_acks a ON a.device_id = d.id WHERE d.id IN ",
            );
            push_ids(qb, chunk);
            qb.push(" ORDER BY d.id");
            qb.push(<$store as $crate::store::sql::Backend>::LOCK_DEVICES);
        }

        /// The send records' keys to the messages' indexes in the batch.
        fn claim_keys(
            sends: &[$crate::store::NewSend],
            go: &[(usize, &$crate::store::delivery_batch::Route)],
        ) -> std::collections::HashMap<(uuid::Uuid, uuid::Uuid), usize> {
            go.iter().map(|(i, _)| ((sends[*i].sender.device_id, sends[*i].client_msg_id), *i)).collect()
        }

        /// Inserts the send records of `go` (index, route), then locks and reads the counters
        /// of `devices` (sorted, unique). Returns the indexes this batch claimed (a record that
        /// already existed belongs to an earlier or concurrent send) and the counters.
        async fn claim_and_lock(
            tx: &mut BatchTx<'_>,
            sends: &[$crate::store::NewSend],
            go: &[(usize, &$crate::store::delivery_batch::Route)],
            devices: &[uuid::Uuid],
        ) -> Result<
            (
                std::collections::HashSet<usize>,
                std::collections::HashMap<uuid::Uuid, $crate::store::delivery_batch::MailboxCounter>,
            ),
            $crate::store::StoreError,
        > {
            use sqlx::Row as _;
            use $crate::store::sql_delivery_batch::{padded_to, ROWS_PER_STATEMENT};
            // Claimed in key order, as the devices are locked in id order: two batches on
            // two nodes holding one sender's two ids in opposite orders (a client retrying
            // on another node) would otherwise each wait for the other's first insert.
            let mut go = go.to_vec();
            go.sort_by_key(|(i, _)| (sends[*i].sender.device_id, sends[*i].client_msg_id));
            let go = go.as_slice();
            let one_statement = <$store as $crate::store::sql::Backend>::MODIFYING_WITH
                && !go.is_empty()
                && !devices.is_empty()
                && go.len() <= ROWS_PER_STATEMENT
                && devices.len() <= ROWS_PER_STATEMENT;
            if !one_statement {
                let claimed = claim_sends(tx, sends, go).await?;
                let counters = lock_counters(tx, devices).await?;
                return Ok((claimed, counters));
            }
            // Both lists padded to one length: one statement shape per power of two.
            let size = go.len().max(devices.len()).next_power_of_two();
            let mut qb = sqlx::QueryBuilder::<BatchDb>::new("WITH c AS (");
            push_claim(&mut qb, sends, &padded_to(go, size));
            qb.push("), l AS (");
            push_lock(&mut qb, &padded_to(devices, size));
            qb.push(
                ") SELECT CAST(0 AS BIGINT) AS k, sender_device_id AS u, client_msg_id AS m, CAST(NULL AS BIGINT) AS seq, CAST(NULL AS BIGINT) AS depth FROM c \
                 UNION ALL SELECT CAST(1 AS BIGINT), id, CAST(NULL AS uuid), mailbox_seq, mailbox_depth FROM l",
            );
            let keys = claim_keys(sends, go);
            let mut claimed = std::collections::HashSet::with_capacity(go.len());
            let mut counters = std::collections::HashMap::with_capacity(devices.len());
            for row in qb.build().fetch_all(&mut **tx).await? {
                if row.try_get::<i64, _>("k")? == 0 {
                    let key: (uuid::Uuid, uuid::Uuid) = (row.try_get("u")?, need(&row, "m")?);
                    if let Some(i) = keys.get(&key) {
                        claimed.insert(*i);
                    }
                } else {
                    counters.insert(
                        row.try_get("u")?,
                        $crate::store::delivery_batch::MailboxCounter {
                            seq: need(&row, "seq")?,
                            depth: need(&row, "depth")?,
                        },
                    );
                }
            }
            Ok((claimed, counters))
        }

        /// Inserts the send records of `go` (index, route), a statement per run of rows.
        async fn claim_sends(
            tx: &mut BatchTx<'_>,
            sends: &[$crate::store::NewSend],
            go: &[(usize, &$crate::store::delivery_batch::Route)],
        ) -> Result<std::collections::HashSet<usize>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let keys = claim_keys(sends, go);
            let mut claimed = std::collections::HashSet::with_capacity(go.len());
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(go) {
                let mut qb = sqlx::QueryBuilder::<BatchDb>::new("");
                push_claim(&mut qb, sends, &chunk);
                for row in qb.build().fetch_all(&mut **tx).await? {
                    let key: (uuid::Uuid, uuid::Uuid) = (row.try_get("sender_device_id")?, row.try_get("client_msg_id")?);
                    if let Some(i) = keys.get(&key) {
                        claimed.insert(*i);
                    }
                }
            }
            Ok(claimed)
        }

        /// Locks and reads the mailbox counters of `devices` (sorted, unique), a statement
        /// per run of ids.
        async fn lock_counters(
            tx: &mut BatchTx<'_>,
            devices: &[uuid::Uuid],
        ) -> Result<std::collections::HashMap<uuid::Uuid, $crate::store::delivery_batch::MailboxCounter>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let mut out = std::collections::HashMap::with_capacity(devices.len());
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(devices) {
                let mut qb = sqlx::QueryBuilder::<BatchDb>::new("");
                push_lock(&mut qb, &chunk);
                for row in qb.build().fetch_all(&mut **tx).await? {
                    out.insert(
                        row.try_get("id")?,
                        $crate::store::delivery_batch::MailboxCounter {
                            seq: row.try_get("mailbox_seq")?,
                            depth: row.try_get("mailbox_depth")?,
                        },
                    );
                }
            }
            Ok(out)
        }
    };
}

pub(crate) use impl_batch_claim;
