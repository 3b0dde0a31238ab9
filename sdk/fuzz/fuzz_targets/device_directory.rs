//! A user's device directory arrives from the server untrusted (`GET /v1/devices`,
//! `GET /v1/users/{id}/devices`): the SDK parses it and checks its approval chain before it
//! trusts any key in it. Any bytes must parse or fail cleanly, the check must never panic
//! and give the same answer twice, and a directory it accepts must name its first device
//! among the listed ones.
#![no_main]

use cloak_sdk::safety::root_key;
use cloak_sdk::verify_device_directory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = serde_json::from_slice::<cloak_proto::devices::DeviceList>(data) else {
        return;
    };
    let verdict = verify_device_directory(&list.items);
    assert_eq!(
        verdict.is_ok(),
        verify_device_directory(&list.items).is_ok(),
        "the same directory checks the same way twice"
    );
    if verdict.is_ok()
        && let Ok(root) = root_key(&list.items)
    {
        assert!(
            list.items.iter().any(|d| d.identity_key == root),
            "the root key is a listed device's key"
        );
    }
});
