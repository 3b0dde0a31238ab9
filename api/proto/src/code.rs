//! The stable machine-readable codes of problem documents (and WebSocket error frames).
//!
//! Clients branch on these, never on titles or details. A code this version does not
//! know (from a newer server) deserializes as [`Code::Unknown`], so old clients keep
//! working; they should then go by the HTTP status.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A problem's stable code; serialized in snake_case (`stale_epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Code {
    /// The `Range` asks for bytes beyond the end (`Content-Range: bytes */size` says the size).
    RangeNotSatisfiable,
    /// The declared attachment is larger than the server accepts (`Tus-Max-Size`).
    AttachmentTooLarge,
    /// An upload part's `Upload-Checksum` does not match its bytes (tus status 460).
    ChecksumMismatch,
    /// An upload request lacks or garbles a tus header (`Upload-Length`, `Upload-Offset`, `Upload-Metadata`, `Upload-Checksum`).
    InvalidUpload,
    /// The tenant's attachments would exceed its storage quota.
    StorageQuotaExceeded,
    /// The request's `Tus-Resumable` is not a version this server speaks (1.0.0).
    TusVersionUnsupported,
    /// The unfinished upload expired (24 h) and was discarded.
    UploadExpired,
    /// A `PATCH` does not start at the upload's current offset (`HEAD` tells it), or the upload is complete.
    UploadOffsetMismatch,
    /// The blob store did not answer; retry shortly.
    BlobStoreUnavailable,
    /// Too many failed console sign-ins: the account is locked for a while.
    AccountLocked,
    /// The WebSocket was already authenticated.
    AlreadyAuthenticated,
    /// This device already reported this message.
    AlreadyReported,
    /// A device approval's timestamp is too far from the server's clock.
    ApprovalTimeSkew,
    /// The sender's trust level does not allow this attachment size.
    AttachmentNotAllowed,
    /// An adjustment would take a wallet below zero.
    BalanceWouldGoNegative,
    /// The tenant has not configured billing for this action.
    BillingNotConfigured,
    /// The commit, or its Welcome, or the Welcome copies it would store, exceed the server's size bounds.
    CommitTooLarge,
    /// A control message is larger than control messages may be.
    ControlTooLarge,
    /// A conversation with this id exists already.
    ConversationExists,
    /// The database cannot be reached: try again shortly.
    DatabaseUnavailable,
    /// The device is not pending, so it cannot be approved.
    DeviceNotPending,
    /// The device is not approved yet.
    DevicePending,
    /// The device was revoked.
    DeviceRevoked,
    /// A device is listed twice in a commit's `add` or `remove`.
    DuplicateDevice,
    /// A console account with this email exists already.
    EmailTaken,
    /// A user with this external id exists already.
    ExternalIdTaken,
    /// The request needs an `Idempotency-Key` header.
    IdempotencyKeyRequired,
    /// The `Idempotency-Key` was used before with a different request.
    IdempotencyKeyReused,
    /// The identity key belongs to another device.
    IdentityKeyInUse,
    /// The payer's wallet cannot afford this.
    InsufficientCredits,
    /// The server failed; the cause is in its logs.
    InternalError,
    /// The API key is malformed, unknown or revoked.
    InvalidApiKey,
    /// The login challenge is unknown, used or expired.
    InvalidChallenge,
    /// The commit is not a well-formed MLS commit for this conversation and epoch.
    InvalidCommit,
    /// The page cursor is not one the server issued.
    InvalidCursor,
    /// The email address is not valid.
    InvalidEmail,
    /// The epoch is out of range.
    InvalidEpoch,
    /// A Stripe event could not be understood.
    InvalidEvent,
    /// A WebSocket frame is not a valid client frame.
    InvalidFrame,
    /// The franking commitment has the wrong size.
    InvalidFrankingTag,
    /// The identity key is not a valid Ed25519 public key.
    InvalidIdentityKey,
    /// The JSON body does not match the expected shape.
    InvalidJson,
    /// The login signature does not verify.
    InvalidLogin,
    /// A credit pack is not valid.
    InvalidPack,
    /// The billing settings do not fit together (postpaid needs a Stripe customer and a meter event name).
    InvalidBillingSettings,
    /// A query parameter is not valid.
    InvalidQuery,
    /// A report or moderation reason is not valid.
    InvalidReason,
    /// The console role is not one of `owner`, `billing_admin`, `viewer`.
    InvalidRole,
    /// A signature (approval, webhook) does not verify.
    InvalidSignature,
    /// The requested status change is not valid.
    InvalidStatus,
    /// The landing page template is not a safe URL template.
    InvalidTemplate,
    /// The tenant name is not valid.
    InvalidTenantName,
    /// The bearer token is malformed or unknown.
    InvalidToken,
    /// The trust level definition is not valid.
    InvalidTrustLevel,
    /// The wallet does not exist or cannot take this.
    InvalidWallet,
    /// The webhook URL is not an allowed https URL.
    InvalidWebhookUrl,
    /// The Welcome is not a well-formed MLS Welcome for the devices added.
    InvalidWelcome,
    /// The invite has expired.
    InviteExpired,
    /// The invite was revoked.
    InviteRevoked,
    /// The invite has no uses left.
    InviteUsedUp,
    /// A tenant-minted invite must name its inviter.
    InviterRequired,
    /// The KeyPackage's lifetime has ended.
    KeyPackageExpired,
    /// The device already holds as many unclaimed KeyPackages as the server keeps.
    KeyPackageStockFull,
    /// The last active API key cannot be revoked.
    LastActiveKey,
    /// The rate limiter cannot be reached.
    LimiterUnavailable,
    /// A recipient's mailbox is full.
    MailboxFull,
    /// The body is not JSON.
    MalformedJson,
    /// The commit's membership changes do not fit the conversation.
    MembershipConflict,
    /// `mailbox_storage: memory` needs a server with Redis.
    MemoryMailboxUnavailable,
    /// A Stripe meter event identifier was reused.
    MeterIdentifier,
    /// The path exists but not under this method (see the `Allow` header).
    MethodNotAllowed,
    /// No credentials were sent.
    MissingCredentials,
    /// The user's trust level does not allow this.
    NotAllowedAtTrustLevel,
    /// The resource does not exist (or is not visible to the caller).
    NotFound,
    /// The device belongs to another user.
    NotOwnUser,
    /// A user cannot redeem their own invite.
    OwnInvite,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The recipient's payer cannot afford viewing the next message: it stays queued, and
    /// delivery resumes once credits arrive.
    PaymentRequired,
    /// The QR code could not be encoded.
    QrEncoding,
    /// The link is too long for a QR code.
    QrTooLong,
    /// A rate limit refused the request: wait `Retry-After` seconds.
    RateLimited,
    /// The Stripe event was applied before.
    ReplayedEvent,
    /// The report's franking evidence does not verify.
    ReportUnverifiable,
    /// Nothing serves this path.
    RouteNotFound,
    /// A user cannot block themselves.
    SelfBlock,
    /// A user cannot be their own contact.
    SelfContact,
    /// The console set-up link is unknown, used or expired.
    SetupLinkInvalid,
    /// The conversation has moved past the epoch: process pending commits, then retry.
    StaleEpoch,
    /// A signed timestamp is too old.
    StaleSignature,
    /// Stripe refused or failed the call.
    StripeError,
    /// Stripe is not configured on this server.
    StripeNotConfigured,
    /// The bearer token has expired: log in again.
    TokenExpired,
    /// The server has no TURN relay configured (`CLOAK_TURN_URIS`, `CLOAK_TURN_SECRET`).
    TurnNotConfigured,
    /// The named trust level does not exist.
    UnknownTrustLevel,
    /// The request body has the wrong content type.
    UnsupportedMediaType,
    /// The user is suspended: their devices' credentials are refused.
    UserSuspended,
    /// Tokens are not minted for a suspended user (lift the suspension first).
    SuspendedUser,
    /// One or more fields are invalid (see `errors`).
    ValidationFailed,
    /// The password is too weak.
    WeakPassword,
    /// The webhook URL names or resolves to a loopback, private, link-local or metadata address.
    WebhookTargetNotAllowed,
    /// `GET /v1/ws` was called without a WebSocket upgrade.
    WebsocketUpgradeRequired,
    /// A commit that adds devices needs a Welcome, and only then.
    WelcomeMismatch,
    /// An adjustment of zero credits.
    ZeroDelta,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl Code {
    /// The HTTP status every problem with this code carries: one code, one status, so
    /// the documented responses of an operation follow from the codes it can answer.
    /// (`checksum_mismatch` is tus's 460.)
    pub const fn status(self) -> u16 {
        match self {
            Self::AlreadyAuthenticated
            | Self::ApprovalTimeSkew
            | Self::AttachmentTooLarge
            | Self::CommitTooLarge
            | Self::ControlTooLarge
            | Self::DuplicateDevice
            | Self::IdempotencyKeyRequired
            | Self::InvalidBillingSettings
            | Self::InvalidCommit
            | Self::InvalidCursor
            | Self::InvalidEmail
            | Self::InvalidEpoch
            | Self::InvalidEvent
            | Self::InvalidFrame
            | Self::InvalidFrankingTag
            | Self::InvalidIdentityKey
            | Self::InvalidJson
            | Self::InvalidPack
            | Self::InvalidQuery
            | Self::InvalidReason
            | Self::InvalidRole
            | Self::InvalidSignature
            | Self::InvalidStatus
            | Self::InvalidTemplate
            | Self::InvalidTenantName
            | Self::InvalidTrustLevel
            | Self::InvalidUpload
            | Self::InvalidWallet
            | Self::InvalidWebhookUrl
            | Self::InvalidWelcome
            | Self::InviterRequired
            | Self::KeyPackageExpired
            | Self::MalformedJson
            | Self::MeterIdentifier
            | Self::OwnInvite
            | Self::QrEncoding
            | Self::QrTooLong
            | Self::ReplayedEvent
            | Self::ReportUnverifiable
            | Self::SelfBlock
            | Self::SelfContact
            | Self::StaleSignature
            | Self::UnknownTrustLevel
            | Self::ValidationFailed
            | Self::WeakPassword
            | Self::WebhookTargetNotAllowed
            | Self::WelcomeMismatch
            | Self::WebsocketUpgradeRequired
            | Self::ZeroDelta => 400,
            Self::DeviceRevoked
            | Self::InvalidApiKey
            | Self::InvalidChallenge
            | Self::InvalidLogin
            | Self::InvalidToken
            | Self::MissingCredentials
            | Self::TokenExpired
            | Self::UserSuspended => 401,
            Self::InsufficientCredits | Self::PaymentRequired => 402,
            Self::AccountLocked
            | Self::AttachmentNotAllowed
            | Self::DevicePending
            | Self::NotAllowedAtTrustLevel
            | Self::NotOwnUser => 403,
            Self::NotFound | Self::RouteNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::AlreadyReported
            | Self::BalanceWouldGoNegative
            | Self::BillingNotConfigured
            | Self::ConversationExists
            | Self::DeviceNotPending
            | Self::EmailTaken
            | Self::ExternalIdTaken
            | Self::IdempotencyKeyReused
            | Self::IdentityKeyInUse
            | Self::KeyPackageStockFull
            | Self::LastActiveKey
            | Self::MailboxFull
            | Self::MembershipConflict
            | Self::MemoryMailboxUnavailable
            | Self::StaleEpoch
            | Self::StorageQuotaExceeded
            | Self::SuspendedUser
            | Self::UploadOffsetMismatch => 409,
            Self::InviteExpired
            | Self::InviteRevoked
            | Self::InviteUsedUp
            | Self::SetupLinkInvalid
            | Self::UploadExpired => 410,
            Self::TusVersionUnsupported => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RangeNotSatisfiable => 416,
            Self::RateLimited => 429,
            Self::ChecksumMismatch => 460,
            Self::InternalError | Self::Unknown => 500,
            Self::StripeError => 502,
            Self::BlobStoreUnavailable
            | Self::DatabaseUnavailable
            | Self::LimiterUnavailable
            | Self::StripeNotConfigured
            | Self::TurnNotConfigured => 503,
        }
    }

    /// The wire name, e.g. `"stale_epoch"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::AttachmentTooLarge => "attachment_too_large",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::InvalidUpload => "invalid_upload",
            Self::StorageQuotaExceeded => "storage_quota_exceeded",
            Self::TusVersionUnsupported => "tus_version_unsupported",
            Self::UploadExpired => "upload_expired",
            Self::UploadOffsetMismatch => "upload_offset_mismatch",
            Self::BlobStoreUnavailable => "blob_store_unavailable",
            Self::AccountLocked => "account_locked",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::AlreadyReported => "already_reported",
            Self::ApprovalTimeSkew => "approval_time_skew",
            Self::AttachmentNotAllowed => "attachment_not_allowed",
            Self::BalanceWouldGoNegative => "balance_would_go_negative",
            Self::BillingNotConfigured => "billing_not_configured",
            Self::CommitTooLarge => "commit_too_large",
            Self::ControlTooLarge => "control_too_large",
            Self::ConversationExists => "conversation_exists",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::DeviceNotPending => "device_not_pending",
            Self::DevicePending => "device_pending",
            Self::DeviceRevoked => "device_revoked",
            Self::DuplicateDevice => "duplicate_device",
            Self::EmailTaken => "email_taken",
            Self::ExternalIdTaken => "external_id_taken",
            Self::IdempotencyKeyRequired => "idempotency_key_required",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdentityKeyInUse => "identity_key_in_use",
            Self::InsufficientCredits => "insufficient_credits",
            Self::InternalError => "internal_error",
            Self::InvalidApiKey => "invalid_api_key",
            Self::InvalidChallenge => "invalid_challenge",
            Self::InvalidCommit => "invalid_commit",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidEpoch => "invalid_epoch",
            Self::InvalidEvent => "invalid_event",
            Self::InvalidFrame => "invalid_frame",
            Self::InvalidFrankingTag => "invalid_franking_tag",
            Self::InvalidIdentityKey => "invalid_identity_key",
            Self::InvalidJson => "invalid_json",
            Self::InvalidLogin => "invalid_login",
            Self::InvalidPack => "invalid_pack",
            Self::InvalidBillingSettings => "invalid_billing_settings",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidReason => "invalid_reason",
            Self::InvalidRole => "invalid_role",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidStatus => "invalid_status",
            Self::InvalidTemplate => "invalid_template",
            Self::InvalidTenantName => "invalid_tenant_name",
            Self::InvalidToken => "invalid_token",
            Self::InvalidTrustLevel => "invalid_trust_level",
            Self::InvalidWallet => "invalid_wallet",
            Self::InvalidWebhookUrl => "invalid_webhook_url",
            Self::InvalidWelcome => "invalid_welcome",
            Self::InviteExpired => "invite_expired",
            Self::InviteRevoked => "invite_revoked",
            Self::InviteUsedUp => "invite_used_up",
            Self::InviterRequired => "inviter_required",
            Self::KeyPackageExpired => "key_package_expired",
            Self::KeyPackageStockFull => "key_package_stock_full",
            Self::LastActiveKey => "last_active_key",
            Self::LimiterUnavailable => "limiter_unavailable",
            Self::MailboxFull => "mailbox_full",
            Self::MalformedJson => "malformed_json",
            Self::MembershipConflict => "membership_conflict",
            Self::MemoryMailboxUnavailable => "memory_mailbox_unavailable",
            Self::MeterIdentifier => "meter_identifier",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MissingCredentials => "missing_credentials",
            Self::NotAllowedAtTrustLevel => "not_allowed_at_trust_level",
            Self::NotFound => "not_found",
            Self::NotOwnUser => "not_own_user",
            Self::OwnInvite => "own_invite",
            Self::PayloadTooLarge => "payload_too_large",
            Self::PaymentRequired => "payment_required",
            Self::QrEncoding => "qr_encoding",
            Self::QrTooLong => "qr_too_long",
            Self::RateLimited => "rate_limited",
            Self::ReplayedEvent => "replayed_event",
            Self::ReportUnverifiable => "report_unverifiable",
            Self::RouteNotFound => "route_not_found",
            Self::SelfBlock => "self_block",
            Self::SelfContact => "self_contact",
            Self::SetupLinkInvalid => "setup_link_invalid",
            Self::StaleEpoch => "stale_epoch",
            Self::StaleSignature => "stale_signature",
            Self::StripeError => "stripe_error",
            Self::StripeNotConfigured => "stripe_not_configured",
            Self::TokenExpired => "token_expired",
            Self::TurnNotConfigured => "turn_not_configured",
            Self::UnknownTrustLevel => "unknown_trust_level",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UserSuspended => "user_suspended",
            Self::SuspendedUser => "suspended_user",
            Self::ValidationFailed => "validation_failed",
            Self::WeakPassword => "weak_password",
            Self::WebhookTargetNotAllowed => "webhook_target_not_allowed",
            Self::WebsocketUpgradeRequired => "websocket_upgrade_required",
            Self::WelcomeMismatch => "welcome_mismatch",
            Self::ZeroDelta => "zero_delta",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_as_snake_case_and_unknown_ones_fall_back() {
        for code in [Code::StaleEpoch, Code::InvalidApiKey, Code::RateLimited] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_str::<Code>("\"a_code_from_the_future\"").unwrap(),
            Code::Unknown
        );
    }
}
