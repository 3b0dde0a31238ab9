//! Stripe Checkout for credit packs: a session per purchase, remembered so the webhook
//! credits the right wallet with the pack's credits (our record, not the event's metadata).

use std::collections::HashMap;

use cloak_proto::Code;
use cloak_proto::billing::{CheckoutRequest, CheckoutSession};
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    ProductData,
};
use uuid::Uuid;

use super::ServiceError;
use super::billing;
use super::stripe_api::{StripeApi, upstream};
use crate::store::{CheckoutRecord, Store};

/// Creates a Checkout Session for a pack and records it.
pub async fn create(
    store: &dyn Store,
    stripe: &StripeApi,
    tenant_id: Uuid,
    request: &CheckoutRequest,
    public_url: &str,
    now_ms: i64,
) -> Result<CheckoutSession, ServiceError> {
    let wallet_id = billing::parse_wallet(store, tenant_id, &request.wallet).await?;
    let pack = store
        .list_packs(tenant_id)
        .await?
        .into_iter()
        .find(|p| p.id == request.pack)
        .ok_or(ServiceError::NotFound("credit pack"))?;
    let currency: stripe_types::Currency = pack.currency.parse().map_err(|_| {
        ServiceError::invalid(
            Code::InvalidPack,
            "the pack's currency is unknown to Stripe",
        )
    })?;
    let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
    price.unit_amount = Some(pack.amount);
    price.product_data = Some(ProductData::new(format!(
        "{} ({} credits)",
        pack.name, pack.credits
    )));
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price_data = Some(price);
    item.quantity = Some(1);
    let wallet = billing::wallet_name(tenant_id, wallet_id);
    let metadata = HashMap::from([
        ("tenant_id".to_owned(), tenant_id.to_string()),
        ("wallet".to_owned(), wallet.clone()),
        ("pack".to_owned(), pack.id.clone()),
        ("credits".to_owned(), pack.credits.to_string()),
    ]);
    let success = request
        .success_url
        .clone()
        .unwrap_or_else(|| format!("{public_url}/console?ok=Payment+received"));
    let cancel = request
        .cancel_url
        .clone()
        .unwrap_or_else(|| format!("{public_url}/console"));
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .line_items(vec![item])
        .success_url(success)
        .cancel_url(cancel)
        .client_reference_id(format!("{tenant_id}:{wallet}"))
        .metadata(metadata)
        .send(&stripe.client)
        .await
        .map_err(|e| upstream(&e))?;
    let id = session.id.to_string();
    let url = session
        .url
        .clone()
        .ok_or_else(|| ServiceError::Unavailable {
            code: Code::StripeError,
            detail: "Stripe returned a session without a URL".into(),
        })?;
    store
        .create_checkout(&CheckoutRecord {
            id: id.clone(),
            tenant_id,
            wallet_id,
            pack_id: pack.id,
            credits: pack.credits,
            amount: pack.amount,
            created_at_ms: now_ms,
        })
        .await?;
    Ok(CheckoutSession {
        id,
        url,
        credits: pack.credits,
    })
}
