//! Store conformance for the identity aggregates, on every backend.

use std::collections::HashSet;
use std::sync::Arc;

use cloak_api::store::{NewDevice, NewKeyPackage, NewTenant, NewUser, RegisterOutcome, Store};
use cloak_proto::devices::DeviceStatus;
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, fresh_store};

async fn tenant_and_user(store: &dyn Store) -> (Uuid, Uuid) {
    let tenant = Uuid::new_v4();
    let key = cloak_api::services::api_keys::generate(tenant, "k", 1, &mut rand::rngs::OsRng);
    store
        .create_tenant(
            &NewTenant {
                id: tenant,
                name: "T".into(),
                created_at_ms: 1,
            },
            &key.record,
        )
        .await
        .unwrap();
    let user = Uuid::new_v4();
    store
        .create_user(&NewUser {
            id: user,
            tenant_id: tenant,
            external_id: format!("ext-{user}"),
            display_name: "U".into(),
            trust_level: "new".into(),
            created_at_ms: 1,
        })
        .await
        .unwrap();
    (tenant, user)
}

fn device(tenant: Uuid, user: Uuid, key_byte: u8) -> NewDevice {
    NewDevice {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        user_id: user,
        name: None,
        identity_key: vec![key_byte; 32],
        created_at_ms: 5,
    }
}

async fn concurrent_registrations_approve_exactly_one_first_device(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (tenant, user) = tenant_and_user(store.as_ref()).await;
    let tasks: Vec<_> = (0..10u8)
        .map(|i| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move { store.register_device(&device(tenant, user, i + 1)).await })
        })
        .collect();
    let mut approved = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RegisterOutcome::Created(d) if d.status == DeviceStatus::Approved => approved += 1,
            RegisterOutcome::Created(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(approved, 1);
    assert_eq!(store.list_devices(tenant, user).await.unwrap().len(), 10);
}

async fn concurrent_claims_hand_out_each_one_time_package_once(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (tenant, user) = tenant_and_user(store.as_ref()).await;
    let d = device(tenant, user, 1);
    store.register_device(&d).await.unwrap();
    let packages: Vec<NewKeyPackage> = (0..20)
        .map(|i| NewKeyPackage {
            hash_ref: vec![i],
            data: vec![i; 10],
            expires_at_ms: 1_000_000,
        })
        .collect();
    let last = NewKeyPackage {
        hash_ref: vec![255],
        data: vec![255],
        expires_at_ms: 1_000_000,
    };
    store
        .add_key_packages(tenant, d.id, &packages, Some(&last), 10)
        .await
        .unwrap();
    // Uploading the same hash_ref again is ignored, not duplicated.
    store
        .add_key_packages(tenant, d.id, &packages[..5], None, 11)
        .await
        .unwrap();
    assert_eq!(
        store.key_package_stock(tenant, d.id, 100).await.unwrap(),
        (20, true)
    );

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move { store.claim_key_package(tenant, d.id, 100).await })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut last_resort = 0;
    for t in tasks {
        let c = t.await.unwrap().unwrap().unwrap();
        if c.last_resort {
            assert_eq!(c.hash_ref, vec![255]);
            last_resort += 1;
        } else {
            assert!(
                seen.insert(c.hash_ref.clone()),
                "duplicate {:?}",
                c.hash_ref
            );
            assert_eq!(c.data, vec![c.hash_ref[0]; 10]);
        }
    }
    assert_eq!((seen.len(), last_resort), (20, 30));
    assert_eq!(
        store.key_package_stock(tenant, d.id, 100).await.unwrap(),
        (0, true)
    );
    // Another tenant cannot claim them.
    assert!(
        store
            .claim_key_package(Uuid::new_v4(), d.id, 100)
            .await
            .unwrap()
            .is_none()
    );
    // Expired packages are purged.
    assert_eq!(store.purge_expired(2_000_000).await.unwrap(), 1);
    assert!(
        store
            .claim_key_package(tenant, d.id, 100)
            .await
            .unwrap()
            .is_none()
    );
}

async fn challenges_are_consumed_once(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (tenant, user) = tenant_and_user(store.as_ref()).await;
    let d = device(tenant, user, 1);
    store.register_device(&d).await.unwrap();
    store
        .insert_challenge(tenant, d.id, b"n1", 1_000)
        .await
        .unwrap();
    assert!(
        !store
            .consume_challenge(Uuid::new_v4(), b"n1", 10)
            .await
            .unwrap()
    );
    assert!(
        !store.consume_challenge(d.id, b"n1", 1_000).await.unwrap(),
        "expired at 1000"
    );
    store
        .insert_challenge(tenant, d.id, b"n2", 1_000)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move { store.consume_challenge(d.id, b"n2", 10).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn deleting_a_user_deletes_devices_and_packages(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (tenant, user) = tenant_and_user(store.as_ref()).await;
    let d = device(tenant, user, 1);
    store.register_device(&d).await.unwrap();
    let kp = NewKeyPackage {
        hash_ref: vec![1],
        data: vec![1],
        expires_at_ms: 1_000,
    };
    store
        .add_key_packages(tenant, d.id, &[kp], None, 1)
        .await
        .unwrap();
    assert!(
        !store.delete_user(Uuid::new_v4(), user).await.unwrap(),
        "wrong tenant deletes nothing"
    );
    assert!(store.delete_user(tenant, user).await.unwrap());
    assert!(store.get_device(tenant, d.id).await.unwrap().is_none());
    assert_eq!(
        store.key_package_stock(tenant, d.id, 1).await.unwrap(),
        (0, false)
    );
}

backend_tests!(
    concurrent_registrations_approve_exactly_one_first_device,
    concurrent_claims_hand_out_each_one_time_package_once,
    challenges_are_consumed_once,
    deleting_a_user_deletes_devices_and_packages,
);
