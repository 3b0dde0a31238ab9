//! Invites, written once for both backends (see `sql.rs`).

pub(crate) const INVITE_COLUMNS: &str =
    "code, tenant_id, inviter_user_id, max_uses, uses, note, created_at, expires_at, revoked_at";

macro_rules! invite_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::InviteRecord {
            code: row.try_get("code")?,
            tenant_id: row.try_get("tenant_id")?,
            inviter_user_id: row.try_get("inviter_user_id")?,
            max_uses: row.try_get("max_uses")?,
            uses: row.try_get("uses")?,
            note: row.try_get("note")?,
            created_at_ms: row.try_get("created_at")?,
            expires_at_ms: row.try_get("expires_at")?,
            revoked_at_ms: row.try_get("revoked_at")?,
        }
    }};
}

macro_rules! impl_invite_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::InviteStore for $store {
            async fn create_invite(&self, i: &$crate::store::NewInvite) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO invites (code, tenant_id, inviter_user_id, max_uses, note, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&i.code)
                .bind(i.tenant_id)
                .bind(i.inviter_user_id)
                .bind(i.max_uses)
                .bind(&i.note)
                .bind(i.created_at_ms)
                .bind(i.expires_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_invite(
                &self,
                tenant_id: uuid::Uuid,
                code: &str,
            ) -> Result<Option<$crate::store::InviteRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM invites WHERE tenant_id = $1 AND code = $2",
                    $crate::store::sql_invites::INVITE_COLUMNS
                ));
                let row = sqlx::query(sql).bind(tenant_id).bind(code).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some(invite_from_row!(&row)),
                    None => None,
                })
            }

            async fn find_invite(&self, code: &str) -> Result<Option<$crate::store::InviteRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM invites WHERE code = $1",
                    $crate::store::sql_invites::INVITE_COLUMNS
                ));
                let row = sqlx::query(sql).bind(code).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some(invite_from_row!(&row)),
                    None => None,
                })
            }

            async fn list_invites(
                &self,
                tenant_id: uuid::Uuid,
                inviter_user_id: uuid::Uuid,
                after: Option<(i64, String)>,
                limit: i64,
            ) -> Result<Vec<$crate::store::InviteRecord>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let (after_ms, after_code) = after.unwrap_or((i64::MAX, String::new()));
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM invites WHERE tenant_id = $1 AND inviter_user_id = $2 \
                     AND (created_at < $3 OR (created_at = $3 AND code > $4)) \
                     ORDER BY created_at DESC, code LIMIT $5",
                    $crate::store::sql_invites::INVITE_COLUMNS
                ));
                let rows = sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(inviter_user_id)
                    .bind(after_ms)
                    .bind(after_code)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(invite_from_row!(row));
                }
                Ok(out)
            }

            async fn revoke_invite(&self, tenant_id: uuid::Uuid, code: &str, now_ms: i64) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE invites SET revoked_at = COALESCE(revoked_at, $3) WHERE tenant_id = $1 AND code = $2",
                )
                .bind(tenant_id)
                .bind(code)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn redeem_invite(
                &self,
                tenant_id: uuid::Uuid,
                code: &str,
                user_id: uuid::Uuid,
                now_ms: i64,
                charge: Option<&$crate::store::Charge>,
            ) -> Result<$crate::store::RedeemOutcome, $crate::store::StoreError> {
                use $crate::store::RedeemOutcome;
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                // The invite row is locked first (a no-op update), so two redemptions of one
                // invite, even by the same user at the same instant, run one after the
                // other: the second sees the first's redemption and answers as a replay.
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE invites SET uses = uses WHERE tenant_id = $1 AND code = $2 RETURNING {}",
                    $crate::store::sql_invites::INVITE_COLUMNS
                ));
                let Some(row) = sqlx::query(sql).bind(tenant_id).bind(code).fetch_optional(&mut *tx).await? else {
                    return Ok(RedeemOutcome::NotFound);
                };
                let invite = invite_from_row!(&row);
                let before = sqlx::query("SELECT 1 AS one FROM invite_redemptions WHERE code = $1 AND user_id = $2")
                    .bind(code)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if before.is_some() {
                    return Ok(RedeemOutcome::AlreadyRedeemed(invite));
                }
                if invite.revoked_at_ms.is_some() {
                    return Ok(RedeemOutcome::Revoked);
                }
                if invite.expires_at_ms <= now_ms {
                    return Ok(RedeemOutcome::Expired);
                }
                // The condition is re-checked under the row lock: of two racing for the
                // last use, the second updates nothing.
                let counted = sqlx::query(
                    "UPDATE invites SET uses = uses + 1 WHERE tenant_id = $1 AND code = $2 AND uses < max_uses",
                )
                .bind(tenant_id)
                .bind(code)
                .execute(&mut *tx)
                .await?;
                if counted.rows_affected() != 1 {
                    return Ok(RedeemOutcome::UsedUp);
                }
                if let Some(charge) = charge {
                    let key = format!("invite:{code}:{user_id}");
                    if let Err(balance) = apply_charge(&mut tx, tenant_id, charge, key, Some(code.to_owned()), now_ms).await? {
                        return Ok(RedeemOutcome::InsufficientCredits(balance));
                    }
                }
                sqlx::query("INSERT INTO invite_redemptions (code, user_id, redeemed_at) VALUES ($1, $2, $3)")
                    .bind(code)
                    .bind(user_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                insert_contacts(&mut tx, tenant_id, invite.inviter_user_id, user_id, now_ms).await?;
                tx.commit().await?;
                let mut invite = invite;
                invite.uses += 1;
                Ok(RedeemOutcome::Redeemed(invite))
            }
        }
    };
}

pub(crate) use {impl_invite_store, invite_from_row};
