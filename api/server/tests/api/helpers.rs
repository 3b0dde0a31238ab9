//! `spawn_app()` and fresh databases, after zero-to-production.

use std::sync::Arc;

use cloak_api::broker::{self, Broker};
use cloak_api::clock::{Clock, ManualClock, SystemClock};
use cloak_api::config::Settings;
use cloak_api::services::tenants;
use cloak_api::startup::Application;
use cloak_api::store::{self, PoolOptions, Store};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Connection;
use uuid::Uuid;

/// Which real services a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + in-process broker (the embedded default).
    Sqlite,
    /// PostgreSQL + Redis (production).
    Postgres,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with scripts/test, which starts PostgreSQL and Redis"
        )
    })
}

/// The Redis URL of the test server.
pub fn redis_url() -> String {
    required_env("CLOAK_TEST_REDIS_URL")
}

/// A database that exists for one test: the SQLite directory is removed and the
/// PostgreSQL database dropped when it goes, so a run's disk use stays flat.
pub struct TestDb {
    pub url: String,
    /// The SQLite file's directory, and the attachment blobs' (`blobs/`) on both backends.
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// Where the test server keeps attachment blobs (the filesystem blob store).
    pub fn blob_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("blobs")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime: the statement runs on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// Creates an empty database: a new SQLite file, or a new PostgreSQL database.
pub async fn fresh_database(backend: Backend) -> TestDb {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/cloak.db", dir.path().display());
            TestDb {
                url,
                dir,
                postgres: None,
            }
        }
        Backend::Postgres => {
            let admin = required_env("CLOAK_TEST_POSTGRES_URL");
            let name = format!("cloak_test_{}", Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            TestDb {
                url: format!("{base}/{name}"),
                dir: tempfile::tempdir().unwrap(),
                postgres: Some((admin, name)),
            }
        }
    }
}

/// A migrated store on a fresh database.
pub async fn fresh_store(backend: Backend) -> (Arc<dyn Store>, TestDb) {
    let db = fresh_database(backend).await;
    let options = PoolOptions {
        max_connections: 5,
        ..PoolOptions::default()
    };
    let store = store::connect(&SecretString::from(db.url.clone()), &options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, db)
}

/// A migrated store on a fresh database that keeps memory-only tenants' mailboxes in the
/// test Redis when `storage` is `memory` (any backend: SQLite with Redis is allowed).
pub async fn fresh_store_with(
    backend: Backend,
    storage: cloak_proto::tenants::MailboxStorage,
) -> (Arc<dyn Store>, TestDb) {
    if storage == cloak_proto::tenants::MailboxStorage::Durable {
        return fresh_store(backend).await;
    }
    let db = fresh_database(backend).await;
    let options = PoolOptions {
        max_connections: 5,
        ..PoolOptions::default()
    };
    let memory = store::RedisMailbox::connect(&SecretString::from(redis_url()))
        .await
        .unwrap();
    let store = store::connect_with(
        &SecretString::from(db.url.clone()),
        &options,
        Some(Arc::new(memory)),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (store, db)
}

/// The broker of a backend: in-process for SQLite, a new Redis connection for PostgreSQL.
pub async fn fresh_broker(backend: Backend) -> Arc<dyn Broker> {
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(SecretString::from(redis_url())),
    };
    broker::connect(url.as_ref()).await.unwrap()
}

/// Settings for a test server on port 0 over `db`.
pub fn settings(backend: Backend, db: &TestDb) -> Settings {
    settings_with(backend, db, &[])
}

/// Settings for a test server, with extra `CLOAK_*` values (e.g. Stripe's).
pub fn settings_with(backend: Backend, db: &TestDb, extra: &[(&str, &str)]) -> Settings {
    let redis = (backend == Backend::Postgres).then(redis_url);
    let db_url = db.url.clone();
    let blob_dir = db.blob_dir().display().to_string();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_sources(None, move |key| {
        if let Some((_, v)) = extra.iter().find(|(k, _)| k == key) {
            return Some(v.clone());
        }
        match key {
            "CLOAK_BIND" => Some("127.0.0.1:0".to_owned()),
            "CLOAK_DATABASE_URL" => Some(db_url.clone()),
            "CLOAK_BLOB_URL" => Some(blob_dir.clone()),
            "CLOAK_REDIS_URL" => redis.clone(),
            "CLOAK_WORKERS" => Some("1".to_owned()),
            "CLOAK_DB_MAX_CONNECTIONS" => Some("5".to_owned()),
            "CLOAK_MAX_BODY_BYTES" => Some("65536".to_owned()),
            "CLOAK_WORKER_POLL_MS" => Some("50".to_owned()),
            // Tests run on a frozen clock: keep the service limits out of their way (the
            // limit tests set their own).
            "CLOAK_TENANT_REQUESTS_PER_SEC" => Some("1000000".to_owned()),
            "CLOAK_LOGIN_PER_IP_PER_MINUTE" => Some("0".to_owned()),
            // Pipelining tests write a thousand frames at once (the frame-rate test sets
            // its own).
            "CLOAK_WS_FRAMES_PER_SEC" => Some("100000".to_owned()),
            // Webhook receivers in the tests listen on 127.0.0.1.
            "CLOAK_WEBHOOK_ALLOW_PRIVATE" => Some("true".to_owned()),
            _ => None,
        }
    })
    .unwrap()
}

