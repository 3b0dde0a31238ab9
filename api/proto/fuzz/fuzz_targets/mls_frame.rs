//! The server's reader of MLS framing (cloak_proto::mls_frame), fed arbitrary bytes: it
//! must never panic, and whatever it accepts as a private message must read back the same
//! after re-framing its parts.
#![no_main]

use cloak_proto::mls_frame::{self, wire_format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mls_frame::parse_welcome(data);
    if let Ok(f) = mls_frame::parse_framing(data) {
        if f.wire_format == wire_format::PRIVATE_MESSAGE {
            let again = mls_frame::private_message(f.group_id, f.epoch, f.content_type, b"x");
            let g = mls_frame::parse_framing(&again).expect("re-framed message reads back");
            assert_eq!((g.group_id, g.epoch, g.content_type), (f.group_id, f.epoch, f.content_type));
        }
    }
});
