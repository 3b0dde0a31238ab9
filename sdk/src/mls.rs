//! OpenMLS glue (sans-IO): the device key as MLS signer, the credential that names the
//! device, and KeyPackages for the server's directory.
//!
//! The KeyPackages' private parts (HPKE init key, leaf encryption key) stay in the
//! provider's storage, where OpenMLS finds them when a Welcome arrives; only the public
//! KeyPackage is uploaded.

use cloak_proto::devices::Device;
use cloak_proto::key_packages::KeyPackageUpload;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Capabilities, Ciphersuite, CredentialType, CredentialWithKey, ExtensionType,
    KeyPackage, KeyPackageIn, OpenMlsProvider, ProtocolVersion, SignatureScheme,
};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::{Signer, SignerError};
use uuid::Uuid;

use crate::Error;
use crate::identity::DeviceIdentity;
use crate::ids::DeviceIds;

/// The one ciphersuite Cloak uses.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Length of an encoded credential identity: three 16-byte UUIDs.
pub const CREDENTIAL_IDENTITY_LEN: usize = 48;

/// The device's identity key as an OpenMLS [`Signer`]: plain Ed25519 over the payload
/// OpenMLS hands in (already the labelled `SignContent`), exactly as OpenMLS's own
/// basic-credential key pair signs and as its crypto providers verify.
pub struct MlsSigner<'a>(&'a DeviceIdentity);

impl<'a> MlsSigner<'a> {
    /// Wraps a device identity.
    pub fn new(identity: &'a DeviceIdentity) -> Self {
        Self(identity)
    }
}

impl Signer for MlsSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.sign(payload).to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// The BasicCredential identity bytes: `tenant_id ‖ user_id ‖ device_id`, each the
/// UUID's 16 big-endian bytes.
pub fn encode_credential_identity(ids: &DeviceIds) -> [u8; CREDENTIAL_IDENTITY_LEN] {
    let mut out = [0u8; CREDENTIAL_IDENTITY_LEN];
    out[..16].copy_from_slice(ids.tenant_id.as_bytes());
    out[16..32].copy_from_slice(ids.user_id.as_bytes());
    out[32..].copy_from_slice(ids.device_id.as_bytes());
    out
}

/// Parses [`encode_credential_identity`]'s output; `None` unless exactly 48 bytes.
pub fn decode_credential_identity(bytes: &[u8]) -> Option<DeviceIds> {
    let bytes: &[u8; CREDENTIAL_IDENTITY_LEN] = bytes.try_into().ok()?;
    let uuid = |i: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&bytes[i..i + 16]);
        Uuid::from_bytes(b)
    };
    Some(DeviceIds {
        tenant_id: uuid(0),
        user_id: uuid(16),
        device_id: uuid(32),
    })
}

/// The device's MLS credential (a BasicCredential naming it) with its identity key.
pub fn credential_with_key(identity: &DeviceIdentity, ids: &DeviceIds) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(encode_credential_identity(ids).to_vec()).into(),
        signature_key: identity.public_key().to_vec().into(),
    }
}

/// The leaf capabilities every Cloak device advertises.
fn capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::LastResort]),
        None,
        Some(&[CredentialType::Basic]),
    )
}

/// Generates `count` KeyPackages signed by the device (last-resort ones when
/// `last_resort`), stores their private parts in `provider`'s storage and returns them
/// ready to upload: `hash_ref` is the KeyPackage reference, `data` the TLS-serialised
/// `KeyPackage` and `not_after` its lifetime's end (Unix seconds, OpenMLS's default
/// lifetime).
pub fn generate_key_packages(
    provider: &impl OpenMlsProvider,
    identity: &DeviceIdentity,
    ids: &DeviceIds,
    count: usize,
    last_resort: bool,
) -> Result<Vec<KeyPackageUpload>, Error> {
    let signer = MlsSigner::new(identity);
    let credential = credential_with_key(identity, ids);
    (0..count)
        .map(|_| {
            let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
            if last_resort {
                builder = builder.mark_as_last_resort();
            }
            let bundle = builder
                .build(CIPHERSUITE, provider, &signer, credential.clone())
                .map_err(|e| Error::Crypto(format!("key package: {e}")))?;
            upload_of(provider.crypto(), bundle.key_package())
        })
        .collect()
}

