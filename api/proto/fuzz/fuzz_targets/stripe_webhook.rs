//! A Stripe webhook delivery as the server reads it: the `Stripe-Signature` header (the
//! input up to the first newline) and the event body (the rest). Never a panic; a header
//! that parses has a timestamp and at least one signature.
#![no_main]

use cloak_proto::stripe_webhook::{Event, parse_signature_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(header) = std::str::from_utf8(header) {
        if let Ok(parsed) = parse_signature_header(header) {
            assert!(!parsed.v1.is_empty());
        }
    }
    if let Ok(event) = Event::parse(payload) {
        for field in ["id", "payment_status", "payment_intent", "status"] {
            let _ = event.str_field(field);
        }
        let _ = (event.int_field("amount"), event.int_field("amount_refunded"));
    }
});
