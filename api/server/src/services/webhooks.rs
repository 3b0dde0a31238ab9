//! Tenant webhooks: signed like Stripe's (`Cloak-Signature: t={unix},v1={hex HMAC-SHA256
//! of "{t}.{body}"}`), queued in the database in the same transaction as the event that
//! caused them, delivered by a background worker with exponential backoff, and logged.
//! Nothing on a request path waits for a tenant's endpoint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloak_proto::Code;
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use uuid::Uuid;

use super::ServiceError;
use super::egress;
use super::outbound::Outbound;
use crate::store::{Store, WebhookDelivery, WebhookEndpoint};

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 10;
/// How long a leased delivery is kept from other nodes.
const LEASE_MS: i64 = 60_000;
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A new signing secret.
pub fn generate_secret(rng: &mut (impl RngCore + CryptoRng)) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    format!("whsec_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The `Cloak-Signature` header for `body` sent at `t_s` (Unix seconds).
pub fn signature_header(secret: &str, t_s: i64, body: &[u8]) -> String {
    format!("t={t_s},v1={}", hex::encode(mac(secret, t_s, body)))
}

/// HMAC-SHA256 of `"{t}.{body}"` under `secret` (Stripe's signed payload).
pub fn mac(secret: &str, t_s: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Vec::new();
    };
    mac.update(t_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// After `failed` failed attempts, the delay before the next one: 10 s doubling to at most
/// an hour; `None` when the delivery is given up.
pub fn retry_delay_ms(failed: i64) -> Option<i64> {
    if failed >= MAX_ATTEMPTS {
        return None;
    }
    let attempts = failed - 1;
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    Some((10_000i64.saturating_mul(1i64 << exp)).min(3_600_000))
}

/// Sets the tenant's endpoint with a new secret.
pub async fn configure(
    store: &dyn Store,
    tenant_id: Uuid,
    url: &str,
    allow_private: bool,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<WebhookEndpoint, ServiceError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ServiceError::invalid(
            Code::InvalidWebhookUrl,
            "the webhook URL must be http(s)",
        ));
    }
    egress::host_and_port(url).map_err(|e| ServiceError::invalid(Code::InvalidWebhookUrl, e))?;
    egress::check_url(url, allow_private)
        .await
        .map_err(|e| ServiceError::invalid(Code::WebhookTargetNotAllowed, e))?;
    let endpoint = WebhookEndpoint {
        tenant_id,
        url: url.to_owned(),
        secret: generate_secret(rng),
    };
    store.set_webhook(&endpoint, now_ms).await?;
    Ok(endpoint)
}

/// Delivers what is due; returns how many deliveries were attempted.
pub async fn deliver_due(
    store: &dyn Store,
    http: &Outbound,
    now_ms: i64,
) -> Result<usize, ServiceError> {
    let due = store.lease_due_webhooks(now_ms, LEASE_MS, 50).await?;
    for d in &due {
        attempt(store, http, d, now_ms).await?;
    }
    Ok(due.len())
}

async fn attempt(
    store: &dyn Store,
    http: &Outbound,
    d: &WebhookDelivery,
    now_ms: i64,
) -> Result<(), ServiceError> {
    let Some(endpoint) = store.get_webhook(d.tenant_id).await? else {
        store
            .record_webhook_attempt(d.id, now_ms, None, Some("no endpoint"), false, None)
            .await?;
        return Ok(());
    };
    let t_s = now_ms / 1000;
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("cloak-webhook-id", d.id.to_string()),
        (
            "cloak-signature",
            signature_header(&endpoint.secret, t_s, d.payload.as_bytes()),
        ),
    ];
    let sent = http
        .post(&endpoint.url, &headers, d.payload.clone(), ATTEMPT_TIMEOUT)
        .await;
    let (status, error) = match sent {
        Ok(status) if (200..300).contains(&status) => {
            store
                .record_webhook_attempt(d.id, now_ms, Some(i64::from(status)), None, true, None)
                .await?;
            return Ok(());
        }
        Ok(status) => (
            Some(i64::from(status)),
            format!("endpoint answered {status}"),
        ),
        Err(e) => (None, e),
    };
    let retry = retry_delay_ms(d.attempts + 1).map(|delay| now_ms + delay);
    tracing::warn!(
        delivery = %d.id,
        event_type = %d.event_type,
        attempts = d.attempts + 1,
        gave_up = retry.is_none(),
        "webhook delivery failed"
    );
    store
        .record_webhook_attempt(d.id, now_ms, status, Some(&error), false, retry)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_stripe_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed with Python's hmac module.
        let header = signature_header("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(
            header,
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        assert_ne!(
            header,
            signature_header("whsec_other", 1_700_000_000, b"{}")
        );
        assert_ne!(header, signature_header("whsec_test", 1_700_000_001, b"{}"));
    }

    #[test]
    fn backoff_doubles_caps_and_gives_up() {
        assert_eq!(retry_delay_ms(1), Some(10_000));
        assert_eq!(retry_delay_ms(2), Some(20_000));
        assert_eq!(retry_delay_ms(9), Some(2_560_000));
        assert_eq!(retry_delay_ms(MAX_ATTEMPTS), None);
    }
}
