//! Encrypted attachments: uploads, their stored parts, recipients and their lifecycle.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Charge, StoreError};

/// An upload to create.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Uuid,
    /// Total ciphertext bytes, declared up front.
    pub size: i64,
    /// `small`, `medium` or `large`: from `size`, never from the client.
    pub tier: &'static str,
    pub now_ms: i64,
    /// When an unfinished upload is swept.
    pub expires_at_ms: i64,
}

/// An upload or stored attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub uploader_user_id: Uuid,
    pub uploader_device_id: Uuid,
    pub size: i64,
    /// Bytes stored so far (the tus `Upload-Offset`).
    pub received: i64,
    pub tier: String,
    pub created_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    pub expires_at_ms: i64,
}

/// One stored part: the bytes `offset..offset + len` of the attachment, under `key` in
/// the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub offset: i64,
    pub len: i64,
    pub key: String,
}

/// What taking the part that completes an upload also does, in the same transaction.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The tier's price, when there is one.
    pub charge: Option<Charge>,
    /// Idempotency key of the debit.
    pub key: String,
    /// The completed attachment lives until then at most (the tenant's retention).
    pub expires_at_ms: i64,
}

/// What recording a part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored: the new offset, and whether that completed the upload.
    Appended { received: i64, completed: bool },
    /// The part does not start at the stored offset (which is this).
    OffsetMismatch(i64),
    /// The part would complete the upload but the payer cannot afford it (its balance);
    /// nothing changed.
    Insufficient(i64),
    /// No such unfinished upload.
    Missing,
}

/// An attachment whose blob and rows are to be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueAttachment {
    pub tenant_id: Uuid,
    pub id: Uuid,
}

/// Uploads and attachments.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Creates the upload when the tenant's attachments (finished or not) plus this one stay
    /// within `quota_bytes`; false (nothing created) otherwise.
    async fn create_upload(&self, upload: &NewUpload, quota_bytes: i64)
    -> Result<bool, StoreError>;
    /// An upload or attachment of the tenant.
    async fn attachment(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<AttachmentRecord>, StoreError>;
    /// Records a stored part at `offset` of an unfinished upload. When it completes the
    /// upload, `completion` applies in the same transaction: the charge (once, under its
    /// key), the recipients (the conversation's devices other than the uploader's at this
    /// moment), `completed_at` and the new expiry.
    async fn append_part(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        part: &Part,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<AppendOutcome, StoreError>;
    /// The stored parts, in order.
    async fn parts(&self, id: Uuid) -> Result<Vec<Part>, StoreError>;
    /// Whether `device_id` is a member of `conversation_id` now.
    async fn is_member(
        &self,
        tenant_id: Uuid,
        conversation_id: Uuid,
        device_id: Uuid,
    ) -> Result<bool, StoreError>;
    /// Notes that a recipient device downloaded the whole attachment.
    async fn mark_downloaded(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        device_id: Uuid,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Attachments to delete: past their expiry (unfinished uploads after 24 h, finished
    /// ones after the tenant's retention), or finished and downloaded by every recipient.
    async fn attachments_due(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueAttachment>, StoreError>;
    /// Deletes an attachment's rows (after its blob is gone).
    async fn delete_attachment(&self, id: Uuid) -> Result<(), StoreError>;
}
