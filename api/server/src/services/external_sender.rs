//! The delivery service as an MLS external sender (RFC 9420 §12.1.8.1): devices list the
//! server's credential in the `external_senders` extension of the groups they create, and
//! the server signs Remove proposals for revoked and long-inactive devices. It proposes
//! only; members check each proposal and commit it, so the server never changes a group
//! itself and never holds a group secret.
//!
//! The signing key is derived (HKDF-SHA256) from the token secret every node already
//! shares, so all nodes sign with one key and nothing more is stored.

use cloak_proto::delivery::{EXTERNAL_SENDER_IDENTITY, ExternalSender as ExternalSenderInfo};
use ed25519_dalek::{Signer as _, SigningKey};
use hkdf::Hkdf;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    ExternalProposal, GroupEpoch, GroupId, LeafNodeIndex, SenderExtensionIndex,
};
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use uuid::Uuid;
use zeroize::Zeroize as _;

/// The HKDF `info` that separates this key from every other use of the token secret.
const KEY_INFO: &[u8] = b"cloak mls external sender v1";

/// The server's external-sender signing key. No `Debug` beyond a placeholder; the key
/// zeroizes when dropped.
pub struct ExternalSender {
    key: SigningKey,
}

impl std::fmt::Debug for ExternalSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalSender([REDACTED])")
    }
}

struct DalekSigner<'a>(&'a SigningKey);

impl Signer for DalekSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

impl ExternalSender {
    /// The key derived from the nodes' shared token secret.
    pub fn derive(token_secret: &[u8]) -> Self {
        let mut seed = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32, so expand cannot fail.
        if Hkdf::<sha2::Sha256>::new(None, token_secret)
            .expand(KEY_INFO, &mut seed)
            .is_err()
        {
            seed = [0u8; 32];
        }
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Self { key }
    }

    /// What devices put in a group's `external_senders` extension.
    pub fn info(&self) -> ExternalSenderInfo {
        ExternalSenderInfo {
            ciphersuite: cloak_proto::mls_frame::CIPHERSUITE,
            signature_key: self.key.verifying_key().to_bytes().to_vec(),
            identity: EXTERNAL_SENDER_IDENTITY.to_vec(),
        }
    }

    /// An `MLSMessage` holding the server's proposal (as external sender 0) to remove
    /// `leaf` from the conversation's group at `epoch`.
    pub fn remove_proposal(
        &self,
        conversation_id: Uuid,
        epoch: u64,
        leaf: u32,
    ) -> Result<Vec<u8>, String> {
        let message = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            LeafNodeIndex::new(leaf),
            GroupId::from_slice(conversation_id.as_bytes()),
            GroupEpoch::from(epoch),
            &DalekSigner(&self.key),
            SenderExtensionIndex::new(0),
        )
        .map_err(|e| format!("remove proposal: {e}"))?;
        message
            .tls_serialize_detached()
            .map_err(|e| format!("remove proposal: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_derived_from_the_secret_alone() {
        let a = ExternalSender::derive(&[7; 32]);
        let b = ExternalSender::derive(&[7; 32]);
        let c = ExternalSender::derive(&[8; 32]);
        assert_eq!(a.info(), b.info());
        assert_ne!(a.info().signature_key, c.info().signature_key);
        assert_eq!(a.info().signature_key.len(), 32);
    }

    #[test]
    fn a_proposal_is_a_public_message_for_the_group_and_epoch() {
        let sender = ExternalSender::derive(&[1; 32]);
        let group = Uuid::new_v4();
        let bytes = sender.remove_proposal(group, 9, 3).unwrap();
        // version 1, wire format public message (1), the group id, the epoch, sender type
        // external (2) with index 0, empty authenticated data, content type proposal (2).
        let mut head = vec![0, 1, 0, 1, 16];
        head.extend_from_slice(group.as_bytes());
        head.extend_from_slice(&9u64.to_be_bytes());
        head.extend_from_slice(&[2, 0, 0, 0, 0, 0, 2]);
        assert_eq!(&bytes[..head.len()], head.as_slice());
        // Remove (proposal type 3) of leaf 3.
        assert_eq!(&bytes[head.len()..head.len() + 6], &[0, 3, 0, 0, 0, 3]);
    }
}
