//! `/v1/conversations`: MLS groups, application messages and commits.

use crate::http::documented::problems;
use actix_web::{HttpResponse, get, post, web};
use cloak_proto::delivery::{
    CommitRequest, Conversation, ConversationList, ConversationMember, CreateConversationRequest,
    ExternalSender, SendMessageRequest, SendReceipt,
};
use cloak_proto::paging::PageQuery;
use uuid::Uuid;

use super::auth::DeviceAuth;
use super::extract::{ValidatedJson, ValidatedQuery};
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::delivery;
use crate::state::AppState;
use crate::store::{ConversationRecord, StoredSend};

/// The wire form of a conversation.
pub fn conversation_view(c: &ConversationRecord) -> Conversation {
    Conversation {
        id: c.id,
        epoch: u64::try_from(c.epoch).unwrap_or(0),
        members: c
            .members
            .iter()
            .map(|m| ConversationMember {
                device_id: m.device_id,
                user_id: m.user_id,
            })
            .collect(),
    }
}

/// The wire form of a stored send.
pub fn receipt(client_msg_id: Uuid, conversation_id: Uuid, s: &StoredSend) -> SendReceipt {
    SendReceipt {
        client_msg_id,
        conversation_id,
        epoch: u64::try_from(s.epoch).unwrap_or(0),
        recipients: u32::try_from(s.recipients.len()).unwrap_or(u32::MAX),
        sent_at: to_datetime(s.sent_at_ms),
        duplicate: s.duplicate,
        skipped: s.skipped.clone(),
    }
}

/// 201 for a newly stored send, 200 when it answers a retry.
fn receipt_response(r: SendReceipt) -> HttpResponse {
    if r.duplicate {
        HttpResponse::Ok().json(r)
    } else {
        HttpResponse::Created().json(r)
    }
}

/// The server's credential as an MLS external sender: a device creating a group lists it
/// in the group's `external_senders` extension, so the server can propose the removal of
/// revoked and long-inactive devices (as `proposal` mailbox entries, which members check
/// and commit). The server never commits, and holds no group secret.
#[utoipa::path(
    tag = "conversations",
    security(("device_token" = [])),
    responses(
        (status = 200, description = "The external sender", body = ExternalSender),
    )
)]
#[get("/v1/mls/external-sender")]
pub async fn external_sender(_auth: DeviceAuth, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.external_sender.info())
}

problems!(CreateConversationProblems: DevicePending, ConversationExists);

/// Creates a conversation (an MLS group at epoch 0) with the calling device as its only
/// member; others join through commits.
#[utoipa::path(
    tag = "conversations",
    security(("device_token" = [])),
    request_body = CreateConversationRequest,
    responses(
        CreateConversationProblems,
        (status = 201, description = "Created", body = Conversation),
    )
)]
#[post("/v1/conversations")]
pub async fn create_conversation(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<CreateConversationRequest>,
) -> Result<HttpResponse, ApiError> {
    let c = delivery::create(
        state.store.as_ref(),
        &auth.0,
        body.0.conversation_id,
        state.clock.now_ms(),
    )
    .await?;
    Ok(HttpResponse::Created().json(conversation_view(&c)))
}

problems!(ListConversationsProblems: InvalidCursor, InvalidQuery, DevicePending);

/// The calling device's conversations, oldest first, a page at a time (`next_cursor`).
#[utoipa::path(
    tag = "conversations",
    security(("device_token" = [])),
    params(PageQuery),
    responses(
        ListConversationsProblems,
        (status = 200, description = "Conversations", body = ConversationList),
    )
)]
#[get("/v1/conversations")]
pub async fn list_conversations(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    query: ValidatedQuery<PageQuery>,
) -> Result<web::Json<ConversationList>, ApiError> {
    let (list, next_cursor) = delivery::list(state.store.as_ref(), &auth.0, &query.0).await?;
    Ok(web::Json(ConversationList {
        items: list.iter().map(conversation_view).collect(),
        next_cursor,
    }))
}

problems!(GetConversationProblems: DevicePending, NotFound);

/// A conversation the calling device is a member of: its epoch and members.
#[utoipa::path(
    tag = "conversations",
    security(("device_token" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        GetConversationProblems,
        (status = 200, description = "The conversation", body = Conversation),
    )
)]
#[get("/v1/conversations/{id}")]
pub async fn get_conversation(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Conversation>, ApiError> {
    let c = delivery::get(state.store.as_ref(), &auth.0, *id).await?;
    Ok(web::Json(conversation_view(&c)))
}

problems!(SendMessageProblems: ControlTooLarge, InvalidEpoch, InvalidFrankingTag, InsufficientCredits, AttachmentNotAllowed, NotAllowedAtTrustLevel, DevicePending, NotFound, StaleEpoch, MailboxFull, LimiterUnavailable);

/// Sends an MLS application message to every other member device. It is stored in every
/// recipient's mailbox before this answers; a retry with the same `client_msg_id` answers
/// `duplicate: true` and stores nothing.
#[utoipa::path(
    tag = "conversations",
    security(("device_token" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = SendMessageRequest,
    responses(
        SendMessageProblems,
        (status = 201, description = "Stored for every recipient", body = SendReceipt),
        (status = 200, description = "A retry of an accepted send", body = SendReceipt),
    )
)]
#[post("/v1/conversations/{id}/messages")]
pub async fn send_message(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: ValidatedJson<SendMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let stored = delivery::send(
        state.delivery(),
        &auth.0,
        *id,
        &body.0,
        state.clock.now_ms(),
    )
    .await?;
    Ok(receipt_response(receipt(
        body.0.client_msg_id,
        *id,
        &stored,
    )))
}

problems!(SubmitCommitProblems: WelcomeMismatch, DuplicateDevice, InvalidCommit, InvalidWelcome, CommitTooLarge, InsufficientCredits, DevicePending, NotFound, StaleEpoch, MembershipConflict, RateLimited, LimiterUnavailable);

/// Submits an MLS commit created at `epoch`. Accepted only if the conversation is still at
/// that epoch; otherwise 409 `stale_epoch` with `current_epoch`, and the client processes
/// the commits it has not seen, discards its own and retries. An accepted commit advances
/// the epoch, changes the member list, and is stored with its Welcome atomically, in
/// order with application messages.
#[utoipa::path(
    tag = "conversations",
    security(("device_token" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = CommitRequest,
    responses(
        SubmitCommitProblems,
        (status = 201, description = "Accepted; `epoch` is the new epoch", body = SendReceipt),
        (status = 200, description = "A retry of an accepted commit", body = SendReceipt),
    )
)]
#[post("/v1/conversations/{id}/commits")]
pub async fn submit_commit(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: ValidatedJson<CommitRequest>,
) -> Result<HttpResponse, ApiError> {
    let stored = delivery::commit(
        state.delivery(),
        &auth.0,
        *id,
        &body.0,
        state.clock.now_ms(),
    )
    .await?;
    Ok(receipt_response(receipt(
        body.0.client_msg_id,
        *id,
        &stored,
    )))
}
