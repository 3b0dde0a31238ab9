//! Encrypted attachments: resumable uploads (tus 1.0), downloads by conversation members,
//! and the sweep that deletes what is done with.
//!
//! The tier — and with it the price and whether the sender's trust level may send it —
//! follows from the declared total size. An upload is refused before any byte when the
//! level does not allow its tier, the payer cannot afford it, the tenant's storage quota
//! is used up or the user starts uploads too fast; the price is taken once, in the
//! transaction that records the last part.

use std::ops::Range;

use bytes::Bytes;
use cloak_proto::Code;
use cloak_proto::abuse::AttachmentSize;
use cloak_proto::attachments::AttachmentUpload;
use cloak_proto::delivery::MessageClass;
use futures_util::stream::{self, BoxStream, StreamExt as _, TryStreamExt as _};
use uuid::Uuid;

use super::billing::{self, Billable};
use super::limits::{self, Policy};
use super::principals::DevicePrincipal;
use super::{ServiceError, abuse, devices};
use crate::blobs::{self, BlobError, BlobStore};
use crate::broker::Broker;
use crate::config::AttachmentSettings;
use crate::store::{AppendOutcome, AttachmentRecord, Charge, Completion, NewUpload, Part, Store};

/// An unfinished upload is discarded this long after it was created.
pub const UNFINISHED_TTL_MS: i64 = 24 * 3600 * 1000;
/// Attachments the sweep deletes per pass.
const SWEEP_BATCH: i64 = 100;

/// What uploads and downloads need.
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub broker: &'a dyn Broker,
    pub blobs: &'a dyn BlobStore,
    pub settings: &'a AttachmentSettings,
}

fn class_of(tier: AttachmentSize) -> MessageClass {
    match tier {
        AttachmentSize::Large => MessageClass::AttachmentLarge,
        AttachmentSize::Medium => MessageClass::AttachmentMedium,
        AttachmentSize::Small | AttachmentSize::None => MessageClass::AttachmentSmall,
    }
}

fn tier_of(record: &AttachmentRecord) -> AttachmentSize {
    AttachmentSize::for_size(u64::try_from(record.size).unwrap_or(0))
}

fn blob_failure(e: &BlobError) -> ServiceError {
    tracing::warn!(error = %e, "blob store failed");
    ServiceError::Unavailable {
        code: Code::BlobStoreUnavailable,
        detail: "the blob store did not answer; retry shortly".into(),
    }
}

/// The wire form of an upload.
pub fn to_wire(record: &AttachmentRecord, price: i64) -> AttachmentUpload {
    AttachmentUpload {
        id: record.id,
        conversation_id: record.conversation_id,
        size: u64::try_from(record.size).unwrap_or(0),
        offset: u64::try_from(record.received).unwrap_or(0),
        tier: tier_of(record),
        price,
        complete: record.completed_at_ms.is_some(),
        expires_at: crate::clock::to_datetime(record.expires_at_ms),
    }
}

/// The tier's charge for `user_id`'s payer, if it has a price.
async fn tier_charge(
    store: &dyn Store,
    device: &DevicePrincipal,
    tier: AttachmentSize,
) -> Result<(Option<Charge>, i64), ServiceError> {
    let plan = store.billing_plan(device.tenant_id).await?;
    let what = Billable::Message(class_of(tier));
    let (price, _) = billing::price_of(&plan.prices, what);
    let actor = format!("device:{}", device.device_id);
    let charge = billing::charge_for(&plan, device.tenant_id, device.user_id, actor, what)?;
    Ok((charge, price.max(0)))
}

