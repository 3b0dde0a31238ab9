//! Rows as the store reads and writes them.

use uuid::Uuid;

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The new tenant's id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
}

/// A stored tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// Retention of undelivered messages, ms.
    pub retention_ms: i64,
    /// The landing page's "Open in app" link template.
    pub open_in_app_template: Option<String>,
    /// Where offline mailbox entries wait.
    pub mailbox_storage: cloak_proto::tenants::MailboxStorage,
}

/// Settings to change; `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct TenantSettingsUpdate {
    /// `Some(None)` removes the template.
    pub open_in_app_template: Option<Option<String>>,
    /// New retention, ms.
    pub retention_ms: Option<i64>,
    /// New mailbox storage.
    pub mailbox_storage: Option<cloak_proto::tenants::MailboxStorage>,
}

/// An API key to store. Holds only the secret's hash.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The key's id.
    pub id: Uuid,
    /// The owning tenant.
    pub tenant_id: Uuid,
    /// Label.
    pub name: String,
    /// Leading characters of the secret, for people to recognise it.
    pub prefix: String,
    /// SHA-256 of the secret.
    pub key_hash: Vec<u8>,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
}

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's id.
    pub id: Uuid,
    /// The owning tenant.
    pub tenant_id: Uuid,
    /// Label.
    pub name: String,
    /// Leading characters of the secret.
    pub prefix: String,
    /// SHA-256 of the secret.
    pub key_hash: Vec<u8>,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// Last successful authentication, Unix ms.
    pub last_used_at_ms: Option<i64>,
    /// Revocation time, Unix ms.
    pub revoked_at_ms: Option<i64>,
}

/// Result of [`super::ApiKeyStore::revoke_api_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The key was active and is now revoked.
    Revoked,
    /// The key was revoked before; nothing changed.
    AlreadyRevoked,
    /// No such key for this tenant.
    NotFound,
    /// Refused: it is the tenant's only active key (revoking it would lock the tenant out).
    LastActiveKey,
}
