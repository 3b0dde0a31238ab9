//! The tenant webhook events: the JSON bodies the server POSTs to the tenant's endpoint
//! (`PUT /v1/webhooks`), signed in `Cloak-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` as Stripe signs. The server builds every body from these types, and the
//! OpenAPI document's `webhooks` section lists them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! event_type {
    ($name:ident, $wire:literal) => {
        #[doc = concat!("Always `", $wire, "`.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            #[doc = concat!("`", $wire, "`")]
            #[default]
            #[serde(rename = $wire)]
            Is,
        }
    };
}

event_type!(WalletLowBalanceType, "wallet.low_balance");
event_type!(DevicePendingType, "device.pending");
event_type!(RateLimitExceededType, "rate_limit.exceeded");
event_type!(ReportCreatedType, "report.created");
event_type!(UserSuspendedType, "user.suspended");

/// A prepaid wallet's balance fell below the tenant's low-balance threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletLowBalanceEvent {
    #[serde(rename = "type")]
    pub kind: WalletLowBalanceType,
    /// When it happened, Unix ms.
    pub created_at_ms: i64,
    pub data: WalletLowBalance,
}

/// What `wallet.low_balance` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletLowBalance {
    /// `tenant`, or the paying user's id.
    pub wallet: String,
    /// The balance after the debit.
    pub balance: i64,
    /// The threshold it crossed.
    pub threshold: i64,
}

/// Entries wait for a device that did not take them within the push window: the tenant's
/// backend wakes the app through its push service. Content-free: nothing about any
/// message (sender, conversation, size or time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DevicePendingEvent {
    #[serde(rename = "type")]
    pub kind: DevicePendingType,
    pub data: DevicePending,
}

/// What `device.pending` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DevicePending {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Uuid,
    /// The token the device registered (`PUT /v1/devices/me/push`).
    pub push_token: Option<String>,
    /// Its push service (`apns`, `fcm`, …).
    pub provider: Option<String>,
    /// How many entries wait.
    pub pending: i64,
}

/// A user hit a rate limit (at most one event per user and policy per minute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimitExceededEvent {
    #[serde(rename = "type")]
    pub kind: RateLimitExceededType,
    /// When it happened, Unix ms.
    pub created_at_ms: i64,
    pub data: RateLimitExceeded,
}

/// What `rate_limit.exceeded` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimitExceeded {
    pub user_id: Uuid,
    /// The limit (`messages`, `invites`, `contacts`, `calls`, …).
    pub policy: String,
}

/// A user reported a message (franked, so the report is verifiable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReportCreatedEvent {
    #[serde(rename = "type")]
    pub kind: ReportCreatedType,
    /// When it happened, Unix ms.
    pub created_at_ms: i64,
    pub data: ReportCreated,
}

/// What `report.created` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReportCreated {
    pub report_id: Uuid,
    pub reported_user_id: Uuid,
}

/// Upheld reports suspended a user (under the tenant's moderation policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserSuspendedEvent {
    #[serde(rename = "type")]
    pub kind: UserSuspendedType,
    /// When it happened, Unix ms.
    pub created_at_ms: i64,
    pub data: UserSuspended,
}

/// What `user.suspended` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserSuspended {
    pub user_id: Uuid,
    /// Upheld reports against the user.
    pub upheld_reports: i64,
}

/// Every event: (type, schema name, summary), for the OpenAPI `webhooks` section.
pub const EVENTS: &[(&str, &str, &str)] = &[
    (
        "wallet.low_balance",
        "WalletLowBalanceEvent",
        "A wallet fell below the low-balance threshold",
    ),
    (
        "device.pending",
        "DevicePendingEvent",
        "Entries wait for a device: wake its app (content-free)",
    ),
    (
        "rate_limit.exceeded",
        "RateLimitExceededEvent",
        "A user hit a rate limit",
    ),
    (
        "report.created",
        "ReportCreatedEvent",
        "A user reported a message",
    ),
    (
        "user.suspended",
        "UserSuspendedEvent",
        "Upheld reports suspended a user",
    ),
];

/// The JSON body of an event (serializing these types cannot fail).
pub fn body<T: Serialize>(event: &T) -> String {
    serde_json::to_string(event).unwrap_or_default()
}
