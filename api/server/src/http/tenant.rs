//! `/v1/tenant`: the calling tenant's own settings.

use crate::http::documented::problems;
use actix_web::{get, patch, web};
use cloak_proto::tenants::{TenantSettings, UpdateTenantRequest};

use super::auth::TenantAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::services::tenants;
use crate::state::AppState;
use crate::store::Tenant;

fn view(t: Tenant) -> TenantSettings {
    TenantSettings {
        id: t.id,
        name: t.name,
        message_retention_secs: u64::try_from(t.retention_ms / 1000).unwrap_or(0),
        open_in_app_template: t.open_in_app_template,
        mailbox_storage: t.mailbox_storage,
    }
}

/// The tenant's settings.
#[utoipa::path(
    tag = "tenant",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Settings", body = TenantSettings),
    )
)]
#[get("/v1/tenant")]
pub async fn get_tenant(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<TenantSettings>, ApiError> {
    let tenant = tenants::get(state.store.as_ref(), auth.0.tenant_id).await?;
    Ok(web::Json(view(tenant)))
}

problems!(UpdateTenantProblems: InvalidTemplate, ValidationFailed, MemoryMailboxUnavailable);

/// Changes the tenant's settings: the invite landing page's "Open in app" link template,
/// the retention of undelivered messages, and where they wait (`mailbox_storage`).
///
/// `mailbox_storage: memory` keeps offline messages only in Redis memory, never in the
/// database: a Redis restart without persistence loses the messages queued for offline
/// devices. It needs a server with Redis (409 `memory_mailbox_unavailable` otherwise).
#[utoipa::path(
    tag = "tenant",
    security(("api_key" = [])),
    request_body = UpdateTenantRequest,
    responses(
        UpdateTenantProblems,
        (status = 200, description = "Settings after the change", body = TenantSettings),
    )
)]
#[patch("/v1/tenant")]
pub async fn update_tenant(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<UpdateTenantRequest>,
) -> Result<web::Json<TenantSettings>, ApiError> {
    let tenant = tenants::update(state.store.as_ref(), auth.0.tenant_id, &body.0).await?;
    Ok(web::Json(view(tenant)))
}
