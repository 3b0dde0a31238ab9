//! The console's reads (see `insights.rs`), written once for both backends (see `sql.rs`).
//! Sums are cast to BIGINT: PostgreSQL's SUM of a BIGINT is NUMERIC.

/// Kinds that are not charges: money in, and what billing admins did by hand.
pub(crate) const NOT_CHARGES: &str = "('grant', 'adjustment', 'purchase', 'refund', 'dispute')";

macro_rules! impl_insight_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::InsightStore for $store {
            async fn ledger_totals(&self, tenant_id: uuid::Uuid, since_ms: i64) -> Result<Vec<$crate::store::DayTotal>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT created_at / 86400000 AS day, kind, CASE WHEN kind = 'attachment' THEN reason END AS tier, \
                     CAST(SUM(delta) AS BIGINT) AS credits, COUNT(*) AS entries \
                     FROM ledger_entries WHERE tenant_id = $1 AND created_at >= $2 \
                     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                )
                .bind(tenant_id)
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push($crate::store::DayTotal {
                        day: row.try_get("day")?,
                        kind: row.try_get("kind")?,
                        tier: row.try_get("tier")?,
                        credits: row.try_get("credits")?,
                        entries: row.try_get("entries")?,
                    });
                }
                Ok(out)
            }

            async fn wallet_totals(&self, tenant_id: uuid::Uuid) -> Result<(i64, i64), $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS total, COUNT(*) AS wallets FROM wallets WHERE tenant_id = $1")
                    .bind(tenant_id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok((row.try_get("total")?, row.try_get("wallets")?))
            }

            async fn top_spenders(&self, tenant_id: uuid::Uuid, since_ms: i64, limit: i64) -> Result<Vec<$crate::store::Spender>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT l.user_id, u.external_id, u.display_name, CAST(-SUM(l.delta) AS BIGINT) AS spent, COUNT(*) AS entries \
                     FROM ledger_entries l LEFT JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id \
                     WHERE l.tenant_id = $1 AND l.created_at >= $2 AND l.user_id IS NOT NULL AND l.delta < 0 AND l.kind NOT IN {} \
                     GROUP BY l.user_id, u.external_id, u.display_name ORDER BY 4 DESC, 1 LIMIT $3",
                    $crate::store::sql_insights::NOT_CHARGES
                ));
                let rows = sqlx::query(sql).bind(tenant_id).bind(since_ms).bind(limit).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push($crate::store::Spender {
                        user_id: row.try_get("user_id")?,
                        external_id: row.try_get("external_id")?,
                        display_name: row.try_get("display_name")?,
                        spent: row.try_get("spent")?,
                        entries: row.try_get("entries")?,
                    });
                }
                Ok(out)
            }

            async fn search_wallets(&self, tenant_id: uuid::Uuid, q: &$crate::store::WalletQuery) -> Result<Vec<$crate::store::WalletRow>, $crate::store::StoreError> {
                use $crate::store::WalletSort;
                use sqlx::Row as _;
                let order = match q.sort {
                    WalletSort::BalanceDesc => "w.balance DESC, w.id",
                    WalletSort::BalanceAsc => "w.balance, w.id",
                    WalletSort::Newest => "w.created_at DESC, w.id",
                };
                let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT w.id, w.balance, w.created_at, u.external_id, u.display_name \
                     FROM wallets w LEFT JOIN users u ON u.id = w.id AND u.tenant_id = w.tenant_id \
                     WHERE w.tenant_id = $1 AND ($2 IS NULL OR LOWER(u.external_id) LIKE $2 ESCAPE '\\' \
                     OR LOWER(u.display_name) LIKE $2 ESCAPE '\\' OR ($3 AND w.id = $1)) \
                     ORDER BY {order} LIMIT $4 OFFSET $5"
                ));
                let rows = sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(text.map($crate::store::insights::like_pattern))
                    .bind(text.is_some_and(|t| t.eq_ignore_ascii_case("tenant")))
                    .bind(q.limit)
                    .bind(q.offset)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push($crate::store::WalletRow {
                        wallet_id: row.try_get("id")?,
                        balance: row.try_get("balance")?,
                        created_at_ms: row.try_get("created_at")?,
                        external_id: row.try_get("external_id")?,
                        display_name: row.try_get("display_name")?,
                    });
                }
                Ok(out)
            }

            async fn ledger_search(
                &self,
                tenant_id: uuid::Uuid,
                wallet_id: uuid::Uuid,
                f: &$crate::store::LedgerFilter,
                before_id: Option<i64>,
                limit: i64,
            ) -> Result<Vec<$crate::store::LedgerEntry>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM ledger_entries WHERE tenant_id = $1 AND wallet_id = $2 \
                     AND ($3 IS NULL OR kind = $3) AND ($4 IS NULL OR created_at >= $4) \
                     AND ($5 IS NULL OR created_at < $5) AND ($6 IS NULL OR id < $6) \
                     ORDER BY id DESC LIMIT $7",
                    $crate::store::sql_billing::LEDGER_COLUMNS
                ));
                let rows = sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(wallet_id)
                    .bind(f.kind.as_deref())
                    .bind(f.from_ms)
                    .bind(f.to_ms)
                    .bind(before_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(ledger_from_row!(row));
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use impl_insight_store;
