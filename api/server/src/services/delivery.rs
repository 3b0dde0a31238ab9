//! Delivery: the server as MLS delivery service. It orders commits per conversation
//! (compare-and-swap on the epoch), stores every message durably in each recipient
//! device's mailbox before acknowledging the sender (through the node's group-commit
//! [`Pipeline`]), and pushes it to the recipients' sockets from memory. Bodies are opaque
//! ciphertext; nothing here reads them.

use cloak_proto::Code;
use cloak_proto::delivery::{CommitRequest, EnvelopeKind, MessageClass, SendMessageRequest};
use cloak_proto::devices::DeviceStatus;
use cloak_proto::paging::PageQuery;
use uuid::Uuid;

use super::ServiceError;
use super::abuse;
use super::billing::{self, Billable};
use super::commit_rules;
use super::devices::require_approved;
use super::hot::HotCache;
use super::limits::{self, Policy};
use super::paging;
use super::pipeline::{self, Pipeline};
use super::principals::DevicePrincipal;
use super::push;
use super::tokens::TokenSigner;
use crate::broker::Broker;
use crate::config::Guards;
use crate::store::{
    Ack, CommitChanges, ConversationRecord, MailboxEntry, Member, NewSend, SendOutcome, Store,
    StoreError, StoredSend, ViewKey,
};

/// What the send path needs of the node.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub broker: &'a dyn Broker,
    pub signer: &'a TokenSigner,
    pub hot: &'a HotCache,
    pub pipeline: &'a Pipeline,
    /// Most entries a mailbox may hold.
    pub mailbox_quota: i64,
    /// Sizes, rates and caps.
    pub guards: &'a Guards,
}

/// How long a client message id is remembered for deduplication.
pub const DEDUP_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Largest control message (receipt, typing indicator), which is free.
pub const MAX_CONTROL_BYTES: usize = 1024;

pub use push::device_topic;

fn conversation_not_found() -> ServiceError {
    ServiceError::NotFound("conversation")
}

fn epoch_arg(epoch: u64) -> Result<i64, ServiceError> {
    i64::try_from(epoch)
        .map_err(|_| ServiceError::invalid(Code::InvalidEpoch, "epoch is out of range"))
}

fn member(device: &DevicePrincipal) -> Member {
    Member {
        device_id: device.device_id,
        user_id: device.user_id,
    }
}

/// Creates a conversation with the calling device as its only member, at epoch 0.
pub async fn create(
    store: &dyn Store,
    device: &DevicePrincipal,
    id: Uuid,
    now_ms: i64,
) -> Result<ConversationRecord, ServiceError> {
    require_approved(device)?;
    if !store
        .create_conversation(device.tenant_id, id, member(device), now_ms)
        .await?
    {
        return Err(ServiceError::conflict(
            Code::ConversationExists,
            "a conversation with this id already exists",
        ));
    }
    get(store, device, id).await
}

/// A conversation the device is a member of.
pub async fn get(
    store: &dyn Store,
    device: &DevicePrincipal,
    id: Uuid,
) -> Result<ConversationRecord, ServiceError> {
    require_approved(device)?;
    store
        .get_conversation(device.tenant_id, id)
        .await?
        .filter(|c| c.members.iter().any(|m| m.device_id == device.device_id))
        .ok_or_else(conversation_not_found)
}

/// A page of the device's conversations, oldest first, and the next page's cursor.
pub async fn list(
    store: &dyn Store,
    device: &DevicePrincipal,
    query: &PageQuery,
) -> Result<(Vec<ConversationRecord>, Option<String>), ServiceError> {
    require_approved(device)?;
    let after = paging::decode_uuid(query.cursor.as_deref())?;
    let limit = paging::limit(query);
    let rows = store
        .device_conversations(device.tenant_id, device.device_id, after, limit)
        .await?;
    let next = paging::next(&rows, limit, |(t, c)| (*t, c.id.to_string()));
    Ok((rows.into_iter().map(|(_, c)| c).collect(), next))
}

