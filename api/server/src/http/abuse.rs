//! Trust levels, blocks, verifiable reports and moderation.

use crate::http::documented::problems;
use actix_web::{HttpResponse, delete, get, post, put, web};
use cloak_proto::Code;
use cloak_proto::abuse::{
    BlockList, BlockRequest, ModerationSettings, Report, ReportList, ReportQuery, ReportRequest,
    ReportStatus, TrustLevels,
};
use uuid::Uuid;
use validator::Validate as _;

use super::auth::{DeviceAuth, TenantAuth};
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::devices::require_approved;
use crate::services::hot::Invalidation;
use crate::services::{ServiceError, abuse, limits};
use crate::state::AppState;
use crate::store::ReportRecord;

fn view(r: &ReportRecord) -> Report {
    Report {
        id: r.id,
        reporter_user_id: r.reporter_user_id,
        reported_user_id: r.reported_user_id,
        reported_device_id: r.reported_device_id,
        conversation_id: r.conversation_id,
        message_id: r.message_id,
        text: r.text.clone(),
        reason: r.reason.clone(),
        status: r.status.clone(),
        sent_at: to_datetime(r.sent_at_ms),
        created_at: to_datetime(r.created_at_ms),
    }
}

/// The tenant's trust levels, lowest first (defaults until it sets its own).
#[utoipa::path(tag = "trust", security(("api_key" = [])),
    responses((status = 200, description = "Levels", body = TrustLevels)))]
#[get("/v1/trust-levels")]
pub async fn get_trust_levels(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<TrustLevels>, ApiError> {
    let levels = limits::levels(state.store.as_ref(), auth.0.tenant_id).await?;
    Ok(web::Json(TrustLevels { levels }))
}

problems!(PutTrustLevelsProblems: ValidationFailed, InvalidTrustLevel);

/// Replaces the trust levels. Users at a level that no longer exists count as the lowest.
#[utoipa::path(tag = "trust", security(("api_key" = [])), request_body = TrustLevels,
    responses(
        PutTrustLevelsProblems,
        (status = 200, description = "Levels", body = TrustLevels),
    ))]
#[put("/v1/trust-levels")]
pub async fn put_trust_levels(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<TrustLevels>,
) -> Result<web::Json<TrustLevels>, ApiError> {
    limits::put_levels(
        state.store.as_ref(),
        auth.0.tenant_id,
        &body.0,
        state.clock.now_ms(),
    )
    .await?;
    state
        .invalidate(Invalidation::Tenant(auth.0.tenant_id))
        .await;
    Ok(web::Json(body.0))
}

problems!(BlockProblems: SelfBlock, NotFound);

/// Blocks a user: their messages and invites no longer reach this device's user.
#[utoipa::path(tag = "trust", security(("device_token" = [])), request_body = BlockRequest,
    responses(
        BlockProblems,
        (status = 204, description = "Blocked"),
    ))]
#[post("/v1/blocks")]
pub async fn block(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<BlockRequest>,
) -> Result<HttpResponse, ApiError> {
    require_approved(&auth.0)?;
    if body.0.user_id == auth.0.user_id {
        return Err(
            ServiceError::invalid(Code::SelfBlock, "a user cannot block themselves").into(),
        );
    }
    let done = state
        .store
        .add_block(
            auth.0.tenant_id,
            auth.0.user_id,
            body.0.user_id,
            state.clock.now_ms(),
        )
        .await?;
    if !done {
        return Err(ServiceError::NotFound("user").into());
    }
    Ok(HttpResponse::NoContent().finish())
}

problems!(UnblockProblems: NotFound);

/// Unblocks a user.
#[utoipa::path(tag = "trust", security(("device_token" = [])),
    params(("user_id" = Uuid, Path, description = "The blocked user")),
    responses(
        UnblockProblems,(status = 204, description = "Unblocked")))]
#[delete("/v1/blocks/{user_id}")]
pub async fn unblock(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    user_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require_approved(&auth.0)?;
    if !state
        .store
        .remove_block(auth.0.tenant_id, auth.0.user_id, *user_id)
        .await?
    {
        return Err(ServiceError::NotFound("block").into());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The users this device's user blocked.
#[utoipa::path(tag = "trust", security(("device_token" = [])),
    responses((status = 200, description = "Blocked users", body = BlockList)))]
