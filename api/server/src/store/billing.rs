//! Credits: wallets, the append-only ledger, prices, credit packs, Stripe Checkout sessions
//! and events, the meter-event outbox of postpaid tenants, and tenant webhooks.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// What each billable action costs, in credits (0: free).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub text_message: i64,
    pub attachment_small: i64,
    pub attachment_medium: i64,
    pub attachment_large: i64,
    pub edit_message: i64,
    pub delete_message: i64,
    pub call_minute: i64,
    pub invite_redemption: i64,
    pub group_commit: i64,
    pub message_view: i64,
}

/// One received message as its viewing is charged: who sent it, and a digest of
/// conversation, sender device and ciphertext (the same for every device of a recipient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewKey {
    pub sender_device_id: Uuid,
    pub digest: [u8; 32],
}

/// A tenant's billing configuration, read on every charged action (one query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingPlan {
    pub prices: Prices,
    /// Senders pay from their own wallets (else the tenant's wallet pays).
    pub users_pay: bool,
    /// Usage is reported to Stripe as meter events instead of debiting credits.
    pub postpaid: bool,
    pub low_balance_threshold: Option<i64>,
    pub stripe_customer_id: Option<String>,
    pub meter_event_name: Option<String>,
}

/// Billing settings to change; `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct BillingSettingsUpdate {
    pub users_pay: Option<bool>,
    pub postpaid: Option<bool>,
    pub low_balance_threshold: Option<Option<i64>>,
    pub stripe_customer_id: Option<Option<String>>,
    pub meter_event_name: Option<Option<String>>,
}

/// A credit pack sold through Stripe Checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditPack {
    pub id: String,
    pub name: String,
    pub credits: i64,
    /// Price in the currency's minor unit (cents).
    pub amount: i64,
    pub currency: String,
}

/// A wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub balance: i64,
    pub created_at_ms: i64,
}

/// A ledger entry to append.
#[derive(Debug, Clone)]
pub struct NewLedgerEntry {
    pub tenant_id: Uuid,
    pub wallet_id: Uuid,
    /// Credits added (positive) or removed (negative).
    pub delta: i64,
    /// `message`, `grant`, `adjustment`, `purchase`, `refund`, `dispute`, `invite_redemption`…
    pub kind: String,
    pub reason: Option<String>,
    /// Who: `api`, `console:{email}`, `stripe`, `device:{id}`.
    pub actor: String,
    /// Unique per tenant: a second entry with the same key is not applied.
    pub idempotency_key: String,
    /// What it is about (a message id, a Stripe event).
    pub reference: Option<String>,
    /// The user the entry is for (a charge's user, whoever pays); `None` takes the wallet's
    /// user, or none for the tenant's wallet.
    pub user_id: Option<Uuid>,
    pub now_ms: i64,
    /// A debit larger than the balance takes what is there instead of being refused
    /// (refunds and disputes: the money is gone either way).
    pub clamp: bool,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    pub tenant_id: Uuid,
    pub wallet_id: Uuid,
    pub delta: i64,
    pub balance_after: i64,
    pub kind: String,
    pub reason: Option<String>,
    pub actor: String,
    pub idempotency_key: String,
    pub reference: Option<String>,
    pub created_at_ms: i64,
}

/// Result of appending to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerOutcome {
    Applied(LedgerEntry),
    /// An entry with this idempotency key exists: it is returned, nothing changed.
    Replayed(LedgerEntry),
    /// The debit would take the balance below zero (the balance given).
    Insufficient(i64),
}

/// How a send is paid, decided by the service from the tenant's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Debit a wallet in the send's transaction; refuse the send when it cannot pay.
    Prepaid {
        wallet_id: Uuid,
        amount: i64,
        kind: &'static str,
        /// The attachment tier's price row (`attachment_small`…), kept as the entry's reason.
        tier: Option<&'static str>,
        actor: String,
        /// The user the action is for, whoever pays (the console's spend per user).
        user_id: Uuid,
        low_balance_threshold: Option<i64>,
    },
    /// Record a meter event in the send's transaction, reported to Stripe later.
    Postpaid {
        customer_id: String,
        event_name: String,
        value: i64,
    },
}

/// A Checkout Session created for a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRecord {
    pub id: String,
    pub tenant_id: Uuid,
    pub wallet_id: Uuid,
    pub pack_id: String,
    pub credits: i64,
    pub amount: i64,
    pub created_at_ms: i64,
}

/// A verified Stripe event, as far as the store needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEventMeta {
    pub id: String,
    pub event_type: String,
    /// The signature's timestamp (a Stripe retry is signed again with a new one).
    pub signed_at_s: i64,
    pub now_ms: i64,
}

/// What a Stripe event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeOutcome {
    /// Applied; the ledger entry if credits moved.
    Applied(Option<LedgerEntry>),
    /// Seen before with another signature time: Stripe delivering again.
    Duplicate,
    /// Seen before with this very signature: a replay.
    Replay,
    /// Nothing of ours (unknown session or payment).
    Ignored,
}