fn outcome(result: SendOutcome) -> Result<StoredSend, ServiceError> {
    match result {
        SendOutcome::Stored(s) => Ok(s),
        SendOutcome::NoConversation | SendOutcome::NotMember => Err(conversation_not_found()),
        SendOutcome::StaleEpoch(epoch) => {
            metrics::counter!("delivery_commit_conflicts_total").increment(1);
            Err(ServiceError::StaleEpoch(epoch))
        }
        SendOutcome::MailboxFull(device) => Err(ServiceError::conflict(
            Code::MailboxFull,
            format!(
                "the mailbox of recipient device {device} is full; it must fetch and acknowledge first"
            ),
        )),
        SendOutcome::InsufficientCredits(balance) => Err(billing::insufficient(balance, "message")),
        SendOutcome::BadMembership(device) => Err(ServiceError::conflict(
            Code::MembershipConflict,
            format!("device {device} is already a member (add) or is not a member (remove)"),
        )),
        SendOutcome::SenderRevoked => Err(ServiceError::unauthorized(
            Code::DeviceRevoked,
            "the device has been revoked",
        )),
        SendOutcome::SenderSuspended => Err(ServiceError::unauthorized(
            Code::UserSuspended,
            "the user is suspended",
        )),
        SendOutcome::StorageUnavailable => Err(ServiceError::Store(StoreError::Unavailable(
            "the tenant's memory-only mailboxes do not answer; try again shortly".into(),
        ))),
    }
}

/// A send that passed the checks made before the batch.
pub enum Prepared {
    /// To be stored.
    Store(Box<NewSend>),
    /// A retry of a message that was stored before, refused by the limiter: answered as
    /// the replay it is.
    Replay(StoredSend),
}

/// A send queued in the pipeline, or already answered.
pub enum Queued {
    Pending(pipeline::Queued<SendOutcome>),
    Done(StoredSend),
}

impl Queued {
    /// Waits for the batch that stores it.
    pub async fn wait(self) -> Result<StoredSend, ServiceError> {
        match self {
            Self::Done(s) => Ok(s),
            Self::Pending(p) => outcome(p.wait().await?),
        }
    }
}

/// Checks a message before it joins a batch: size and franking rules, the sender's trust
/// level and rate limit (cached level, limiter in the broker), and its price. Membership,
/// epoch, standing and balance are checked in the batch's transaction.
pub async fn prepare_send(
    ctx: Ctx<'_>,
    device: &DevicePrincipal,
    conversation_id: Uuid,
    request: &SendMessageRequest,
    now_ms: i64,
) -> Result<Prepared, ServiceError> {
    require_approved(device)?;
    if request.class == MessageClass::Control && request.body.len() > MAX_CONTROL_BYTES {
        return Err(ServiceError::invalid(
            Code::ControlTooLarge,
            format!("control messages (receipts, typing) are at most {MAX_CONTROL_BYTES} bytes"),
        ));
    }
    let franking = match &request.franking_tag {
        Some(tag) if tag.len() == 32 => {
            let input = cloak_proto::signing::franking_stamp_input(
                device.tenant_id,
                conversation_id,
                device.device_id,
                now_ms,
                tag,
            );
            Some((tag.clone(), ctx.signer.stamp(&input)))
        }
        Some(_) => {
            return Err(ServiceError::invalid(
                Code::InvalidFrankingTag,
                "a franking tag is 32 bytes",
            ));
        }
        None => None,
    };
    let level = ctx
        .hot
        .standing(ctx.store, device.tenant_id, device.user_id, now_ms)
        .await?;
    limits::allows_class(&level, request.class)?;
    let policy = if request.class == MessageClass::Control {
        Policy::control()
    } else {
        Policy::messages(&level)
    };
    let subject = format!("{}:{}", device.tenant_id, device.user_id);
    // The limiter first: a refused request costs no further database work.
    if let Err(limited) = limits::hit(ctx.broker, &subject, &policy, now_ms).await {
        // A retry of a message that was accepted is answered as such, not refused.
        if let Some(previous) = ctx
            .store
            .find_send(device.tenant_id, device.device_id, request.client_msg_id)
            .await?
        {
            return Ok(Prepared::Replay(previous));
        }
        abuse::limit_event(
            ctx.store,
            ctx.broker,
            device.tenant_id,
            device.user_id,
            policy.name,
            now_ms,
        )
        .await;
        return Err(limited);
    }
    let plan = ctx.hot.billing_plan(ctx.store, device.tenant_id).await?;
    let charge = billing::charge_for(
        &plan,
        device.tenant_id,
        device.user_id,
        format!("device:{}", device.device_id),
        Billable::Message(request.class),
    )?;
    Ok(Prepared::Store(Box::new(NewSend {
        tenant_id: device.tenant_id,
        conversation_id,
        sender: member(device),
        client_msg_id: request.client_msg_id,
        epoch: epoch_arg(request.epoch)?,
        body: request.body.clone(),
        now_ms,
        mailbox_quota: ctx.mailbox_quota,
        charge,
        franking,
        viewable: request.class != MessageClass::Control,
    })))
}

