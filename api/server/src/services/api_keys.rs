//! Tenant API keys: `ck_` + 256 random bits (base64url), stored as SHA-256, compared in
//! constant time. Revocation is a database write, and every request re-reads the key, so a
//! revoked key fails at once on every node.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloak_proto::Code;
use rand::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::ServiceError;
use crate::store::{ApiKeyRecord, NewApiKey, RevokeOutcome, Store};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "ck_";
/// Characters of base64url for 32 bytes without padding.
const ENCODED_LEN: usize = 43;
/// How many leading characters are kept to show in listings (`ck_` + 8).
const SHOWN_PREFIX_LEN: usize = 11;
/// `last_used_at` is written at most this often per key (avoids a write per request).
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct GeneratedKey {
    /// The secret to hand to the tenant once.
    pub secret: SecretString,
    /// What the store keeps.
    pub record: NewApiKey,
}

/// The identity an API key proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantPrincipal {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The key used.
    pub key_id: Uuid,
}

/// SHA-256 of a presented secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Generates a new key for `tenant_id`.
pub fn generate(
    tenant_id: Uuid,
    name: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let mut id_bytes = [0u8; 16];
    rng.fill_bytes(&mut id_bytes);
    let record = NewApiKey {
        id: uuid::Builder::from_random_bytes(id_bytes).into_uuid(),
        tenant_id,
        name: name.to_owned(),
        prefix: secret.chars().take(SHOWN_PREFIX_LEN).collect(),
        key_hash: hash_secret(&secret).to_vec(),
        created_at_ms: now_ms,
    };
    GeneratedKey {
        secret: SecretString::from(secret),
        record,
    }
}

/// True when `presented` has the shape of a key (cheap check before touching the store).
fn well_formed(presented: &str) -> bool {
    presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == ENCODED_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Resolves a presented key to its tenant, or fails with `InvalidApiKey`.
pub async fn authenticate(
    store: &dyn Store,
    presented: &SecretString,
    now_ms: i64,
) -> Result<TenantPrincipal, ServiceError> {
    let presented = presented.expose_secret();
    if !well_formed(presented) {
        return Err(ServiceError::InvalidApiKey);
    }
    let hash = hash_secret(presented);
    let Some(record) = store.find_api_key_by_hash(&hash).await? else {
        return Err(ServiceError::InvalidApiKey);
    };
    // The lookup is by hash already; the constant-time comparison guards against any
    // backend that might match loosely, without leaking where the bytes differ.
    if !bool::from(record.key_hash.as_slice().ct_eq(&hash)) || record.revoked_at_ms.is_some() {
        return Err(ServiceError::InvalidApiKey);
    }
    if record
        .last_used_at_ms
        .is_none_or(|t| now_ms - t >= TOUCH_INTERVAL_MS)
    {
        store
            .touch_api_key(record.tenant_id, record.id, now_ms)
            .await?;
    }
    Ok(TenantPrincipal {
        tenant_id: record.tenant_id,
        key_id: record.id,
    })
}

/// Creates a new key for the tenant.
pub async fn create(
    store: &dyn Store,
    tenant_id: Uuid,
    name: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(ApiKeyRecord, SecretString), ServiceError> {
    let generated = generate(tenant_id, name, now_ms, rng);
    store.insert_api_key(&generated.record).await?;
    let r = generated.record;
    let record = ApiKeyRecord {
        id: r.id,
        tenant_id: r.tenant_id,
        name: r.name,
        prefix: r.prefix,
        key_hash: r.key_hash,
        created_at_ms: r.created_at_ms,
        last_used_at_ms: None,
        revoked_at_ms: None,
    };
    Ok((record, generated.secret))
}

/// Lists the tenant's keys.
pub async fn list(store: &dyn Store, tenant_id: Uuid) -> Result<Vec<ApiKeyRecord>, ServiceError> {
    Ok(store.list_api_keys(tenant_id).await?)
}

/// Revokes a key. Revoking an already revoked key succeeds (idempotent).
pub async fn revoke(
    store: &dyn Store,
    tenant_id: Uuid,
    key_id: Uuid,
    now_ms: i64,
) -> Result<(), ServiceError> {
    match store.revoke_api_key(tenant_id, key_id, now_ms).await? {
        RevokeOutcome::Revoked | RevokeOutcome::AlreadyRevoked => Ok(()),
        RevokeOutcome::NotFound => Err(ServiceError::NotFound("API key")),
        RevokeOutcome::LastActiveKey => Err(ServiceError::Conflict {
            code: Code::LastActiveKey,
            detail: "this is the tenant's only active API key; create another before revoking it"
                .to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn keys_have_256_bits_and_a_stable_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = generate(Uuid::nil(), "a", 1, &mut rng);
        let b = generate(Uuid::nil(), "b", 1, &mut rng);
        let sa = a.secret.expose_secret();
        assert!(well_formed(sa), "{}", a.record.prefix);
        assert_eq!(sa.len(), KEY_PREFIX.len() + ENCODED_LEN);
        assert_ne!(sa, b.secret.expose_secret());
        assert_eq!(a.record.key_hash, hash_secret(sa).to_vec());
        assert!(sa.starts_with(&a.record.prefix));
        assert_eq!(a.record.prefix.len(), SHOWN_PREFIX_LEN);
    }

    #[test]
    fn malformed_keys_are_rejected_before_lookup() {
        assert!(!well_formed(""));
        assert!(!well_formed("ck_short"));
        assert!(!well_formed(&format!("xx_{}", "a".repeat(ENCODED_LEN))));
        assert!(!well_formed(&format!(
            "ck_{}!",
            "a".repeat(ENCODED_LEN - 1)
        )));
        assert!(well_formed(&format!("ck_{}", "a".repeat(ENCODED_LEN))));
    }
}
