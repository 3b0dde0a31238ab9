//! `/v1/api-keys`: a tenant manages its own API keys.

use crate::http::documented::problems;
use actix_web::{HttpResponse, delete, get, post, web};
use cloak_proto::api_keys::{ApiKeyInfo, ApiKeyList, CreateApiKeyRequest, CreatedApiKey};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::auth::TenantAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::api_keys;
use crate::state::AppState;
use crate::store::ApiKeyRecord;

fn info(r: &ApiKeyRecord) -> ApiKeyInfo {
    ApiKeyInfo {
        id: r.id,
        name: r.name.clone(),
        prefix: r.prefix.clone(),
        created_at: to_datetime(r.created_at_ms),
        last_used_at: r.last_used_at_ms.map(to_datetime),
        revoked_at: r.revoked_at_ms.map(to_datetime),
    }
}

/// Lists the tenant's API keys (secrets are never returned).
#[utoipa::path(
    tag = "api-keys",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's keys, newest first", body = ApiKeyList),
    )
)]
#[get("/v1/api-keys")]
pub async fn list_api_keys(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<ApiKeyList>, ApiError> {
    let keys = api_keys::list(state.store.as_ref(), auth.0.tenant_id).await?;
    Ok(web::Json(ApiKeyList {
        items: keys.iter().map(info).collect(),
    }))
}

/// Creates an API key. The secret is in this response only.
#[utoipa::path(
    tag = "api-keys",
    security(("api_key" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `api_key` is shown once", body = CreatedApiKey),
    )
)]
#[post("/v1/api-keys")]
pub async fn create_api_key(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now_ms();
    let (record, secret) = api_keys::create(
        state.store.as_ref(),
        auth.0.tenant_id,
        body.0.name.trim(),
        now,
        &mut rand::rngs::OsRng,
    )
    .await?;
    tracing::info!(key_id = %record.id, "api key created");
    Ok(HttpResponse::Created().json(CreatedApiKey {
        key: info(&record),
        api_key: secret.expose_secret().to_owned(),
    }))
}

problems!(RevokeApiKeyProblems: NotFound, LastActiveKey);

/// Revokes an API key at once, on every node. Revoking twice succeeds.
#[utoipa::path(
    tag = "api-keys",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        RevokeApiKeyProblems,
        (status = 204, description = "Revoked"),
    )
)]
#[delete("/v1/api-keys/{id}")]
pub async fn revoke_api_key(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now_ms();
    api_keys::revoke(state.store.as_ref(), auth.0.tenant_id, id.into_inner(), now).await?;
    Ok(HttpResponse::NoContent().finish())
}