/// One batch of meter events to report, summed per tenant, customer and event name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterBatch {
    pub batch_id: String,
    pub tenant_id: Uuid,
    pub customer_id: String,
    pub event_name: String,
    pub value: i64,
    /// The earliest usage in the batch, Unix ms.
    pub occurred_at_ms: i64,
    pub attempts: i64,
}

/// A tenant webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub tenant_id: Uuid,
    pub url: String,
    pub secret: String,
}

/// A webhook delivery (the log, and the queue of due ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
}

/// Billing and webhooks.
#[async_trait]
pub trait BillingStore: Send + Sync {
    async fn billing_plan(&self, tenant_id: Uuid) -> Result<BillingPlan, StoreError>;
    /// Charges `user_id`'s payer for viewing each message in `views`, in order, in one
    /// transaction: a message the user was charged for before (on another device), or
    /// sent by the user's own device, is free. Stops at the first the payer cannot afford;
    /// returns how many (from the start) may be delivered.
    async fn charge_views(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        charge: &Charge,
        views: &[ViewKey],
        now_ms: i64,
    ) -> Result<usize, StoreError>;
    /// Takes one charge on its own, in one transaction (a ledger debit, or a meter row
    /// when postpaid), under the idempotency `key`: `Err(balance)` when the payer cannot
    /// afford it (nothing changes).
    async fn charge(
        &self,
        tenant_id: Uuid,
        charge: &Charge,
        key: &str,
        reference: Option<&str>,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError>;
    async fn put_prices(&self, tenant_id: Uuid, prices: &Prices) -> Result<(), StoreError>;
    async fn update_billing_settings(
        &self,
        tenant_id: Uuid,
        update: &BillingSettingsUpdate,
    ) -> Result<(), StoreError>;
    /// Replaces the tenant's credit packs.
    async fn put_packs(&self, tenant_id: Uuid, packs: &[CreditPack]) -> Result<(), StoreError>;
    async fn list_packs(&self, tenant_id: Uuid) -> Result<Vec<CreditPack>, StoreError>;
    async fn get_wallet(
        &self,
        tenant_id: Uuid,
        wallet_id: Uuid,
    ) -> Result<Option<WalletRecord>, StoreError>;
    async fn list_wallets(&self, tenant_id: Uuid) -> Result<Vec<WalletRecord>, StoreError>;
    /// Appends an entry and moves the balance, atomically (idempotent by key).
    async fn post_ledger(&self, entry: &NewLedgerEntry) -> Result<LedgerOutcome, StoreError>;
    /// A wallet's entries after `after_id` (oldest first), at most `limit`.
    async fn ledger_page(
        &self,
        tenant_id: Uuid,
        wallet_id: Uuid,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
    async fn create_checkout(&self, record: &CheckoutRecord) -> Result<(), StoreError>;
    /// `checkout.session.completed`: credits the session's wallet once.
    async fn stripe_checkout_completed(
        &self,
        event: &StripeEventMeta,
        session_id: &str,
        payment_intent: Option<&str>,
    ) -> Result<StripeOutcome, StoreError>;
    /// `charge.refunded` (`refunded_fraction` of the payment, in parts per million, in
    /// total so far) or a lost dispute (`1_000_000`): debits the credits not yet taken back.
    async fn stripe_take_back(
        &self,
        event: &StripeEventMeta,
        payment_intent: &str,
        refunded_ppm: i64,
        kind: &'static str,
    ) -> Result<StripeOutcome, StoreError>;
    /// Claims due meter events into batches (one per tenant, customer and event name).
    async fn claim_meter_batches(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<MeterBatch>, StoreError>;
    /// Marks a batch reported, or schedules its retry (`next_attempt_at_ms`), or gives up
    /// (`failed`).
    async fn finish_meter_batch(
        &self,
        batch_id: &str,
        now_ms: i64,
        retry_at_ms: Option<i64>,
        failed: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Meter events not yet reported (for tests and metrics).
    async fn pending_meter_events(&self) -> Result<i64, StoreError>;
    async fn set_webhook(&self, endpoint: &WebhookEndpoint, now_ms: i64) -> Result<(), StoreError>;
    async fn get_webhook(&self, tenant_id: Uuid) -> Result<Option<WebhookEndpoint>, StoreError>;
    async fn enqueue_webhook(
        &self,
        tenant_id: Uuid,
        event_type: &str,
        payload: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Due deliveries, oldest first, pushed back by `lease_ms` so another node does not
    /// take them meanwhile.
    async fn lease_due_webhooks(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// Records an attempt: delivered, or to retry at `retry_at_ms` (`None`: give up).
    async fn record_webhook_attempt(
        &self,
        id: Uuid,
        now_ms: i64,
        status: Option<i64>,
        error: Option<&str>,
        delivered: bool,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError>;
    async fn list_webhook_deliveries(
        &self,
        tenant_id: Uuid,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
}
