//! A group message arrives from the server untrusted: a member device processing any bytes
//! as an envelope body (application message, proposal or commit, framed or not) must
//! never panic, and after refusing one it still encrypts at the same epoch.
#![no_main]

use cloak_sdk::payload::{Payload, PayloadKind};
use cloak_sdk::{Conversation, DeviceIdentity, DeviceIds, Incoming};
use libfuzzer_sys::fuzz_target;
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;

/// The fixed conversation id, so mutations can reach past the group-id check.
const CONVERSATION: Uuid = Uuid::from_u128(0xc0a1_0000_0000_4000_8000_0000_0000_0001);

fuzz_target!(|data: &[u8]| {
    let provider = OpenMlsRustCrypto::default();
    let identity = DeviceIdentity::generate_os();
    let ids = DeviceIds {
        tenant_id: Uuid::from_u128(1),
        user_id: Uuid::from_u128(2),
        device_id: Uuid::from_u128(3),
    };
    let Ok(mut conversation) = Conversation::create(&provider, &identity, &ids, CONVERSATION, None)
    else {
        return;
    };
    match conversation.process(&provider, data) {
        Ok(Incoming::Commit(change)) => {
            let _ = (change.added(), change.removed(), change.users());
        }
        Ok(_) => {}
        Err(_) => {
            assert_eq!(conversation.epoch(), 0, "a refused message changes nothing");
            let text = PayloadKind::Text { text: "still works".into() };
            let payload = Payload::new(Uuid::from_u128(4), 0, text);
            assert!(conversation.encrypt(&provider, &identity, &payload).is_ok());
        }
    }
});
