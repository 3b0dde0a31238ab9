//! A QR image someone sent, read by `cloak-chat join FILE.png`: any bytes as a PNG must
//! give text or an error, never a panic or an allocation past the decoder's limit
//! (libFuzzer's `-rss_limit_mb` in scripts/fuzz catches one).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cloak_chat::qr::decode_png_bytes(data);
});
