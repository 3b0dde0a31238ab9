//! Credits and billing: prices, billing settings and credit packs, wallets and their
//! ledger, Stripe Checkout, and tenant webhooks.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

const MAX_PRICE: i64 = 1_000_000;

/// `GET`/`PUT /v1/prices`: credits per action; 0 means free.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate,
)]
#[serde(deny_unknown_fields)]
#[schema(example = PriceTable::example)]
pub struct PriceTable {
    /// A text message.
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub text_message: i64,
    /// An attachment up to 1 MiB.
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub attachment_small: i64,
    /// An attachment up to 25 MiB.
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub attachment_medium: i64,
    /// A larger attachment.
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub attachment_large: i64,
    /// An edit.
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub edit: i64,
    /// A deletion.
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub delete: i64,
    /// A minute of a call.
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub call_minute: i64,
    /// Redeeming an invite (paid by the redeemer's payer).
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub invite_redemption: i64,
    /// A membership change (an MLS commit: adding or removing devices), paid by the
    /// committer's payer. Defaults to 0 (free).
    #[serde(default)]
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub group_commit: i64,
    /// Viewing a received message: charged to the recipient's payer when the message is
    /// first delivered to any of the recipient's devices (once per message and user).
    /// Receipts and typing indicators are free. Defaults to 0 (free).
    #[serde(default)]
    #[validate(range(min = 0, max = MAX_PRICE))]
    pub message_view: i64,
}

impl PriceTable {
    /// The document's example price table (also the console's prices form example).
    pub fn example() -> serde_json::Value {
        serde_json::json!({
            "text_message": 1,
            "attachment_small": 2,
            "attachment_medium": 5,
            "attachment_large": 10,
            "edit": 1,
            "delete": 0,
            "call_minute": 3,
            "invite_redemption": 0,
            "group_commit": 0,
            "message_view": 0
        })
    }
}

/// A credit pack sold through Stripe Checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreditPack {
    /// The pack's id (letters, digits, `-`, `_`).
    #[validate(length(min = 1, max = 64))]
    #[schema(pattern = r"^[A-Za-z0-9_-]+$")]
    pub id: String,
    /// Shown on the Checkout page.
    #[validate(length(min = 1, max = 100))]
    pub name: String,
    /// Credits it adds.
    #[validate(range(min = 1, max = 1_000_000_000))]
    pub credits: i64,
    /// Price in the currency's smallest unit (cents).
    #[validate(range(min = 50, max = 100_000_000))]
    pub amount: i64,
    /// ISO 4217 currency, lowercase (`usd`, `eur`).
    #[validate(length(equal = 3))]
    #[schema(pattern = r"^[a-z]{3}$")]
    pub currency: String,
}

/// `GET`/`PUT /v1/billing/settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "users_pay": false,
    "postpaid": false,
    "low_balance_threshold": 1000,
    "packs": [
        {
            "id": "starter",
            "name": "Starter pack",
            "credits": 10000,
            "amount": 999,
            "currency": "usd"
        }
    ]
}))]
pub struct BillingSettings {
    /// Senders pay from their own wallets; otherwise the tenant's wallet pays.
    #[serde(default)]
    pub users_pay: bool,
    /// Postpaid: usage is reported to Stripe Billing as meter events instead of debiting
    /// credits (needs `stripe_customer_id` and `meter_event_name`).
    #[serde(default)]
    pub postpaid: bool,
    /// A debit that takes a wallet below this fires the `wallet.low_balance` webhook.
    #[validate(range(min = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_balance_threshold: Option<i64>,
    /// The tenant's Stripe customer (postpaid).
    #[validate(length(min = 1, max = 255))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_customer_id: Option<String>,
    /// The Stripe Billing meter's event name (postpaid).
    #[validate(length(min = 1, max = 100))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_event_name: Option<String>,
    /// Credit packs for sale.
    #[validate(nested, length(max = 20))]
    #[serde(default)]
    pub packs: Vec<CreditPack>,
}

/// A wallet: `tenant` or a user's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Wallet {
    /// `tenant`, or the user's id.
    pub wallet: String,
    /// Credits.
    pub balance: i64,
}

