//! Console accounts and sessions, written once for both backends (see `sql.rs`).

pub(crate) const ACCOUNT_COLUMNS: &str = "id, tenant_id, email, role, password_hash, setup_expires_at, failed_logins, locked_until, created_at";

macro_rules! console_account_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::ConsoleAccount {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            email: row.try_get("email")?,
            role: row.try_get("role")?,
            password_hash: row.try_get("password_hash")?,
            setup_expires_at_ms: row.try_get("setup_expires_at")?,
            failed_logins: row.try_get::<i64, _>("failed_logins")?,
            locked_until_ms: row.try_get("locked_until")?,
            created_at_ms: row.try_get("created_at")?,
        }
    }};
}

macro_rules! impl_console_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ConsoleStore for $store {
            async fn create_console_account(
                &self,
                a: &$crate::store::ConsoleAccount,
                setup_token_hash: &[u8],
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO console_accounts (id, tenant_id, email, role, setup_token_hash, setup_expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, email) DO NOTHING",
                )
                .bind(a.id)
                .bind(a.tenant_id)
                .bind(&a.email)
                .bind(&a.role)
                .bind(setup_token_hash)
                .bind(a.setup_expires_at_ms)
                .bind(a.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_console_accounts(&self, tenant_id: uuid::Uuid) -> Result<Vec<$crate::store::ConsoleAccount>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM console_accounts WHERE tenant_id = $1 ORDER BY created_at, email",
                    $crate::store::sql_console::ACCOUNT_COLUMNS
                ));
                let rows = sqlx::query(sql).bind(tenant_id).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(console_account_from_row!(row));
                }
                Ok(out)
            }

            async fn delete_console_account(&self, tenant_id: uuid::Uuid, id: uuid::Uuid) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM console_accounts WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_console_role(&self, tenant_id: uuid::Uuid, id: uuid::Uuid, role: &str) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("UPDATE console_accounts SET role = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .bind(role)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn console_accounts_by_email(&self, email: &str) -> Result<Vec<$crate::store::ConsoleAccount>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM console_accounts WHERE email = $1 ORDER BY created_at, id",
                    $crate::store::sql_console::ACCOUNT_COLUMNS
                ));
                let rows = sqlx::query(sql).bind(email).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(console_account_from_row!(row));
                }
                Ok(out)
            }

            async fn console_account_by_setup_token(&self, token_hash: &[u8]) -> Result<Option<$crate::store::ConsoleAccount>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM console_accounts WHERE setup_token_hash = $1",
                    $crate::store::sql_console::ACCOUNT_COLUMNS
                ));
                let row = sqlx::query(sql).bind(token_hash).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some(console_account_from_row!(&row)),
                    None => None,
                })
            }

            async fn set_console_password(&self, id: uuid::Uuid, password_hash: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE console_accounts SET password_hash = $2, setup_token_hash = NULL, setup_expires_at = NULL, \
                     failed_logins = 0, locked_until = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(password_hash)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn console_login_failed(&self, id: uuid::Uuid, lock_after: i64, lock_until_ms: i64) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE console_accounts SET failed_logins = failed_logins + 1, \
                     locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END WHERE id = $1",
                )
                .bind(id)
                .bind(lock_after)
                .bind(lock_until_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn console_login_succeeded(&self, id: uuid::Uuid) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE console_accounts SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_console_session(&self, s: &$crate::store::ConsoleSession) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO console_sessions (token_hash, account_id, tenant_id, csrf_token, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.token_hash)
                .bind(s.account_id)
                .bind(s.tenant_id)
                .bind(&s.csrf_token)
                .bind(s.expires_at_ms)
                .bind(s.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn console_session(
                &self,
                token_hash: &[u8],
                now_ms: i64,
            ) -> Result<Option<($crate::store::ConsoleSession, $crate::store::ConsoleAccount)>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT s.token_hash, s.account_id, s.tenant_id AS s_tenant, s.csrf_token, s.expires_at, s.created_at AS s_created, \
                     a.id, a.tenant_id, a.email, a.role, a.password_hash, a.setup_expires_at, a.failed_logins, a.locked_until, a.created_at \
                     FROM console_sessions s JOIN console_accounts a ON a.id = s.account_id AND a.tenant_id = s.tenant_id \
                     WHERE s.token_hash = $1 AND s.expires_at > $2",
                )
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let session = $crate::store::ConsoleSession {
                    token_hash: row.try_get("token_hash")?,
                    account_id: row.try_get("account_id")?,
                    tenant_id: row.try_get("s_tenant")?,
                    csrf_token: row.try_get("csrf_token")?,
                    expires_at_ms: row.try_get("expires_at")?,
                    created_at_ms: row.try_get("s_created")?,
                };
                Ok(Some((session, console_account_from_row!(&row))))
            }

            async fn delete_console_session(&self, token_hash: &[u8]) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use {console_account_from_row, impl_console_store};
