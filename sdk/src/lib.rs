//! `cloak-sdk`: the Cloak client SDK.
//!
//! All encryption happens on the device; the server only relays ciphertext.
//!
//! - Sans-IO core: the device's Ed25519 identity ([`DeviceIdentity`], [`identity`]), the
//!   MLS signer, credential and KeyPackages ([`mls`]) and verification of a user's signed
//!   device directory ([`verify_device_directory`]); conversations as MLS groups
//!   ([`Conversation`]) carrying versioned message [`Payload`]s.
//! - Thin I/O: [`DeviceClient`] registers the device, logs in by signing challenges, keeps
//!   a device token fresh, approves and revokes devices and manages KeyPackages over HTTP.
//!   Time comes from a [`Clock`].
//!
//! Errors are typed ([`Error`]) and carry the server's RFC 9457 problem documents.
#![forbid(unsafe_code)]

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod attachment;
pub mod call_signal;
pub mod calls;
pub mod client;
mod cloak;
pub mod clock;
pub mod conversation;
pub mod directory;
pub mod event;
pub mod history;
pub mod identity;
pub mod ids;
pub mod messenger;
pub mod mls;
pub mod payload;
pub mod realtime;
pub mod safety;
pub mod store;
pub mod tls;

pub use attachment::Progress;
pub use call_signal::{CallMedia, CallSignal, Signal};
pub use calls::{CallEndReason, CallEvent};
pub use client::DeviceClient;
pub use cloak::{
    Call, Cloak, CloakBuilder, ConnectionState, ConversationHandle, Devices,
    Joined as JoinedConversation, Updates,
};
pub use clock::{Clock, SystemClock};
pub use conversation::{Conversation, Incoming, PendingCommit, StagedChange, StagedJoin};
pub use directory::verify_device_directory;
pub use history::{Content, Reaction, SendState, TimelineMessage};
pub use identity::{DeviceIdentity, fingerprint, verify_approval, verify_login};
pub use ids::{ConversationId, DeviceIds, MessageId};
pub use messenger::{Event, Franking, Joined, Messenger};
pub use mls::{
    CIPHERSUITE, MlsSigner, decode_credential_identity, encode_credential_identity,
    generate_key_packages,
};
pub use payload::{Attachment, AttachmentKey, Payload, PayloadKind};
pub use safety::SafetyNumber;
pub use store::history::{Cursor, EventId, HistoryReader, Page, Update};
pub use store::{LocalStore, StoreKey};
pub use tls::Tls;

use cloak_proto::health::Health;
use cloak_proto::{Code, Problem};

/// Errors returned by the SDK. Server refusals that an app acts on have their own
/// variants; any other refusal is a [`Problem`](Error::Problem) whose
/// [`code`](Error::code) says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request with a problem document (boxed: it is large).
    #[error("server refused: {0}")]
    Problem(Box<Problem>),
    /// A rate limit refused the request: wait `retry_after`, then try again.
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// How long to wait.
        retry_after: std::time::Duration,
    },
    /// The payer's wallet cannot afford the message (or invite, or call).
    #[error("insufficient credits")]
    InsufficientCredits {
        /// The server's explanation.
        detail: Option<String>,
    },
    /// This device was revoked: it can no longer act for its user.
    #[error("this device was revoked")]
    Revoked,
    /// This device's user is suspended by the tenant.
    #[error("the user is suspended")]
    Suspended,
    /// This device is not approved yet: another device of the user must approve it.
    #[error("this device is pending approval")]
    Pending,
    /// The server could not be reached or the connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered something that is not the documented shape.
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// A local cryptographic operation failed (e.g. building a KeyPackage).
    #[error("crypto: {0}")]
    Crypto(String),
    /// Something received did not verify: a signature, a KeyPackage, the device directory
    /// or an expected fingerprint. Treat the server's answer as untrusted.
    #[error("verification failed: {0}")]
    Verification(String),
    /// Received bytes (an MLS message, a Welcome or a message payload) could not be
    /// decoded, or exceed a limit.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The call does not fit the client's state (e.g. not registered yet, or approving a
    /// device that is not pending).
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// The local store failed (I/O, or a value that does not decrypt).
    #[error("local store: {0}")]
    Storage(String),
    /// The local store was opened with another key than the one it was created with.
    #[error("the local store key is wrong")]
    WrongStoreKey,
    /// The server URL is unusable: not `https`, or plain `http` to a host that is not
    /// loopback (tokens would travel in clear).
    #[error("invalid server URL: {0}")]
    InvalidUrl(String),
}

