//! Memory-only mailboxes (`mailbox_storage: memory`): offline entries in Redis, never in
//! the database or its files.

use std::path::{Path, PathBuf};

use cloak_api::store::{CommitChanges, SendOutcome, Store, TenantSettingsUpdate};
use cloak_proto::tenants::MailboxStorage;
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::backend_tests;
use crate::delivery_conformance::{group, send, world_in};
use crate::delivery_helpers::{body_of, next_frame};
use crate::helpers::{
    Backend, TestApp, TestDb, fresh_store_with, redis_url, spawn_app, spawn_app_with,
};

/// Random bytes no file holds by chance.
fn canary() -> Vec<u8> {
    let mut c = b"CANARY-".to_vec();
    c.extend_from_slice(Uuid::new_v4().simple().to_string().as_bytes());
    c
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The files holding the test database's data: the SQLite file and its WAL, or (after a
/// checkpoint) PostgreSQL's files of this database and its recent WAL segments.
async fn database_files(
    backend: Backend,
    db: &TestDb,
    since: std::time::SystemTime,
) -> Vec<PathBuf> {
    match backend {
        Backend::Sqlite => {
            let file = PathBuf::from(db.url.trim_start_matches("sqlite://"));
            let wal = PathBuf::from(format!("{}-wal", file.display()));
            assert!(file.exists(), "{}", file.display());
            vec![file, wal]
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
            let dir: String = sqlx::query_scalar("SHOW data_directory")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let oid: sqlx::postgres::types::Oid = sqlx::query_scalar(
                "SELECT oid FROM pg_database WHERE datname = current_database()",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            let mut files = Vec::new();
            let base = Path::new(&dir).join("base").join(oid.0.to_string());
            for e in std::fs::read_dir(&base).unwrap() {
                files.push(e.unwrap().path());
            }
            for e in std::fs::read_dir(Path::new(&dir).join("pg_wal")).unwrap() {
                let e = e.unwrap();
                let recent = e.metadata().unwrap().modified().unwrap() >= since;
                if e.file_type().unwrap().is_file() && recent {
                    files.push(e.path());
                }
            }
            files
        }
    }
}

fn any_file_holds(files: &[PathBuf], needle: &[u8]) -> bool {
    files
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .any(|bytes| holds(&bytes, needle))
}

fn stored(o: SendOutcome) -> cloak_api::store::StoredSend {
    match o {
        SendOutcome::Stored(s) => s,
        other => panic!("expected stored, got {other:?}"),
    }
}

/// A memory tenant's messages, commits and Welcomes reach the recipient but no table and
/// no file of the database; a durable tenant's canary in the same database does (so the
/// scan would find one).
async fn memory_ciphertext_never_reaches_the_database_files(backend: Backend) {
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    let (store, db) = fresh_store_with(backend, MailboxStorage::Memory).await;
    let memory = world_in(store.clone(), 3, MailboxStorage::Memory).await;
    let durable = world_in(store.clone(), 2, MailboxStorage::Durable).await;
    let conv = group(&memory).await;
    let durable_conv = group(&durable).await;
    let secret = canary();
    let receiver = memory.devices[1].device_id;
    stored(
        store
            .store_application(&send(&memory, 0, conv, 1, &secret))
            .await
            .unwrap(),
    );
    let secret_commit = canary();
    let remove = CommitChanges {
        remove: vec![memory.devices[2].device_id],
        ..CommitChanges::default()
    };
    stored(
        store
            .store_commit(&send(&memory, 0, conv, 1, &secret_commit), &remove)
            .await
            .unwrap(),
    );
    let control = canary();
    stored(
        store
            .store_application(&send(&durable, 0, durable_conv, 1, &control))
            .await
            .unwrap(),
    );
    let entries = store
        .fetch_mailbox(memory.tenant, receiver, 0, 100, 100)
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = entries.iter().map(|e| e.body.as_slice()).collect();
    assert_eq!(bodies, [&b"welcome"[..], &secret[..], &secret_commit[..]]);
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);

    let count = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mailbox WHERE tenant_id = $1")
                .bind(memory.tenant)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mailbox WHERE tenant_id = $1")
                .bind(memory.tenant)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    };
    assert_eq!(count, 0, "no mailbox row for the memory tenant");
    let files = database_files(backend, &db, since).await;
    assert!(
        any_file_holds(&files, &control),
        "the durable canary is on disk: the scan works"
    );
    assert!(
        !any_file_holds(&files, &secret),
        "a memory tenant's message reached the database files"
    );
    assert!(
        !any_file_holds(&files, &secret_commit),
        "a memory tenant's commit reached the database files"
    );

    // Acknowledged entries leave Redis; another tenant's acknowledgement touches nothing.
    assert_eq!(
        store
            .ack_mailbox(durable.tenant, receiver, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.ack_mailbox(memory.tenant, receiver, 2).await.unwrap(),
        2
    );
    let left = store
        .fetch_mailbox(memory.tenant, receiver, 0, 100, 100)
        .await
        .unwrap();
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
}

async fn set_storage(store: &dyn Store, tenant: Uuid, storage: MailboxStorage) {
    let update = TenantSettingsUpdate {
        mailbox_storage: Some(storage),
        ..TenantSettingsUpdate::default()
    };
    assert!(store.update_tenant_settings(tenant, &update).await.unwrap());
}

/// A tenant that switches modes with entries waiting keeps one sequence: durable and
/// memory entries come in order and one acknowledgement removes both.
async fn switching_modes_keeps_one_order(backend: Backend) {
    let (store, _db) = fresh_store_with(backend, MailboxStorage::Memory).await;
    let w = world_in(store.clone(), 2, MailboxStorage::Durable).await;
    let conv = group(&w).await;
    let receiver = w.devices[1].device_id;
    stored(
        store
            .store_application(&send(&w, 0, conv, 1, b"on disk"))
            .await
            .unwrap(),
    );
    set_storage(store.as_ref(), w.tenant, MailboxStorage::Memory).await;
    stored(
        store
            .store_application(&send(&w, 0, conv, 1, b"in memory"))
            .await
            .unwrap(),
    );
    set_storage(store.as_ref(), w.tenant, MailboxStorage::Durable).await;
    stored(
        store
            .store_application(&send(&w, 0, conv, 1, b"on disk again"))
            .await
            .unwrap(),
    );
    let all = store
        .fetch_mailbox(w.tenant, receiver, 0, 100, 100)
        .await
        .unwrap();
    let got: Vec<(i64, &[u8])> = all.iter().map(|e| (e.seq, e.body.as_slice())).collect();
    assert_eq!(
        got,
        [
            (1, &b"welcome"[..]),
            (2, &b"on disk"[..]),
            (3, &b"in memory"[..]),
            (4, &b"on disk again"[..])
        ]
    );
    // Pages stay bounded across both places.
    let page = store
        .fetch_mailbox(w.tenant, receiver, 1, 2, 100)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(store.ack_mailbox(w.tenant, receiver, 3).await.unwrap(), 3);
    let rest = store
        .fetch_mailbox(w.tenant, receiver, 0, 100, 100)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [4]);
}

