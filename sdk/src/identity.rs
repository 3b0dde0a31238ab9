//! The device's Ed25519 identity key (sans-IO).
//!
//! One key per app install. It signs login challenges and approvals of the user's other
//! devices, and it is the device's MLS signature key. The secret never leaves this type
//! except through [`DeviceIdentity::to_secret_bytes`], which hands it out in a buffer that
//! wipes itself.

use cloak_proto::signing::{approval_message, login_message};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

/// A device's Ed25519 identity key pair.
///
/// The secret key is wiped from memory when the value is dropped. There is deliberately no
/// `Debug` and no `Clone`: the secret is never printed and never silently copied.
pub struct DeviceIdentity {
    key: SigningKey,
}

impl DeviceIdentity {
    /// Generates a new identity from a caller-provided cryptographic RNG.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self {
            key: SigningKey::generate(rng),
        }
    }

    /// Generates a new identity from the operating system's RNG.
    pub fn generate_os() -> Self {
        Self::generate(&mut rand::rngs::OsRng)
    }

    /// Restores an identity from its 32-byte secret (as returned by
    /// [`to_secret_bytes`](Self::to_secret_bytes)).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte secret, for the device's encrypted local store. Wiped on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(self.key.as_bytes());
        out
    }

    /// The 32-byte Ed25519 public key (the device's `identity_key`).
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key's fingerprint; see [`fingerprint`].
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key())
    }

    /// Signs a login challenge: `signing::login_message(tenant_id, device_id, nonce)`.
    pub fn sign_login(&self, tenant_id: Uuid, device_id: Uuid, nonce: &[u8; 32]) -> [u8; 64] {
        self.sign(&login_message(tenant_id, device_id, nonce))
    }

    /// Signs the approval of another device of the same user:
    /// `signing::approval_message(tenant_id, user_id, new_device_key, approved_at_ms)`.
    pub fn sign_approval(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        new_device_key: &[u8; 32],
        approved_at_ms: i64,
    ) -> [u8; 64] {
        self.sign(&approval_message(
            tenant_id,
            user_id,
            new_device_key,
            approved_at_ms,
        ))
    }

    /// Plain Ed25519 (RFC 8032, no pre-hash) over `message`. Crate-private so that only the
    /// domain-separated messages above, and MLS's own labelled content, are ever signed.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A human-comparable fingerprint of an Ed25519 public key: the lowercase hex of
/// SHA-256 over the 32 raw key bytes (64 characters). Stable across versions; two devices
/// show the same string exactly when they hold the same key.
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(public_key))
}

/// Verifies a login signature made by [`DeviceIdentity::sign_login`]. Wrong-length keys,
/// nonces or signatures give `false`; verification is strict (no malleable or small-order
/// inputs).
pub fn verify_login(
    public_key: &[u8],
    tenant_id: Uuid,
    device_id: Uuid,
    nonce: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(nonce) = <&[u8; 32]>::try_from(nonce) else {
        return false;
    };
    verify(
        public_key,
        &login_message(tenant_id, device_id, nonce),
        signature,
    )
}

/// Verifies an approval signature made by [`DeviceIdentity::sign_approval`] with the
/// approver's `public_key`. Wrong-length inputs give `false`; verification is strict.
pub fn verify_approval(
    public_key: &[u8],
    tenant_id: Uuid,
    user_id: Uuid,
    new_device_key: &[u8],
    approved_at_ms: i64,
    signature: &[u8],
) -> bool {
    let Ok(new_device_key) = <&[u8; 32]>::try_from(new_device_key) else {
        return false;
    };
    verify(
        public_key,
        &approval_message(tenant_id, user_id, new_device_key, approved_at_ms),
        signature,
    )
}

fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::try_from(public_key) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const T: Uuid = Uuid::from_u128(1);
    const U: Uuid = Uuid::from_u128(2);
    const D: Uuid = Uuid::from_u128(3);

    fn identity(seed: u64) -> DeviceIdentity {
        DeviceIdentity::generate(&mut StdRng::seed_from_u64(seed))
    }

    #[test]
    fn secret_bytes_round_trip() {
        let a = identity(1);
        let b = DeviceIdentity::from_secret_bytes(&a.to_secret_bytes());
        assert_eq!(a.public_key(), b.public_key());
        assert_ne!(a.public_key(), identity(2).public_key());
        assert_ne!(
            DeviceIdentity::generate_os().public_key(),
            DeviceIdentity::generate_os().public_key()
        );
    }

    #[test]
    fn fingerprint_is_hex_sha256_of_the_key() {
        let a = identity(1);
        let fp = a.fingerprint();
        assert_eq!(fp.len(), 64);
        assert!(
            fp.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(fp, fingerprint(&a.public_key()));
        assert_eq!(
            fingerprint(&[0; 32]),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert_ne!(fp, identity(2).fingerprint());
    }

    #[test]
    fn login_round_trip_and_tampering() {
        let a = identity(1);
        let pk = a.public_key();
        let nonce = [9u8; 32];
        let sig = a.sign_login(T, D, &nonce);
        assert!(verify_login(&pk, T, D, &nonce, &sig));
        // Another tenant, device or nonce.
        assert!(!verify_login(&pk, U, D, &nonce, &sig));
        assert!(!verify_login(&pk, T, U, &nonce, &sig));
        assert!(!verify_login(&pk, T, D, &[8u8; 32], &sig));
        // Another device's key.
        assert!(!verify_login(&identity(2).public_key(), T, D, &nonce, &sig));
        // A flipped signature bit.
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify_login(&pk, T, D, &nonce, &bad));
        // A login signature is not an approval signature.
        assert!(!verify_approval(&pk, T, D, &nonce, 0, &sig));
    }

    #[test]
    fn approval_round_trip_and_tampering() {
        let a = identity(1);
        let pk = a.public_key();
        let new_key = identity(2).public_key();
        let sig = a.sign_approval(T, U, &new_key, 1_700_000_000_000);
        assert!(verify_approval(
            &pk,
            T,
            U,
            &new_key,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_approval(
            &pk,
            T,
            U,
            &new_key,
            1_700_000_000_001,
            &sig
        ));
        assert!(!verify_approval(
            &pk,
            D,
            U,
            &new_key,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_approval(
            &pk,
            T,
            D,
            &new_key,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_approval(&pk, T, U, &pk, 1_700_000_000_000, &sig));
        assert!(!verify_approval(
            &new_key,
            T,
            U,
            &new_key,
            1_700_000_000_000,
            &sig
        ));
    }

    #[test]
    fn wrong_lengths_are_rejected_without_panicking() {
        let a = identity(1);
        let pk = a.public_key();
        let nonce = [9u8; 32];
        let sig = a.sign_login(T, D, &nonce);
        assert!(!verify_login(&pk[..31], T, D, &nonce, &sig));
        assert!(!verify_login(&[], T, D, &nonce, &sig));
        assert!(!verify_login(&pk, T, D, &nonce[..31], &sig));
        assert!(!verify_login(&pk, T, D, &[9u8; 33], &sig));
        assert!(!verify_login(&pk, T, D, &nonce, &sig[..63]));
        assert!(!verify_login(&pk, T, D, &nonce, &[0u8; 65]));
        let asig = a.sign_approval(T, U, &pk, 0);
        assert!(!verify_approval(&pk, T, U, &pk[..31], 0, &asig));
        assert!(!verify_approval(&pk[..1], T, U, &pk, 0, &asig));
        assert!(!verify_approval(&pk, T, U, &pk, 0, &asig[..1]));
        // Not a point on the curve / all zeros.
        assert!(!verify_login(&[0xff; 32], T, D, &nonce, &sig));
        assert!(!verify_login(&[0; 32], T, D, &nonce, &[0; 64]));
    }
}