#[get("/v1/blocks")]
pub async fn list_blocks(
    auth: DeviceAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<BlockList>, ApiError> {
    require_approved(&auth.0)?;
    let user_ids = state
        .store
        .list_blocks(auth.0.tenant_id, auth.0.user_id)
        .await?;
    Ok(web::Json(BlockList { user_ids }))
}

problems!(CreateReportProblems: ReportUnverifiable, AlreadyReported);

/// Reports a received message with its franking evidence. Only a report whose evidence
/// verifies is filed (then the tenant gets a `report.created` webhook).
#[utoipa::path(tag = "trust", security(("device_token" = [])), request_body = ReportRequest,
    responses(
        CreateReportProblems,
        (status = 201, description = "Filed", body = Report),
    ))]
#[post("/v1/reports")]
pub async fn create_report(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<ReportRequest>,
) -> Result<HttpResponse, ApiError> {
    let record = abuse::report(
        state.store.as_ref(),
        &state.tokens,
        &auth.0,
        &body.0,
        state.clock.now_ms(),
        Uuid::new_v4(),
    )
    .await?;
    Ok(HttpResponse::Created().json(view(&record)))
}

problems!(ListReportsProblems: InvalidStatus);

/// Reports for the tenant's moderators.
#[utoipa::path(tag = "trust", security(("api_key" = [])), params(ReportQuery),
    responses(ListReportsProblems, (status = 200, description = "Reports", body = ReportList)))]
#[get("/v1/reports")]
pub async fn list_reports(
    auth: TenantAuth,
    state: web::Data<AppState>,
    query: web::Query<ReportQuery>,
) -> Result<web::Json<ReportList>, ApiError> {
    query.validate().map_err(|e| ApiError::validation(&e))?;
    let status = match query.status.as_deref() {
        None => ReportStatus::Open,
        Some(s) => ReportStatus::parse(s).ok_or_else(|| {
            ServiceError::invalid(Code::InvalidStatus, "status is open, upheld or dismissed")
        })?,
    }
    .as_str();
    let items = state
        .store
        .list_reports(auth.0.tenant_id, status)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(web::Json(ReportList { items }))
}

async fn decide(
    state: &AppState,
    tenant: Uuid,
    id: Uuid,
    uphold: bool,
) -> Result<web::Json<Report>, ApiError> {
    let decision = abuse::decide(
        state.store.as_ref(),
        tenant,
        id,
        uphold,
        state.clock.now_ms(),
    )
    .await?;
    // Upheld reports count against automatic promotion, and may suspend.
    state
        .user_changed(tenant, decision.report.reported_user_id, decision.suspended)
        .await;
    Ok(web::Json(view(&decision.report)))
}

problems!(UpholdReportProblems: NotFound);

/// Upholds a report: it counts against the sender, who is suspended at the tenant's
/// threshold (their tokens stop working at once; `user.suspended` webhook).
#[utoipa::path(tag = "trust", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Report id")),
    responses(
        UpholdReportProblems,(status = 200, description = "Upheld", body = Report)))]
#[post("/v1/reports/{id}/uphold")]
pub async fn uphold_report(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Report>, ApiError> {
    decide(&state, auth.0.tenant_id, *id, true).await
}

problems!(DismissReportProblems: NotFound);

/// Dismisses a report.
#[utoipa::path(tag = "trust", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Report id")),
    responses(
        DismissReportProblems,(status = 200, description = "Dismissed", body = Report)))]
#[post("/v1/reports/{id}/dismiss")]
pub async fn dismiss_report(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Report>, ApiError> {
    decide(&state, auth.0.tenant_id, *id, false).await
}

/// Moderation settings.
#[utoipa::path(tag = "trust", security(("api_key" = [])),
    responses((status = 200, description = "Settings", body = ModerationSettings)))]
#[get("/v1/moderation/settings")]
pub async fn get_moderation(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<ModerationSettings>, ApiError> {
    let t = state.store.get_suspend_threshold(auth.0.tenant_id).await?;
    Ok(web::Json(ModerationSettings {
        suspend_after_upheld_reports: t.and_then(|t| u32::try_from(t).ok()),
    }))
}

/// Replaces the moderation settings.
#[utoipa::path(tag = "trust", security(("api_key" = [])), request_body = ModerationSettings,
    responses((status = 200, description = "Settings", body = ModerationSettings)))]
#[put("/v1/moderation/settings")]
pub async fn put_moderation(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<ModerationSettings>,
) -> Result<web::Json<ModerationSettings>, ApiError> {
    state
        .store
        .set_suspend_threshold(
            auth.0.tenant_id,
            body.0.suspend_after_upheld_reports.map(i64::from),
        )
        .await?;
    Ok(web::Json(body.0))
}
