//! Granting, adjusting and buying credits from the console (owners and billing admins).

use actix_web::{HttpRequest, HttpResponse, post, web};
use cloak_proto::Code;
use cloak_proto::billing::CheckoutRequest;
use serde::Deserialize;

use super::html;
use super::session::{authorize_form, see_other};
use crate::http::problem::ApiError;
use crate::services::billing::{self, ManualChange};
use crate::services::console::Role;
use crate::services::{ServiceError, checkout};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ",
    "idempotency_key": "7adab921d7f81971d93c3c3e936c67e5",
    "wallet": "tenant",
    "delta": 500,
    "reason": "Welcome bonus"
}))]
pub struct GrantForm {
    csrf: String,
    idempotency_key: String,
    wallet: String,
    delta: i64,
    reason: String,
    /// `wallet`: back to the wallet's page (otherwise to the dashboard).
    #[serde(default)]
    back: Option<String>,
}

/// Grants or adjusts credits (owner, billing admin).
#[utoipa::path(tag = "console", operation_id = "console_grant", responses(
    (status = 303, description = "Done (or refused): back to the balances with a message"),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/grant")]
pub async fn grant(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<GrantForm>,
) -> Result<HttpResponse, ApiError> {
    let signed = match authorize_form(
        &req,
        &state,
        &form.csrf,
        Role::can_spend,
        "grant or adjust credits",
    )
    .await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let tenant = signed.account.tenant_id;
    let outcome = async {
        let wallet_id =
            billing::parse_wallet(state.store.as_ref(), tenant, form.wallet.trim()).await?;
        if form.reason.trim().is_empty() || form.reason.len() > 500 {
            return Err(ServiceError::invalid(
                Code::InvalidReason,
                "a reason has 1 to 500 characters",
            ));
        }
        billing::change_balance(
            state.store.as_ref(),
            state.broker.as_ref(),
            ManualChange {
                tenant_id: tenant,
                wallet_id,
                delta: form.delta,
                kind: if form.delta > 0 {
                    "grant"
                } else {
                    "adjustment"
                },
                reason: form.reason.trim(),
                actor: format!("console:{}", signed.account.email),
                idempotency_key: &format!("console:{}", form.idempotency_key),
                now_ms: state.clock.now_ms(),
            },
        )
        .await
    }
    .await;
    let query = match outcome {
        Ok((entry, _)) => format!(
            "ok=Applied {:+} credits; balance {}",
            entry.delta, entry.balance_after
        ),
        Err(ServiceError::Store(e)) => return Err(e.into()),
        Err(e) => format!("error={e}"),
    };
    let page = match (
        form.back.as_deref(),
        billing::parse_wallet(state.store.as_ref(), tenant, form.wallet.trim()).await,
    ) {
        (Some("wallet"), Ok(id)) => {
            format!("/console/wallets/{}", billing::wallet_name(tenant, id))
        }
        _ => "/console".to_owned(),
    };
    let (key, text) = query.split_once('=').unwrap_or(("ok", &query));
    Ok(see_other(&format!(
        "{page}?{key}={}",
        html::query_text(text)
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ",
    "wallet": "tenant",
    "pack": "starter"
}))]
pub struct BuyForm {
    csrf: String,
    wallet: String,
    pack: String,
}

/// Starts a Stripe Checkout for a credit pack (owner, billing admin): redirects to Stripe.
#[utoipa::path(tag = "console", responses(
    (status = 303, description = "To Stripe Checkout"),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/buy")]
pub async fn buy(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<BuyForm>,
) -> Result<HttpResponse, ApiError> {
    let signed =
        match authorize_form(&req, &state, &form.csrf, Role::can_spend, "buy credits").await? {
            Ok(signed) => signed,
            Err(response) => return Ok(response),
        };
    let Some(stripe) = state.stripe.as_ref() else {
        return Ok(see_other(
            "/console?error=Stripe+is+not+configured+on+this+server",
        ));
    };
    let request = CheckoutRequest {
        wallet: form.wallet.clone(),
        pack: form.pack.clone(),
        success_url: Some(format!(
            "{}/console?ok=Payment+received",
            state.settings.public_url
        )),
        cancel_url: Some(format!("{}/console", state.settings.public_url)),
    };
    let session = checkout::create(
        state.store.as_ref(),
        stripe,
        signed.account.tenant_id,
        &request,
        &state.settings.public_url,
        state.clock.now_ms(),
    )
    .await?;
    Ok(see_other(&session.url))
}
