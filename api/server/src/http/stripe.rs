//! Stripe: Checkout Sessions for credit packs, and Stripe's webhook.

use crate::http::documented::problems;
use actix_web::{HttpRequest, HttpResponse, post, web};
use cloak_proto::Code;
use cloak_proto::billing::{CheckoutRequest, CheckoutSession};
use secrecy::ExposeSecret as _;

use super::auth::TenantAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::services::stripe_events::{self, Handled};
use crate::services::{ServiceError, checkout};
use crate::state::AppState;

fn not_configured(what: &str) -> ServiceError {
    ServiceError::Unavailable {
        code: Code::StripeNotConfigured,
        detail: format!("this server has no {what} configured"),
    }
}

problems!(CreateCheckoutSessionProblems: NotFound, StripeError, StripeNotConfigured);

/// Creates a Stripe Checkout Session that buys a credit pack for a wallet; send the buyer
/// to `url`. The wallet is credited when Stripe reports the payment (webhook).
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    request_body = CheckoutRequest,
    responses(
        CreateCheckoutSessionProblems,
        (status = 201, description = "Created", body = CheckoutSession),
    )
)]
#[post("/v1/billing/checkout-sessions")]
pub async fn create_checkout_session(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let stripe = state
        .stripe
        .as_ref()
        .ok_or_else(|| not_configured("Stripe secret key"))?;
    let session = checkout::create(
        state.store.as_ref(),
        stripe,
        auth.0.tenant_id,
        &body.0,
        &state.settings.public_url,
        state.clock.now_ms(),
    )
    .await?;
    Ok(HttpResponse::Created().json(session))
}

problems!(StripeWebhookProblems: InvalidSignature, StaleSignature, ReplayedEvent, InvalidEvent, StripeNotConfigured);

/// Stripe's webhook: the `Stripe-Signature` header must verify against the raw body
/// (HMAC-SHA256, several `v1` allowed, 5-minute tolerance). Each event applies once; a
/// delivery Stripe repeats answers 200 without effect; a forged, stale or replayed one
/// answers 400 and changes nothing.
#[utoipa::path(
    tag = "billing",
    request_body(content = String, content_type = "application/json", description = "A Stripe event"),
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature header")),
    responses(
        StripeWebhookProblems,
        (status = 200, description = "Received"),
    )
)]
#[post("/v1/stripe/webhook")]
pub async fn stripe_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let secret = state
        .settings
        .stripe_webhook_secret
        .as_ref()
        .ok_or_else(|| not_configured("Stripe webhook secret"))?;
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let handled = stripe_events::handle(
        state.store.as_ref(),
        secret.expose_secret(),
        signature,
        &body,
        state.clock.now_ms(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "received": true,
        "duplicate": handled == Handled::Duplicate,
    })))
}
