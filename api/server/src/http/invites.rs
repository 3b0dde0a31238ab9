//! `/v1/invites`: tenants mint invites (links and QR codes); devices redeem them.

use crate::http::documented::problems;
use actix_web::{HttpResponse, delete, get, post, web};
use cloak_proto::invites::{
    Contact, ContactList, CreateInviteRequest, Invite, InviteList, Redemption,
};
use cloak_proto::paging::PageQuery;
use uuid::Uuid;

use super::auth::{CallerAuth, DeviceAuth, TenantAuth};
use super::extract::{ValidatedJson, ValidatedQuery};
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::devices::require_approved;
use crate::services::{ServiceError, invites, paging, qr};
use crate::state::AppState;
use crate::store::InviteRecord;

/// The link for an invite: `{public_url}/i/{code}`, plus `#fp=` when the inviter has a root device.
pub async fn invite_url(state: &AppState, invite: &InviteRecord) -> Result<String, ServiceError> {
    let base = format!("{}/i/{}", state.settings.public_url, invite.code);
    let fp = invites::inviter_fingerprint(
        state.store.as_ref(),
        invite.tenant_id,
        invite.inviter_user_id,
    )
    .await?;
    Ok(match fp {
        Some(fp) => format!("{base}#fp={fp}"),
        None => base,
    })
}

async fn view(state: &AppState, i: &InviteRecord) -> Result<Invite, ServiceError> {
    Ok(view_with(state, i, invite_url(state, i).await?))
}

/// The wire form of an invite whose link is already known.
fn view_with(state: &AppState, i: &InviteRecord, url: String) -> Invite {
    let api = format!("{}/v1/invites/{}", state.settings.public_url, i.code);
    Invite {
        code: i.code.clone(),
        url,
        qr_png_url: format!("{api}/qr.png"),
        qr_svg_url: format!("{api}/qr.svg"),
        inviter_user_id: i.inviter_user_id,
        max_uses: u32::try_from(i.max_uses).unwrap_or(u32::MAX),
        uses: u32::try_from(i.uses).unwrap_or(u32::MAX),
        expires_at: to_datetime(i.expires_at_ms),
        revoked: i.revoked_at_ms.is_some(),
        note: i.note.clone(),
    }
}

problems!(CreateInviteProblems: InviterRequired, DevicePending, NotOwnUser, NotFound, NotAllowedAtTrustLevel, LimiterUnavailable);

/// Mints an invite: a tenant for one of its users (`inviter_user_id`), or an approved
/// device for its own user (the SDK then replaces the link's fingerprint with the one it
/// knows, so a scan verifies the key the device itself holds).
#[utoipa::path(
    tag = "invites",
    security(("api_key" = []), ("device_token" = [])),
    request_body = CreateInviteRequest,
    responses(
        CreateInviteProblems,
        (status = 201, description = "Created", body = Invite),
    )
)]
#[post("/v1/invites")]
pub async fn create_invite(
    auth: CallerAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<CreateInviteRequest>,
) -> Result<HttpResponse, ApiError> {
    let invite = invites::create(
        state.store.as_ref(),
        state.broker.as_ref(),
        &auth.0,
        &body.0,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await?;
    Ok(HttpResponse::Created().json(view(&state, &invite).await?))
}

problems!(GetInviteProblems: NotFound);

/// Reads an invite.
#[utoipa::path(
    tag = "invites",
    security(("api_key" = [])),
    params(("code" = String, Path, description = "Invite code")),
    responses(
        GetInviteProblems,
        (status = 200, description = "The invite", body = Invite),
    )
)]
#[get("/v1/invites/{code}")]
pub async fn get_invite(
    auth: TenantAuth,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<web::Json<Invite>, ApiError> {
    let invite = invites::get(state.store.as_ref(), auth.0.tenant_id, &code).await?;
    Ok(web::Json(view(&state, &invite).await?))
}

problems!(InviteQrPngProblems: NotFound);

/// The invite's link as a PNG QR code (decodes to exactly `url`).
#[utoipa::path(
    tag = "invites",
    security(("api_key" = [])),
    params(("code" = String, Path, description = "Invite code")),
    responses(
        InviteQrPngProblems,
        (status = 200, description = "PNG image", content_type = "image/png", body = Vec<u8>),
    )
)]
#[get("/v1/invites/{code}/qr.png")]
pub async fn invite_qr_png(
    auth: TenantAuth,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let invite = invites::get(state.store.as_ref(), auth.0.tenant_id, &code).await?;
    let png = qr::png(&invite_url(&state, &invite).await?)?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}

problems!(InviteQrSvgProblems: NotFound);

