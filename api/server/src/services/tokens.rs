//! Short-lived bearer tokens for users (`cu_…`) and devices (`cd_…`).
//!
//! A token is `prefix || base64url(payload) || "." || base64url(HMAC-SHA256(key, prefix || payload))`
//! with payload = version (1) · tenant (16) · subject (16) · issued ms (8) · expires ms (8).
//! The key is 256 random bits kept in the database, so every node verifies every token.
//! A token proves only who it was issued to and until when; the caller still checks that
//! the user or device is in good standing, so suspension and revocation act at once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use uuid::Uuid;

const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 16 + 16 + 8 + 8;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Minted by a tenant for one of its users (registers devices).
    User,
    /// Issued to a device after it proved its identity key.
    Device,
}

impl TokenKind {
    /// The token's visible prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::User => "cu_",
            Self::Device => "cd_",
        }
    }
}

/// A verified token's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The user (user token) or device (device token).
    pub subject: Uuid,
    /// Issue time, Unix ms.
    pub issued_ms: i64,
    /// Expiry, Unix ms.
    pub expires_ms: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this kind, or its MAC does not verify.
    #[error("invalid token")]
    Invalid,
    /// Past its expiry.
    #[error("expired token")]
    Expired,
}

/// Issues and verifies tokens with the server's secret.
pub struct TokenSigner {
    key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner([REDACTED])")
    }
}

impl TokenSigner {
    /// A signer over a 32-byte secret; `None` for any other length.
    pub fn new(secret: &[u8]) -> Option<Self> {
        let key: [u8; 32] = secret.try_into().ok()?;
        Some(Self {
            key: SecretBox::new(Box::new(key)),
        })
    }

    fn mac(&self, kind: TokenKind, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail; fall back to an empty
        // key's MAC rather than panic (it would only ever fail verification).
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        mac.update(kind.prefix().as_bytes());
        mac.update(payload);
        mac
    }

    /// The server's franking stamp over `input` (which starts with
    /// [`cloak_proto::signing::STAMP_CONTEXT`], so it never collides with a token MAC,
    /// whose input starts with a token prefix).
    pub fn stamp(&self, input: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `stamp` is the server's stamp over `input` (constant time).
    pub fn verify_stamp(&self, input: &[u8], stamp: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        mac.update(input);
        mac.verify_slice(stamp).is_ok()
    }

    /// Issues a token.
    pub fn issue(
        &self,
        kind: TokenKind,
        tenant_id: Uuid,
        subject: Uuid,
        issued_ms: i64,
        expires_ms: i64,
    ) -> SecretString {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.push(VERSION);
        payload.extend_from_slice(tenant_id.as_bytes());
        payload.extend_from_slice(subject.as_bytes());
        payload.extend_from_slice(&issued_ms.to_be_bytes());
        payload.extend_from_slice(&expires_ms.to_be_bytes());
        let tag = self.mac(kind, &payload).finalize().into_bytes();
        SecretString::from(format!(
            "{}{}.{}",
            kind.prefix(),
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// Verifies a token of `kind` at `now_ms`.
    pub fn verify(&self, kind: TokenKind, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let body = token
            .strip_prefix(kind.prefix())
            .ok_or(TokenError::Invalid)?;
        let (payload_b64, tag_b64) = body.split_once('.').ok_or(TokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| TokenError::Invalid)?;
        if payload.len() != PAYLOAD_LEN || payload[0] != VERSION {
            return Err(TokenError::Invalid);
        }
        // Constant-time comparison inside `verify_slice`.
        self.mac(kind, &payload)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Invalid)?;
        let uuid_at = |at: usize| {
            payload
                .get(at..at + 16)
                .and_then(|b| Uuid::from_slice(b).ok())
        };
        let i64_at = |at: usize| {
            payload
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_be_bytes)
        };
        let claims = Claims {
            tenant_id: uuid_at(1).ok_or(TokenError::Invalid)?,
            subject: uuid_at(17).ok_or(TokenError::Invalid)?,
            issued_ms: i64_at(33).ok_or(TokenError::Invalid)?,
            expires_ms: i64_at(41).ok_or(TokenError::Invalid)?,
        };
        if now_ms >= claims.expires_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(byte: u8) -> TokenSigner {
        TokenSigner::new(&[byte; 32]).unwrap()
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = signer(1);
        let (t, u) = (Uuid::from_u128(5), Uuid::from_u128(6));
        let token = s.issue(TokenKind::User, t, u, 1_000, 2_000);
        let claims = s
            .verify(TokenKind::User, token.expose_secret(), 1_500)
            .unwrap();
        assert_eq!(
            (claims.tenant_id, claims.subject, claims.expires_ms),
            (t, u, 2_000)
        );
        assert_eq!(
            s.verify(TokenKind::User, token.expose_secret(), 2_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn forged_tampered_and_cross_kind_tokens_fail() {
        let s = signer(1);
        let token = s.issue(
            TokenKind::User,
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            0,
            i64::MAX,
        );
        let text = token.expose_secret();
        assert_eq!(
            signer(2).verify(TokenKind::User, text, 1),
            Err(TokenError::Invalid)
        );
        let as_device = text.replacen("cu_", "cd_", 1);
        assert_eq!(
            s.verify(TokenKind::Device, &as_device, 1),
            Err(TokenError::Invalid)
        );
        let mut bytes = text.as_bytes().to_vec();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            s.verify(TokenKind::User, &tampered, 1),
            Err(TokenError::Invalid)
        );
        for junk in ["", "cu_", "cu_.", "cu_AAAA.BBBB", "ck_x.y"] {
            assert_eq!(s.verify(TokenKind::User, junk, 1), Err(TokenError::Invalid));
        }
        assert!(TokenSigner::new(&[0; 31]).is_none());
        assert!(!format!("{s:?}").contains('1'));
    }
}
