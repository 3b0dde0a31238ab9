//! The tus request headers the server parses (`Upload-Metadata`, `Upload-Length` /
//! `Upload-Offset`, `Upload-Checksum`), fed arbitrary text: never a panic, and a number
//! that parses prints back the same.
#![no_main]

use cloak_proto::attachments::{metadata_conversation, tus_number, upload_checksum};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = metadata_conversation(text);
    let _ = upload_checksum(text);
    if let Ok(n) = tus_number(text) {
        assert!(n >= 0);
        let digits = text.trim_start_matches('0');
        assert_eq!(n.to_string(), if digits.is_empty() { "0" } else { digits });
    }
});
