//! `/v1/webhooks`: where a tenant receives signed events, and the delivery log.

use crate::http::documented::problems;
use actix_web::{get, put, web};
use cloak_proto::billing::{
    WebhookConfig, WebhookConfigRequest, WebhookDeliveryInfo, WebhookDeliveryList,
};

use super::auth::TenantAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::{ServiceError, webhooks};
use crate::state::AppState;

problems!(PutWebhookProblems: InvalidWebhookUrl, WebhookTargetNotAllowed);

/// Sets the webhook endpoint and returns a new signing secret (shown once).
#[utoipa::path(
    tag = "webhooks",
    security(("api_key" = [])),
    request_body = WebhookConfigRequest,
    responses(
        PutWebhookProblems,
        (status = 200, description = "The endpoint with its new secret", body = WebhookConfig),
    )
)]
#[put("/v1/webhooks")]
pub async fn put_webhook(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<WebhookConfigRequest>,
) -> Result<web::Json<WebhookConfig>, ApiError> {
    let endpoint = webhooks::configure(
        state.store.as_ref(),
        auth.0.tenant_id,
        &body.0.url,
        state.settings.guards.webhook_allow_private,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await?;
    Ok(web::Json(WebhookConfig {
        url: endpoint.url,
        secret: Some(endpoint.secret),
    }))
}

problems!(GetWebhookProblems: NotFound);

/// The webhook endpoint (without its secret).
#[utoipa::path(
    tag = "webhooks",
    security(("api_key" = [])),
    responses(
        GetWebhookProblems,
        (status = 200, description = "The endpoint", body = WebhookConfig),
    )
)]
#[get("/v1/webhooks")]
pub async fn get_webhook(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<WebhookConfig>, ApiError> {
    let endpoint = state
        .store
        .get_webhook(auth.0.tenant_id)
        .await?
        .ok_or(ServiceError::NotFound("webhook endpoint"))?;
    Ok(web::Json(WebhookConfig {
        url: endpoint.url,
        secret: None,
    }))
}

/// The latest 100 webhook deliveries, newest first: attempts, status, errors.
#[utoipa::path(
    tag = "webhooks",
    security(("api_key" = [])),
    responses((status = 200, description = "Deliveries", body = WebhookDeliveryList))
)]
#[get("/v1/webhooks/deliveries")]
pub async fn list_deliveries(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<WebhookDeliveryList>, ApiError> {
    let items = state
        .store
        .list_webhook_deliveries(auth.0.tenant_id, 100)
        .await?
        .into_iter()
        .map(|d| WebhookDeliveryInfo {
            id: d.id,
            event_type: d.event_type,
            attempts: d.attempts,
            delivered_at: d.delivered_at_ms.map(to_datetime),
            last_status: d.last_status,
            last_error: d.last_error,
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            created_at: to_datetime(d.created_at_ms),
        })
        .collect();
    Ok(web::Json(WebhookDeliveryList { items }))
}
