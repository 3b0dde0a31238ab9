//! Stripe webhook events: verified (see `stripe_signature`), then applied once.
//! `checkout.session.completed` (paid) and `checkout.session.async_payment_succeeded`
//! credit the session's wallet; `charge.refunded` and a lost `charge.dispute.closed` take
//! the credits back (never below zero). Other types are acknowledged and ignored.

use cloak_proto::Code;
use cloak_proto::stripe_webhook::Event;

use super::ServiceError;
use super::stripe_signature;
use crate::store::{Store, StripeEventMeta, StripeOutcome};

/// What the webhook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Applied now (or nothing to do for this type).
    Applied,
    /// Stripe delivered it again; it was applied before.
    Duplicate,
}

/// Verifies and applies one webhook delivery.
pub async fn handle(
    store: &dyn Store,
    secret: &str,
    signature: &str,
    payload: &[u8],
    now_ms: i64,
) -> Result<Handled, ServiceError> {
    let signed_at = stripe_signature::verify(secret, signature, payload, now_ms / 1000)?;
    let event = Event::parse(payload)
        .map_err(|_| ServiceError::invalid(Code::InvalidEvent, "not a Stripe event"))?;
    let meta = StripeEventMeta {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        signed_at_s: signed_at,
        now_ms,
    };
    let outcome = match event.event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let Some(session) = event.str_field("id") else {
                return Err(ServiceError::invalid(
                    Code::InvalidEvent,
                    "the session has no id",
                ));
            };
            if event.str_field("payment_status") != Some("paid") {
                // Paid later: `checkout.session.async_payment_succeeded` credits then.
                return Ok(Handled::Applied);
            }
            store
                .stripe_checkout_completed(&meta, session, event.str_field("payment_intent"))
                .await?
        }
        "charge.refunded" => {
            let (Some(intent), Some(amount), Some(refunded)) = (
                event.str_field("payment_intent"),
                event.int_field("amount"),
                event.int_field("amount_refunded"),
            ) else {
                return Ok(Handled::Applied);
            };
            if amount <= 0 {
                return Ok(Handled::Applied);
            }
            let ppm = i64::try_from(i128::from(refunded) * 1_000_000 / i128::from(amount))
                .unwrap_or(1_000_000);
            store.stripe_take_back(&meta, intent, ppm, "refund").await?
        }
        "charge.dispute.closed" => {
            let (Some(intent), Some("lost")) =
                (event.str_field("payment_intent"), event.str_field("status"))
            else {
                return Ok(Handled::Applied);
            };
            store
                .stripe_take_back(&meta, intent, 1_000_000, "dispute")
                .await?
        }
        _ => return Ok(Handled::Applied),
    };
    match outcome {
        StripeOutcome::Applied(_) | StripeOutcome::Ignored => Ok(Handled::Applied),
        StripeOutcome::Duplicate => Ok(Handled::Duplicate),
        StripeOutcome::Replay => Err(ServiceError::invalid(
            Code::ReplayedEvent,
            "this exact delivery was received before",
        )),
    }
}
