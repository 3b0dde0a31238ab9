//! TURN relay credentials for calls, in coturn's TURN REST API scheme (`use-auth-secret`):
//! `username = <expiry>:<user id>`, `password = base64(HMAC-SHA1(secret, username))`.
//! The relay checks them with the shared secret alone; nothing is stored. Each grant is
//! gated by the user's trust level, rate-limited per user, and charged `call_minute` for
//! every started minute it is valid, through the ledger (or the meter when postpaid).

use base64::Engine as _;
use cloak_proto::Code;
use cloak_proto::calls::TurnCredentials;
use hmac::{Hmac, Mac as _};
use secrecy::ExposeSecret as _;
use uuid::Uuid;

use super::billing::{self, Billable};
use super::limits::{self, Policy};
use super::principals::DevicePrincipal;
use super::{ServiceError, abuse, devices};
use crate::broker::Broker;
use crate::config::TurnSettings;
use crate::store::Store;

/// The password coturn expects for `username` under `secret`.
pub fn turn_password(secret: &[u8], username: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Minutes a grant of `ttl_secs` is charged for (every started minute).
pub fn charged_minutes(ttl_secs: u64) -> u32 {
    u32::try_from(ttl_secs.div_ceil(60)).unwrap_or(u32::MAX)
}

/// Issues credentials to an approved device: level, rate limit, charge, then the HMAC.
pub async fn turn_credentials(
    store: &dyn Store,
    broker: &dyn Broker,
    turn: Option<&TurnSettings>,
    device: &DevicePrincipal,
    grant_id: Uuid,
    now_ms: i64,
) -> Result<TurnCredentials, ServiceError> {
    let turn = turn.ok_or(ServiceError::Unavailable {
        code: Code::TurnNotConfigured,
        detail: "this server has no TURN relay (CLOAK_TURN_URIS, CLOAK_TURN_SECRET)".into(),
    })?;
    devices::require_approved(device)?;
    let (tenant_id, user_id) = (device.tenant_id, device.user_id);
    let level = limits::standing(store, tenant_id, user_id, now_ms).await?;
    limits::zero_allowed(level.calls_per_hour, "calls")?;
    let subject = format!("{tenant_id}:{user_id}");
    if let Err(e) = limits::hit(broker, &subject, &Policy::calls(&level), now_ms).await {
        abuse::limit_event(store, broker, tenant_id, user_id, "calls", now_ms).await;
        return Err(e);
    }
    let minutes = charged_minutes(turn.ttl_secs);
    let plan = store.billing_plan(tenant_id).await?;
    let actor = format!("device:{}", device.device_id);
    if let Some(charge) = billing::charge_for(
        &plan,
        tenant_id,
        user_id,
        actor,
        Billable::CallMinutes(minutes),
    )? {
        let key = format!("turn:{}:{grant_id}", device.device_id);
        if let Err(balance) = store
            .charge(
                tenant_id,
                &charge,
                &key,
                Some(&grant_id.to_string()),
                now_ms,
            )
            .await?
        {
            return Err(billing::insufficient(balance, "call"));
        }
    }
    let ttl_secs = turn.ttl_secs;
    let expiry = now_ms
        .div_euclid(1000)
        .saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX));
    let username = format!("{expiry}:{user_id}");
    let password = turn_password(turn.secret.expose_secret().as_bytes(), &username);
    metrics::counter!("turn_credentials_issued_total").increment(1);
    Ok(TurnCredentials {
        username,
        password,
        uris: turn.uris.clone(),
        ttl_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_the_turn_rest_api_scheme() {
        // RFC 2202 test case 2 for HMAC-SHA1 ("Jefe", "what do ya want for nothing?").
        let p = turn_password(b"Jefe", "what do ya want for nothing?");
        let raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        assert_eq!(hex::encode(raw), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn every_started_minute_is_charged() {
        assert_eq!(charged_minutes(60), 1);
        assert_eq!(charged_minutes(61), 2);
        assert_eq!(charged_minutes(600), 10);
    }
}
