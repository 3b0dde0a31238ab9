//! Devices: registration with an Ed25519 identity key, challenge-response login, approval
//! signed by another device of the same user, revocation, and the device directory.

use cloak_proto::Code;
use cloak_proto::devices::DeviceStatus;
use cloak_proto::signing::{approval_message, login_message};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ServiceError;
use super::ids::new_id;
use super::principals::{Caller, DevicePrincipal, UserPrincipal};
use super::tokens::{TokenError, TokenKind, TokenSigner};
use crate::store::{Approval, DeviceRecord, NewDevice, RegisterOutcome, Store};

/// How long a login challenge is accepted.
pub const CHALLENGE_TTL_MS: i64 = 60 * 1000;
/// How long a device token lives.
pub const DEVICE_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;
/// How far a signed approval time may be from the server's clock.
pub const APPROVAL_SKEW_MS: i64 = 5 * 60 * 1000;

fn device_not_found() -> ServiceError {
    ServiceError::NotFound("device")
}

/// Parses an identity key, refusing anything that is not a usable Ed25519 public key.
pub fn parse_identity_key(bytes: &[u8]) -> Result<VerifyingKey, ServiceError> {
    let invalid = || {
        ServiceError::invalid(
            Code::InvalidIdentityKey,
            "identity_key must be a 32-byte Ed25519 public key",
        )
    };
    let array: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
    let key = VerifyingKey::from_bytes(&array).map_err(|_| invalid())?;
    if key.is_weak() {
        return Err(invalid());
    }
    Ok(key)
}

fn verify(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = parse_identity_key(key) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &signature).is_ok()
}

/// Resolves a user token.
pub async fn authenticate_user(
    store: &dyn Store,
    signer: &TokenSigner,
    token: &SecretString,
    now_ms: i64,
) -> Result<UserPrincipal, ServiceError> {
    let claims = signer
        .verify(TokenKind::User, token.expose_secret(), now_ms)
        .map_err(token_error)?;
    let user = store
        .get_user(claims.tenant_id, claims.subject)
        .await?
        .ok_or_else(|| {
            ServiceError::unauthorized(Code::InvalidToken, "the user no longer exists")
        })?;
    if user.suspended {
        return Err(ServiceError::unauthorized(
            Code::UserSuspended,
            "the user is suspended",
        ));
    }
    Ok(UserPrincipal {
        tenant_id: user.tenant_id,
        user_id: user.id,
    })
}

fn token_error(e: TokenError) -> ServiceError {
    match e {
        TokenError::Invalid => {
            ServiceError::unauthorized(Code::InvalidToken, "the token is malformed or forged")
        }
        TokenError::Expired => ServiceError::unauthorized(
            Code::TokenExpired,
            "the token has expired; obtain a new one",
        ),
    }
}

/// Resolves a device token; the device must not be revoked nor its user suspended.
pub async fn authenticate_device(
    store: &dyn Store,
    signer: &TokenSigner,
    token: &SecretString,
    now_ms: i64,
) -> Result<DevicePrincipal, ServiceError> {
    let claims = signer
        .verify(TokenKind::Device, token.expose_secret(), now_ms)
        .map_err(token_error)?;
    let auth = store
        .device_auth(claims.tenant_id, claims.subject)
        .await?
        .ok_or_else(|| {
            ServiceError::unauthorized(Code::InvalidToken, "the device no longer exists")
        })?;
    check_standing(&auth.device, auth.user_suspended)?;
    Ok(DevicePrincipal {
        tenant_id: auth.device.tenant_id,
        user_id: auth.device.user_id,
        device_id: auth.device.id,
        status: auth.device.status,
    })
}

fn check_standing(device: &DeviceRecord, user_suspended: bool) -> Result<(), ServiceError> {
    if device.status == DeviceStatus::Revoked {
        return Err(ServiceError::unauthorized(
            Code::DeviceRevoked,
            "the device has been revoked",
        ));
    }
    if user_suspended {
        return Err(ServiceError::unauthorized(
            Code::UserSuspended,
            "the user is suspended",
        ));
    }
    Ok(())
}