/// `POST /v1/attachments`: declares an upload of `size` bytes to `conversation_id`.
pub async fn create(
    ctx: &Ctx<'_>,
    device: &DevicePrincipal,
    conversation_id: Uuid,
    size: i64,
    id: Uuid,
    now_ms: i64,
) -> Result<AttachmentUpload, ServiceError> {
    devices::require_approved(device)?;
    if size < 1 {
        return Err(ServiceError::invalid(
            Code::InvalidUpload,
            "Upload-Length must be at least 1",
        ));
    }
    if size > ctx.settings.max_bytes {
        return Err(ServiceError::invalid(
            Code::AttachmentTooLarge,
            format!(
                "attachments are at most {} bytes (Tus-Max-Size)",
                ctx.settings.max_bytes
            ),
        ));
    }
    let (tenant_id, user_id) = (device.tenant_id, device.user_id);
    if !ctx
        .store
        .is_member(tenant_id, conversation_id, device.device_id)
        .await?
    {
        return Err(ServiceError::NotFound("conversation"));
    }
    let tier = AttachmentSize::for_size(u64::try_from(size).unwrap_or(u64::MAX));
    let level = limits::standing(ctx.store, tenant_id, user_id, now_ms).await?;
    if tier > level.max_attachment {
        return Err(ServiceError::forbidden(
            Code::AttachmentNotAllowed,
            format!(
                "a {size}-byte attachment is in the {} tier; trust level {} allows up to {}",
                tier.as_str(),
                level.name,
                level.max_attachment.as_str()
            ),
        ));
    }
    let subject = format!("{tenant_id}:{user_id}");
    let policy = Policy::uploads(ctx.settings.uploads_per_hour);
    if let Err(e) = limits::hit(ctx.broker, &subject, &policy, now_ms).await {
        abuse::limit_event(ctx.store, ctx.broker, tenant_id, user_id, "uploads", now_ms).await;
        return Err(e);
    }
    let (charge, price) = tier_charge(ctx.store, device, tier).await?;
    if let Some(Charge::Prepaid {
        wallet_id, amount, ..
    }) = &charge
    {
        let balance = ctx
            .store
            .get_wallet(tenant_id, *wallet_id)
            .await?
            .map_or(0, |w| w.balance);
        if balance < *amount {
            return Err(billing::insufficient(balance, "attachment"));
        }
    }
    let upload = NewUpload {
        id,
        tenant_id,
        conversation_id,
        user_id,
        device_id: device.device_id,
        size,
        tier: tier.as_str(),
        now_ms,
        expires_at_ms: now_ms.saturating_add(UNFINISHED_TTL_MS),
    };
    if !ctx
        .store
        .create_upload(&upload, ctx.settings.tenant_quota_bytes)
        .await?
    {
        return Err(ServiceError::conflict(
            Code::StorageQuotaExceeded,
            "the tenant's attachments would exceed its storage quota",
        ));
    }
    metrics::counter!("attachment_uploads_started_total").increment(1);
    let record = ctx
        .store
        .attachment(tenant_id, id)
        .await?
        .ok_or(ServiceError::NotFound("attachment"))?;
    Ok(to_wire(&record, price))
}

/// The uploader's own upload (404 for anyone else: no existence oracle).
pub async fn own_upload(
    store: &dyn Store,
    device: &DevicePrincipal,
    id: Uuid,
) -> Result<AttachmentRecord, ServiceError> {
    match store.attachment(device.tenant_id, id).await? {
        Some(r) if r.uploader_device_id == device.device_id => Ok(r),
        _ => Err(ServiceError::NotFound("attachment")),
    }
}

/// `PATCH /v1/attachments/{id}`: stores `body` at `offset`; returns the new offset and
/// whether the upload is complete.
pub async fn append(
    ctx: &Ctx<'_>,
    device: &DevicePrincipal,
    id: Uuid,
    offset: i64,
    body: Bytes,
    now_ms: i64,
) -> Result<AttachmentRecord, ServiceError> {
    let upload = own_upload(ctx.store, device, id).await?;
    if upload.completed_at_ms.is_none() && upload.expires_at_ms <= now_ms {
        return Err(ServiceError::Gone {
            code: Code::UploadExpired,
            detail: "the unfinished upload expired and was discarded".into(),
        });
    }
    if offset != upload.received || upload.completed_at_ms.is_some() {
        return Err(offset_mismatch(upload.received));
    }
    let len = i64::try_from(body.len()).unwrap_or(i64::MAX);
    if len == 0 || offset.saturating_add(len) > upload.size {
        return Err(ServiceError::invalid(
            Code::InvalidUpload,
            "a PATCH carries at least one byte and no byte beyond Upload-Length",
        ));
    }
    let key = blobs::part_key(device.tenant_id, id, offset, Uuid::new_v4());
    ctx.blobs
        .put(&key, body)
        .await
        .map_err(|e| blob_failure(&e))?;
    let completing = offset + len == upload.size;
    let completion = if completing {
        let tenant = ctx
            .store
            .get_tenant(device.tenant_id)
            .await?
            .ok_or(ServiceError::NotFound("tenant"))?;
        let (charge, _) = tier_charge(ctx.store, device, tier_of(&upload)).await?;
        Completion {
            charge,
            key: format!("attachment:{id}"),
            expires_at_ms: now_ms.saturating_add(tenant.retention_ms),
        }
    } else {
        Completion {
            charge: None,
            key: String::new(),
            expires_at_ms: upload.expires_at_ms,
        }
    };
    let part = Part { offset, len, key };
    let outcome = ctx
        .store
        .append_part(device.tenant_id, id, &part, &completion, now_ms)
        .await?;
    let refused = match outcome {
        AppendOutcome::Appended { .. } => None,
        AppendOutcome::OffsetMismatch(received) => Some(offset_mismatch(received)),
        AppendOutcome::Insufficient(balance) => Some(billing::insufficient(balance, "attachment")),
        AppendOutcome::Missing => Some(ServiceError::NotFound("attachment")),
    };
    if let Some(e) = refused {
        // The bytes were stored under a key no row names: drop them again.
        if let Err(err) = ctx.blobs.delete(&part.key).await {
            tracing::warn!(error = %err, "could not delete an unrecorded part");
        }
        return Err(e);
    }
    if completing {
        metrics::counter!("attachment_uploads_completed_total").increment(1);
    }
    ctx.store
        .attachment(device.tenant_id, id)
        .await?
        .ok_or(ServiceError::NotFound("attachment"))
}