/// The invite's link as an SVG QR code.
#[utoipa::path(
    tag = "invites",
    security(("api_key" = [])),
    params(("code" = String, Path, description = "Invite code")),
    responses(
        InviteQrSvgProblems,
        (status = 200, description = "SVG image", content_type = "image/svg+xml", body = String),
    )
)]
#[get("/v1/invites/{code}/qr.svg")]
pub async fn invite_qr_svg(
    auth: TenantAuth,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let invite = invites::get(state.store.as_ref(), auth.0.tenant_id, &code).await?;
    let svg = qr::svg(&invite_url(&state, &invite).await?)?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

problems!(RevokeInviteProblems: NotFound);

/// Revokes an invite (idempotent).
#[utoipa::path(
    tag = "invites",
    security(("api_key" = [])),
    params(("code" = String, Path, description = "Invite code")),
    responses(
        RevokeInviteProblems,
        (status = 204, description = "Revoked"),
    )
)]
#[delete("/v1/invites/{code}")]
pub async fn revoke_invite(
    auth: TenantAuth,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !state
        .store
        .revoke_invite(auth.0.tenant_id, &code, state.clock.now_ms())
        .await?
    {
        return Err(ServiceError::NotFound("invite").into());
    }
    Ok(HttpResponse::NoContent().finish())
}

problems!(UserInvitesProblems: InvalidCursor, InvalidQuery, NotFound);

/// A user's invites, newest first, a page at a time (`next_cursor`).
#[utoipa::path(
    tag = "invites",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "User id"), PageQuery),
    responses(
        UserInvitesProblems,
        (status = 200, description = "Invites", body = InviteList),
    )
)]
#[get("/v1/users/{id}/invites")]
pub async fn user_invites(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: ValidatedQuery<PageQuery>,
) -> Result<web::Json<InviteList>, ApiError> {
    state
        .store
        .get_user(auth.0.tenant_id, *id)
        .await?
        .ok_or(ServiceError::NotFound("user"))?;
    let after = paging::decode(query.0.cursor.as_deref())?;
    let limit = paging::limit(&query.0);
    let rows = state
        .store
        .list_invites(auth.0.tenant_id, *id, after, limit)
        .await?;
    let next_cursor = paging::next(&rows, limit, |i| (i.created_at_ms, i.code.clone()));
    // One inviter: its fingerprint is read once for the page.
    let mut items = Vec::with_capacity(rows.len());
    if let Some(first) = rows.first() {
        let url = invite_url(&state, first).await?;
        let fragment = url.split_once('#').map(|(_, f)| f.to_owned());
        for i in &rows {
            let base = format!("{}/i/{}", state.settings.public_url, i.code);
            let url = match &fragment {
                Some(f) => format!("{base}#{f}"),
                None => base,
            };
            items.push(view_with(&state, i, url));
        }
    }
    Ok(web::Json(InviteList { items, next_cursor }))
}

problems!(RedeemInviteProblems: OwnInvite, InsufficientCredits, NotAllowedAtTrustLevel, DevicePending, NotFound, InviteExpired, InviteRevoked, InviteUsedUp);

/// Redeems an invite for the calling device's user: the inviter and the user become
/// contacts. Redeeming again is idempotent. Expired, revoked or used-up invites get 410
/// (`invite_expired`, `invite_revoked`, `invite_used_up`).
#[utoipa::path(
    tag = "invites",
    security(("device_token" = [])),
    params(("code" = String, Path, description = "Invite code")),
    responses(
        RedeemInviteProblems,
        (status = 200, description = "Redeemed", body = Redemption),
    )
)]
#[post("/v1/invites/{code}/redeem")]
pub async fn redeem_invite(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<web::Json<Redemption>, ApiError> {
    let (invite, already) = invites::redeem(
        state.store.as_ref(),
        state.broker.as_ref(),
        &auth.0,
        &code,
        state.clock.now_ms(),
    )
    .await?;
    Ok(web::Json(Redemption {
        inviter_user_id: invite.inviter_user_id,
        already_redeemed: already,
    }))
}

problems!(ListContactsProblems: DevicePending);

/// The calling device's user's contacts, by display name.
#[utoipa::path(
    tag = "invites",
    security(("device_token" = [])),
    responses(
        ListContactsProblems,
        (status = 200, description = "Contacts", body = ContactList),
    )
)]
#[get("/v1/contacts")]
pub async fn list_contacts(
    auth: DeviceAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<ContactList>, ApiError> {
    require_approved(&auth.0)?;
    let items = state
        .store
        .list_contacts(auth.0.tenant_id, auth.0.user_id)
        .await?
        .into_iter()
        .map(|(u, since)| Contact {
            user_id: u.id,
            external_id: u.external_id,
            display_name: u.display_name,
            since: to_datetime(since),
        })
        .collect();
    Ok(web::Json(ContactList { items }))
}
