//! Credits: what an action costs and who pays, wallets, grants and adjustments, the
//! ledger, and billing settings. Charges for sends and invite redemptions happen inside
//! their store transactions (see [`charge_for`]); everything else goes through the ledger.

use cloak_proto::Code;
use cloak_proto::billing::{BillingSettings, PriceTable};
use cloak_proto::delivery::MessageClass;
use uuid::Uuid;

use super::ServiceError;
use crate::broker::Broker;
use crate::store::{
    BillingPlan, BillingSettingsUpdate, Charge, CreditPack, LedgerEntry, LedgerOutcome,
    NewLedgerEntry, Prices, Store,
};

/// Something that may cost credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billable {
    Message(MessageClass),
    InviteRedemption,
    /// A membership change (an MLS commit).
    Commit,
    /// Viewing a received message.
    MessageView,
    /// TURN relay credentials valid for this many minutes of a call.
    CallMinutes(u32),
}

/// Every `kind` a ledger entry can have: what [`price_of`] charges (`control` is always
/// free, so never an entry), grants and adjustments (API and console), and Stripe's
/// purchases, refunds and disputes. The OpenAPI document lists them as the field's enum.
pub const LEDGER_KINDS: &[&str] = &[
    "message",
    "edit",
    "delete",
    "attachment",
    "call",
    "invite_redemption",
    "commit",
    "message_view",
    "grant",
    "adjustment",
    "purchase",
    "refund",
    "dispute",
];

/// The price of an action under a price table.
pub fn price_of(prices: &Prices, what: Billable) -> (i64, &'static str) {
    match what {
        Billable::Message(class) => match class {
            MessageClass::Text => (prices.text_message, "message"),
            MessageClass::Edit => (prices.edit_message, "edit"),
            MessageClass::Delete => (prices.delete_message, "delete"),
            MessageClass::AttachmentSmall => (prices.attachment_small, "attachment"),
            MessageClass::AttachmentMedium => (prices.attachment_medium, "attachment"),
            MessageClass::AttachmentLarge => (prices.attachment_large, "attachment"),
            MessageClass::CallMinute => (prices.call_minute, "call"),
            MessageClass::Control => (0, "control"),
        },
        Billable::InviteRedemption => (prices.invite_redemption, "invite_redemption"),
        Billable::Commit => (prices.group_commit, "commit"),
        Billable::MessageView => (prices.message_view, "message_view"),
        Billable::CallMinutes(minutes) => (
            prices.call_minute.saturating_mul(i64::from(minutes)),
            "call",
        ),
    }
}

/// The price row of an attachment tier, kept as its ledger entry's reason so spend can be
/// told apart by tier.
fn tier_of(what: Billable) -> Option<&'static str> {
    match what {
        Billable::Message(MessageClass::AttachmentSmall) => Some("attachment_small"),
        Billable::Message(MessageClass::AttachmentMedium) => Some("attachment_medium"),
        Billable::Message(MessageClass::AttachmentLarge) => Some("attachment_large"),
        _ => None,
    }
}

/// How `user_id`'s action is paid under the tenant's plan: `None` when it is free.
pub fn charge_for(
    plan: &BillingPlan,
    tenant_id: Uuid,
    user_id: Uuid,
    actor: String,
    what: Billable,
) -> Result<Option<Charge>, ServiceError> {
    let (amount, kind) = price_of(&plan.prices, what);
    if amount <= 0 {
        return Ok(None);
    }
    if plan.postpaid {
        let (Some(customer_id), Some(event_name)) =
            (&plan.stripe_customer_id, &plan.meter_event_name)
        else {
            return Err(ServiceError::conflict(
                Code::BillingNotConfigured,
                "the tenant is postpaid but has no Stripe customer or meter event name",
            ));
        };
        return Ok(Some(Charge::Postpaid {
            customer_id: customer_id.clone(),
            event_name: event_name.clone(),
            value: amount,
        }));
    }
    Ok(Some(Charge::Prepaid {
        wallet_id: if plan.users_pay { user_id } else { tenant_id },
        amount,
        kind,
        tier: tier_of(what),
        actor,
        user_id,
        low_balance_threshold: plan.low_balance_threshold,
    }))
}

/// The 402 for a payer that cannot afford an action.
pub fn insufficient(balance: i64, what: &str) -> ServiceError {
    ServiceError::PaymentRequired {
        code: Code::InsufficientCredits,
        detail: format!("the wallet holds {balance} credits, too few for this {what}"),
    }
}

/// A wallet as named on the wire: `tenant`, or the id of one of the tenant's users.
pub async fn parse_wallet(
    store: &dyn Store,
    tenant_id: Uuid,
    wallet: &str,
) -> Result<Uuid, ServiceError> {
    if wallet == "tenant" {
        return Ok(tenant_id);
    }
    let user = Uuid::parse_str(wallet).map_err(|_| {
        ServiceError::invalid(Code::InvalidWallet, "a wallet is `tenant` or a user id")
    })?;
    store
        .get_user(tenant_id, user)
        .await?
        .ok_or(ServiceError::NotFound("wallet"))?;
    Ok(user)
}

