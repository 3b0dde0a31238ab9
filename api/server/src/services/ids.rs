//! Random identifiers from a caller-provided random source.

use rand::{CryptoRng, RngCore};
use uuid::Uuid;

/// A random (version 4) UUID.
pub fn new_id(rng: &mut (impl RngCore + CryptoRng)) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
