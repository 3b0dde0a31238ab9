//! Abuse controls that keep end-to-end encryption intact: blocks, verifiable reports
//! (message franking), moderation with suspension, and tenant webhooks for these events.

use cloak_proto::Code;
use cloak_proto::abuse::ReportRequest;
use cloak_proto::events;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::ServiceError;
use super::principals::DevicePrincipal;
use super::tokens::TokenSigner;
use crate::broker::{Broker, Rate};
use crate::store::{Decision, ReportRecord, Store};

/// Queues a `rate_limit.exceeded` webhook, at most once a minute per user. Best effort:
/// never fails the request that was limited.
pub async fn limit_event(
    store: &dyn Store,
    broker: &dyn Broker,
    tenant_id: Uuid,
    user_id: Uuid,
    policy: &str,
    now_ms: i64,
) {
    let once_a_minute = Rate {
        limit: 1,
        window_ms: 60_000,
    };
    let key = format!("limit-event:{tenant_id}:{user_id}:{policy}");
    let Ok(decision) = broker.rate_limit(&key, now_ms, once_a_minute).await else {
        return;
    };
    if !decision.allowed {
        return;
    }
    let payload = events::body(&events::RateLimitExceededEvent {
        kind: Default::default(),
        created_at_ms: now_ms,
        data: events::RateLimitExceeded {
            user_id,
            policy: policy.to_owned(),
        },
    });
    if let Err(e) = store
        .enqueue_webhook(tenant_id, "rate_limit.exceeded", &payload, now_ms)
        .await
    {
        tracing::warn!(error = %e, "could not queue the rate-limit webhook");
    }
}

/// Checks a report's evidence: the server's stamp over (commitment, sender, conversation,
/// time), then the commitment over (conversation, message id, text) under the revealed
/// franking key. Returns the sender's user id.
pub async fn verify_report(
    store: &dyn Store,
    signer: &TokenSigner,
    reporter: &DevicePrincipal,
    r: &ReportRequest,
) -> Result<Uuid, ServiceError> {
    let refuse = || {
        ServiceError::invalid(
            Code::ReportUnverifiable,
            "the evidence does not verify: this exact message was not sent",
        )
    };
    let stamp_input = cloak_proto::signing::franking_stamp_input(
        reporter.tenant_id,
        r.conversation_id,
        r.sender_device_id,
        r.sent_at_ms,
        &r.franking_tag,
    );
    if !signer.verify_stamp(&stamp_input, &r.franking_stamp) {
        return Err(refuse());
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&r.franking_key) else {
        return Err(refuse());
    };
    mac.update(&cloak_proto::signing::franking_commitment_input(
        r.conversation_id,
        r.message_id,
        &r.text,
    ));
    if r.franking_key.len() != 32 || mac.verify_slice(&r.franking_tag).is_err() {
        return Err(refuse());
    }
    let sender = store
        .find_device(r.sender_device_id)
        .await?
        .filter(|d| d.tenant_id == reporter.tenant_id)
        .ok_or_else(refuse)?;
    Ok(sender.user_id)
}

/// Files a verified report and tells the tenant (`report.created` webhook).
pub async fn report(
    store: &dyn Store,
    signer: &TokenSigner,
    reporter: &DevicePrincipal,
    r: &ReportRequest,
    now_ms: i64,
    id: Uuid,
) -> Result<ReportRecord, ServiceError> {
    super::devices::require_approved(reporter)?;
    let reported_user_id = verify_report(store, signer, reporter, r).await?;
    let record = ReportRecord {
        id,
        tenant_id: reporter.tenant_id,
        reporter_user_id: reporter.user_id,
        reported_user_id,
        reported_device_id: r.sender_device_id,
        conversation_id: r.conversation_id,
        message_id: r.message_id,
        sent_at_ms: r.sent_at_ms,
        text: r.text.clone(),
        reason: r.reason.clone(),
        status: "open".into(),
        created_at_ms: now_ms,
    };
    if !store.create_report(&record).await? {
        return Err(ServiceError::conflict(
            Code::AlreadyReported,
            "this user reported this message before",
        ));
    }
    let payload = events::body(&events::ReportCreatedEvent {
        kind: Default::default(),
        created_at_ms: now_ms,
        data: events::ReportCreated {
            report_id: id,
            reported_user_id,
        },
    });
    store
        .enqueue_webhook(reporter.tenant_id, "report.created", &payload, now_ms)
        .await?;
    Ok(record)
}

/// Upholds or dismisses a report; an upheld report may suspend the user (then a
/// `user.suspended` webhook).
pub async fn decide(
    store: &dyn Store,
    tenant_id: Uuid,
    id: Uuid,
    uphold: bool,
    now_ms: i64,
) -> Result<Decision, ServiceError> {
    let decision = store
        .decide_report(tenant_id, id, uphold, now_ms)
        .await?
        .ok_or(ServiceError::NotFound("open report"))?;
    if decision.suspended {
        let payload = events::body(&events::UserSuspendedEvent {
            kind: Default::default(),
            created_at_ms: now_ms,
            data: events::UserSuspended {
                user_id: decision.report.reported_user_id,
                upheld_reports: decision.upheld,
            },
        });
        store
            .enqueue_webhook(tenant_id, "user.suspended", &payload, now_ms)
            .await?;
    }
    Ok(decision)
}