/// Hands a prepared send to the pipeline, behind the device's earlier sends.
pub async fn queue_send(ctx: Ctx<'_>, prepared: Prepared) -> Result<Queued, ServiceError> {
    match prepared {
        Prepared::Replay(s) => Ok(Queued::Done(s)),
        Prepared::Store(send) => Ok(Queued::Pending(ctx.pipeline.send(*send).await?)),
    }
}

/// Stores an application message for every other member (through the pipeline) and
/// pushes it to them.
pub async fn send(
    ctx: Ctx<'_>,
    device: &DevicePrincipal,
    conversation_id: Uuid,
    request: &SendMessageRequest,
    now_ms: i64,
) -> Result<StoredSend, ServiceError> {
    let prepared = prepare_send(ctx, device, conversation_id, request, now_ms).await?;
    queue_send(ctx, prepared).await?.wait().await
}

/// Applies a commit (if the conversation is still at its epoch) with its Welcome, after
/// the checks a member cannot get around: sizes, the commit limits per device and per
/// conversation, the MLS framing (a commit for this group at this epoch) and a Welcome
/// with one secret per added device.
pub async fn commit(
    ctx: Ctx<'_>,
    device: &DevicePrincipal,
    conversation_id: Uuid,
    request: &CommitRequest,
    now_ms: i64,
) -> Result<StoredSend, ServiceError> {
    require_approved(device)?;
    commit_rules::check(ctx.guards, conversation_id, request)?;
    for (subject, policy) in [
        (
            format!("{}:{}", device.tenant_id, device.device_id),
            Policy::commits(ctx.guards.commits_per_device_per_minute),
        ),
        (
            format!("{}:{conversation_id}", device.tenant_id),
            Policy::conversation_commits(ctx.guards.commits_per_conversation_per_minute),
        ),
    ] {
        if let Err(limited) = limits::hit(ctx.broker, &subject, &policy, now_ms).await {
            if let Some(previous) = ctx
                .store
                .find_send(device.tenant_id, device.device_id, request.client_msg_id)
                .await?
            {
                return Ok(previous);
            }
            return Err(limited);
        }
    }
    let mut add = Vec::with_capacity(request.add.len());
    for id in &request.add {
        let target = ctx
            .store
            .get_device(device.tenant_id, *id)
            .await?
            .filter(|d| d.status == DeviceStatus::Approved)
            .ok_or(ServiceError::NotFound("approved device"))?;
        let related = target.user_id == device.user_id
            || ctx
                .store
                .are_contacts(device.tenant_id, device.user_id, target.user_id)
                .await?;
        if !related {
            return Err(ServiceError::NotFound("approved device"));
        }
        add.push(Member {
            device_id: target.id,
            user_id: target.user_id,
        });
    }
    let plan = ctx.hot.billing_plan(ctx.store, device.tenant_id).await?;
    let charge = billing::charge_for(
        &plan,
        device.tenant_id,
        device.user_id,
        format!("device:{}", device.device_id),
        Billable::Commit,
    )?;
    let send = NewSend {
        tenant_id: device.tenant_id,
        conversation_id,
        sender: member(device),
        client_msg_id: request.client_msg_id,
        epoch: epoch_arg(request.epoch)?,
        body: request.commit.clone(),
        now_ms,
        mailbox_quota: ctx.mailbox_quota,
        charge,
        franking: None,
        viewable: false,
    };
    let changes = CommitChanges {
        add,
        leaves: request.leaf_indices.clone(),
        remove: request.remove.clone(),
        welcome: request.welcome.clone(),
    };
    let stored = match ctx.store.store_commit(&send, &changes).await? {
        SendOutcome::InsufficientCredits(balance) => {
            return Err(billing::insufficient(balance, "commit"));
        }
        other => outcome(other)?,
    };
    if !stored.duplicate {
        push::wake(ctx.broker, &stored.recipients).await;
    }
    Ok(stored)
}

