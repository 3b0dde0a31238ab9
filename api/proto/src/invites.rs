//! Invites: tenant-scoped capabilities that make the redeemer a contact of the inviter.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

/// Request body of `POST /v1/invites` (by a tenant for one of its users, or by an
/// approved device for its own user).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "inviter_user_id": "5b3e9d2a-1c4f-4e7b-8a6d-0f2c9e1b7a34",
    "max_uses": 1,
    "expires_in_secs": 604800,
    "note": "Spring referral campaign"
}))]
pub struct CreateInviteRequest {
    /// The user who invites. Required from a tenant; a device leaves it out (or names its
    /// own user) and invites as its user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inviter_user_id: Option<Uuid>,
    /// How many different users may redeem it (1 to 1,000; default 1).
    #[validate(range(min = 1, max = 1000))]
    #[serde(default = "default_max_uses")]
    #[schema(default = 1)]
    pub max_uses: u32,
    /// Lifetime in seconds (60 s to 30 days; default 7 days).
    #[validate(range(min = 60, max = 2592000))]
    #[serde(default = "default_expires_in_secs")]
    #[schema(default = 604800)]
    pub expires_in_secs: u32,
    /// A note for the tenant's own use.
    #[validate(length(max = 200))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn default_max_uses() -> u32 {
    1
}

fn default_expires_in_secs() -> u32 {
    7 * 24 * 3600
}

/// An invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Invite {
    /// The code: 128 random bits, URL-safe.
    pub code: String,
    /// The link to share: `{public_url}/i/{code}#fp={inviter fingerprint}`. The fragment
    /// never reaches the server; the fingerprint is the inviter's root device key as the
    /// directory holds it (trust on first use when the server renders it).
    pub url: String,
    /// The link as a QR code, PNG.
    pub qr_png_url: String,
    /// The link as a QR code, SVG.
    pub qr_svg_url: String,
    /// The inviter.
    pub inviter_user_id: Uuid,
    /// Redemptions allowed.
    pub max_uses: u32,
    /// Redemptions so far.
    pub uses: u32,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whether it was revoked.
    pub revoked: bool,
    /// The tenant's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A list of invites.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InviteList {
    /// Newest first.
    pub items: Vec<Invite>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Response of `POST /v1/invites/{code}/redeem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Redemption {
    /// The inviter, now a contact of the redeeming user.
    pub inviter_user_id: Uuid,
    /// True when this user had redeemed the invite before (nothing changed).
    pub already_redeemed: bool,
}

/// One of the calling user's contacts (`GET /v1/contacts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    /// The contact's user id.
    pub user_id: Uuid,
    /// The tenant's id for the contact.
    pub external_id: String,
    /// The contact's display name.
    pub display_name: String,
    /// When they became contacts.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// Response of `GET /v1/contacts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactList {
    /// Contacts, by display name.
    pub items: Vec<Contact>,
}
