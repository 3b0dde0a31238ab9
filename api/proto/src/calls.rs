//! Calls: TURN relay credentials (signaling itself travels inside MLS, as ciphertext).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Response of `POST /v1/calls/turn-credentials`: time-limited credentials in coturn's
/// TURN REST API scheme (`use-auth-secret`), for the WebRTC `iceServers` of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TurnCredentials {
    /// `<expiry as Unix seconds>:<user id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(shared secret, username))`.
    pub password: String,
    /// The TURN and STUN URIs to use them with (`turn:host:3478?transport=udp`, …).
    pub uris: Vec<String>,
    /// How long they are valid from now, in seconds.
    pub ttl_secs: u64,
}
