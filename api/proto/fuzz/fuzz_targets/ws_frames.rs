//! WebSocket frames, both ways: a client frame as the server reads it (a `send` is then
//! validated exactly like its REST body) and a server frame as the SDK reads it. Never a
//! panic; a frame that reads serializes and reads back.
#![no_main]

use cloak_proto::delivery::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;
use validator::Validate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        if let ClientFrame::Send { message, .. } = &frame {
            let _ = message.validate();
        }
        let again = serde_json::to_string(&frame).expect("a client frame serializes");
        serde_json::from_str::<ClientFrame>(&again).expect("a client frame reads back");
    }
    if let Ok(frame) = serde_json::from_str::<ServerFrame>(text) {
        let again = serde_json::to_string(&frame).expect("a server frame serializes");
        serde_json::from_str::<ServerFrame>(&again).expect("a server frame reads back");
    }
});
