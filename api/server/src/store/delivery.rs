//! Delivery aggregates: conversations, member devices, per-device mailboxes, sends.

use async_trait::async_trait;
use cloak_proto::delivery::EnvelopeKind;
use uuid::Uuid;

use super::StoreError;

/// A member device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub device_id: Uuid,
    pub user_id: Uuid,
}

/// A conversation and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub epoch: i64,
    pub members: Vec<Member>,
}

/// An application message or commit to store durably, fanned out to every other member.
#[derive(Debug, Clone)]
pub struct NewSend {
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub sender: Member,
    pub client_msg_id: Uuid,
    /// The epoch the message was made in.
    pub epoch: i64,
    pub body: Vec<u8>,
    pub now_ms: i64,
    /// Most entries a mailbox may hold: a recipient whose mailbox is full is skipped
    /// (commits may go past it, up to twice the quota, so members stay in step).
    pub mailbox_quota: i64,
    /// How the send is paid for, if it costs anything.
    pub charge: Option<super::Charge>,
    /// The sender's franking commitment and the server's stamp over it.
    pub franking: Option<(Vec<u8>, Vec<u8>)>,
    /// Viewing it costs the `message_view` price (not for receipts, typing, commits).
    pub viewable: bool,
}

/// The membership change and Welcome of a commit.
#[derive(Debug, Clone, Default)]
pub struct CommitChanges {
    pub add: Vec<Member>,
    /// The MLS leaf of each added device, in `add` order (empty when not reported).
    pub leaves: Vec<u32>,
    pub remove: Vec<Uuid>,
    pub welcome: Option<Vec<u8>>,
}

/// What a stored send produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSend {
    /// Devices whose mailboxes got an entry.
    pub recipients: Vec<Uuid>,
    /// The sequence number each recipient's entry got, in `recipients` order (empty when
    /// the send answers a retry, or for commits).
    pub seqs: Vec<i64>,
    /// The conversation's epoch afterwards.
    pub epoch: i64,
    pub sent_at_ms: i64,
    /// This answers a retry: nothing new was stored.
    pub duplicate: bool,
    /// Members left out because their mailbox is full (not in `recipients`).
    pub skipped: Vec<Uuid>,
}

/// Outcome of a send or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Stored(StoredSend),
    /// No such conversation in the tenant.
    NoConversation,
    /// The sender is not a member.
    NotMember,
    /// The conversation is at another epoch (the current one given).
    StaleEpoch(i64),
    /// Every recipient's mailbox is full (the first one given): stored for nobody.
    MailboxFull(Uuid),
    /// A device to add is already a member, or one to remove is not.
    BadMembership(Uuid),
    /// The payer cannot afford the send (its balance given); nothing was stored.
    InsufficientCredits(i64),
    /// The sending device was revoked (or is not approved) when the send was stored.
    SenderRevoked,
    /// The sender's user was suspended when the send was stored.
    SenderSuspended,
    /// The tenant keeps its mailboxes in memory only and that storage (Redis) does not
    /// answer: nothing was stored; the sender may retry.
    StorageUnavailable,
}

/// An acknowledgement to apply: delete the device's entries up to and including `up_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub tenant_id: Uuid,
    pub device_id: Uuid,
    pub up_to: i64,
}

/// One stored mailbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    pub seq: i64,
    pub conversation_id: Uuid,
    pub sender_device_id: Uuid,
    pub kind: EnvelopeKind,
    pub epoch: i64,
    pub body: Vec<u8>,
    pub sent_at_ms: i64,
    pub franking_tag: Option<Vec<u8>>,
    pub franking_stamp: Option<Vec<u8>>,
    /// Viewing it costs the `message_view` price.
    pub viewable: bool,
}