/// A running server, its first tenant and a client.
pub struct TestApp {
    pub address: String,
    /// The server's clock: starts at the real time and moves only when a test advances it.
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    pub api_key: String,
    pub store: Arc<dyn Store>,
    pub db: TestDb,
}

/// Every answer the server gave this test is in the OpenAPI document (debug servers check
/// each against it: `cloak_api::http::conformance`).
impl Drop for TestApp {
    fn drop(&mut self) {
        let port = self
            .address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let violations = cloak_api::http::conformance::violations(port);
        if !violations.is_empty() && !std::thread::panicking() {
            panic!("answers the OpenAPI document does not describe: {violations:#?}");
        }
    }
}

/// Starts the application on a fresh database with one tenant.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// As [`spawn_app`], with extra settings.
/// The app, its tenant's mailboxes kept as `storage` says (memory ones in the test Redis,
/// on either database).
pub async fn spawn_in(backend: Backend, storage: cloak_proto::tenants::MailboxStorage) -> TestApp {
    if storage == cloak_proto::tenants::MailboxStorage::Durable {
        return spawn_app(backend).await;
    }
    let redis = redis_url();
    let app = spawn_app_with(backend, &[("CLOAK_REDIS_URL", redis.as_str())]).await;
    let resp = app
        .client
        .patch(app.url("/v1/tenant"))
        .bearer_auth(&app.api_key)
        .json(&serde_json::json!({"mailbox_storage": "memory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app
}
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let db = fresh_database(backend).await;
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let app = spawn_configured(settings_with(backend, &db, extra), clock.clone()).await;
    let (tenant_id, api_key) = create_tenant(app.1.as_ref(), "Acme").await;
    unlimited(app.1.as_ref(), tenant_id).await;
    TestApp {
        clock,
        address: app.0,
        client: {
            // reqwest is built without a rustls provider of its own (aws-lc-rs needs cmake).
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        },
        api_key,
        store: app.1,
        db,
    }
}

/// Starts another node on an existing database (several nodes share it).
pub async fn spawn_on(backend: Backend, db: &TestDb) -> (String, Arc<dyn Store>) {
    spawn_with_clock(backend, db, Arc::new(SystemClock)).await
}

/// Starts a node with a given clock.
pub async fn spawn_with_clock(
    backend: Backend,
    db: &TestDb,
    clock: Arc<dyn Clock>,
) -> (String, Arc<dyn Store>) {
    spawn_configured(settings(backend, db), clock).await
}

/// Starts a node with given settings and clock.
pub async fn spawn_configured(
    settings: Settings,
    clock: Arc<dyn Clock>,
) -> (String, Arc<dyn Store>) {
    let app = Application::build_with_clock(settings, clock)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.state().store.clone();
    tokio::spawn(app.run_until_stopped());
    (address, store)
}

/// Trust levels that never get in a test's way (the default names, a million messages a day).
pub const UNLIMITED_LEVELS: &str = r#"{"levels":[{"name":"new","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000},{"name":"basic","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000},{"name":"trusted","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000},{"name":"verified","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000}]}"#;

/// Gives a tenant [`UNLIMITED_LEVELS`].
pub async fn unlimited(store: &dyn Store, tenant_id: Uuid) {
    store
        .put_trust_levels(tenant_id, UNLIMITED_LEVELS, 0)
        .await
        .unwrap();
}

/// Creates a tenant as the operator CLI does; returns its id and first key.
pub async fn create_tenant(store: &dyn Store, name: &str) -> (Uuid, String) {
    let created = tenants::create(store, name, SystemClock.now_ms(), &mut rand::rngs::OsRng)
        .await
        .unwrap();
    (
        created.tenant_id,
        created.api_key.expose_secret().to_owned(),
    )
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` and reads its JSON body.
    pub async fn get_json(&self, path: &str, key: &str) -> serde_json::Value {
        self.get(path, key).await.json().await.unwrap()
    }

    pub async fn post_json(
        &self,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a problem JSON response with `status` and `code`; returns the document.
pub async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(
        resp.status().as_u16(),
        status,
        "unexpected status for expected code {code}"
    );
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["type"], format!("urn:cloak:problem:{code}"));
    assert!(body["title"].is_string(), "{body}");
    body
}

/// Tests of `fn(Backend, MailboxStorage)` on both backends, with durable and memory-only
/// mailboxes.
#[macro_export]
macro_rules! storage_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite, cloak_proto::tenants::MailboxStorage::Durable).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres, cloak_proto::tenants::MailboxStorage::Durable).await
                }
            )*
        }
        mod sqlite_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite, cloak_proto::tenants::MailboxStorage::Memory).await
                }
            )*
        }
        mod postgres_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres, cloak_proto::tenants::MailboxStorage::Memory).await
                }
            )*
        }
    };
}

/// A new tenant straight in the store (with one API key), for store-level tests.
pub async fn store_tenant(store: &dyn Store) -> Uuid {
    let id = Uuid::new_v4();
    let tenant = cloak_api::store::NewTenant {
        id,
        name: "T".into(),
        created_at_ms: 1,
    };
    let key = cloak_api::services::api_keys::generate(id, "initial", 1, &mut rand::rngs::OsRng);
    store.create_tenant(&tenant, &key.record).await.unwrap();
    id
}

/// Property tests (plain `#[test]`s that run their own runtime, so proptest can shrink a
/// failing case) on both storage backends.
#[macro_export]
macro_rules! property_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::helpers::Backend::Postgres)
                }
            )*
        }
    };
}

/// Runs each listed `async fn(Backend)` as two tests: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}
