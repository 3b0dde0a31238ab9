//! `cloak-sdk`: the Cloak client SDK.
//!
//! All encryption happens on the device; the server only relays ciphertext. This crate
//! currently provides the HTTP plumbing shared by later layers: a [`ServerInfo`] probe and
//! the typed [`Error`] that carries the server's RFC 9457 problem documents. Identity keys,
//! MLS sessions and real-time delivery arrive with the identity, delivery and E2EE issues.
#![forbid(unsafe_code)]

use cloak_proto::Problem;
use cloak_proto::health::Health;

/// Errors returned by the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with a problem document.
    #[error("server refused: {0}")]
    Problem(Problem),
    /// The server could not be reached or the connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered something that is not the documented shape.
    #[error("unexpected response: {0}")]
    Protocol(String),
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

/// Parses a problem document; anything else becomes [`Error::Protocol`].
pub fn parse_problem(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) => Error::Problem(p),
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
                assert_eq!(p.code, "invalid_api_key");
                assert_eq!(p.status, 401);
            }
            other => panic!("expected a problem, got {other:?}"),
        }
        assert!(matches!(
            parse_problem(502, b"<html>bad gateway</html>"),
            Error::Protocol(_)
        ));
    }
}
