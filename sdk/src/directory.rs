//! Verification of a user's device directory (sans-IO).
//!
//! The server lists a user's devices, but it must not be able to add one: every approved
//! device except the user's first carries an approval signed by another device of the
//! same user. Checking those signatures, and that they chain back to one first device, is
//! what lets a client trust the listed identity keys.
//!
//! Revoking a device does not undo the approvals it signed while it was trusted: the
//! server keeps revoked devices (and their keys) in the directory, so a chain may run
//! through them, and losing the first phone does not orphan every later device. (The
//! server refuses approvals from revoked devices; a client cannot tell when a device was
//! revoked, so it relies on the server for that ordering.)

use std::collections::HashMap;

use cloak_proto::devices::{Device, DeviceStatus};
use uuid::Uuid;

use crate::Error;
use crate::identity::verify_approval;

/// Verifies one user's device list as returned by `GET /v1/devices` or
/// `GET /v1/users/{id}/devices`.
///
/// Succeeds when all devices belong to one tenant and user, ids are unique, and every
/// approved device chains back to the same first device (the one without `approved_by`)
/// through approvals that each verify: the device's `approval_signature` over
/// `signing::approval_message(tenant, user, its identity_key, approved_at_ms)` with the
/// identity key of its approver, a listed device other than itself that is approved or
/// was approved and later revoked (never a pending one), without a cycle. Devices that are
/// not on such a chain (pending ones, revoked leaves) are not trusted and not checked.
/// Pinning the first device's key (invite fingerprint or key verification) is the
/// caller's job.
pub fn verify_device_directory(devices: &[Device]) -> Result<(), Error> {
    let Some(first) = devices.first() else {
        return Ok(());
    };
    let mut by_id: HashMap<Uuid, &Device> = HashMap::with_capacity(devices.len());
    for d in devices {
        if d.tenant_id != first.tenant_id || d.user_id != first.user_id {
            return Err(invalid(d.id, "belongs to another tenant or user"));
        }
        if by_id.insert(d.id, d).is_some() {
            return Err(invalid(d.id, "is listed twice"));
        }
    }

    let mut root: Option<Uuid> = None;
    for d in devices
        .iter()
        .filter(|d| d.status == DeviceStatus::Approved)
    {
        let r = chain_root(d, &by_id)?;
        if *root.get_or_insert(r) != r {
            return Err(invalid(d.id, "chains back to a second first device"));
        }
    }
    Ok(())
}

/// Follows `approved_by` from `start` to the device without an approver, checking every
/// approval on the way; returns that first device's id. A loop is an error.
fn chain_root(start: &Device, by_id: &HashMap<Uuid, &Device>) -> Result<Uuid, Error> {
    let mut current = start;
    // Each step moves to a distinct device unless there is a cycle.
    for _ in 0..=by_id.len() {
        let Some(approver_id) = current.approved_by else {
            return Ok(current.id);
        };
        current = check_approval(current, approver_id, by_id)?;
    }
    Err(invalid(
        start.id,
        "has approvals that do not lead to a first device",
    ))
}

/// Checks one device's approval signature against its approver; returns the approver.
fn check_approval<'a>(
    d: &Device,
    approver_id: Uuid,
    by_id: &HashMap<Uuid, &'a Device>,
) -> Result<&'a Device, Error> {
    let approver = *by_id
        .get(&approver_id)
        .ok_or_else(|| invalid(d.id, "names an approver that is not listed"))?;
    if approver.status == DeviceStatus::Pending {
        return Err(invalid(d.id, "names an approver that was never approved"));
    }
    if approver.id == d.id {
        return Err(invalid(d.id, "approved itself"));
    }
    let (Some(at), Some(signature)) = (d.approved_at_ms, d.approval_signature.as_deref()) else {
        return Err(invalid(d.id, "lacks its approval signature"));
    };
    if !verify_approval(
        &approver.identity_key,
        d.tenant_id,
        d.user_id,
        &d.identity_key,
        at,
        signature,
    ) {
        return Err(invalid(
            d.id,
            "has an approval signature that does not verify",
        ));
    }
    Ok(approver)
}

