//! Removals the server proposes as the MLS groups' external sender: revoked devices and
//! devices inactive longer than their tenant's retention, until a commit removes them.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// A member device to propose for removal, at the leaf its committer reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRemoval {
    pub device_id: Uuid,
    pub leaf_index: u32,
}

/// The removals of one conversation not yet proposed at its current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalsDue {
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub epoch: i64,
    pub removals: Vec<PendingRemoval>,
}

/// Proposals made at `epoch`, one MLS message per device to remove.
#[derive(Debug, Clone)]
pub struct NewProposals {
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub epoch: i64,
    pub proposals: Vec<(Uuid, Vec<u8>)>,
    pub now_ms: i64,
    /// The mailbox quota: proposals, like commits, may go up to twice it.
    pub mailbox_quota: i64,
}

/// Pending removals and the proposals that carry them to the members.
#[async_trait]
pub trait RemovalStore: Send + Sync {
    /// Up to `limit` conversations with removals not proposed at their current epoch, with
    /// those removals.
    async fn removals_due(&self, limit: i64) -> Result<Vec<RemovalsDue>, StoreError>;
    /// If the conversation is still at `epoch`: appends each proposal to the mailbox of
    /// every member device and marks the removals as
    /// proposed at `epoch`, in one transaction. Returns the devices that got entries, or
    /// `None` when the epoch moved on (or another node proposed first): nothing stored.
    async fn store_proposals(&self, p: &NewProposals) -> Result<Option<Vec<Uuid>>, StoreError>;
    /// Records a removal for every approved member device (with a known leaf) that has
    /// not logged in within its tenant's retention; returns how many were recorded.
    async fn mark_inactive(&self, now_ms: i64) -> Result<u64, StoreError>;
    /// The device logged in: it is active, and its pending inactivity removals go.
    async fn record_login(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}
