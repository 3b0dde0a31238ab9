//! Safety numbers: what two people compare (read aloud, or by scanning a QR code) to know
//! that no one sits between them.
//!
//! Each user's trust is rooted in their first device (every later device carries an
//! approval chain back to it, see [`crate::directory`]), so a safety number is computed
//! from both users' root identity keys. Each side gets 30 digits from
//! SHA-256("cloak/v1/safety-number" ‖ user id ‖ root key); the two halves are ordered by
//! user id, so both people see the same 60 digits.

use cloak_proto::devices::Device;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Error;

const CONTEXT: &[u8] = b"cloak/v1/safety-number\0";
const QR_VERSION: u8 = 1;

/// A safety number between two users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    /// 60 digits in 12 groups of 5, separated by spaces.
    pub digits: String,
    /// The bytes to put in a QR code: version, then both (user id, root key) in order.
    pub qr_payload: Vec<u8>,
}

/// The root (first) device's identity key of a user, from a verified directory: the one
/// device without an approver (if an old first device was revoked and a new one started
/// another chain, the approved one).
pub fn root_key(directory: &[Device]) -> Result<[u8; 32], Error> {
    let roots: Vec<&Device> = directory
        .iter()
        .filter(|d| d.approved_by.is_none())
        .collect();
    let root = match roots.as_slice() {
        [only] => *only,
        _ => {
            let approved: Vec<&&Device> = roots
                .iter()
                .filter(|d| d.status == cloak_proto::devices::DeviceStatus::Approved)
                .collect();
            match approved.as_slice() {
                [only] => **only,
                [] => {
                    return Err(Error::Verification(
                        "the directory has no first device".into(),
                    ));
                }
                _ => {
                    return Err(Error::Verification(
                        "the directory has two first devices".into(),
                    ));
                }
            }
        }
    };
    root.identity_key
        .as_slice()
        .try_into()
        .map_err(|_| Error::Verification("root key has the wrong length".into()))
}

fn half(user: Uuid, key: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(CONTEXT)
        .chain_update(user.as_bytes())
        .chain_update(key)
        .finalize();
    digest[..30]
        .chunks(5)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The safety number of two users given their root keys.
pub fn safety_number(a: (Uuid, [u8; 32]), b: (Uuid, [u8; 32])) -> SafetyNumber {
    let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    let mut qr_payload = vec![QR_VERSION];
    for (user, key) in [first, second] {
        qr_payload.extend_from_slice(user.as_bytes());
        qr_payload.extend_from_slice(&key);
    }
    SafetyNumber {
        digits: format!("{} {}", half(first.0, &first.1), half(second.0, &second.1)),
        qr_payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_see_the_same_number_and_keys_change_it() {
        let (alice, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let n1 = safety_number((alice, [1; 32]), (bob, [2; 32]));
        let n2 = safety_number((bob, [2; 32]), (alice, [1; 32]));
        assert_eq!(n1, n2);
        assert_eq!(n1.digits.split(' ').count(), 12);
        assert!(
            n1.digits
                .split(' ')
                .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
        );
        assert_eq!(n1.qr_payload.len(), 1 + 2 * 48);
        let swapped_key = safety_number((alice, [1; 32]), (bob, [3; 32]));
        assert_ne!(n1.digits, swapped_key.digits);
        assert_eq!(
            n1.digits[..35],
            swapped_key.digits[..35],
            "alice's half is unchanged"
        );
    }
}
