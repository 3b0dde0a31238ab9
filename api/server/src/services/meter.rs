//! Usage of postpaid tenants, reported to Stripe Billing as meter events. Each charged
//! action writes an outbox row in its own transaction; a worker sums due rows into batches
//! (per tenant, customer and meter), sends each as one meter event whose `identifier` (and
//! `Idempotency-Key`) is derived from the batch, and retries with backoff on 429, 5xx and
//! network errors. A restart resumes from the outbox with the same identifiers, so nothing
//! is lost and nothing is counted twice.

use std::collections::HashMap;

use cloak_proto::Code;
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest as _};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;

use super::ServiceError;
use super::stripe_api::{self, StripeApi};
use crate::clock::Clock;
use crate::store::{MeterBatch, Store};

/// Attempts before a batch is set aside as failed (and logged).
pub const MAX_ATTEMPTS: i64 = 12;

/// Delay before retry `attempts + 1`: 1 s doubling to at most 5 minutes.
pub fn retry_delay_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    (1000i64 << exp).min(300_000)
}

/// Stripe's identifier for a batch: stable across restarts and unique per tenant.
pub fn identifier(batch: &MeterBatch) -> String {
    format!("cloak-{}-{}", batch.tenant_id.simple(), batch.batch_id)
}

/// Reports every due batch; returns how many were reported.
pub async fn report_due(
    store: &dyn Store,
    stripe: &StripeApi,
    clock: &dyn Clock,
) -> Result<usize, ServiceError> {
    let batches = store.claim_meter_batches(clock.now_ms(), 100).await?;
    let mut sent = 0;
    for batch in &batches {
        let id = identifier(batch);
        let payload = HashMap::from([
            ("stripe_customer_id".to_owned(), batch.customer_id.clone()),
            ("value".to_owned(), batch.value.to_string()),
        ]);
        let key = IdempotencyKey::new(&id)
            .map_err(|e| ServiceError::invalid(Code::MeterIdentifier, e.to_string()))?;
        let result = CreateBillingMeterEvent::new(batch.event_name.clone(), payload)
            .identifier(id.clone())
            .timestamp(batch.occurred_at_ms / 1000)
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&stripe.client)
            .await;
        let now = clock.now_ms();
        match result {
            Ok(_) => {
                store
                    .finish_meter_batch(&batch.batch_id, now, None, None)
                    .await?;
                sent += 1;
            }
            // Stripe keeps identifiers unique: an earlier attempt got through.
            Err(e)
                if stripe_api::status(&e) == Some(400)
                    && stripe_api::message(&e).contains("identifier") =>
            {
                store
                    .finish_meter_batch(&batch.batch_id, now, None, None)
                    .await?;
                sent += 1;
            }
            Err(e) if stripe_api::retryable(&e) && batch.attempts + 1 < MAX_ATTEMPTS => {
                let at = now + retry_delay_ms(batch.attempts);
                tracing::warn!(batch = %batch.batch_id, error = %stripe_api::message(&e), "meter event will be retried");
                store
                    .finish_meter_batch(&batch.batch_id, now, Some(at), None)
                    .await?;
            }
            Err(e) => {
                tracing::error!(batch = %batch.batch_id, error = %stripe_api::message(&e), "meter event failed for good");
                store
                    .finish_meter_batch(&batch.batch_id, now, None, Some(&stripe_api::message(&e)))
                    .await?;
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(retry_delay_ms(0), 1000);
        assert_eq!(retry_delay_ms(3), 8000);
        assert_eq!(retry_delay_ms(30), 300_000);
    }
}
