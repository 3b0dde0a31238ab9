//! End users, managed by the tenant's backend (`/v1/users`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

/// Request body of `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "external_id": "user-42",
    "display_name": "Alice"
}))]
pub struct CreateUserRequest {
    /// The tenant's own id for this user; unique per tenant.
    #[validate(length(min = 1, max = 128))]
    #[schema(min_length = 1, max_length = 128, example = "user-42")]
    pub external_id: String,
    /// Name shown to other users.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, example = "Alice")]
    pub display_name: String,
}

/// Request body of `PATCH /v1/users/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "display_name": "Alice Smith",
    "trust_level": "trusted",
    "suspended": false
}))]
pub struct UpdateUserRequest {
    /// New display name.
    #[validate(length(min = 1, max = 100))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New trust level (one of the tenant's levels, e.g. `new`, `basic`, `trusted`, `verified`).
    #[validate(length(min = 1, max = 32))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_level: Option<String>,
    /// Suspends (true) or reinstates (false) the user. A suspended user's tokens stop working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
}

/// An end user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Cloak's id for the user.
    pub id: Uuid,
    /// The tenant's id for the user.
    pub external_id: String,
    /// Name shown to other users.
    pub display_name: String,
    /// Trust level, which sets the user's rate limits.
    pub trust_level: String,
    /// Whether the user is suspended.
    pub suspended: bool,
    /// When the user was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Response of `GET /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// Matching users, oldest first.
    pub items: Vec<User>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only the user with this external id (zero or one).
    #[serde(default)]
    #[validate(length(min = 1, max = 128))]
    pub external_id: Option<String>,
    /// Only users at this trust level.
    #[serde(default)]
    #[validate(length(min = 1, max = 32))]
    pub trust_level: Option<String>,
    /// Only suspended (`true`) or only active (`false`) users.
    #[serde(default)]
    pub suspended: Option<bool>,
    /// From a previous page's `next_cursor`.
    #[serde(default)]
    #[validate(length(max = 200))]
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    #[serde(default)]
    #[validate(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

/// Response of `POST /v1/users/{id}/tokens`: a short-lived user token for the tenant's app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserToken {
    /// Bearer token (`cu_…`) that lets a device of this user register and log in.
    pub token: String,
    /// When the token stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Request body of `POST /v1/contacts`: makes two users contacts of each other, so each
/// can read the other's device directory and start a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "user_id": "5b3e9d2a-1c4f-4e7b-8a6d-0f2c9e1b7a34",
    "contact_user_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
}))]
pub struct CreateContactRequest {
    /// One user.
    pub user_id: Uuid,
    /// The other user.
    pub contact_user_id: Uuid,
}