/// The wire name of a wallet.
pub fn wallet_name(tenant_id: Uuid, wallet_id: Uuid) -> String {
    if wallet_id == tenant_id {
        "tenant".into()
    } else {
        wallet_id.to_string()
    }
}

/// A manual ledger change: a grant (`delta > 0`) or an adjustment.
pub struct ManualChange<'a> {
    pub tenant_id: Uuid,
    pub wallet_id: Uuid,
    pub delta: i64,
    pub kind: &'static str,
    pub reason: &'a str,
    pub actor: String,
    pub idempotency_key: &'a str,
    pub now_ms: i64,
}

/// Credits arrived in `wallet_id`: the sockets of that user's devices read their mailboxes
/// again, so messages held back for an unaffordable view go out at once rather than at
/// the next heartbeat. (A tenant wallet pays for everyone; its users' sockets retry at
/// their heartbeat.) Best effort: a failure only delays delivery.
async fn wake_wallet(store: &dyn Store, broker: &dyn Broker, tenant_id: Uuid, wallet_id: Uuid) {
    if wallet_id == tenant_id {
        return;
    }
    match store.list_devices(tenant_id, wallet_id).await {
        Ok(devices) => {
            let ids: Vec<Uuid> = devices.iter().map(|d| d.id).collect();
            super::push::wake(broker, &ids).await;
        }
        Err(e) => tracing::warn!(error = %e, "listing a wallet's devices to wake them failed"),
    }
}

/// Applies a grant or adjustment once per idempotency key. Returns the entry and whether
/// it was a replay; a key reused for a different change is refused. Credits added to a
/// user's wallet wake that user's sockets ([`wake_wallet`]).
pub async fn change_balance(
    store: &dyn Store,
    broker: &dyn Broker,
    change: ManualChange<'_>,
) -> Result<(LedgerEntry, bool), ServiceError> {
    check_idempotency_key(change.idempotency_key)?;
    if change.delta == 0 {
        return Err(ServiceError::invalid(
            Code::ZeroDelta,
            "an adjustment must add or remove credits",
        ));
    }
    let entry = NewLedgerEntry {
        tenant_id: change.tenant_id,
        wallet_id: change.wallet_id,
        delta: change.delta,
        kind: change.kind.into(),
        reason: Some(change.reason.to_owned()),
        actor: change.actor,
        idempotency_key: format!("api:{}", change.idempotency_key),
        reference: None,
        user_id: None,
        now_ms: change.now_ms,
        clamp: false,
    };
    match store.post_ledger(&entry).await? {
        LedgerOutcome::Applied(e) => {
            if e.delta > 0 {
                wake_wallet(store, broker, e.tenant_id, e.wallet_id).await;
            }
            Ok((e, false))
        }
        LedgerOutcome::Replayed(e) => {
            if e.wallet_id != entry.wallet_id || e.delta != entry.delta || e.kind != entry.kind {
                return Err(ServiceError::conflict(
                    Code::IdempotencyKeyReused,
                    "this Idempotency-Key was used for a different change",
                ));
            }
            Ok((e, true))
        }
        LedgerOutcome::Insufficient(balance) => Err(ServiceError::conflict(
            Code::BalanceWouldGoNegative,
            format!("the wallet holds {balance} credits; a balance cannot go below zero"),
        )),
    }
}

/// Idempotency keys: 1 to 200 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ServiceError::invalid(
            Code::IdempotencyKeyRequired,
            "send an Idempotency-Key header of 1 to 200 visible ASCII characters",
        ));
    }
    Ok(())
}

/// The wire price table of a tenant.
pub fn price_table(p: &Prices) -> PriceTable {
    PriceTable {
        text_message: p.text_message,
        attachment_small: p.attachment_small,
        attachment_medium: p.attachment_medium,
        attachment_large: p.attachment_large,
        edit: p.edit_message,
        delete: p.delete_message,
        call_minute: p.call_minute,
        invite_redemption: p.invite_redemption,
        group_commit: p.group_commit,
        message_view: p.message_view,
    }
}

/// Stores a price table.
pub async fn put_prices(
    store: &dyn Store,
    tenant_id: Uuid,
    t: &PriceTable,
) -> Result<(), ServiceError> {
    let prices = Prices {
        text_message: t.text_message,
        attachment_small: t.attachment_small,
        attachment_medium: t.attachment_medium,
        attachment_large: t.attachment_large,
        edit_message: t.edit,
        delete_message: t.delete,
        call_minute: t.call_minute,
        invite_redemption: t.invite_redemption,
        group_commit: t.group_commit,
        message_view: t.message_view,
    };
    Ok(store.put_prices(tenant_id, &prices).await?)
}

