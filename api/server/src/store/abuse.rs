//! Trust levels, blocks, reports and moderation settings.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// A stored, verified report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub reporter_user_id: Uuid,
    pub reported_user_id: Uuid,
    pub reported_device_id: Uuid,
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub sent_at_ms: i64,
    pub text: String,
    pub reason: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
}

/// What deciding a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub report: ReportRecord,
    /// Upheld reports against the user now.
    pub upheld: i64,
    /// The user was suspended by this decision.
    pub suspended: bool,
}

/// Trust levels, blocks and reports.
#[async_trait]
pub trait AbuseStore: Send + Sync {
    /// The tenant's levels as stored (JSON), if it set any.
    async fn get_trust_levels(&self, tenant_id: Uuid) -> Result<Option<String>, StoreError>;
    async fn put_trust_levels(
        &self,
        tenant_id: Uuid,
        levels_json: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Upheld reports against a user.
    async fn upheld_reports(&self, tenant_id: Uuid, user_id: Uuid) -> Result<i64, StoreError>;
    /// False when either user is not in the tenant.
    async fn add_block(
        &self,
        tenant_id: Uuid,
        blocker: Uuid,
        blocked: Uuid,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    async fn remove_block(
        &self,
        tenant_id: Uuid,
        blocker: Uuid,
        blocked: Uuid,
    ) -> Result<bool, StoreError>;
    async fn list_blocks(&self, tenant_id: Uuid, blocker: Uuid) -> Result<Vec<Uuid>, StoreError>;
    async fn is_blocked(
        &self,
        tenant_id: Uuid,
        blocker: Uuid,
        blocked: Uuid,
    ) -> Result<bool, StoreError>;
    /// False when this reporter reported this message before.
    async fn create_report(&self, report: &ReportRecord) -> Result<bool, StoreError>;
    async fn list_reports(
        &self,
        tenant_id: Uuid,
        status: &str,
    ) -> Result<Vec<ReportRecord>, StoreError>;
    /// Upholds or dismisses an open report; upholding counts against the user and
    /// suspends them at the tenant's threshold, in one transaction. `None`: no open report.
    async fn decide_report(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        uphold: bool,
        now_ms: i64,
    ) -> Result<Option<Decision>, StoreError>;
    async fn get_suspend_threshold(&self, tenant_id: Uuid) -> Result<Option<i64>, StoreError>;
    async fn set_suspend_threshold(
        &self,
        tenant_id: Uuid,
        threshold: Option<i64>,
    ) -> Result<(), StoreError>;
}