fn upload_of(crypto: &impl OpenMlsCrypto, kp: &KeyPackage) -> Result<KeyPackageUpload, Error> {
    let hash_ref = kp
        .hash_ref(crypto)
        .map_err(|e| Error::Crypto(format!("key package ref: {e}")))?;
    let data = kp
        .tls_serialize_detached()
        .map_err(|e| Error::Crypto(format!("key package encoding: {e}")))?;
    let not_after = i64::try_from(kp.life_time().not_after())
        .map_err(|_| Error::Crypto("key package lifetime out of range".into()))?;
    Ok(KeyPackageUpload {
        hash_ref: hash_ref.as_slice().to_vec(),
        data,
        not_after,
    })
}

/// Parses and validates (signatures, lifetime, protocol version) a TLS-serialised
/// KeyPackage such as one claimed from the server.
pub fn parse_key_package(crypto: &impl OpenMlsCrypto, data: &[u8]) -> Result<KeyPackage, Error> {
    let mut reader = data;
    let kp = KeyPackageIn::tls_deserialize(&mut reader)
        .map_err(|e| Error::Verification(format!("key package encoding: {e}")))?;
    if !reader.is_empty() {
        return Err(Error::Verification(
            "trailing bytes after the key package".into(),
        ));
    }
    kp.validate(crypto, ProtocolVersion::Mls10)
        .map_err(|e| Error::Verification(format!("key package: {e}")))
}