/// `GET /v1/wallets`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WalletList {
    /// Wallets that have ever held credits.
    pub items: Vec<Wallet>,
}

/// `POST /v1/wallets/{wallet}/grants`: adds credits. Needs an `Idempotency-Key` header.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "credits": 5000,
    "reason": "Welcome bonus"
}))]
pub struct GrantRequest {
    /// Credits to add.
    #[validate(range(min = 1, max = 1_000_000_000))]
    pub credits: i64,
    /// Why (kept in the ledger).
    #[validate(length(min = 1, max = 500))]
    pub reason: String,
}

/// `POST /v1/wallets/{wallet}/adjustments`: adds or removes credits (never below zero).
/// Needs an `Idempotency-Key` header.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "delta": -250,
    "reason": "Correction: duplicate grant"
}))]
pub struct AdjustmentRequest {
    /// Credits to add (positive) or remove (negative); not 0.
    #[validate(range(min = -1_000_000_000, max = 1_000_000_000))]
    pub delta: i64,
    /// Why (kept in the ledger).
    #[validate(length(min = 1, max = 500))]
    pub reason: String,
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    /// Position in the tenant's ledger (increasing).
    pub id: i64,
    /// `tenant` or the user's id.
    pub wallet: String,
    /// Credits added or removed.
    pub delta: i64,
    /// The balance right after.
    pub balance_after: i64,
    /// What made it: a charge (`message`, `edit`, `delete`, `attachment`, `call`,
    /// `invite_redemption`, `commit`, `message_view`), `grant`, `adjustment`, or Stripe's
    /// `purchase`, `refund`, `dispute` (the document lists them as an enum).
    pub kind: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who: `api`, `console:{email}`, `stripe`, `device:{id}`.
    pub actor: String,
    /// The idempotency key it was made with.
    pub idempotency_key: String,
    /// What it is about (a message id, a Stripe event id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /v1/wallets/{wallet}/ledger`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerPage {
    /// Oldest first.
    pub items: Vec<LedgerEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/wallets/{wallet}/ledger`.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// From a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    #[validate(range(min = 1, max = 500))]
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `POST /v1/billing/checkout-sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "wallet": "tenant",
    "pack": "starter",
    "success_url": "https://platform.example.com/billing/success",
    "cancel_url": "https://platform.example.com/billing"
}))]
pub struct CheckoutRequest {
    /// `tenant` or a user's id.
    #[validate(length(min = 1, max = 64))]
    pub wallet: String,
    /// A pack id from the billing settings.
    #[validate(length(min = 1, max = 64))]
    pub pack: String,
    /// Where Stripe sends the buyer after paying (default: the server's public URL).
    #[validate(url)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_url: Option<String>,
    /// Where Stripe sends the buyer on cancel (default: the server's public URL).
    #[validate(url)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_url: Option<String>,
}

/// A created Checkout Session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckoutSession {
    /// Stripe's id (`cs_…`).
    pub id: String,
    /// Send the buyer here.
    pub url: String,
    /// Credits the wallet gets once paid.
    pub credits: i64,
}

/// `PUT /v1/webhooks`: where tenant webhooks go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "url": "https://platform.example.com/cloak/webhooks"
}))]
pub struct WebhookConfigRequest {
    /// An http(s) URL.
    #[validate(url, length(max = 2000))]
    pub url: String,
}

/// The webhook endpoint. The secret is shown when it is set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookConfig {
    /// Where events go.
    pub url: String,
    /// Signing secret (`whsec_…`): each delivery has `Cloak-Signature: t={unix},v1={hex
    /// HMAC-SHA256 of "{t}.{body}"}`. Only in the answer to `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One webhook delivery (the log).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryInfo {
    /// Delivery id (also the `Cloak-Webhook-Id` header).
    pub id: Uuid,
    /// Event type, e.g. `wallet.low_balance`.
    pub event_type: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Delivered (2xx) at.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub delivered_at: Option<OffsetDateTime>,
    /// The last HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    /// The last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The event as sent.
    pub payload: serde_json::Value,
    /// Queued at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /v1/webhooks/deliveries`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryList {
    /// Deliveries.
    pub items: Vec<WebhookDeliveryInfo>,
}
