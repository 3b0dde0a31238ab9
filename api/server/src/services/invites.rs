//! Invites: a tenant mints them for a user (or a device for its own user); a device of
//! another user redeems one and the two users become contacts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloak_proto::Code;
use cloak_proto::devices::DeviceStatus;
use cloak_proto::invites::CreateInviteRequest;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ServiceError;
use super::abuse;
use super::billing::{self, Billable};
use super::devices::require_approved;
use super::limits::{self, Policy};
use super::principals::{Caller, DevicePrincipal};
use crate::broker::Broker;
use crate::store::{InviteRecord, NewInvite, RedeemOutcome, Store};

fn not_found() -> ServiceError {
    ServiceError::NotFound("invite")
}

/// Who invites: a tenant names the user; a device invites as its own (approved) user.
pub fn inviter(caller: &Caller, request: &CreateInviteRequest) -> Result<Uuid, ServiceError> {
    match (caller, request.inviter_user_id) {
        (Caller::Tenant(_), Some(user)) => Ok(user),
        (Caller::Tenant(_), None) => Err(ServiceError::invalid(
            Code::InviterRequired,
            "a tenant must name the inviter_user_id",
        )),
        (Caller::Device(d), named) => {
            require_approved(d)?;
            match named {
                Some(user) if user != d.user_id => Err(ServiceError::forbidden(
                    Code::NotOwnUser,
                    "a device can only invite as its own user",
                )),
                _ => Ok(d.user_id),
            }
        }
    }
}