/// Checks that a validated KeyPackage belongs to `device` from the (verified) device
/// directory: Cloak's ciphersuite, a BasicCredential naming the device's tenant, user and
/// id, and the device's identity key as the leaf's signature key.
pub fn check_key_package_device(kp: &KeyPackage, device: &Device) -> Result<(), Error> {
    if kp.ciphersuite() != CIPHERSUITE {
        return Err(Error::Verification(
            "key package uses another ciphersuite".into(),
        ));
    }
    let leaf = kp.leaf_node();
    let credential = BasicCredential::try_from(leaf.credential().clone())
        .map_err(|_| Error::Verification("key package credential is not basic".into()))?;
    let named = decode_credential_identity(credential.identity());
    let expected = DeviceIds {
        tenant_id: device.tenant_id,
        user_id: device.user_id,
        device_id: device.id,
    };
    if named != Some(expected) {
        return Err(Error::Verification(
            "key package credential names another device".into(),
        ));
    }
    if leaf.signature_key().as_slice() != device.identity_key.as_slice() {
        return Err(Error::Verification(
            "key package is not signed by the device's identity key".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloak_proto::devices::DeviceStatus;
    use openmls_rust_crypto::OpenMlsRustCrypto;
    use std::collections::HashSet;

    fn hash_ref(
        provider: &OpenMlsRustCrypto,
        kp: &KeyPackage,
    ) -> Result<openmls::prelude::KeyPackageRef, Error> {
        kp.hash_ref(provider.crypto())
            .map_err(|e| Error::Crypto(e.to_string()))
    }

    fn ids() -> DeviceIds {
        DeviceIds {
            tenant_id: Uuid::from_u128(0x11),
            user_id: Uuid::from_u128(0x22),
            device_id: Uuid::from_u128(0x33),
        }
    }

    fn device(identity: &DeviceIdentity, ids: &DeviceIds) -> Device {
        Device {
            id: ids.device_id,
            tenant_id: ids.tenant_id,
            user_id: ids.user_id,
            name: None,
            identity_key: identity.public_key().to_vec(),
            status: DeviceStatus::Approved,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            approved_by: None,
            approved_at_ms: None,
            approval_signature: None,
        }
    }

    #[test]
    fn credential_identity_round_trip() {
        let encoded = encode_credential_identity(&ids());
        assert_eq!(encoded.len(), 48);
        assert_eq!(decode_credential_identity(&encoded), Some(ids()));
        assert_eq!(decode_credential_identity(&encoded[..47]), None);
        assert_eq!(decode_credential_identity(&[0; 49]), None);
        assert_eq!(decode_credential_identity(&[]), None);
    }

    #[test]
    fn key_packages_validate_and_name_the_device() -> Result<(), Error> {
        let provider = OpenMlsRustCrypto::default();
        let identity = DeviceIdentity::generate_os();
        let packages = generate_key_packages(&provider, &identity, &ids(), 3, false)?;
        assert_eq!(packages.len(), 3);
        let refs: HashSet<_> = packages.iter().map(|p| p.hash_ref.clone()).collect();
        assert_eq!(refs.len(), 3, "hash refs must be distinct");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for p in &packages {
            let kp = parse_key_package(provider.crypto(), &p.data)?;
            assert!(!kp.last_resort());
            assert_eq!(hash_ref(&provider, &kp)?.as_slice(), &p.hash_ref[..]);
            assert_eq!(
                i64::try_from(kp.life_time().not_after()).ok(),
                Some(p.not_after)
            );
            assert!(p.not_after > now + 80 * 24 * 3600);
            let leaf = kp.leaf_node();
            assert_eq!(leaf.signature_key().as_slice(), &identity.public_key());
            let credential = BasicCredential::try_from(leaf.credential().clone())
                .map_err(|e| Error::Crypto(e.to_string()))?;
            assert_eq!(
                decode_credential_identity(credential.identity()),
                Some(ids())
            );
            check_key_package_device(&kp, &device(&identity, &ids()))?;
            assert!(p.data.len() <= cloak_proto::key_packages::MAX_PACKAGE_BYTES);
        }
        Ok(())
    }

    #[test]
    fn private_parts_stay_in_the_provider_storage() -> Result<(), Error> {
        use openmls::prelude::{KeyPackageBundle, KeyPackageRef};
        use openmls_traits::storage::StorageProvider as _;
        let provider = OpenMlsRustCrypto::default();
        let identity = DeviceIdentity::generate_os();
        let packages = generate_key_packages(&provider, &identity, &ids(), 1, false)?;
        let kp = parse_key_package(provider.crypto(), &packages[0].data)?;
        let r: KeyPackageRef = hash_ref(&provider, &kp)?;
        let stored: Option<KeyPackageBundle> = provider
            .storage()
            .key_package(&r)
            .map_err(|e| Error::Crypto(e.to_string()))?;
        assert!(stored.is_some_and(|b| b.key_package() == &kp));
        Ok(())
    }

    #[test]
    fn last_resort_packages_carry_the_extension() -> Result<(), Error> {
        let provider = OpenMlsRustCrypto::default();
        let identity = DeviceIdentity::generate_os();
        let packages = generate_key_packages(&provider, &identity, &ids(), 1, true)?;
        let kp = parse_key_package(provider.crypto(), &packages[0].data)?;
        assert!(kp.last_resort());
        assert!(generate_key_packages(&provider, &identity, &ids(), 0, true)?.is_empty());
        Ok(())
    }

    #[test]
    fn packages_are_checked_against_the_directory() -> Result<(), Error> {
        let provider = OpenMlsRustCrypto::default();
        let identity = DeviceIdentity::generate_os();
        let packages = generate_key_packages(&provider, &identity, &ids(), 1, false)?;
        let kp = parse_key_package(provider.crypto(), &packages[0].data)?;
        let mut other_device = device(&identity, &ids());
        other_device.id = Uuid::from_u128(0x44);
        assert!(check_key_package_device(&kp, &other_device).is_err());
        let mut other_tenant = device(&identity, &ids());
        other_tenant.tenant_id = Uuid::from_u128(0x44);
        assert!(check_key_package_device(&kp, &other_tenant).is_err());
        let other_key = device(&DeviceIdentity::generate_os(), &ids());
        assert!(check_key_package_device(&kp, &other_key).is_err());
        Ok(())
    }

    #[test]
    fn tampered_or_truncated_packages_are_rejected() -> Result<(), Error> {
        let provider = OpenMlsRustCrypto::default();
        let identity = DeviceIdentity::generate_os();
        let packages = generate_key_packages(&provider, &identity, &ids(), 1, false)?;
        let data = &packages[0].data;
        assert!(parse_key_package(provider.crypto(), &data[..data.len() - 1]).is_err());
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(parse_key_package(provider.crypto(), &trailing).is_err());
        let mut flipped = data.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1; // inside the signature
        assert!(parse_key_package(provider.crypto(), &flipped).is_err());
        assert!(parse_key_package(provider.crypto(), &[]).is_err());
        Ok(())
    }
}
