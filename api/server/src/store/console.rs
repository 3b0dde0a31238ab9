//! Billing-admin console accounts and their sessions.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// A console account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAccount {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    /// `owner`, `billing_admin` or `viewer`.
    pub role: String,
    /// Argon2id PHC string; `None` until set up.
    pub password_hash: Option<String>,
    pub setup_expires_at_ms: Option<i64>,
    pub failed_logins: i64,
    pub locked_until_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// A console session (the cookie holds the token; its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub token_hash: Vec<u8>,
    pub account_id: Uuid,
    pub tenant_id: Uuid,
    pub csrf_token: String,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
}

/// Console accounts and sessions.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// False when the e-mail address is taken.
    async fn create_console_account(
        &self,
        account: &ConsoleAccount,
        setup_token_hash: &[u8],
    ) -> Result<bool, StoreError>;
    async fn list_console_accounts(
        &self,
        tenant_id: Uuid,
    ) -> Result<Vec<ConsoleAccount>, StoreError>;
    async fn delete_console_account(&self, tenant_id: Uuid, id: Uuid) -> Result<bool, StoreError>;
    /// Changes an account's role; false when the tenant has no such account.
    async fn set_console_role(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        role: &str,
    ) -> Result<bool, StoreError>;
    /// The accounts with this e-mail address, one per tenant at most, oldest first.
    async fn console_accounts_by_email(
        &self,
        email: &str,
    ) -> Result<Vec<ConsoleAccount>, StoreError>;
    async fn console_account_by_setup_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ConsoleAccount>, StoreError>;
    /// Sets the password, ends the set-up token and clears failures.
    async fn set_console_password(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError>;
    /// Counts a failed login; locks the account until `lock_until_ms` at `lock_after`
    /// consecutive failures.
    async fn console_login_failed(
        &self,
        id: Uuid,
        lock_after: i64,
        lock_until_ms: i64,
    ) -> Result<(), StoreError>;
    async fn console_login_succeeded(&self, id: Uuid) -> Result<(), StoreError>;
    async fn create_console_session(&self, session: &ConsoleSession) -> Result<(), StoreError>;
    /// A live session and its account.
    async fn console_session(
        &self,
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<(ConsoleSession, ConsoleAccount)>, StoreError>;
    async fn delete_console_session(&self, token_hash: &[u8]) -> Result<(), StoreError>;
}
