//! `/v1/console/accounts`: the tenant's backend creates and removes billing-admin console
//! accounts; a new account comes with a one-time set-up link to send to the person.

use crate::http::documented::problems;
use actix_web::{HttpResponse, delete, get, post, web};
use cloak_proto::console::{ConsoleAccountInfo, ConsoleAccountList, CreateConsoleAccountRequest};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::{ServiceError, console};
use crate::state::AppState;
use crate::store::ConsoleAccount;

fn info(a: &ConsoleAccount, setup_url: Option<String>) -> ConsoleAccountInfo {
    ConsoleAccountInfo {
        id: a.id,
        email: a.email.clone(),
        role: a.role.clone(),
        active: a.password_hash.is_some(),
        setup_expires_at: setup_url
            .as_ref()
            .and(a.setup_expires_at_ms)
            .map(to_datetime),
        setup_url,
    }
}

problems!(CreateAccountProblems: InvalidEmail, InvalidRole, EmailTaken);

/// Creates a console account; returns its one-time set-up link (valid 7 days).
#[utoipa::path(
    tag = "console",
    security(("api_key" = [])),
    request_body = CreateConsoleAccountRequest,
    responses(
        CreateAccountProblems,
        (status = 201, description = "Created", body = ConsoleAccountInfo),
    )
)]
#[post("/v1/console/accounts")]
pub async fn create_account(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<CreateConsoleAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let (account, token) = console::create_account(
        state.store.as_ref(),
        auth.0.tenant_id,
        &body.0.email,
        &body.0.role,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await?;
    let url = console::setup_url(&state.settings.public_url, &token);
    Ok(HttpResponse::Created().json(info(&account, Some(url))))
}

/// The tenant's console accounts.
#[utoipa::path(
    tag = "console",
    security(("api_key" = [])),
    responses((status = 200, description = "Accounts", body = ConsoleAccountList))
)]
#[get("/v1/console/accounts")]
pub async fn list_accounts(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<ConsoleAccountList>, ApiError> {
    let items = state
        .store
        .list_console_accounts(auth.0.tenant_id)
        .await?
        .iter()
        .map(|a| info(a, None))
        .collect();
    Ok(web::Json(ConsoleAccountList { items }))
}

problems!(DeleteAccountProblems: NotFound);

/// Removes a console account and its sessions.
#[utoipa::path(
    tag = "console",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        DeleteAccountProblems,
        (status = 204, description = "Removed"),
    )
)]
#[delete("/v1/console/accounts/{id}")]
pub async fn delete_account(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if !state
        .store
        .delete_console_account(auth.0.tenant_id, *id)
        .await?
    {
        return Err(ServiceError::NotFound("console account").into());
    }
    Ok(HttpResponse::NoContent().finish())
}