/// The tenant's billing settings with its packs.
pub async fn settings(store: &dyn Store, tenant_id: Uuid) -> Result<BillingSettings, ServiceError> {
    let plan = store.billing_plan(tenant_id).await?;
    let packs = store.list_packs(tenant_id).await?;
    Ok(BillingSettings {
        users_pay: plan.users_pay,
        postpaid: plan.postpaid,
        low_balance_threshold: plan.low_balance_threshold,
        stripe_customer_id: plan.stripe_customer_id,
        meter_event_name: plan.meter_event_name,
        packs: packs
            .into_iter()
            .map(|p| cloak_proto::billing::CreditPack {
                id: p.id,
                name: p.name,
                credits: p.credits,
                amount: p.amount,
                currency: p.currency,
            })
            .collect(),
    })
}

/// Replaces the tenant's billing settings.
pub async fn put_settings(
    store: &dyn Store,
    tenant_id: Uuid,
    s: &BillingSettings,
) -> Result<BillingSettings, ServiceError> {
    if s.postpaid && (s.stripe_customer_id.is_none() || s.meter_event_name.is_none()) {
        return Err(ServiceError::invalid(
            Code::InvalidBillingSettings,
            "postpaid needs stripe_customer_id and meter_event_name",
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for p in &s.packs {
        let id_ok =
            p.id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let currency_ok = p.currency.bytes().all(|b| b.is_ascii_lowercase());
        if !id_ok || !currency_ok || !ids.insert(p.id.as_str()) {
            return Err(ServiceError::invalid(
                Code::InvalidPack,
                format!(
                    "pack {:?}: ids are unique letters, digits, - and _; currencies lowercase ISO 4217",
                    p.id
                ),
            ));
        }
    }
    let update = BillingSettingsUpdate {
        users_pay: Some(s.users_pay),
        postpaid: Some(s.postpaid),
        low_balance_threshold: Some(s.low_balance_threshold),
        stripe_customer_id: Some(s.stripe_customer_id.clone()),
        meter_event_name: Some(s.meter_event_name.clone()),
    };
    store.update_billing_settings(tenant_id, &update).await?;
    let packs: Vec<CreditPack> = s
        .packs
        .iter()
        .map(|p| CreditPack {
            id: p.id.clone(),
            name: p.name.clone(),
            credits: p.credits,
            amount: p.amount,
            currency: p.currency.clone(),
        })
        .collect();
    store.put_packs(tenant_id, &packs).await?;
    settings(store, tenant_id).await
}

/// Ledger cursors are the last entry id seen, opaque to clients.
pub fn parse_cursor(cursor: Option<&str>) -> Result<i64, ServiceError> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c
            .strip_prefix("le_")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ServiceError::invalid(Code::InvalidCursor, "not a cursor from a previous page")
            }),
    }
}

/// The cursor after an entry.
pub fn cursor_after(id: i64) -> String {
    format!("le_{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_actions_cost_nothing_and_postpaid_needs_stripe_ids() {
        let tenant = Uuid::from_u128(1);
        let user = Uuid::from_u128(2);
        let mut plan = BillingPlan::default();
        let text = Billable::Message(MessageClass::Text);
        assert_eq!(
            charge_for(&plan, tenant, user, "a".into(), text).ok(),
            Some(None)
        );
        plan.prices.text_message = 3;
        match charge_for(&plan, tenant, user, "a".into(), text) {
            Ok(Some(Charge::Prepaid {
                wallet_id, amount, ..
            })) => {
                assert_eq!((wallet_id, amount), (tenant, 3));
            }
            other => panic!("{other:?}"),
        }
        plan.users_pay = true;
        assert!(matches!(
            charge_for(&plan, tenant, user, "a".into(), text),
            Ok(Some(Charge::Prepaid { wallet_id, .. })) if wallet_id == user
        ));
        let control = Billable::Message(MessageClass::Control);
        assert_eq!(
            charge_for(&plan, tenant, user, "a".into(), control).ok(),
            Some(None)
        );
        plan.postpaid = true;
        assert!(charge_for(&plan, tenant, user, "a".into(), text).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(parse_cursor(Some(&cursor_after(42))).ok(), Some(42));
        assert_eq!(parse_cursor(None).ok(), Some(0));
        for bad in ["42", "le_-1", "le_x", "zz"] {
            assert!(parse_cursor(Some(bad)).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod ledger_kind_tests {
    use super::*;

    #[test]
    fn every_charged_kind_is_a_documented_ledger_kind() {
        let prices = Prices::default();
        let classes = [
            MessageClass::Text,
            MessageClass::Edit,
            MessageClass::Delete,
            MessageClass::AttachmentSmall,
            MessageClass::AttachmentMedium,
            MessageClass::AttachmentLarge,
            MessageClass::CallMinute,
        ];
        let charged = classes.into_iter().map(Billable::Message).chain([
            Billable::InviteRedemption,
            Billable::Commit,
            Billable::MessageView,
            Billable::CallMinutes(1),
        ]);
        for what in charged {
            let (_, kind) = price_of(&prices, what);
            assert!(
                LEDGER_KINDS.contains(&kind),
                "{kind} is not in LEDGER_KINDS"
            );
        }
    }
}