fn offset_mismatch(received: i64) -> ServiceError {
    ServiceError::conflict(
        Code::UploadOffsetMismatch,
        format!("the upload is at offset {received}; HEAD tells the offset to resume from"),
    )
}

/// `DELETE /v1/attachments/{id}` (tus termination): the uploader discards its upload.
pub async fn terminate(
    ctx: &Ctx<'_>,
    device: &DevicePrincipal,
    id: Uuid,
) -> Result<(), ServiceError> {
    let upload = own_upload(ctx.store, device, id).await?;
    ctx.blobs
        .delete_prefix(&blobs::attachment_prefix(upload.tenant_id, id))
        .await
        .map_err(|e| blob_failure(&e))?;
    ctx.store.delete_attachment(id).await?;
    Ok(())
}

/// A finished attachment a member device may download, with its parts; 404 for anything
/// else (unknown, unfinished, another tenant's, a conversation the device is not in).
pub async fn open_download(
    store: &dyn Store,
    device: &DevicePrincipal,
    id: Uuid,
) -> Result<(AttachmentRecord, Vec<Part>), ServiceError> {
    devices::require_approved(device)?;
    let record = match store.attachment(device.tenant_id, id).await? {
        Some(r) if r.completed_at_ms.is_some() => r,
        _ => return Err(ServiceError::NotFound("attachment")),
    };
    if !store
        .is_member(device.tenant_id, record.conversation_id, device.device_id)
        .await?
    {
        return Err(ServiceError::NotFound("attachment"));
    }
    let parts = store.parts(id).await?;
    Ok((record, parts))
}

/// The bytes `range` of an attachment made of `parts`, streamed part after part.
/// Parts requested ahead of the one being streamed, counting it.
const PREFETCH_PARTS: usize = 4;

pub fn read_range(
    blobs: std::sync::Arc<dyn BlobStore>,
    parts: Vec<Part>,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, BlobError>> {
    let pieces: Vec<(String, Range<u64>)> = parts
        .into_iter()
        .filter_map(|p| {
            let start = u64::try_from(p.offset).ok()?;
            let end = start.checked_add(u64::try_from(p.len).ok()?)?;
            let (from, to) = (range.start.max(start), range.end.min(end));
            (from < to).then(|| (p.key, (from - start)..(to - start)))
        })
        .collect();
    // The next part's request goes out while this part's body streams (an S3 GET costs a
    // round trip before its first byte); their bodies wait in the socket, so at most
    // PREFETCH_PARTS parts are in flight and none is buffered whole.
    stream::iter(pieces)
        .map(move |(key, r)| {
            let blobs = blobs.clone();
            async move { blobs.get(&key, r).await }
        })
        .buffered(PREFETCH_PARTS)
        .try_flatten()
        .boxed()
}

/// [`read_range`], with its first bytes already asked for: a blob that is gone (swept a
/// moment after its last download, while the rows still stand) is a 404 and a store that
/// does not answer a 503, before the response starts, rather than a body cut short.
pub async fn open_range(
    blobs: std::sync::Arc<dyn BlobStore>,
    parts: Vec<Part>,
    range: Range<u64>,
) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, ServiceError> {
    let mut body = read_range(blobs, parts, range).peekable();
    match std::pin::Pin::new(&mut body).peek().await {
        Some(Err(BlobError::Store(object_store::Error::NotFound { .. }))) => {
            Err(ServiceError::NotFound("attachment"))
        }
        Some(Err(e)) => Err(blob_failure(e)),
        _ => Ok(body.boxed()),
    }
}

/// One pass of the sweep: deletes the blobs, then the rows, of attachments that are done
/// with. Returns how many were deleted.
pub async fn sweep(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    now_ms: i64,
) -> Result<u64, ServiceError> {
    let due = store.attachments_due(now_ms, SWEEP_BATCH).await?;
    let mut deleted = 0;
    for a in due {
        blobs
            .delete_prefix(&blobs::attachment_prefix(a.tenant_id, a.id))
            .await
            .map_err(|e| blob_failure(&e))?;
        store.delete_attachment(a.id).await?;
        deleted += 1;
    }
    Ok(deleted)
}
