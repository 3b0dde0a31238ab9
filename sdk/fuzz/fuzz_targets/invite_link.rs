//! `parse_invite_link` reads whatever a QR code held: it must never panic, and a code it
//! accepts is non-empty and comes from the text it was given.
#![no_main]

use cloak_sdk::messenger::parse_invite_link;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((code, fingerprint)) = parse_invite_link(text) {
        assert!(!code.is_empty());
        assert!(text.contains(code));
        if let Some(fp) = fingerprint {
            assert_eq!(fp, fp.to_ascii_lowercase());
        }
    }
});
