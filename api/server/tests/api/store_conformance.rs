//! One conformance suite for every store backend.

use std::sync::Arc;

use cloak_api::services::api_keys;
use cloak_api::store::{NewTenant, RevokeOutcome, Store, StoreError};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, fresh_store};

async fn tenant(store: &dyn Store, name: &str) -> (Uuid, Uuid) {
    let id = Uuid::new_v4();
    let t = NewTenant {
        id,
        name: name.to_owned(),
        created_at_ms: 1_000,
    };
    let key = api_keys::generate(id, "initial", 1_000, &mut rand::rngs::OsRng);
    store.create_tenant(&t, &key.record).await.unwrap();
    (id, key.record.id)
}

async fn tenants_round_trip(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (id, _) = tenant(store.as_ref(), "Acme ünïcode").await;
    let t = store.get_tenant(id).await.unwrap().unwrap();
    assert_eq!(t.name, "Acme ünïcode");
    assert_eq!(t.created_at_ms, 1_000);
    assert!(store.get_tenant(Uuid::new_v4()).await.unwrap().is_none());
}

async fn api_keys_are_found_by_hash_and_listed_per_tenant(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (a, _) = tenant(store.as_ref(), "A").await;
    let (b, _) = tenant(store.as_ref(), "B").await;
    let k = api_keys::generate(a, "second", 2_000, &mut rand::rngs::OsRng);
    store.insert_api_key(&k.record).await.unwrap();

    let found = store
        .find_api_key_by_hash(&k.record.key_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, k.record.id);
    assert_eq!(found.tenant_id, a);
    assert_eq!(found.key_hash, k.record.key_hash);
    assert!(found.revoked_at_ms.is_none() && found.last_used_at_ms.is_none());
    assert!(
        store
            .find_api_key_by_hash(&[0u8; 32])
            .await
            .unwrap()
            .is_none()
    );

    let listed = store.list_api_keys(a).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, k.record.id, "newest first");
    assert!(listed.iter().all(|r| r.tenant_id == a));
    assert_eq!(store.list_api_keys(b).await.unwrap().len(), 1);
    assert!(
        store
            .list_api_keys(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn duplicate_key_hash_is_a_conflict(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (a, _) = tenant(store.as_ref(), "A").await;
    let k = api_keys::generate(a, "x", 1, &mut rand::rngs::OsRng);
    store.insert_api_key(&k.record).await.unwrap();
    let mut again = k.record.clone();
    again.id = Uuid::new_v4();
    assert!(matches!(
        store.insert_api_key(&again).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn touch_records_last_use_for_the_owner_only(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (a, key_a) = tenant(store.as_ref(), "A").await;
    let (b, _) = tenant(store.as_ref(), "B").await;
    store.touch_api_key(b, key_a, 9_000).await.unwrap();
    assert_eq!(
        store.list_api_keys(a).await.unwrap()[0].last_used_at_ms,
        None
    );
    store.touch_api_key(a, key_a, 9_000).await.unwrap();
    assert_eq!(
        store.list_api_keys(a).await.unwrap()[0].last_used_at_ms,
        Some(9_000)
    );
}

async fn revocation_outcomes(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (a, first) = tenant(store.as_ref(), "A").await;
    let (b, other_tenants_key) = tenant(store.as_ref(), "B").await;
    assert_eq!(
        store.revoke_api_key(a, first, 5).await.unwrap(),
        RevokeOutcome::LastActiveKey
    );
    let k = api_keys::generate(a, "second", 2, &mut rand::rngs::OsRng);
    store.insert_api_key(&k.record).await.unwrap();
    assert_eq!(
        store.revoke_api_key(a, first, 5).await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        store.revoke_api_key(a, first, 6).await.unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    assert_eq!(
        store.revoke_api_key(a, Uuid::new_v4(), 6).await.unwrap(),
        RevokeOutcome::NotFound
    );
    assert_eq!(
        store.revoke_api_key(a, other_tenants_key, 6).await.unwrap(),
        RevokeOutcome::NotFound,
        "a tenant cannot revoke another tenant's key"
    );
    let listed = store.list_api_keys(a).await.unwrap();
    let revoked = listed.iter().find(|k| k.id == first).unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(5));
    assert_eq!(store.list_api_keys(b).await.unwrap()[0].revoked_at_ms, None);
}

async fn concurrent_revocations_never_revoke_every_key(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (a, first) = tenant(store.as_ref(), "A").await;
    let mut ids = vec![first];
    for i in 0..3 {
        let k = api_keys::generate(a, &format!("k{i}"), 2, &mut rand::rngs::OsRng);
        store.insert_api_key(&k.record).await.unwrap();
        ids.push(k.record.id);
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move { store.revoke_api_key(a, id, 10).await })
        })
        .collect();
    let mut revoked = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RevokeOutcome::Revoked => revoked += 1,
            RevokeOutcome::LastActiveKey => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((revoked, refused), (3, 1));
    let active = store
        .list_api_keys(a)
        .await
        .unwrap()
        .iter()
        .filter(|k| k.revoked_at_ms.is_none())
        .count();
    assert_eq!(active, 1);
}

async fn migrations_are_idempotent(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(store.backend(), expected);
}

backend_tests!(
    tenants_round_trip,
    api_keys_are_found_by_hash_and_listed_per_tenant,
    duplicate_key_hash_is_a_conflict,
    touch_records_last_use_for_the_owner_only,
    revocation_outcomes,
    concurrent_revocations_never_revoke_every_key,
    migrations_are_idempotent,
);
