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
    /// Where offline mailbox entries wait for their devices.
    #[serde(default)]
    pub mailbox_storage: MailboxStorage,
}

/// Where a tenant's offline mailbox entries (ciphertext waiting for a device) are kept.
///
/// - `durable` (the default): in the database, with the server's durability (PostgreSQL or
///   SQLite, fsync on commit); nothing acknowledged is lost, even on power loss.
/// - `memory`: only in Redis memory (a sorted set per device, removed on acknowledgement,
///   dropped after the retention), never written to the database; the tenant's other data
///   (users, devices, conversations, ledger) stays in the database. Needs a server with
///   Redis. **Trade-off:** a Redis restart without persistence (or an eviction under memory
///   pressure) loses the messages queued for offline devices; devices that are online get
///   them as before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailboxStorage {
    /// In the database (default).
    #[default]
    Durable,
    /// In Redis memory only.
    Memory,
}

impl MailboxStorage {
    /// The wire and column name: `durable` or `memory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Durable => "durable",
            Self::Memory => "memory",
        }
    }

    /// The storage named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "durable" => Some(Self::Durable),
            "memory" => Some(Self::Memory),
            _ => None,
        }
    }
}

/// Request body of `PATCH /v1/tenant`; absent fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "open_in_app_template": "myapp://join?invite={link}",
    "message_retention_secs": 2592000,
    "mailbox_storage": "durable"
}))]
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
    /// `durable` (database) or `memory` (Redis only; refused with 409
    /// `memory_mailbox_unavailable` on a server without Redis). Entries already queued stay
    /// where they are and are delivered from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_storage: Option<MailboxStorage>,
}
