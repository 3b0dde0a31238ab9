//! Tenant bodies (operator CLI output).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Printed once by `cloak-api tenant create --json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantCreated {
    /// The new tenant's id.
    pub tenant_id: Uuid,
    /// The tenant's display name.
    pub name: String,
    /// The tenant's first API key. Shown once; only its hash is stored.
    pub api_key: String,
}
