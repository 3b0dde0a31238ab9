//! Billing-admin console accounts, managed by the tenant's backend.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

/// What a console account may do: the closed set of `role` values (strings on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleRole {
    /// Everything, including the price table and the accounts.
    Owner,
    /// Buy, grant and adjust credits.
    BillingAdmin,
    /// Read only.
    Viewer,
}

/// `POST /v1/console/accounts`: a person at the tenant who may use the console.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "ann@example.com",
    "role": "billing_admin"
}))]
pub struct CreateConsoleAccountRequest {
    /// Their e-mail address (the login name).
    #[validate(length(min = 3, max = 254))]
    #[schema(
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^\s\x00-\x1f\x7f-\x9f]*\.[^\s\x00-\x1f\x7f-\x9f]*$"
    )]
    pub email: String,
    /// `owner` (everything), `billing_admin` (buy, grant, adjust) or `viewer` (read).
    #[validate(length(min = 1, max = 32))]
    #[schema(value_type = ConsoleRole)]
    pub role: String,
}

/// A console account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsoleAccountInfo {
    /// Id.
    pub id: Uuid,
    /// E-mail address.
    pub email: String,
    /// Role.
    #[schema(value_type = ConsoleRole)]
    pub role: String,
    /// Whether a password was set.
    pub active: bool,
    /// A one-time link to set the password (e-mail it to the person); only when created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_url: Option<String>,
    /// When the set-up link stops working.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub setup_expires_at: Option<OffsetDateTime>,
}

/// `GET /v1/console/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsoleAccountList {
    /// Accounts.
    pub items: Vec<ConsoleAccountInfo>,
}
