//! `Payload::decode` must never panic, and whatever it accepts must re-encode and decode
//! to the same payload.
#![no_main]

use cloak_sdk::payload::Payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = Payload::decode(data) {
        if let Ok(bytes) = payload.encode() {
            assert_eq!(Payload::decode(&bytes).ok(), Some(payload));
        }
    }
});