/// A page of the device's mailbox after `after`: at most `limit` entries and about
/// `max_bytes` of bodies (the first entry always comes, so a page is never empty while
/// entries wait). `more` tells whether entries follow.
///
/// When the tenant prices viewing (`message_view`), the recipient's payer is charged for
/// each message the user has not viewed on another device; the page ends before the
/// first it cannot afford (that one and the rest stay queued), and when that is the first
/// entry the answer is 402 `payment_required`.
pub async fn fetch(
    store: &dyn Store,
    hot: &HotCache,
    device: &DevicePrincipal,
    after: u64,
    limit: u32,
    max_bytes: usize,
    now_ms: i64,
) -> Result<(Vec<MailboxEntry>, bool), ServiceError> {
    require_approved(device)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
    // One more row than asked for tells whether more follow.
    let mut entries = store
        .fetch_mailbox_page(
            device.tenant_id,
            device.device_id,
            after,
            i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1),
            i64::try_from(max_bytes).unwrap_or(i64::MAX),
            now_ms,
        )
        .await?;
    let mut total = 0usize;
    let mut keep = 0usize;
    for e in &entries {
        total = total.saturating_add(e.body.len());
        if keep > 0 && (total > max_bytes || keep == limit) {
            break;
        }
        keep += 1;
    }
    let more = entries.len() > keep;
    entries.truncate(keep);
    let plan = hot.billing_plan(store, device.tenant_id).await?;
    if plan.prices.message_view > 0 {
        let held = charge_views(store, &plan, device, &mut entries, now_ms).await?;
        return Ok((entries, more || held));
    }
    Ok((entries, more))
}

/// Whether the tenant charges for viewing messages (then sockets deliver through
/// [`fetch`], which charges, instead of pushing from memory).
pub async fn views_priced(
    store: &dyn Store,
    hot: &HotCache,
    tenant_id: Uuid,
) -> Result<bool, ServiceError> {
    Ok(hot
        .billing_plan(store, tenant_id)
        .await?
        .prices
        .message_view
        > 0)
}

/// Charges the views of a page (see [`fetch`]); true when entries were held back.
async fn charge_views(
    store: &dyn Store,
    plan: &crate::store::BillingPlan,
    device: &DevicePrincipal,
    entries: &mut Vec<MailboxEntry>,
    now_ms: i64,
) -> Result<bool, ServiceError> {
    use sha2::Digest as _;
    let viewable: Vec<(usize, ViewKey)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.viewable && e.kind == EnvelopeKind::Application)
        .map(|(i, e)| {
            let mut h = sha2::Sha256::new();
            h.update(b"cloak message view v1");
            h.update(e.conversation_id.as_bytes());
            h.update(e.sender_device_id.as_bytes());
            h.update(&e.body);
            let key = ViewKey {
                sender_device_id: e.sender_device_id,
                digest: h.finalize().into(),
            };
            (i, key)
        })
        .collect();
    let Some(charge) = billing::charge_for(
        plan,
        device.tenant_id,
        device.user_id,
        format!("device:{}", device.device_id),
        Billable::MessageView,
    )?
    else {
        return Ok(false);
    };
    if viewable.is_empty() {
        return Ok(false);
    }
    let keys: Vec<ViewKey> = viewable.iter().map(|(_, k)| k.clone()).collect();
    let allowed = store
        .charge_views(device.tenant_id, device.user_id, &charge, &keys, now_ms)
        .await?;
    let Some((cut, _)) = viewable.get(allowed) else {
        return Ok(false);
    };
    if *cut == 0 {
        return Err(ServiceError::PaymentRequired {
            code: Code::PaymentRequired,
            detail: "the payer cannot afford viewing the next message; it stays queued until credits arrive".into(),
        });
    }
    entries.truncate(*cut);
    Ok(true)
}

/// Deletes the device's entries up to and including `up_to` (coalesced with other
/// acknowledgements into one transaction).
pub async fn ack(
    pipeline: &Pipeline,
    device: &DevicePrincipal,
    up_to: u64,
) -> Result<pipeline::Queued<u64>, ServiceError> {
    require_approved(device)?;
    let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
    pipeline
        .ack(Ack {
            tenant_id: device.tenant_id,
            device_id: device.device_id,
            up_to,
        })
        .await
}
