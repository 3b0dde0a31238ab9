//! What the SDK benchmarks share: a device with its own OpenMLS provider, and a
//! KeyPackage of one device as another device validates it.
#![allow(dead_code)]

use cloak_sdk::mls::parse_key_package;
use cloak_sdk::{DeviceIdentity, DeviceIds, generate_key_packages};
use openmls::prelude::{KeyPackage, OpenMlsProvider};
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;

pub struct Device {
    pub provider: OpenMlsRustCrypto,
    pub identity: DeviceIdentity,
    pub ids: DeviceIds,
}

pub fn device(tenant: Uuid) -> Device {
    Device {
        provider: OpenMlsRustCrypto::default(),
        identity: DeviceIdentity::generate_os(),
        ids: DeviceIds {
            tenant_id: tenant,
            user_id: Uuid::new_v4(),
            device_id: Uuid::new_v4(),
        },
    }
}

pub fn key_package(creator: &Device, of: &Device) -> KeyPackage {
    let upload = generate_key_packages(&of.provider, &of.identity, &of.ids, 1, false)
        .unwrap()
        .pop()
        .unwrap();
    parse_key_package(creator.provider.crypto(), &upload.data).unwrap()
}