/// Creates an invite with a 128-bit URL-safe code.
pub async fn create(
    store: &dyn Store,
    broker: &dyn Broker,
    caller: &Caller,
    request: &CreateInviteRequest,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<InviteRecord, ServiceError> {
    let tenant_id = caller.tenant_id();
    let inviter_user_id = inviter(caller, request)?;
    if let Caller::Device(_) = caller {
        // Users mint invites within their trust level's daily allowance.
        let level = limits::standing(store, tenant_id, inviter_user_id, now_ms).await?;
        limits::zero_allowed(level.invites_per_day, "invites")?;
        let subject = format!("{tenant_id}:{inviter_user_id}");
        if let Err(e) = limits::hit(broker, &subject, &Policy::invites(&level), now_ms).await {
            abuse::limit_event(store, broker, tenant_id, inviter_user_id, "invites", now_ms).await;
            return Err(e);
        }
    }
    store
        .get_user(tenant_id, inviter_user_id)
        .await?
        .ok_or(ServiceError::NotFound("user"))?;
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    let invite = NewInvite {
        code: URL_SAFE_NO_PAD.encode(bytes),
        tenant_id,
        inviter_user_id,
        max_uses: i64::from(request.max_uses),
        note: request.note.clone(),
        created_at_ms: now_ms,
        expires_at_ms: now_ms + i64::from(request.expires_in_secs) * 1000,
    };
    store.create_invite(&invite).await?;
    Ok(InviteRecord {
        code: invite.code,
        tenant_id,
        inviter_user_id,
        max_uses: invite.max_uses,
        uses: 0,
        note: invite.note,
        created_at_ms: now_ms,
        expires_at_ms: invite.expires_at_ms,
        revoked_at_ms: None,
    })
}

/// An invite by its code alone (the public landing page: the code is the capability).
pub async fn find(store: &dyn Store, code: &str) -> Result<InviteRecord, ServiceError> {
    store.find_invite(code).await?.ok_or_else(not_found)
}

/// An invite of the tenant.
pub async fn get(
    store: &dyn Store,
    tenant_id: Uuid,
    code: &str,
) -> Result<InviteRecord, ServiceError> {
    store
        .get_invite(tenant_id, code)
        .await?
        .ok_or_else(not_found)
}

/// Why an invite cannot be used now, if it cannot.
pub fn unusable(invite: &InviteRecord, now_ms: i64) -> Option<ServiceError> {
    if invite.revoked_at_ms.is_some() {
        Some(ServiceError::Gone {
            code: Code::InviteRevoked,
            detail: "the invite was revoked".into(),
        })
    } else if invite.expires_at_ms <= now_ms {
        Some(ServiceError::Gone {
            code: Code::InviteExpired,
            detail: "the invite has expired".into(),
        })
    } else if invite.uses >= invite.max_uses {
        Some(ServiceError::Gone {
            code: Code::InviteUsedUp,
            detail: "the invite has been used as often as allowed".into(),
        })
    } else {
        None
    }
}

/// The inviter's fingerprint as the directory holds it: lowercase hex of SHA-256 of the
/// identity key of the user's first (root) approved device; `None` without one.
pub async fn inviter_fingerprint(
    store: &dyn Store,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Option<String>, ServiceError> {
    let devices = store.list_devices(tenant_id, user_id).await?;
    Ok(devices
        .iter()
        .find(|d| d.approved_by.is_none() && d.status == DeviceStatus::Approved)
        .map(|d| hex::encode(Sha256::digest(&d.identity_key))))
}

/// Redeems an invite for the device's user; both users become contacts.
pub async fn redeem(
    store: &dyn Store,
    broker: &dyn Broker,
    device: &DevicePrincipal,
    code: &str,
    now_ms: i64,
) -> Result<(InviteRecord, bool), ServiceError> {
    require_approved(device)?;
    let invite = get(store, device.tenant_id, code).await?;
    if invite.inviter_user_id == device.user_id {
        return Err(ServiceError::invalid(
            Code::OwnInvite,
            "a user cannot redeem their own invite",
        ));
    }
    // Between two users where one blocked the other, invites do not work.
    let (t, inviter, me) = (device.tenant_id, invite.inviter_user_id, device.user_id);
    if store.is_blocked(t, me, inviter).await? || store.is_blocked(t, inviter, me).await? {
        return Err(not_found());
    }
    if !store
        .are_contacts(device.tenant_id, device.user_id, invite.inviter_user_id)
        .await?
    {
        let level = limits::standing(store, device.tenant_id, device.user_id, now_ms).await?;
        limits::zero_allowed(level.new_contacts_per_day, "new contacts")?;
        let subject = format!("{}:{}", device.tenant_id, device.user_id);
        if let Err(e) = limits::hit(broker, &subject, &Policy::contacts(&level), now_ms).await {
            abuse::limit_event(
                store,
                broker,
                device.tenant_id,
                device.user_id,
                "contacts",
                now_ms,
            )
            .await;
            return Err(e);
        }
    }
    let gone = |code: Code, detail: &str| ServiceError::Gone {
        code,
        detail: detail.to_owned(),
    };
    let plan = store.billing_plan(device.tenant_id).await?;
    let charge = billing::charge_for(
        &plan,
        device.tenant_id,
        device.user_id,
        format!("device:{}", device.device_id),
        Billable::InviteRedemption,
    )?;
    match store
        .redeem_invite(
            device.tenant_id,
            code,
            device.user_id,
            now_ms,
            charge.as_ref(),
        )
        .await?
    {
        RedeemOutcome::Redeemed(i) => Ok((i, false)),
        RedeemOutcome::AlreadyRedeemed(i) => Ok((i, true)),
        RedeemOutcome::NotFound => Err(not_found()),
        RedeemOutcome::Expired => Err(gone(Code::InviteExpired, "the invite has expired")),
        RedeemOutcome::Revoked => Err(gone(Code::InviteRevoked, "the invite was revoked")),
        RedeemOutcome::InsufficientCredits(balance) => {
            Err(billing::insufficient(balance, "invite redemption"))
        }
        RedeemOutcome::UsedUp => Err(gone(
            Code::InviteUsedUp,
            "the invite has been used as often as allowed",
        )),
    }
}
