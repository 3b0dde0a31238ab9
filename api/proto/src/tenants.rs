//! Tenant bodies: operator CLI output and the tenant's own settings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

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

/// Response of `GET /v1/tenant` and `PATCH /v1/tenant`: the calling tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantSettings {
    /// The tenant's id.
    pub id: Uuid,
    /// The tenant's display name.
    pub name: String,
    /// How long undelivered messages are kept, in seconds.
    pub message_retention_secs: u64,
    /// The "Open in app" link of invite landing pages; `{code}`, `{link}` (the invite link,
    /// percent-encoded) and `{fp}` are replaced. Absent: the button opens the invite link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_in_app_template: Option<String>,
}

/// Request body of `PATCH /v1/tenant`; absent fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    /// The "Open in app" template, e.g. `myapp://join?invite={link}`; an empty string
    /// removes it. It must be an absolute URL (not `javascript:`/`data:`) with `{code}` or
    /// `{link}`.
    #[validate(length(max = 500))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_in_app_template: Option<String>,
    /// How long undelivered messages are kept (1 hour to 365 days), in seconds.
    #[validate(range(min = 3600, max = 31536000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_retention_secs: Option<u32>,
}
