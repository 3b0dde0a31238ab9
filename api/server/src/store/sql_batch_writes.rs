//! The write phase of a group-commit batch: the counters, mailbox entries, ledger entries,
//! balances and meter rows a planned batch decided, as statement parts.
//!
//! Each part is one multi-row statement over at most [`super::sql_delivery_batch::ROWS_PER_STATEMENT`]
//! rows. PostgreSQL runs the parts of a batch as one statement, each a data-modifying
//! `WITH` part (`WITH w0 AS (UPDATE …), w1 AS (INSERT …) SELECT 1`), so the whole write
//! phase costs one round trip; PostgreSQL runs every data-modifying part exactly once
//! whether or not the final `SELECT` reads it. The parts touch different tables (and a
//! table's rows once), so running them together changes nothing they do. SQLite has no
//! data-modifying `WITH`; it runs the parts one by one, each a call on the connection's
//! worker thread with no network in between.

/// Most bind parameters in one packed statement: under PostgreSQL's 65,535 with room for
/// the widest part (512 rows of 14 columns).
pub(crate) const BINDS_PER_STATEMENT: usize = 32_000;

macro_rules! impl_batch_writes {
    ($store:ty) => {
        /// One part of the write phase: its bind count and what it pushes.
        type WritePart<'q> = (
            usize,
            Box<dyn FnOnce(&mut sqlx::QueryBuilder<BatchDb>) + Send + 'q>,
        );

        /// Runs the parts in order: packed into as few statements as the bind limit allows
        /// where the backend has data-modifying `WITH`, else one statement each.
        async fn run_writes<'q>(
            tx: &mut BatchTx<'_>,
            parts: Vec<WritePart<'q>>,
        ) -> Result<(), $crate::store::StoreError> {
            if !<$store as $crate::store::sql::Backend>::MODIFYING_WITH {
                for (_, push) in parts {
                    let mut qb = sqlx::QueryBuilder::<BatchDb>::new("");
                    push(&mut qb);
                    qb.build().execute(&mut **tx).await?;
                }
                return Ok(());
            }
            let mut parts = parts.into_iter().peekable();
            while parts.peek().is_some() {
                let mut qb = sqlx::QueryBuilder::<BatchDb>::new("WITH ");
                let (mut binds, mut n) = (0usize, 0usize);
                while let Some((b, _)) = parts.peek() {
                    if n > 0 && binds + b > $crate::store::sql_batch_writes::BINDS_PER_STATEMENT {
                        break;
                    }
                    let Some((b, push)) = parts.next() else { break };
                    if n > 0 {
                        qb.push(", ");
                    }
                    qb.push(format_args!("w{n} AS ("));
                    push(&mut qb);
                    qb.push(")");
                    binds += b;
                    n += 1;
                }
                qb.push(" SELECT 1");
                qb.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        /// Sets each device's next sequence number and adds the entries it got to its depth:
        /// (device, new sequence number, entries added).
        fn counter_parts<'q>(parts: &mut Vec<WritePart<'q>>, counters: &'q [(uuid::Uuid, i64, i64)]) {
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(counters) {
                parts.push((
                    chunk.len() * 3,
                    Box::new(move |qb: &mut sqlx::QueryBuilder<BatchDb>| {
                        qb.push("UPDATE devices SET mailbox_seq = v.column2, mailbox_depth = mailbox_depth + v.column3 FROM (");
                        qb.push_values(chunk.flagged(), |mut row, ((id, seq, added), _)| {
                            row.push_bind(*id).push_bind(*seq).push_bind(*added);
                        });
                        qb.push(") AS v WHERE devices.id = v.column1");
                    }),
                ));
            }
        }

        /// The batch's mailbox entries that go to the database.
        fn entry_parts<'q>(
            parts: &mut Vec<WritePart<'q>>,
            sends: &'q [$crate::store::NewSend],
            routes: &'q [Option<&'q $crate::store::delivery_batch::Route>],
            entries: &'q [$crate::store::delivery_batch::EntryRow],
        ) {
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(entries) {
                parts.push((
                    chunk.len() * 14,
                    Box::new(move |qb: &mut sqlx::QueryBuilder<BatchDb>| {
                        qb.push(
                            "INSERT INTO mailbox (device_id, seq, tenant_id, conversation_id, sender_device_id, kind, epoch, body, sent_at, expires_at, franking_tag, franking_stamp, viewable) \
                             SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9, column10, column11, column12, column13 FROM (",
                        );
                        qb.push_values(chunk.flagged(), |mut row, (e, real)| {
                            let send = &sends[e.send];
                            let route = routes[e.send];
                            row.push_bind(e.device_id)
                                .push_bind(e.seq)
                                .push_bind(send.tenant_id)
                                .push_bind(send.conversation_id)
                                .push_bind(send.sender.device_id)
                                .push_bind(cloak_proto::delivery::EnvelopeKind::Application.as_str())
                                .push_bind(route.map_or(send.epoch, |r| r.epoch))
                                .push_bind(send.body.clone())
                                .push_bind(send.now_ms)
                                .push_bind(route.map_or(send.now_ms, |r| r.expires_at))
                                .push_bind(send.franking.as_ref().map(|f| f.0.clone()))
                                .push_bind(send.franking.as_ref().map(|f| f.1.clone()))
                                .push_bind(send.viewable)
                                .push_bind($crate::store::sql_delivery_batch::flag(real));
                        });
                        qb.push(") AS v WHERE column14 = 1");
                    }),
                ));
            }
        }

        /// The batch's ledger debits and the wallets' new balances.
        fn debit_parts<'q>(
            parts: &mut Vec<WritePart<'q>>,
            sends: &'q [$crate::store::NewSend],
            debits: &'q [$crate::store::delivery_batch::DebitRow],
            balances: &'q [(uuid::Uuid, i64)],
        ) {
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(debits) {
                parts.push((
                    chunk.len() * 12,
                    Box::new(move |qb: &mut sqlx::QueryBuilder<BatchDb>| {
                        qb.push(
                            "INSERT INTO ledger_entries (tenant_id, wallet_id, delta, balance_after, kind, reason, actor, idempotency_key, reference, created_at, user_id) \
                             SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9, column10, column11 FROM (",
                        );
                        qb.push_values(chunk.flagged(), |mut row, (d, real)| {
                            let send = &sends[d.send];
                            row.push_bind(send.tenant_id)
                                .push_bind(d.wallet_id)
                                .push_bind(d.delta)
                                .push_bind(d.balance_after)
                                .push_bind(d.kind)
                                .push_bind(d.tier)
                                .push_bind(d.actor.clone())
                                .push_bind(format!("msg:{}:{}", send.sender.device_id, send.client_msg_id))
                                .push_bind(send.client_msg_id.to_string())
                                .push_bind(send.now_ms)
                                .push_bind(d.user_id)
                                .push_bind($crate::store::sql_delivery_batch::flag(real));
                        });
                        qb.push(") AS v WHERE column12 = 1");
                    }),
                ));
            }
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(balances) {
                parts.push((
                    chunk.len() * 2,
                    Box::new(move |qb: &mut sqlx::QueryBuilder<BatchDb>| {
                        qb.push("UPDATE wallets SET balance = v.column2 FROM (");
                        qb.push_values(chunk.flagged(), |mut row, ((id, balance), _)| {
                            row.push_bind(*id).push_bind(*balance);
                        });
                        qb.push(") AS v WHERE wallets.id = v.column1");
                    }),
                ));
            }
        }

        /// The batch's usage meter events: (send index, customer, event name, value).
        fn meter_parts<'q>(
            parts: &mut Vec<WritePart<'q>>,
            sends: &'q [$crate::store::NewSend],
            meters: &'q [(usize, String, String, i64)],
        ) {
            for chunk in $crate::store::sql_delivery_batch::padded_chunks(meters) {
                parts.push((
                    chunk.len() * 7,
                    Box::new(move |qb: &mut sqlx::QueryBuilder<BatchDb>| {
                        qb.push(
                            "INSERT INTO meter_outbox (tenant_id, customer_id, event_name, value, occurred_at, next_attempt_at) \
                             SELECT column1, column2, column3, column4, column5, column6 FROM (",
                        );
                        qb.push_values(chunk.flagged(), |mut row, ((i, customer, event, value), real)| {
                            let send = &sends[*i];
                            row.push_bind(send.tenant_id)
                                .push_bind(customer.clone())
                                .push_bind(event.clone())
                                .push_bind(*value)
                                .push_bind(send.now_ms)
                                .push_bind(send.now_ms)
                                .push_bind($crate::store::sql_delivery_batch::flag(real));
                        });
                        qb.push(") AS v WHERE column7 = 1");
                    }),
                ));
            }
        }
    };
}

pub(crate) use impl_batch_writes;
