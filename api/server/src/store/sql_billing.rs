//! Billing and webhooks, written once for both backends (see `sql.rs`). The ledger helpers
//! are free functions so the send path (`sql_delivery.rs`) charges in its own transaction.

pub(crate) const LEDGER_COLUMNS: &str = "id, tenant_id, wallet_id, delta, balance_after, kind, reason, actor, idempotency_key, reference, created_at";
pub(crate) const DELIVERY_COLUMNS: &str = "id, tenant_id, event_type, payload, attempts, next_attempt_at, delivered_at, last_status, last_error, created_at";

macro_rules! ledger_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::LedgerEntry {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            wallet_id: row.try_get("wallet_id")?,
            delta: row.try_get("delta")?,
            balance_after: row.try_get("balance_after")?,
            kind: row.try_get("kind")?,
            reason: row.try_get("reason")?,
            actor: row.try_get("actor")?,
            idempotency_key: row.try_get("idempotency_key")?,
            reference: row.try_get("reference")?,
            created_at_ms: row.try_get("created_at")?,
        }
    }};
}

macro_rules! delivery_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::WebhookDelivery {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            event_type: row.try_get("event_type")?,
            payload: row.try_get("payload")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at_ms: row.try_get("next_attempt_at")?,
            delivered_at_ms: row.try_get("delivered_at")?,
            last_status: row.try_get("last_status")?,
            last_error: row.try_get("last_error")?,
            created_at_ms: row.try_get("created_at")?,
        }
    }};
}

