//! `/v1/mailbox`: a device fetches and acknowledges its queued envelopes over REST (the
//! same operations the WebSocket offers, for clients that cannot hold a socket).

use crate::http::documented::problems;
use actix_web::{get, post, web};
use cloak_proto::delivery::{AckReceipt, AckRequest, MailboxPage, MailboxQuery};
use validator::Validate;

use super::auth::DeviceAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::services::delivery;
use crate::state::AppState;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;

pub use crate::services::push::envelope;

problems!(FetchMailboxProblems: PaymentRequired, DevicePending);

/// Entries after `after`, in sequence order: at most `limit`, and a page ends once its
/// bodies reach the server's byte bound (`CLOAK_MAILBOX_PAGE_BYTES`, 4 MiB by default;
/// the first entry always comes). `more` says whether entries follow.
#[utoipa::path(
    tag = "mailbox",
    security(("device_token" = [])),
    params(MailboxQuery),
    responses(
        FetchMailboxProblems,
        (status = 200, description = "A page of entries", body = MailboxPage),
    )
)]
#[get("/v1/mailbox")]
pub async fn fetch_mailbox(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    query: web::Query<MailboxQuery>,
) -> Result<web::Json<MailboxPage>, ApiError> {
    query.validate().map_err(|e| ApiError::validation(&e))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let (entries, more) = delivery::fetch(
        state.store.as_ref(),
        &state.hot,
        &auth.0,
        query.after,
        limit,
        state.settings.guards.mailbox_page_bytes,
        state.clock.now_ms(),
    )
    .await?;
    Ok(web::Json(MailboxPage {
        items: entries.into_iter().map(envelope).collect(),
        more,
    }))
}

problems!(AckMailboxProblems: DevicePending);

/// Acknowledges (deletes) entries up to and including `up_to`.
#[utoipa::path(
    tag = "mailbox",
    security(("device_token" = [])),
    request_body = AckRequest,
    responses(
        AckMailboxProblems,
        (status = 200, description = "Deleted", body = AckReceipt),
    )
)]
#[post("/v1/mailbox/ack")]
pub async fn ack_mailbox(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<AckRequest>,
) -> Result<web::Json<AckReceipt>, ApiError> {
    let pending = delivery::ack(&state.pipeline, &auth.0, body.0.up_to).await?;
    let deleted = crate::services::pipeline::settle(pending).await?;
    Ok(web::Json(AckReceipt { deleted }))
}