/// Conversations and mailboxes.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Creates a conversation at epoch 0 with the creator as its only member; false if the
    /// id is taken.
    async fn create_conversation(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        creator: Member,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    async fn get_conversation(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<ConversationRecord>, StoreError>;
    /// The conversations a device is a member of, oldest first: at most `limit` after the
    /// key `after` (creation time, id), with their members, in one statement.
    async fn device_conversations(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        after: Option<(i64, Uuid)>,
        limit: i64,
    ) -> Result<Vec<(i64, ConversationRecord)>, StoreError>;
    /// Whether users `a` and `b` have devices in a common conversation.
    async fn users_share_conversation(
        &self,
        tenant_id: Uuid,
        a: Uuid,
        b: Uuid,
    ) -> Result<bool, StoreError>;
    /// Stores an application message for every other member, in one transaction, before
    /// the caller acknowledges it; a repeated `client_msg_id` stores nothing.
    async fn store_application(&self, send: &NewSend) -> Result<SendOutcome, StoreError> {
        let mut outcomes = self.store_applications(std::slice::from_ref(send)).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a batch of one gave no outcome".into()))
    }
    /// Stores a batch of application messages in one transaction (group commit), deciding
    /// each in order: one outcome per send. A refused message (stale epoch, 402, full
    /// mailbox, …) changes nothing and never fails the others; an `Err` means nothing of
    /// the batch was stored.
    async fn store_applications(&self, sends: &[NewSend]) -> Result<Vec<SendOutcome>, StoreError> {
        Ok(self.store_batch(sends, &[]).await?.0)
    }
    /// Stores application messages and applies acknowledgements in one transaction (one
    /// fsync for both); the acknowledgements go first. Returns the send outcomes and, per
    /// acknowledgement, how many entries it deleted.
    async fn store_batch(
        &self,
        sends: &[NewSend],
        acks: &[Ack],
    ) -> Result<(Vec<SendOutcome>, Vec<u64>), StoreError>;
    /// The stored send with this sender device and client message id, if any.
    async fn find_send(
        &self,
        tenant_id: Uuid,
        sender_device_id: Uuid,
        client_msg_id: Uuid,
    ) -> Result<Option<StoredSend>, StoreError>;
    /// Applies a commit if the conversation is still at `send.epoch` (compare-and-swap):
    /// advances the epoch, changes the members, stores the commit for every pre-commit
    /// member but the sender and the Welcome for every added device, atomically.
    async fn store_commit(
        &self,
        send: &NewSend,
        changes: &CommitChanges,
    ) -> Result<SendOutcome, StoreError>;
    /// Unexpired entries after `after`, in order.
    async fn fetch_mailbox(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        after: i64,
        limit: i64,
        now_ms: i64,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        self.fetch_mailbox_page(tenant_id, device_id, after, limit, i64::MAX, now_ms)
            .await
    }
    /// As [`fetch_mailbox`](Self::fetch_mailbox), bounded in bytes too: the entries whose
    /// predecessors' bodies total at most `max_bytes` (so the last one may cross it, which
    /// tells the caller that more follow, and the first always comes). The database sums;
    /// the rows beyond never leave it.
    async fn fetch_mailbox_page(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        after: i64,
        limit: i64,
        max_bytes: i64,
        now_ms: i64,
    ) -> Result<Vec<MailboxEntry>, StoreError>;
    /// Deletes entries up to and including `up_to`; returns how many.
    async fn ack_mailbox(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        up_to: i64,
    ) -> Result<u64, StoreError> {
        let ack = Ack {
            tenant_id,
            device_id,
            up_to,
        };
        Ok(self
            .ack_mailboxes(&[ack])
            .await?
            .first()
            .copied()
            .unwrap_or(0))
    }
    /// Applies many acknowledgements in one transaction; how many entries each deleted.
    async fn ack_mailboxes(&self, acks: &[Ack]) -> Result<Vec<u64>, StoreError> {
        Ok(self.store_batch(&[], acks).await?.1)
    }
    /// Deletes expired entries and old send records; returns how many entries went.
    async fn purge_mailboxes(&self, now_ms: i64, sends_before_ms: i64) -> Result<u64, StoreError>;
}
