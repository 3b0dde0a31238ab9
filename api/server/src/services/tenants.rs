//! Tenants: created by the operator on the host (`cloak-api tenant create`).

use rand::{CryptoRng, RngCore};
use secrecy::SecretString;
use uuid::Uuid;

use super::{ServiceError, api_keys};
use crate::store::{NewTenant, Store};

/// Longest tenant name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A created tenant and its first API key (shown once).
pub struct CreatedTenant {
    /// The tenant's id.
    pub tenant_id: Uuid,
    /// The tenant's name as stored.
    pub name: String,
    /// The first API key.
    pub api_key: SecretString,
}

/// Creates a tenant with one API key named `initial`.
pub async fn create(
    store: &dyn Store,
    name: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<CreatedTenant, ServiceError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid {
            code: "invalid_tenant_name",
            detail: format!("a tenant name has 1 to {MAX_NAME_CHARS} printable characters"),
        });
    }
    let mut id_bytes = [0u8; 16];
    rng.fill_bytes(&mut id_bytes);
    let tenant = NewTenant {
        id: uuid::Builder::from_random_bytes(id_bytes).into_uuid(),
        name: name.to_owned(),
        created_at_ms: now_ms,
    };
    let key = api_keys::generate(tenant.id, "initial", now_ms, rng);
    store.create_tenant(&tenant, &key.record).await?;
    Ok(CreatedTenant {
        tenant_id: tenant.id,
        name: tenant.name,
        api_key: key.secret,
    })
}
