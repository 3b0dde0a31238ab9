//! The exact bytes a device signs. Server and SDK both build them from here, so they
//! cannot disagree. Each message starts with a distinct context string (domain
//! separation: a signature made for one purpose is never valid for another) and uses
//! fixed-length fields, so no two inputs share an encoding.

use uuid::Uuid;

/// Context of a login challenge signature.
pub const LOGIN_CONTEXT: &[u8] = b"cloak/v1/device-login\0";
/// Context of a device approval signature.
pub const APPROVAL_CONTEXT: &[u8] = b"cloak/v1/device-approval\0";

/// What a device signs to log in: binds the server's single-use nonce to the tenant and
/// the device, so a signature is useless for any other device, tenant or challenge.
pub fn login_message(tenant_id: Uuid, device_id: Uuid, nonce: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(LOGIN_CONTEXT.len() + 16 + 16 + 32);
    m.extend_from_slice(LOGIN_CONTEXT);
    m.extend_from_slice(tenant_id.as_bytes());
    m.extend_from_slice(device_id.as_bytes());
    m.extend_from_slice(nonce);
    m
}

/// What an approved device signs to approve a new device of the same user: the tenant,
/// the user, the new device's identity key and the approval time (Unix ms). Other clients
/// verify it from the device directory, so the server cannot approve a device itself.
pub fn approval_message(
    tenant_id: Uuid,
    user_id: Uuid,
    new_device_key: &[u8; 32],
    approved_at_ms: i64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(APPROVAL_CONTEXT.len() + 16 + 16 + 32 + 8);
    m.extend_from_slice(APPROVAL_CONTEXT);
    m.extend_from_slice(tenant_id.as_bytes());
    m.extend_from_slice(user_id.as_bytes());
    m.extend_from_slice(new_device_key);
    m.extend_from_slice(&approved_at_ms.to_be_bytes());
    m
}

/// Context of a message franking commitment.
pub const FRANKING_CONTEXT: &[u8] = b"cloak/v1/franking-commitment\0";
/// Context of the server's franking stamp.
pub const STAMP_CONTEXT: &[u8] = b"cloak/v1/franking-stamp\0";

/// What the sender commits to (HMAC-SHA256 under a random per-message franking key that
/// travels inside the ciphertext): the conversation, the message id and the text. A report
/// reveals the key and the text; anyone can then recompute the commitment.
pub fn franking_commitment_input(conversation_id: Uuid, message_id: Uuid, text: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(FRANKING_CONTEXT.len() + 32 + text.len());
    m.extend_from_slice(FRANKING_CONTEXT);
    m.extend_from_slice(conversation_id.as_bytes());
    m.extend_from_slice(message_id.as_bytes());
    m.extend_from_slice(text.as_bytes());
    m
}

/// What the server stamps (HMAC-SHA256 under its own key) when it accepts a message: the
/// commitment, who sent it, where and when. Only the server can check a stamp.
pub fn franking_stamp_input(
    tenant_id: Uuid,
    conversation_id: Uuid,
    sender_device_id: Uuid,
    sent_at_ms: i64,
    commitment: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(STAMP_CONTEXT.len() + 48 + 8 + commitment.len());
    m.extend_from_slice(STAMP_CONTEXT);
    m.extend_from_slice(tenant_id.as_bytes());
    m.extend_from_slice(conversation_id.as_bytes());
    m.extend_from_slice(sender_device_id.as_bytes());
    m.extend_from_slice(&sent_at_ms.to_be_bytes());
    m.extend_from_slice(commitment);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_domain_separated_and_fixed_length() {
        let t = Uuid::from_u128(1);
        let d = Uuid::from_u128(2);
        let login = login_message(t, d, &[7; 32]);
        let approval = approval_message(t, d, &[7; 32], 0);
        assert!(login.starts_with(LOGIN_CONTEXT));
        assert!(approval.starts_with(APPROVAL_CONTEXT));
        assert_ne!(login[..20], approval[..20]);
        assert_eq!(login.len(), LOGIN_CONTEXT.len() + 64);
        assert_ne!(login_message(t, d, &[7; 32]), login_message(d, t, &[7; 32]));
        assert_ne!(
            approval_message(t, d, &[7; 32], 1),
            approval_message(t, d, &[7; 32], 2)
        );
    }
}
