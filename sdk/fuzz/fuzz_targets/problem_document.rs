//! `parse_problem` turns any server answer (status and body) into an SDK error: it must
//! never panic, and a 5xx page that is not a problem document is a transient error.
#![no_main]

use cloak_sdk::parse_problem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (status, body) = input;
    let error = parse_problem(status, body);
    if status >= 500 && serde_json::from_slice::<serde_json::Value>(body).is_err() {
        assert!(error.is_transient(), "{error:?}");
    }
});
