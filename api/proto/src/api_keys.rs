//! Tenant API key management bodies (`/v1/api-keys`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

/// Request body of `POST /v1/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "production backend"
}))]
pub struct CreateApiKeyRequest {
    /// A label for people, e.g. `production backend`.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, example = "production backend")]
    pub name: String,
}

/// One API key as listed. The secret itself is never returned after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyInfo {
    /// The key's id, used to revoke it.
    pub id: Uuid,
    /// The label given at creation.
    pub name: String,
    /// The first characters of the key (`ck_` and a few more), to recognise it.
    pub prefix: String,
    /// When the key was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the key was last used to authenticate (updated at most once a minute).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When the key was revoked; a revoked key no longer authenticates.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Response of `GET /v1/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// All keys of the tenant, newest first, revoked ones included.
    pub items: Vec<ApiKeyInfo>,
}

/// Response of `POST /v1/api-keys`: the key's details and, once, its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key's details.
    #[serde(flatten)]
    pub key: ApiKeyInfo,
    /// The secret: `ck_` followed by 43 URL-safe characters (256 random bits).
    /// Shown only in this response.
    pub api_key: String,
}