macro_rules! impl_billing_store {
    ($store:ty) => {
        type BillingTx<'t> = sqlx::Transaction<'t, <$store as $crate::store::sql::Backend>::Db>;

        /// Appends a ledger entry and moves the wallet's balance in `tx`. The wallet row is
        /// locked first, so concurrent entries on one wallet (and their idempotency checks)
        /// run one after another; the balance never goes below zero.
        async fn ledger_post(
            tx: &mut BillingTx<'_>,
            e: &$crate::store::NewLedgerEntry,
        ) -> Result<$crate::store::LedgerOutcome, $crate::store::StoreError> {
            use $crate::store::LedgerOutcome;
            use sqlx::Row as _;
            if e.delta > 0 {
                sqlx::query("INSERT INTO wallets (id, tenant_id, balance, created_at) VALUES ($1, $2, 0, $3) ON CONFLICT (id) DO NOTHING")
                    .bind(e.wallet_id)
                    .bind(e.tenant_id)
                    .bind(e.now_ms)
                    .execute(&mut **tx)
                    .await?;
            }
            let locked = sqlx::query("UPDATE wallets SET balance = balance WHERE id = $1 AND tenant_id = $2 RETURNING balance")
                .bind(e.wallet_id)
                .bind(e.tenant_id)
                .fetch_optional(&mut **tx)
                .await?;
            let balance: i64 = match &locked {
                Some(row) => row.try_get("balance")?,
                None => 0,
            };
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM ledger_entries WHERE tenant_id = $1 AND idempotency_key = $2",
                $crate::store::sql_billing::LEDGER_COLUMNS
            ));
            if let Some(row) = sqlx::query(sql).bind(e.tenant_id).bind(&e.idempotency_key).fetch_optional(&mut **tx).await? {
                return Ok(LedgerOutcome::Replayed(ledger_from_row!(&row)));
            }
            let mut delta = e.delta;
            if balance.saturating_add(delta) < 0 {
                if !e.clamp {
                    return Ok(LedgerOutcome::Insufficient(balance));
                }
                delta = -balance;
            }
            let after = balance + delta;
            // The entry is claimed before the balance moves. The key is unique per tenant,
            // not per wallet, so a racing entry with the same key on another wallet is not
            // ordered by the wallet lock: the insert waits for it and, if it committed,
            // inserts nothing, and this answers as the replay it is.
            let row = sqlx::query(
                "INSERT INTO ledger_entries (tenant_id, wallet_id, delta, balance_after, kind, reason, actor, idempotency_key, reference, created_at, user_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id",
            )
            .bind(e.tenant_id)
            .bind(e.wallet_id)
            .bind(delta)
            .bind(after)
            .bind(&e.kind)
            .bind(&e.reason)
            .bind(&e.actor)
            .bind(&e.idempotency_key)
            .bind(&e.reference)
            .bind(e.now_ms)
            .bind(e.user_id.or((e.wallet_id != e.tenant_id).then_some(e.wallet_id)))
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM ledger_entries WHERE tenant_id = $1 AND idempotency_key = $2",
                    $crate::store::sql_billing::LEDGER_COLUMNS
                ));
                let row = sqlx::query(sql).bind(e.tenant_id).bind(&e.idempotency_key).fetch_one(&mut **tx).await?;
                return Ok(LedgerOutcome::Replayed(ledger_from_row!(&row)));
            };
            if delta != 0 {
                sqlx::query("UPDATE wallets SET balance = balance + $3 WHERE id = $1 AND tenant_id = $2")
                    .bind(e.wallet_id)
                    .bind(e.tenant_id)
                    .bind(delta)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(LedgerOutcome::Applied($crate::store::LedgerEntry {
                id: row.try_get("id")?,
                tenant_id: e.tenant_id,
                wallet_id: e.wallet_id,
                delta,
                balance_after: after,
                kind: e.kind.clone(),
                reason: e.reason.clone(),
                actor: e.actor.clone(),
                idempotency_key: e.idempotency_key.clone(),
                reference: e.reference.clone(),
                created_at_ms: e.now_ms,
            }))
        }

        /// Queues a webhook event in `tx` when the tenant has an endpoint.
        async fn enqueue_webhook_tx(
            tx: &mut BillingTx<'_>,
            tenant_id: uuid::Uuid,
            event_type: &str,
            payload: &str,
            now_ms: i64,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant_id, event_type, payload, attempts, next_attempt_at, created_at) \
                 SELECT $1, $2, $3, $4, 0, $5, $5 WHERE EXISTS (SELECT 1 FROM tenant_webhooks WHERE tenant_id = $2)",
            )
            .bind(uuid::Uuid::new_v4())
            .bind(tenant_id)
            .bind(event_type)
            .bind(payload)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Charges for an action in `tx`: debits the wallet (Err with the balance when it
        /// cannot pay; a low-balance webhook when the debit crosses the threshold) or
        /// records a meter event. `key` makes the debit idempotent.
        async fn apply_charge(
            tx: &mut BillingTx<'_>,
            tenant_id: uuid::Uuid,
            charge: &$crate::store::Charge,
            key: String,
            reference: Option<String>,
            now_ms: i64,
        ) -> Result<Result<(), i64>, $crate::store::StoreError> {
            use $crate::store::{Charge, LedgerOutcome, NewLedgerEntry};
            match charge {
                Charge::Prepaid { wallet_id, amount, kind, tier, actor, user_id, low_balance_threshold } => {
                    let entry = NewLedgerEntry {
                        tenant_id,
                        wallet_id: *wallet_id,
                        delta: -*amount,
                        kind: (*kind).to_owned(),
                        reason: tier.map(str::to_owned),
                        actor: actor.clone(),
                        idempotency_key: key,
                        reference,
                        user_id: Some(*user_id),
                        now_ms,
                        clamp: false,
                    };
                    match ledger_post(tx, &entry).await? {
                        LedgerOutcome::Insufficient(balance) => return Ok(Err(balance)),
                        LedgerOutcome::Replayed(_) => {}
                        LedgerOutcome::Applied(done) => {
                            if let Some(threshold) = low_balance_threshold {
                                let before = done.balance_after - done.delta;
                                if done.balance_after < *threshold && before >= *threshold {
                                    let wallet = if *wallet_id == tenant_id { "tenant".to_owned() } else { wallet_id.to_string() };
                                    let payload = cloak_proto::events::body(&cloak_proto::events::WalletLowBalanceEvent {
                                        kind: Default::default(),
                                        created_at_ms: now_ms,
                                        data: cloak_proto::events::WalletLowBalance {
                                            wallet,
                                            balance: done.balance_after,
                                            threshold: *threshold,
                                        },
                                    });
                                    enqueue_webhook_tx(tx, tenant_id, "wallet.low_balance", &payload, now_ms).await?;
                                }
                            }
                        }
                    }
                }
                Charge::Postpaid { customer_id, event_name, value } => {
                    sqlx::query(
                        "INSERT INTO meter_outbox (tenant_id, customer_id, event_name, value, occurred_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(tenant_id)
                    .bind(customer_id)
                    .bind(event_name)
                    .bind(value)
                    .bind(now_ms)
                    .execute(&mut **tx)
                    .await?;
                }
            }
            Ok(Ok(()))
        }

        /// Records a Stripe event once: `Some(outcome)` when it was seen before.
        async fn record_stripe_event(
            tx: &mut BillingTx<'_>,
            event: &$crate::store::StripeEventMeta,
        ) -> Result<Option<$crate::store::StripeOutcome>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let inserted = sqlx::query("INSERT INTO stripe_events (id, type, signed_at, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING")
                .bind(&event.id)
                .bind(&event.event_type)
                .bind(event.signed_at_s)
                .bind(event.now_ms)
                .execute(&mut **tx)
                .await?;
            if inserted.rows_affected() == 1 {
                return Ok(None);
            }
            let signed_at: i64 = sqlx::query("SELECT signed_at FROM stripe_events WHERE id = $1")
                .bind(&event.id)
                .fetch_one(&mut **tx)
                .await?
                .try_get("signed_at")?;
            Ok(Some(if signed_at == event.signed_at_s {
                $crate::store::StripeOutcome::Replay
            } else {
                $crate::store::StripeOutcome::Duplicate
            }))
        }

        #[async_trait::async_trait]
        impl $crate::store::BillingStore for $store {
            async fn charge_views(
                &self,
                tenant_id: uuid::Uuid,
                user_id: uuid::Uuid,
                charge: &$crate::store::Charge,
                views: &[$crate::store::ViewKey],
                now_ms: i64,
            ) -> Result<usize, $crate::store::StoreError> {
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                let mut allowed = 0;
                for view in views {
                    let sender: Option<uuid::Uuid> = sqlx::query("SELECT user_id FROM devices WHERE id = $1 AND tenant_id = $2")
                        .bind(view.sender_device_id)
                        .bind(tenant_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get("user_id"))
                        .transpose()?;
                    let seen = sqlx::query("SELECT 1 AS one FROM message_views WHERE tenant_id = $1 AND user_id = $2 AND message_key = $3")
                        .bind(tenant_id)
                        .bind(user_id)
                        .bind(&view.digest[..])
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if sender == Some(user_id) || seen {
                        allowed += 1;
                        continue;
                    }
                    let key = format!("view:{user_id}:{}", hex::encode(view.digest));
                    if apply_charge(&mut tx, tenant_id, charge, key, None, now_ms).await?.is_err() {
                        break;
                    }
                    sqlx::query("INSERT INTO message_views (tenant_id, user_id, message_key, viewed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, user_id, message_key) DO NOTHING")
                        .bind(tenant_id)
                        .bind(user_id)
                        .bind(&view.digest[..])
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    allowed += 1;
                }
                tx.commit().await?;
                Ok(allowed)
            }

            async fn charge(
                &self,
                tenant_id: uuid::Uuid,
                charge: &$crate::store::Charge,
                key: &str,
                reference: Option<&str>,
                now_ms: i64,
            ) -> Result<Result<(), i64>, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let done = apply_charge(&mut tx, tenant_id, charge, key.to_owned(), reference.map(str::to_owned), now_ms).await?;
                if done.is_ok() {
                    tx.commit().await?;
                }
                Ok(done)
            }

            async fn billing_plan(&self, tenant_id: uuid::Uuid) -> Result<$crate::store::BillingPlan, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT t.users_pay, t.postpaid, t.low_balance_threshold, t.stripe_customer_id, t.meter_event_name, \
                     p.text_message, p.attachment_small, p.attachment_medium, p.attachment_large, p.edit_message, \
                     p.delete_message, p.call_minute, p.invite_redemption, p.group_commit, p.message_view \
                     FROM tenants t LEFT JOIN prices p ON p.tenant_id = t.id WHERE t.id = $1",
                )
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else {
                    return Ok($crate::store::BillingPlan::default());
                };
                let price = |name: &str| -> Result<i64, $crate::store::StoreError> {
                    Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
                };
                Ok($crate::store::BillingPlan {
                    prices: $crate::store::Prices {
                        text_message: price("text_message")?,
                        attachment_small: price("attachment_small")?,
                        attachment_medium: price("attachment_medium")?,
                        attachment_large: price("attachment_large")?,
                        edit_message: price("edit_message")?,
                        delete_message: price("delete_message")?,
                        call_minute: price("call_minute")?,
                        invite_redemption: price("invite_redemption")?,
                        group_commit: price("group_commit")?,
                        message_view: price("message_view")?,
                    },
                    users_pay: row.try_get("users_pay")?,
                    postpaid: row.try_get("postpaid")?,
                    low_balance_threshold: row.try_get("low_balance_threshold")?,
                    stripe_customer_id: row.try_get("stripe_customer_id")?,
                    meter_event_name: row.try_get("meter_event_name")?,
                })
            }

            async fn put_prices(&self, tenant_id: uuid::Uuid, p: &$crate::store::Prices) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO prices (tenant_id, text_message, attachment_small, attachment_medium, attachment_large, edit_message, delete_message, call_minute, invite_redemption, group_commit, message_view) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (tenant_id) DO UPDATE SET \
                     text_message = excluded.text_message, attachment_small = excluded.attachment_small, \
                     attachment_medium = excluded.attachment_medium, attachment_large = excluded.attachment_large, \
                     edit_message = excluded.edit_message, delete_message = excluded.delete_message, \
                     call_minute = excluded.call_minute, invite_redemption = excluded.invite_redemption, \
                     group_commit = excluded.group_commit, message_view = excluded.message_view",
                )
                .bind(tenant_id)
                .bind(p.text_message)
                .bind(p.attachment_small)
                .bind(p.attachment_medium)
                .bind(p.attachment_large)
                .bind(p.edit_message)
                .bind(p.delete_message)
                .bind(p.call_minute)
                .bind(p.invite_redemption)
                .bind(p.group_commit)
                .bind(p.message_view)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn update_billing_settings(
                &self,
                tenant_id: uuid::Uuid,
                u: &$crate::store::BillingSettingsUpdate,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE tenants SET users_pay = COALESCE($2, users_pay), postpaid = COALESCE($3, postpaid), \
                     low_balance_threshold = CASE WHEN $4 THEN $5 ELSE low_balance_threshold END, \
                     stripe_customer_id = CASE WHEN $6 THEN $7 ELSE stripe_customer_id END, \
                     meter_event_name = CASE WHEN $8 THEN $9 ELSE meter_event_name END WHERE id = $1",
                )
                .bind(tenant_id)
                .bind(u.users_pay)
                .bind(u.postpaid)
                .bind(u.low_balance_threshold.is_some())
                .bind(u.low_balance_threshold.flatten())
                .bind(u.stripe_customer_id.is_some())
                .bind(u.stripe_customer_id.clone().flatten())
                .bind(u.meter_event_name.is_some())
                .bind(u.meter_event_name.clone().flatten())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn put_packs(&self, tenant_id: uuid::Uuid, packs: &[$crate::store::CreditPack]) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM credit_packs WHERE tenant_id = $1").bind(tenant_id).execute(&mut *tx).await?;
                for p in packs {
                    sqlx::query("INSERT INTO credit_packs (tenant_id, id, name, credits, amount, currency) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(tenant_id)
                        .bind(&p.id)
                        .bind(&p.name)
                        .bind(p.credits)
                        .bind(p.amount)
                        .bind(&p.currency)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_packs(&self, tenant_id: uuid::Uuid) -> Result<Vec<$crate::store::CreditPack>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query("SELECT id, name, credits, amount, currency FROM credit_packs WHERE tenant_id = $1 ORDER BY credits, id")
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push($crate::store::CreditPack {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        credits: row.try_get("credits")?,
                        amount: row.try_get("amount")?,
                        currency: row.try_get("currency")?,
                    });
                }
                Ok(out)
            }

            async fn get_wallet(&self, tenant_id: uuid::Uuid, wallet_id: uuid::Uuid) -> Result<Option<$crate::store::WalletRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT id, tenant_id, balance, created_at FROM wallets WHERE id = $1 AND tenant_id = $2")
                    .bind(wallet_id)
                    .bind(tenant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some($crate::store::WalletRecord {
                        id: row.try_get("id")?,
                        tenant_id: row.try_get("tenant_id")?,
                        balance: row.try_get("balance")?,
                        created_at_ms: row.try_get("created_at")?,
                    }),
                    None => None,
                })
            }

            async fn list_wallets(&self, tenant_id: uuid::Uuid) -> Result<Vec<$crate::store::WalletRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query("SELECT id, tenant_id, balance, created_at FROM wallets WHERE tenant_id = $1 ORDER BY created_at, id")
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push($crate::store::WalletRecord {
                        id: row.try_get("id")?,
                        tenant_id: row.try_get("tenant_id")?,
                        balance: row.try_get("balance")?,
                        created_at_ms: row.try_get("created_at")?,
                    });
                }
                Ok(out)
            }

            async fn post_ledger(&self, entry: &$crate::store::NewLedgerEntry) -> Result<$crate::store::LedgerOutcome, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let outcome = ledger_post(&mut tx, entry).await?;
                if matches!(outcome, $crate::store::LedgerOutcome::Applied(_)) {
                    tx.commit().await?;
                }
                Ok(outcome)
            }

            async fn ledger_page(
                &self,
                tenant_id: uuid::Uuid,
                wallet_id: uuid::Uuid,
                after_id: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::LedgerEntry>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM ledger_entries WHERE tenant_id = $1 AND wallet_id = $2 AND id > $3 ORDER BY id LIMIT $4",
                    $crate::store::sql_billing::LEDGER_COLUMNS
                ));
                let rows = sqlx::query(sql).bind(tenant_id).bind(wallet_id).bind(after_id).bind(limit).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(ledger_from_row!(row));
                }
                Ok(out)
            }

            async fn create_checkout(&self, r: &$crate::store::CheckoutRecord) -> Result<(), $crate::store::StoreError> {
                sqlx::query("INSERT INTO checkout_sessions (id, tenant_id, wallet_id, pack_id, credits, amount, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&r.id)
                    .bind(r.tenant_id)
                    .bind(r.wallet_id)
                    .bind(&r.pack_id)
                    .bind(r.credits)
                    .bind(r.amount)
                    .bind(r.created_at_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn stripe_checkout_completed(
                &self,
                event: &$crate::store::StripeEventMeta,
                session_id: &str,
                payment_intent: Option<&str>,
            ) -> Result<$crate::store::StripeOutcome, $crate::store::StoreError> {
                use $crate::store::{LedgerOutcome, NewLedgerEntry, StripeOutcome};
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                if let Some(seen) = record_stripe_event(&mut tx, event).await? {
                    return Ok(seen);
                }
                let row = sqlx::query("SELECT tenant_id, wallet_id, credits, completed_at FROM checkout_sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    tx.commit().await?;
                    return Ok(StripeOutcome::Ignored);
                };
                let completed: Option<i64> = row.try_get("completed_at")?;
                if completed.is_some() {
                    tx.commit().await?;
                    return Ok(StripeOutcome::Applied(None));
                }
                sqlx::query("UPDATE checkout_sessions SET completed_at = $2, payment_intent = $3 WHERE id = $1")
                    .bind(session_id)
                    .bind(event.now_ms)
                    .bind(payment_intent)
                    .execute(&mut *tx)
                    .await?;
                let entry = NewLedgerEntry {
                    tenant_id: row.try_get("tenant_id")?,
                    wallet_id: row.try_get("wallet_id")?,
                    delta: row.try_get("credits")?,
                    kind: "purchase".into(),
                    reason: Some(format!("Stripe Checkout {session_id}")),
                    actor: "stripe".into(),
                    idempotency_key: format!("checkout:{session_id}"),
                    reference: Some(event.id.clone()),
                    user_id: None,
                    now_ms: event.now_ms,
                    clamp: false,
                };
                let done = match ledger_post(&mut tx, &entry).await? {
                    LedgerOutcome::Applied(e) => Some(e),
                    _ => None,
                };
                tx.commit().await?;
                Ok(StripeOutcome::Applied(done))
            }

            async fn stripe_take_back(
                &self,
                event: &$crate::store::StripeEventMeta,
                payment_intent: &str,
                refunded_ppm: i64,
                kind: &'static str,
            ) -> Result<$crate::store::StripeOutcome, $crate::store::StoreError> {
                use $crate::store::{LedgerOutcome, NewLedgerEntry, StripeOutcome};
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                if let Some(seen) = record_stripe_event(&mut tx, event).await? {
                    return Ok(seen);
                }
                let row = sqlx::query(
                    "SELECT id, tenant_id, wallet_id, credits, refunded_credits FROM checkout_sessions \
                     WHERE payment_intent = $1 AND completed_at IS NOT NULL",
                )
                .bind(payment_intent)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.commit().await?;
                    return Ok(StripeOutcome::Ignored);
                };
                let credits: i64 = row.try_get("credits")?;
                let already: i64 = row.try_get("refunded_credits")?;
                let ppm = refunded_ppm.clamp(0, 1_000_000);
                // Rounded up: a partial refund never leaves credits that were paid back.
                let target = (i128::from(credits) * i128::from(ppm) + 999_999) / 1_000_000;
                let target = i64::try_from(target).unwrap_or(credits).min(credits);
                let take = target - already;
                if take <= 0 {
                    tx.commit().await?;
                    return Ok(StripeOutcome::Applied(None));
                }
                let session: String = row.try_get("id")?;
                sqlx::query("UPDATE checkout_sessions SET refunded_credits = $2 WHERE id = $1")
                    .bind(&session)
                    .bind(target)
                    .execute(&mut *tx)
                    .await?;
                let entry = NewLedgerEntry {
                    tenant_id: row.try_get("tenant_id")?,
                    wallet_id: row.try_get("wallet_id")?,
                    delta: -take,
                    kind: kind.into(),
                    reason: Some(format!("Stripe {kind} of {session}")),
                    actor: "stripe".into(),
                    idempotency_key: format!("{kind}:{}", event.id),
                    reference: Some(event.id.clone()),
                    user_id: None,
                    now_ms: event.now_ms,
                    clamp: true,
                };
                let done = match ledger_post(&mut tx, &entry).await? {
                    LedgerOutcome::Applied(e) => Some(e),
                    _ => None,
                };
                tx.commit().await?;
                Ok(StripeOutcome::Applied(done))
            }

            async fn claim_meter_batches(&self, now_ms: i64, limit: i64) -> Result<Vec<$crate::store::MeterBatch>, $crate::store::StoreError> {
                use sqlx::Row as _;
                const LEASE_MS: i64 = 60_000;
                let mut tx = self.begin_write().await?;
                // New usage joins a batch per (tenant, customer, event name), named after its
                // first row, so the name (Stripe's idempotent identifier) survives restarts.
                let rows = sqlx::query(
                    "SELECT id, tenant_id, customer_id, event_name FROM meter_outbox \
                     WHERE batch_id IS NULL AND sent_at IS NULL AND failed IS NULL ORDER BY id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut first: std::collections::HashMap<(uuid::Uuid, String, String), i64> = std::collections::HashMap::new();
                for row in &rows {
                    let id: i64 = row.try_get("id")?;
                    let key = (row.try_get("tenant_id")?, row.try_get("customer_id")?, row.try_get("event_name")?);
                    let batch = *first.entry(key).or_insert(id);
                    sqlx::query("UPDATE meter_outbox SET batch_id = $2 WHERE id = $1 AND batch_id IS NULL")
                        .bind(id)
                        .bind(format!("mb_{batch}"))
                        .execute(&mut *tx)
                        .await?;
                }
                let due = sqlx::query(
                    "SELECT batch_id, tenant_id, customer_id, event_name, CAST(SUM(value) AS BIGINT) AS value, MIN(occurred_at) AS occurred_at, MAX(attempts) AS attempts \
                     FROM meter_outbox WHERE batch_id IS NOT NULL AND sent_at IS NULL AND failed IS NULL AND next_attempt_at <= $1 \
                     GROUP BY batch_id, tenant_id, customer_id, event_name ORDER BY MIN(id) LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut out = Vec::with_capacity(due.len());
                for row in &due {
                    let batch_id: String = row.try_get("batch_id")?;
                    // Leased, so another node does not report it at the same time.
                    sqlx::query("UPDATE meter_outbox SET next_attempt_at = $2 WHERE batch_id = $1")
                        .bind(&batch_id)
                        .bind(now_ms + LEASE_MS)
                        .execute(&mut *tx)
                        .await?;
                    out.push($crate::store::MeterBatch {
                        batch_id,
                        tenant_id: row.try_get("tenant_id")?,
                        customer_id: row.try_get("customer_id")?,
                        event_name: row.try_get("event_name")?,
                        value: row.try_get("value")?,
                        occurred_at_ms: row.try_get("occurred_at")?,
                        attempts: row.try_get::<i64, _>("attempts")?,
                    });
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn finish_meter_batch(
                &self,
                batch_id: &str,
                now_ms: i64,
                retry_at_ms: Option<i64>,
                failed: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                let q = match (retry_at_ms, failed) {
                    (_, Some(reason)) => sqlx::query("UPDATE meter_outbox SET failed = $2, attempts = attempts + 1 WHERE batch_id = $1").bind(batch_id).bind(reason.to_owned()),
                    (Some(at), None) => sqlx::query("UPDATE meter_outbox SET next_attempt_at = $2, attempts = attempts + 1 WHERE batch_id = $1").bind(batch_id).bind(at),
                    (None, None) => sqlx::query("UPDATE meter_outbox SET sent_at = $2 WHERE batch_id = $1").bind(batch_id).bind(now_ms),
                };
                q.execute(&self.pool).await?;
                Ok(())
            }

            async fn pending_meter_events(&self) -> Result<i64, $crate::store::StoreError> {
                use sqlx::Row as _;
                Ok(sqlx::query("SELECT COUNT(*) AS n FROM meter_outbox WHERE sent_at IS NULL AND failed IS NULL")
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?)
            }

            async fn set_webhook(&self, w: &$crate::store::WebhookEndpoint, now_ms: i64) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO tenant_webhooks (tenant_id, url, secret, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, secret = excluded.secret",
                )
                .bind(w.tenant_id)
                .bind(&w.url)
                .bind(&w.secret)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_webhook(&self, tenant_id: uuid::Uuid) -> Result<Option<$crate::store::WebhookEndpoint>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT tenant_id, url, secret FROM tenant_webhooks WHERE tenant_id = $1")
                    .bind(tenant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some($crate::store::WebhookEndpoint {
                        tenant_id: row.try_get("tenant_id")?,
                        url: row.try_get("url")?,
                        secret: row.try_get("secret")?,
                    }),
                    None => None,
                })
            }

            async fn enqueue_webhook(&self, tenant_id: uuid::Uuid, event_type: &str, payload: &str, now_ms: i64) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                enqueue_webhook_tx(&mut tx, tenant_id, event_type, payload, now_ms).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn lease_due_webhooks(&self, now_ms: i64, lease_ms: i64, limit: i64) -> Result<Vec<$crate::store::WebhookDelivery>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM webhook_deliveries WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
                    $crate::store::sql_billing::DELIVERY_COLUMNS
                ));
                let rows = sqlx::query(sql).bind(now_ms).bind(limit).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let d = delivery_from_row!(row);
                    let leased = sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = $3 WHERE id = $1 AND next_attempt_at = $2 AND delivered_at IS NULL")
                        .bind(d.id)
                        .bind(d.next_attempt_at_ms)
                        .bind(now_ms + lease_ms)
                        .execute(&self.pool)
                        .await?;
                    if leased.rows_affected() == 1 {
                        out.push(d);
                    }
                }
                Ok(out)
            }

            async fn record_webhook_attempt(
                &self,
                id: uuid::Uuid,
                now_ms: i64,
                status: Option<i64>,
                error: Option<&str>,
                delivered: bool,
                retry_at_ms: Option<i64>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, \
                     delivered_at = CASE WHEN $4 THEN $5 ELSE NULL END, next_attempt_at = $6 WHERE id = $1",
                )
                .bind(id)
                .bind(status)
                .bind(error)
                .bind(delivered)
                .bind(now_ms)
                .bind(retry_at_ms.unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_webhook_deliveries(&self, tenant_id: uuid::Uuid, limit: i64) -> Result<Vec<$crate::store::WebhookDelivery>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM webhook_deliveries WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2",
                    $crate::store::sql_billing::DELIVERY_COLUMNS
                ));
                let rows = sqlx::query(sql).bind(tenant_id).bind(limit).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(delivery_from_row!(row));
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use {delivery_from_row, impl_billing_store, ledger_from_row};