/// Requires an approved device.
pub fn require_approved(device: &DevicePrincipal) -> Result<(), ServiceError> {
    if device.status == DeviceStatus::Approved {
        Ok(())
    } else {
        Err(ServiceError::forbidden(
            Code::DevicePending,
            "this device waits for approval by another device of the same user",
        ))
    }
}

/// Registers a device for the user. Returns the device and whether it was created now.
pub async fn register(
    store: &dyn Store,
    user: UserPrincipal,
    identity_key: &[u8],
    name: Option<String>,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(DeviceRecord, bool), ServiceError> {
    parse_identity_key(identity_key)?;
    let device = NewDevice {
        id: new_id(rng),
        tenant_id: user.tenant_id,
        user_id: user.user_id,
        name: name.map(|n| n.trim().to_owned()),
        identity_key: identity_key.to_vec(),
        created_at_ms: now_ms,
    };
    match store.register_device(&device).await? {
        RegisterOutcome::Created(d) => Ok((d, true)),
        RegisterOutcome::Existing(d) => Ok((d, false)),
        RegisterOutcome::KeyInUse => Err(ServiceError::conflict(
            Code::IdentityKeyInUse,
            "this identity key belongs to another user",
        )),
    }
}

/// Issues a single-use login challenge for a device.
pub async fn challenge(
    store: &dyn Store,
    device_id: Uuid,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<([u8; 32], i64), ServiceError> {
    let device = store
        .find_device(device_id)
        .await?
        .ok_or_else(device_not_found)?;
    if device.status == DeviceStatus::Revoked {
        return Err(ServiceError::unauthorized(
            Code::DeviceRevoked,
            "the device has been revoked",
        ));
    }
    let mut nonce = [0u8; 32];
    rng.fill_bytes(&mut nonce);
    let expires = now_ms + CHALLENGE_TTL_MS;
    store
        .insert_challenge(device.tenant_id, device.id, &Sha256::digest(nonce), expires)
        .await?;
    Ok((nonce, expires))
}

/// Logs a device in: consumes the challenge (once, even under concurrent attempts), checks
/// the signature over tenant, device and nonce, and issues a device token.
pub async fn login(
    store: &dyn Store,
    signer: &TokenSigner,
    device_id: Uuid,
    nonce: &[u8],
    signature: &[u8],
    now_ms: i64,
) -> Result<(SecretString, i64, DeviceRecord), ServiceError> {
    let bad_challenge = || {
        ServiceError::unauthorized(
            Code::InvalidChallenge,
            "the challenge is unknown, expired or already used; request a new one",
        )
    };
    let nonce: [u8; 32] = nonce.try_into().map_err(|_| bad_challenge())?;
    if !store
        .consume_challenge(device_id, &Sha256::digest(nonce), now_ms)
        .await?
    {
        return Err(bad_challenge());
    }
    let auth = store
        .find_device(device_id)
        .await?
        .ok_or_else(bad_challenge)?;
    let user = store
        .get_user(auth.tenant_id, auth.user_id)
        .await?
        .ok_or_else(bad_challenge)?;
    check_standing(&auth, user.suspended)?;
    let message = login_message(auth.tenant_id, auth.id, &nonce);
    if !verify(&auth.identity_key, &message, signature) {
        return Err(ServiceError::unauthorized(
            Code::InvalidLogin,
            "the signature does not verify with the device's identity key",
        ));
    }
    // The device is active (which cancels any removal proposed for inactivity).
    store.record_login(auth.tenant_id, auth.id, now_ms).await?;
    let expires = now_ms + DEVICE_TOKEN_TTL_MS;
    let token = signer.issue(TokenKind::Device, auth.tenant_id, auth.id, now_ms, expires);
    Ok((token, expires, auth))
}

/// The caller's own devices.
pub async fn list_own(
    store: &dyn Store,
    device: &DevicePrincipal,
) -> Result<Vec<DeviceRecord>, ServiceError> {
    Ok(store.list_devices(device.tenant_id, device.user_id).await?)
}

/// Approves a pending device of the approver's user after verifying the approver's signature.
pub async fn approve(
    store: &dyn Store,
    approver: &DevicePrincipal,
    target_id: Uuid,
    approved_at_ms: i64,
    signature: &[u8],
    now_ms: i64,
) -> Result<DeviceRecord, ServiceError> {
    require_approved(approver)?;
    let target = store
        .get_device(approver.tenant_id, target_id)
        .await?
        .filter(|d| d.user_id == approver.user_id)
        .ok_or_else(device_not_found)?;
    if target.status != DeviceStatus::Pending {
        return Err(ServiceError::conflict(
            Code::DeviceNotPending,
            "only a pending device can be approved",
        ));
    }
    if approved_at_ms.abs_diff(now_ms) > APPROVAL_SKEW_MS.unsigned_abs() {
        return Err(ServiceError::invalid(
            Code::ApprovalTimeSkew,
            "approved_at_ms must be within five minutes of the server's clock",
        ));
    }
    let approver_device = store
        .get_device(approver.tenant_id, approver.device_id)
        .await?
        .ok_or_else(device_not_found)?;
    let new_key: [u8; 32] = target.identity_key.as_slice().try_into().map_err(|_| {
        ServiceError::invalid(Code::InvalidIdentityKey, "stored key has the wrong length")
    })?;
    let message = approval_message(
        approver.tenant_id,
        approver.user_id,
        &new_key,
        approved_at_ms,
    );
    if !verify(&approver_device.identity_key, &message, signature) {
        return Err(ServiceError::invalid(
            Code::InvalidSignature,
            "the approval signature does not verify with the approving device's identity key",
        ));
    }
    let approval = Approval {
        approver_id: approver.device_id,
        approved_at_ms,
        signature: signature.to_vec(),
    };
    store
        .approve_device(approver.tenant_id, target_id, &approval)
        .await?
        .ok_or_else(|| {
            ServiceError::conflict(
                Code::DeviceNotPending,
                "only a pending device can be approved",
            )
        })
}

/// Revokes a device: by the tenant, or by an approved device of the same user.
pub async fn revoke(
    store: &dyn Store,
    caller: &Caller,
    target_id: Uuid,
    now_ms: i64,
) -> Result<DeviceRecord, ServiceError> {
    let tenant_id = caller.tenant_id();
    let target = store
        .get_device(tenant_id, target_id)
        .await?
        .ok_or_else(device_not_found)?;
    if let Caller::Device(device) = caller {
        if target.user_id != device.user_id {
            return Err(device_not_found());
        }
        require_approved(device)?;
    }
    store
        .revoke_device(tenant_id, target_id, now_ms)
        .await?
        .ok_or_else(device_not_found)
}

/// Whether `caller` may read `user_id`'s directory entries and claim their packages:
/// the tenant, the user's own approved devices, and approved devices of the user's
/// contacts and of users who share a conversation with them.
pub async fn may_see_user(
    store: &dyn Store,
    caller: &Caller,
    user_id: Uuid,
) -> Result<(), ServiceError> {
    let visible = match caller {
        Caller::Tenant(t) => store.get_user(t.tenant_id, user_id).await?.is_some(),
        Caller::Device(d) => {
            require_approved(d)?;
            d.user_id == user_id
                || store.are_contacts(d.tenant_id, d.user_id, user_id).await?
                || store
                    .users_share_conversation(d.tenant_id, d.user_id, user_id)
                    .await?
        }
    };
    if visible {
        Ok(())
    } else {
        // Not 403: whether the user exists is not the caller's business.
        Err(ServiceError::NotFound("user"))
    }
}

/// The device directory entries of a user.
pub async fn directory(
    store: &dyn Store,
    caller: &Caller,
    user_id: Uuid,
) -> Result<Vec<DeviceRecord>, ServiceError> {
    may_see_user(store, caller, user_id).await?;
    Ok(store.list_devices(caller.tenant_id(), user_id).await?)
}
