//! A Welcome arrives from the server untrusted: staging it from any bytes must never
//! panic, whatever the device's storage holds.
#![no_main]

use cloak_sdk::Conversation;
use libfuzzer_sys::fuzz_target;
use openmls_rust_crypto::OpenMlsRustCrypto;

fuzz_target!(|data: &[u8]| {
    let provider = OpenMlsRustCrypto::default();
    if let Ok(staged) = Conversation::stage_join(&provider, data) {
        let _ = staged.members();
    }
});