/// The quota counts memory entries: a full memory mailbox refuses as a durable one does.
async fn the_quota_counts_memory_entries(backend: Backend) {
    let (store, _db) = fresh_store_with(backend, MailboxStorage::Memory).await;
    let w = world_in(store.clone(), 2, MailboxStorage::Memory).await;
    let conv = group(&w).await;
    let receiver = w.devices[1].device_id;
    let mut s = send(&w, 0, conv, 1, b"fits");
    s.mailbox_quota = 2;
    stored(store.store_application(&s).await.unwrap());
    let mut over = send(&w, 0, conv, 1, b"over");
    over.mailbox_quota = 2;
    assert_eq!(
        store.store_application(&over).await.unwrap(),
        SendOutcome::MailboxFull(receiver)
    );
    assert_eq!(store.ack_mailbox(w.tenant, receiver, 1).await.unwrap(), 1);
    stored(store.store_application(&over).await.unwrap());
}

/// A revoked device's memory entries go with it, as its database entries do.
async fn revoking_a_device_drops_its_memory_entries(backend: Backend) {
    let (store, _db) = fresh_store_with(backend, MailboxStorage::Memory).await;
    let w = world_in(store.clone(), 2, MailboxStorage::Memory).await;
    let conv = group(&w).await;
    let receiver = w.devices[1].device_id;
    stored(
        store
            .store_application(&send(&w, 0, conv, 1, b"x"))
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .fetch_mailbox(w.tenant, receiver, 0, 100, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .revoke_device(w.tenant, receiver, 200)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .fetch_mailbox(w.tenant, receiver, 0, 100, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn patch_storage(app: &TestApp, storage: &str) -> reqwest::Response {
    app.client
        .patch(format!("{}/v1/tenant", app.address))
        .bearer_auth(&app.api_key)
        .json(&json!({"mailbox_storage": storage}))
        .send()
        .await
        .unwrap()
}

/// Without Redis the setting is refused with a clear problem; with Redis it sticks.
async fn memory_storage_needs_redis(backend: Backend) {
    let app = spawn_app(backend).await;
    let settings = app.get_json("/v1/tenant", &app.api_key).await;
    assert_eq!(settings["mailbox_storage"], "durable");
    let resp = patch_storage(&app, "memory").await;
    match backend {
        Backend::Sqlite => {
            let problem =
                crate::helpers::assert_problem(resp, 409, "memory_mailbox_unavailable").await;
            assert!(
                problem["detail"].as_str().unwrap().contains("Redis"),
                "{problem}"
            );
            assert_eq!(
                app.get_json("/v1/tenant", &app.api_key).await["mailbox_storage"],
                "durable"
            );
        }
        Backend::Postgres => {
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["mailbox_storage"], "memory");
            assert_eq!(
                app.get_json("/v1/tenant", &app.api_key).await["mailbox_storage"],
                "memory"
            );
        }
    }
    let resp = patch_storage(&app, "tape").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(patch_storage(&app, "durable").await.status(), 200);
}

/// Over the API, on either database with Redis: a memory tenant's offline device gets its
/// messages from the mailbox and over a resumed socket; acknowledgements remove them.
async fn a_memory_tenant_delivers_over_rest_and_websocket(backend: Backend) {
    let redis = redis_url();
    let app = spawn_app_with(backend, &[("CLOAK_REDIS_URL", redis.as_str())]).await;
    assert_eq!(patch_storage(&app, "memory").await.status(), 200);
    let (a, b, conv) = app.pair().await;
    let secret = canary();
    for i in 0..3u8 {
        let mut body = secret.clone();
        body.push(i);
        let resp = app.send(&a, conv, 1, Uuid::new_v4(), &body).await;
        assert_eq!(resp.status(), 201);
    }
    let entries = app.mailbox(&b, 0).await;
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["welcome", "application", "application", "application"]
    );
    assert_eq!(body_of(&entries[3])[..secret.len()], secret[..]);
    let ack: Value = app
        .post_json("/v1/mailbox/ack", &b.token, &json!({"up_to": 2}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack["deleted"], 2);
    let mut ws = app.socket(&app.address, &b, 0).await;
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        let frame = next_frame(&mut ws).await;
        if frame["type"] == "envelope" {
            seqs.push(frame["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs, [3, 4]);
    // Online now: a new message is pushed at once.
    let resp = app.send(&a, conv, 1, Uuid::new_v4(), b"live").await;
    assert_eq!(resp.status(), 201);
    loop {
        let frame = next_frame(&mut ws).await;
        if frame["type"] == "envelope" {
            assert_eq!(frame["seq"], 5);
            break;
        }
    }
    ws.send(Message::text(
        json!({"type": "ack", "up_to": 5}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let frame = next_frame(&mut ws).await;
        if frame["type"] == "acked" {
            assert_eq!(frame["deleted"], 3, "{frame}");
            break;
        }
    }
    assert!(app.mailbox(&b, 0).await.is_empty());
    let count: i64 = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM mailbox")
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM mailbox")
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    };
    assert_eq!(count, 0, "nothing of a memory tenant in the mailbox table");
}

backend_tests!(
    memory_ciphertext_never_reaches_the_database_files,
    switching_modes_keeps_one_order,
    the_quota_counts_memory_entries,
    revoking_a_device_drops_its_memory_entries,
    memory_storage_needs_redis,
    a_memory_tenant_delivers_over_rest_and_websocket,
);