fn invalid(device: Uuid, what: &str) -> Error {
    Error::Verification(format!("device directory: device {device} {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceIdentity;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const T: Uuid = Uuid::from_u128(0xa);
    const U: Uuid = Uuid::from_u128(0xb);

    fn key(seed: u64) -> DeviceIdentity {
        DeviceIdentity::generate(&mut StdRng::seed_from_u64(seed))
    }

    fn device(n: u128, key: &DeviceIdentity) -> Device {
        Device {
            id: Uuid::from_u128(n),
            tenant_id: T,
            user_id: U,
            name: None,
            identity_key: key.public_key().to_vec(),
            status: DeviceStatus::Approved,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            approved_by: None,
            approved_at_ms: None,
            approval_signature: None,
        }
    }

    fn approve(d: &mut Device, approver: &Device, approver_key: &DeviceIdentity, at: i64) {
        let Ok(new_key) = <[u8; 32]>::try_from(d.identity_key.as_slice()) else {
            return;
        };
        d.approved_by = Some(approver.id);
        d.approved_at_ms = Some(at);
        d.approval_signature = Some(approver_key.sign_approval(T, U, &new_key, at).to_vec());
    }

    /// First device 1, device 2 approved by 1, device 3 approved by 2, device 4 pending.
    fn directory() -> (Vec<Device>, Vec<DeviceIdentity>) {
        let keys: Vec<_> = (1..=4).map(key).collect();
        let d1 = device(1, &keys[0]);
        let mut d2 = device(2, &keys[1]);
        approve(&mut d2, &d1, &keys[0], 1000);
        let mut d3 = device(3, &keys[2]);
        approve(&mut d3, &d2, &keys[1], 2000);
        let mut d4 = device(4, &keys[3]);
        d4.status = DeviceStatus::Pending;
        (vec![d1, d2, d3, d4], keys)
    }

    #[test]
    fn a_signed_directory_verifies() {
        let (devices, _) = directory();
        assert!(verify_device_directory(&devices).is_ok());
        assert!(verify_device_directory(&devices[..1]).is_ok());
        assert!(verify_device_directory(&[]).is_ok());
    }

    #[test]
    fn a_server_cannot_approve_a_device_itself() {
        let (mut devices, _) = directory();
        // The pending device flipped to approved without a signature.
        devices[3].status = DeviceStatus::Approved;
        devices[3].approved_by = Some(devices[0].id);
        assert!(verify_device_directory(&devices).is_err());
        // A second "first" device.
        devices[3].approved_by = None;
        assert!(verify_device_directory(&devices).is_err());
    }

    #[test]
    fn tampered_approvals_fail() {
        let (devices, keys) = directory();
        let mut swapped_key = devices.clone();
        swapped_key[2].identity_key = keys[3].public_key().to_vec();
        assert!(verify_device_directory(&swapped_key).is_err());
        let mut other_time = devices.clone();
        other_time[2].approved_at_ms = Some(2001);
        assert!(verify_device_directory(&other_time).is_err());
        let mut other_approver = devices.clone();
        other_approver[2].approved_by = Some(devices[0].id);
        assert!(verify_device_directory(&other_approver).is_err());
        let mut short_sig = devices.clone();
        short_sig[2].approval_signature = Some(vec![0; 10]);
        assert!(verify_device_directory(&short_sig).is_err());
        let mut no_sig = devices.clone();
        no_sig[2].approval_signature = None;
        assert!(verify_device_directory(&no_sig).is_err());
    }

    #[test]
    fn approvers_must_be_listed_and_once_approved() {
        let (devices, keys) = directory();
        let mut pending_approver = devices.clone();
        pending_approver[1].status = DeviceStatus::Pending;
        assert!(verify_device_directory(&pending_approver).is_err());
        // Approver missing from the list.
        let missing: Vec<_> = devices
            .iter()
            .filter(|d| d.id != Uuid::from_u128(2))
            .cloned()
            .collect();
        assert!(verify_device_directory(&missing).is_err());
        // A device approved by the pending device 4.
        let mut by_pending = devices.clone();
        let mut d5 = device(5, &key(5));
        approve(&mut d5, &devices[3], &keys[3], 3000);
        by_pending.push(d5);
        assert!(verify_device_directory(&by_pending).is_err());
    }

    #[test]
    fn approvals_by_since_revoked_devices_stay_valid() {
        let (devices, keys) = directory();
        // Device 2, which approved 3, is revoked: 3 still chains to 1.
        let mut revoked_link = devices.clone();
        revoked_link[1].status = DeviceStatus::Revoked;
        assert!(verify_device_directory(&revoked_link).is_ok());
        // The first device is revoked as well.
        let mut revoked_root = revoked_link.clone();
        revoked_root[0].status = DeviceStatus::Revoked;
        assert!(verify_device_directory(&revoked_root).is_ok());
        // But a revoked link's own approval is still checked.
        let mut forged_link = revoked_root.clone();
        forged_link[1].approved_at_ms = Some(1001);
        assert!(verify_device_directory(&forged_link).is_err());
        // And a revoked device cannot serve as a second, made-up first device: the server
        // adds revoked device 5 without an approver and an approved device 6 it "approved".
        let mut made_up = revoked_root.clone();
        let d5 = device(5, &keys[3]);
        let mut d6 = device(6, &key(6));
        approve(&mut d6, &d5, &keys[3], 4000);
        let mut d5 = d5;
        d5.status = DeviceStatus::Revoked;
        made_up.extend([d5, d6]);
        assert!(matches!(
            verify_device_directory(&made_up),
            Err(Error::Verification(e)) if e.contains("second first device")
        ));
    }

    #[test]
    fn other_users_and_duplicates_fail() {
        let (devices, _) = directory();
        let mut other_user = devices.clone();
        other_user[3].user_id = Uuid::from_u128(0xc);
        assert!(verify_device_directory(&other_user).is_err());
        let mut other_tenant = devices.clone();
        other_tenant[3].tenant_id = Uuid::from_u128(0xc);
        assert!(verify_device_directory(&other_tenant).is_err());
        let mut dup = devices.clone();
        dup.push(devices[1].clone());
        assert!(verify_device_directory(&dup).is_err());
    }

    #[test]
    fn approval_cycles_without_a_first_device_fail() {
        let keys: Vec<_> = (1..=2).map(key).collect();
        let mut d1 = device(1, &keys[0]);
        let mut d2 = device(2, &keys[1]);
        let d1_copy = d1.clone();
        approve(&mut d2, &d1_copy, &keys[0], 1);
        let d2_copy = d2.clone();
        approve(&mut d1, &d2_copy, &keys[1], 1);
        assert!(verify_device_directory(&[d1, d2]).is_err());
    }
}
