//! Every JSON request body the REST API takes, read as the server reads it
//! (`cloak_proto::json_body::from_body`, then the `validator` rules): the first byte picks
//! the type, the rest is the body. Never a panic; a body that is read and valid must
//! serialize and read back as valid.
#![no_main]

use cloak_proto::json_body::from_body;
use cloak_proto::{abuse, api_keys, billing, console, delivery, devices, invites};
use cloak_proto::{key_packages, tenants, users};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use validator::Validate;

fn check<T: DeserializeOwned + Serialize + Validate>(body: &str) {
    let Ok(value) = from_body::<T>(body) else { return };
    if value.validate().is_err() {
        return;
    }
    let again = serde_json::to_string(&value).expect("a read body serializes");
    let back = from_body::<T>(&again).expect("a serialized body reads back");
    assert!(back.validate().is_ok(), "a valid body stays valid: {again}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(body) = std::str::from_utf8(rest) else { return };
    match which % 27 {
        0 => check::<delivery::AckRequest>(body),
        1 => check::<billing::AdjustmentRequest>(body),
        2 => check::<devices::ApproveDeviceRequest>(body),
        3 => check::<billing::BillingSettings>(body),
        4 => check::<abuse::BlockRequest>(body),
        5 => check::<devices::ChallengeRequest>(body),
        6 => check::<billing::CheckoutRequest>(body),
        7 => check::<delivery::CommitRequest>(body),
        8 => check::<api_keys::CreateApiKeyRequest>(body),
        9 => check::<console::CreateConsoleAccountRequest>(body),
        10 => check::<users::CreateContactRequest>(body),
        11 => check::<delivery::CreateConversationRequest>(body),
        12 => check::<invites::CreateInviteRequest>(body),
        13 => check::<users::CreateUserRequest>(body),
        14 => check::<billing::GrantRequest>(body),
        15 => check::<devices::LoginRequest>(body),
        16 => check::<abuse::ModerationSettings>(body),
        17 => check::<billing::PriceTable>(body),
        18 => check::<devices::PushRegistration>(body),
        19 => check::<devices::RegisterDeviceRequest>(body),
        20 => check::<abuse::ReportRequest>(body),
        21 => check::<delivery::SendMessageRequest>(body),
        22 => check::<abuse::TrustLevels>(body),
        23 => check::<tenants::UpdateTenantRequest>(body),
        24 => check::<users::UpdateUserRequest>(body),
        25 => check::<key_packages::UploadKeyPackagesRequest>(body),
        _ => check::<billing::WebhookConfigRequest>(body),
    }
});
