//! Invites and their redemptions.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// An invite to store.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub code: String,
    pub tenant_id: Uuid,
    pub inviter_user_id: Uuid,
    pub max_uses: i64,
    pub note: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A stored invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    pub code: String,
    pub tenant_id: Uuid,
    pub inviter_user_id: Uuid,
    pub max_uses: i64,
    pub uses: i64,
    pub note: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// Result of [`InviteStore::redeem_invite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    /// Counted; the two users are now contacts.
    Redeemed(InviteRecord),
    /// This user had redeemed it before; nothing changed.
    AlreadyRedeemed(InviteRecord),
    NotFound,
    Expired,
    Revoked,
    UsedUp,
    /// The redeemer's payer cannot afford the redemption price (its balance given).
    InsufficientCredits(i64),
}

/// Invites.
#[async_trait]
pub trait InviteStore: Send + Sync {
    async fn create_invite(&self, invite: &NewInvite) -> Result<(), StoreError>;
    async fn get_invite(
        &self,
        tenant_id: Uuid,
        code: &str,
    ) -> Result<Option<InviteRecord>, StoreError>;
    /// An invite by code in any tenant (codes are globally unique).
    async fn find_invite(&self, code: &str) -> Result<Option<InviteRecord>, StoreError>;
    /// A page of a user's invites, newest first (by creation time, then code): at most
    /// `limit` after the key `after`.
    async fn list_invites(
        &self,
        tenant_id: Uuid,
        inviter_user_id: Uuid,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<InviteRecord>, StoreError>;
    /// Revokes; false when there is no such invite.
    async fn revoke_invite(
        &self,
        tenant_id: Uuid,
        code: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Counts a use atomically (of two users racing for the last use, one wins) and makes
    /// the redeemer and the inviter contacts, in one transaction, charging the redemption
    /// price when there is one. Idempotent per user.
    async fn redeem_invite(
        &self,
        tenant_id: Uuid,
        code: &str,
        user_id: Uuid,
        now_ms: i64,
        charge: Option<&super::Charge>,
    ) -> Result<RedeemOutcome, StoreError>;
}
