//! A downloaded attachment blob, as a lying server may shape it: the opener must return
//! an error (never panic) for anything but the blob that was sealed, fed in any pieces.
#![no_main]

use cloak_sdk::attachment::seal::Opener;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u8, Vec<u8>)| {
    let (plain_len, step, blob) = input;
    let mut opener = Opener::new(&[7; 32], [0; 32], u64::from(plain_len));
    for piece in blob.chunks(usize::from(step).max(1)) {
        if opener.push(piece).is_err() {
            return;
        }
    }
    let _ = opener.finish();
});