impl Error {
    /// The server's problem code behind this error, if the server refused something.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Problem(p) => Some(p.code),
            Self::RateLimited { .. } => Some(Code::RateLimited),
            Self::InsufficientCredits { .. } => Some(Code::InsufficientCredits),
            Self::Revoked => Some(Code::DeviceRevoked),
            Self::Suspended => Some(Code::UserSuspended),
            Self::Pending => Some(Code::DevicePending),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: the server could not be reached, was
    /// overloaded or failing (5xx), rate-limited the call, or holds messages until the
    /// payer can afford viewing them (`payment_required`). Such an error never turns a
    /// received entry into a refusal: the entry stays unacknowledged and is retried.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) | Self::RateLimited { .. } => true,
            Self::Problem(p) => p.status >= 500 || p.code == Code::PaymentRequired,
            _ => false,
        }
    }
}

/// What the server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The server's version.
    pub version: String,
}

/// Turns a non-success response into [`Error::Problem`] (or [`Error::Protocol`] when the
/// body is not a problem document).
pub async fn problem_from_response(resp: reqwest::Response) -> Error {
    let status = resp.status().as_u16();
    match resp.bytes().await {
        Ok(body) => parse_problem(status, &body),
        Err(e) => Error::Transport(e.to_string()),
    }
}

/// Parses a problem document into the matching [`Error`]; anything else becomes
/// [`Error::Protocol`] (or [`Error::Transport`] for a 5xx page from a proxy).
pub fn parse_problem(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) if status == 429 => Error::RateLimited {
            retry_after: std::time::Duration::from_secs(p.retry_after_secs.unwrap_or(1)),
        },
        Ok(p) => match p.code {
            Code::InsufficientCredits => Error::InsufficientCredits { detail: p.detail },
            Code::DeviceRevoked => Error::Revoked,
            Code::UserSuspended => Error::Suspended,
            Code::DevicePending => Error::Pending,
            _ => Error::Problem(Box::new(p)),
        },
        // A proxy or load balancer in trouble answers 5xx pages of its own.
        Err(_) if status >= 500 => Error::Transport(format!("status {status}")),
        Err(_) => Error::Protocol(format!("status {status} without a problem document")),
    }
}

/// Asks a server for its health and version (`GET /healthz`).
pub async fn server_info(client: &reqwest::Client, base_url: &str) -> Result<ServerInfo, Error> {
    let url = format!("{}/healthz", base_url.trim_end_matches('/'));
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Transport(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(problem_from_response(resp).await);
    }
    let health: Health = resp
        .json()
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(ServerInfo {
        version: health.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_documents_become_typed_errors() {
        let body = br#"{"type":"urn:cloak:problem:invalid_api_key","title":"Invalid API key","status":401,"code":"invalid_api_key"}"#;
        match parse_problem(401, body) {
            Error::Problem(p) => {
                assert_eq!(p.code, Code::InvalidApiKey);
                assert_eq!(p.status, 401);
            }
            other => panic!("expected a problem, got {other:?}"),
        }
        let gateway = parse_problem(502, b"<html>bad gateway</html>");
        assert!(matches!(gateway, Error::Transport(_)) && gateway.is_transient());
        assert!(matches!(
            parse_problem(404, b"<html>not here</html>"),
            Error::Protocol(_)
        ));
        let overloaded = br#"{"type":"urn:cloak:problem:database_unavailable","title":"x","status":503,"code":"database_unavailable"}"#;
        assert!(parse_problem(503, overloaded).is_transient());
        assert!(!parse_problem(401, body).is_transient());
        let revoked = br#"{"type":"t","title":"x","status":403,"code":"device_revoked"}"#;
        assert!(matches!(parse_problem(403, revoked), Error::Revoked));
        let broke = br#"{"type":"t","title":"x","status":402,"code":"insufficient_credits","detail":"top up"}"#;
        assert!(matches!(
            parse_problem(402, broke),
            Error::InsufficientCredits { detail: Some(d) } if d == "top up"
        ));
        let future = br#"{"type":"t","title":"x","status":409,"code":"brand_new"}"#;
        assert_eq!(parse_problem(409, future).code(), Some(Code::Unknown));
    }
}
