//! Harness for end-to-end tests: real `cloak-api` processes on loopback, their own
//! databases, and helpers to drive them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sqlx::Connection;

pub mod listener;
pub mod lying_proxy;
pub mod tls;
pub mod webdriver;

/// This package's directory in the checkout being tested. Cargo names it at run time as at
/// build time; the run-time value wins, because builds are shared between checkouts (CI's
/// cache directory) and a binary built in another checkout would read that one's files.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Where tests keep what a person may want to look at after a run (the console's
/// screenshots): `$CLOAK_TEST_ARTIFACTS`, or `target/test-artifacts` in the workspace.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CLOAK_TEST_ARTIFACTS").map_or_else(
        || manifest_dir().join("../target/test-artifacts"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `cloak-api` binary built next to this test executable.
pub fn server_binary() -> PathBuf {
    binary("cloak-api")
}

/// A workspace binary (`cloak-api`, `cloak-chat`, `cloak-platform`) built next to this
/// test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --workspace --bins; scripts/test does)",
        bin.display()
    );
    bin
}

fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the suite with scripts/test"))
}

/// A PostgreSQL database on the test server that lives as long as this value (and every
/// [`ServerEnv`] made from it): it is dropped afterwards, so a run's disk use stays flat.
#[derive(Debug)]
pub struct PgDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside a test's runtime: the statement runs on a thread of its own.
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

/// A fresh PostgreSQL database on the test server.
pub async fn fresh_postgres() -> PgDatabase {
    let admin = required_env("CLOAK_TEST_POSTGRES_URL");
    let name = format!("cloak_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    PgDatabase { url, admin, name }
}

/// The Redis URL of the test server.
pub fn redis_url() -> String {
    required_env("CLOAK_TEST_REDIS_URL")
}

/// Environment for a server process: only what is given, plus port 0 and JSON logs.
#[derive(Debug, Clone, Default)]
pub struct ServerEnv {
    pub vars: Vec<(String, String)>,
    /// The database the servers use, kept until the last copy of this environment goes.
    database: Option<std::sync::Arc<PgDatabase>>,
}

impl ServerEnv {
    /// Embedded default (SQLite under the working directory, in-process broker), serving
    /// HTTPS with the run's test CA.
    pub fn embedded() -> Self {
        Self::plaintext().with_tls()
    }

    /// PostgreSQL + Redis, over HTTPS, on `database` (dropped when the environment goes).
    pub fn production(database: PgDatabase) -> Self {
        let mut env = Self::embedded()
            .with("CLOAK_DATABASE_URL", &database.url)
            .with("CLOAK_REDIS_URL", &redis_url());
        env.database = Some(std::sync::Arc::new(database));
        env
    }

    /// The embedded default over plain HTTP (loopback only), as `cargo run` serves it.
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// The same over plain HTTP (loopback only).
    pub fn without_tls(mut self) -> Self {
        self.vars.retain(|(k, _)| !k.starts_with("CLOAK_TLS_"));
        self
    }

    fn with_tls(self) -> Self {
        let ca = tls::test_ca();
        self.with("CLOAK_TLS_CERT", ca.cert_path.to_str().unwrap())
            .with("CLOAK_TLS_KEY", ca.key_path.to_str().unwrap())
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Runs `cloak-api` with arguments in `cwd`; every inherited `CLOAK_*` variable is removed.
pub fn cloak_command(cwd: &Path, env: &ServerEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(server_binary());
    cmd.current_dir(cwd).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CLOAK_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("CLOAK_LOG_FORMAT", "json")
        .env("CLOAK_WORKERS", "1")
        // Many tests log devices in from 127.0.0.1 against one Redis.
        .env("CLOAK_LOGIN_PER_IP_PER_MINUTE", "1000000")
        // Webhook receivers in the tests listen on 127.0.0.1.
        .env("CLOAK_WEBHOOK_ALLOW_PRIVATE", "true");
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    cmd
}

/// A running server process; killed on drop. Its log lines are kept for assertions.
pub struct ServerProcess {
    child: Child,
    pub base_url: String,
    logs: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ServerProcess {
    /// Starts `cloak-api` (serve) on 127.0.0.1 port 0 and waits until it listens.
    pub fn start(cwd: &Path, env: &ServerEnv) -> Self {
        Self::start_at(cwd, env, "127.0.0.1:0")
    }

    /// Starts on a given address (a restarted node keeps its port, so clients reconnect).
    pub fn start_at(cwd: &Path, env: &ServerEnv, bind: &str) -> Self {
        let env = env.clone().with("CLOAK_BIND", bind);
        let mut child = cloak_command(cwd, &env, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Owned by the struct from here on, so a panic below still kills and reaps it.
        let mut server = Self {
            child,
            base_url: String::new(),
            logs: rx,
            seen: Vec::new(),
        };
        loop {
            let line = server
                .logs
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!(
                        "server did not start; log so far:\n{}",
                        server.seen.join("\n")
                    )
                });
            server.seen.push(line.clone());
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "cloak-api listening" {
                server.base_url = v["fields"]["url"].as_str().unwrap().to_owned();
                return server;
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// How many `method route` requests the server has answered (any status), from the
    /// `http_requests_total` counter on `/metrics`. `route` is the route pattern, e.g.
    /// `/v1/auth/login`. Counted before the response is sent, so exact right after a call.
    pub async fn request_count(&self, method: &str, route: &str) -> u64 {
        let text = tls::http()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (method, route) = (format!("method=\"{method}\""), format!("route=\"{route}\""));
        text.lines()
            .filter_map(|l| l.strip_prefix("http_requests_total{"))
            // The last brace: route patterns have braces of their own (`{id}`).
            .filter_map(|l| l.rsplit_once('}'))
            .filter(|(labels, _)| {
                let labels: Vec<_> = labels.split(',').collect();
                labels.contains(&method.as_str()) && labels.contains(&route.as_str())
            })
            .map(|(_, value)| value.trim().parse::<u64>().unwrap())
            .sum()
    }

    /// Every log line printed so far.
    pub fn logs(&mut self) -> Vec<String> {
        while let Ok(line) = self.logs.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's resident memory, in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not exit within 15 s of SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `cloak-api` subcommand to completion; returns (status, stdout, stderr).
pub fn run_cli(
    cwd: &Path,
    env: &ServerEnv,
    args: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let out = cloak_command(cwd, env, args).output().unwrap();
    (
        out.status,
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `cloak-api tenant create --name NAME --json` → (tenant_id, api_key).
pub fn create_tenant(cwd: &Path, env: &ServerEnv, name: &str) -> (String, String) {
    let (status, stdout, stderr) =
        run_cli(cwd, env, &["tenant", "create", "--name", name, "--json"]);
    assert!(status.success(), "tenant create failed: {stderr}");
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (
        v["tenant_id"].as_str().unwrap().to_owned(),
        v["api_key"].as_str().unwrap().to_owned(),
    )
}

/// A server with a fresh tenant: the working directory, the process and the tenant's
/// backend. Fields drop in order, so the process is killed before its directory goes.
pub struct Stack {
    pub server: ServerProcess,
    pub tenant: Tenant,
    pub env: ServerEnv,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// A new device of `user` (fresh identity key), registered with a user token from the
    /// tenant and logged in.
    pub async fn device_client(&self, user: uuid::Uuid) -> cloak_sdk::DeviceClient {
        self.device_client_at(user, &self.server.base_url).await
    }

    /// Like [`device_client`](Self::device_client), through `base_url` (a proxy).
    pub async fn device_client_at(
        &self,
        user: uuid::Uuid,
        base_url: &str,
    ) -> cloak_sdk::DeviceClient {
        let token = self.tenant.user_token(user).await.token;
        let mut client = cloak_sdk::DeviceClient::new(
            crate::tls::http(),
            base_url,
            cloak_sdk::DeviceIdentity::generate_os(),
            cloak_sdk::SystemClock,
        )
        .with_tls(tls::sdk_tls())
        .unwrap();
        client.register(&token, Some("e2e")).await.unwrap();
        client.login().await.unwrap();
        client
    }

    /// A [`cloak_sdk::Cloak`] client for a new device of `user`, in memory, trusting the
    /// test CA, registered with a user token from the tenant.
    pub async fn cloak(&self, user: uuid::Uuid) -> cloak_sdk::Cloak {
        self.cloak_builder(user, &self.server.base_url)
            .build()
            .await
            .unwrap()
    }

    /// The builder behind [`cloak`](Self::cloak), to add a store or point at a proxy.
    pub fn cloak_builder(&self, user: uuid::Uuid, base_url: &str) -> cloak_sdk::CloakBuilder {
        let tenant = self.tenant.clone();
        cloak_sdk::Cloak::builder(base_url)
            .root_certificates_pem(tls::test_ca().ca_pem.clone())
            .device_name("e2e")
            .key_packages(5)
            .user_token(move || {
                let tenant = tenant.clone();
                async move { Ok(tenant.user_token(user).await.token) }
            })
    }

    /// Starts a server on `env` in a new directory and creates the tenant `Acme`.
    pub fn start(env: &ServerEnv) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(dir.path(), env);
        let (tenant_id, api_key) = create_tenant(dir.path(), env, "Acme");
        let tenant = Tenant {
            http: tls::http(),
            base_url: server.base_url.clone(),
            tenant_id: uuid::Uuid::parse_str(&tenant_id).unwrap(),
            api_key,
        };
        tenant.set_trust_levels_blocking(UNLIMITED_LEVELS);
        Self {
            server,
            tenant,
            env: env.clone(),
            dir,
        }
    }

    /// Runs one SQL statement on the server's database (SQLite file or PostgreSQL), for
    /// states a test cannot wait for, such as an invite past its expiry.
    pub async fn execute_sql(&self, statement: &'static str) {
        let url = self
            .env
            .vars
            .iter()
            .find(|(k, _)| k == "CLOAK_DATABASE_URL")
            .map(|(_, v)| v.clone());
        match url {
            Some(url) => {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query(statement).execute(&mut c).await.unwrap();
            }
            None => {
                let path = self.dir.path().join("cloak-data/cloak.db");
                let url = format!("sqlite://{}", path.display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(statement).execute(&mut c).await.unwrap();
            }
        }
    }
}

/// The tenant's backend: plain REST with the API key. Every helper asserts success.
#[derive(Clone)]
pub struct Tenant {
    pub http: reqwest::Client,
    pub base_url: String,
    pub tenant_id: uuid::Uuid,
    pub api_key: String,
}

/// Trust levels that never get in a test's way; tests of the limits set their own.
pub const UNLIMITED_LEVELS: &str = r#"{"levels":[{"name":"new","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000},{"name":"basic","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000},{"name":"trusted","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000},{"name":"verified","messages_per_window":1000000,"window_secs":86400,"max_attachment":"large","invites_per_day":1000000,"new_contacts_per_day":1000000}]}"#;

impl Tenant {
    /// `PUT /v1/trust-levels` from synchronous code (its own thread and runtime).
    pub fn set_trust_levels_blocking(&self, levels_json: &str) {
        let url = self.url("/v1/trust-levels");
        let key = self.api_key.clone();
        let body: serde_json::Value = serde_json::from_str(levels_json).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let resp = tls::http()
                    .put(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
            });
        })
        .join()
        .unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `POST /v1/users {external_id, display_name}` → the user.
    pub async fn create_user(
        &self,
        external_id: &str,
        display_name: &str,
    ) -> cloak_proto::users::User {
        let resp = self
            .http
            .post(self.url("/v1/users"))
            .bearer_auth(&self.api_key)
            .json(&serde_json::json!({
                "external_id": external_id,
                "display_name": display_name,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "create user: {}",
            resp.text().await.unwrap()
        );
        let user: cloak_proto::users::User = resp.json().await.unwrap();
        assert_eq!(user.external_id, external_id);
        assert_eq!(user.display_name, display_name);
        user
    }

    /// `POST /v1/users/{id}/tokens` → a user token (`cu_…`) for the user's devices.
    pub async fn user_token(&self, user_id: uuid::Uuid) -> cloak_proto::users::UserToken {
        let resp = self
            .http
            .post(self.url(&format!("/v1/users/{user_id}/tokens")))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "user token: {}",
            resp.text().await.unwrap()
        );
        let token: cloak_proto::users::UserToken = resp.json().await.unwrap();
        assert!(token.token.starts_with("cu_"), "user tokens start with cu_");
        token
    }

    /// `POST /v1/contacts {user_id, contact_user_id}`: makes two users contacts.
    pub async fn add_contact(&self, user_id: uuid::Uuid, contact_user_id: uuid::Uuid) {
        let resp = self
            .http
            .post(self.url("/v1/contacts"))
            .bearer_auth(&self.api_key)
            .json(&serde_json::json!({
                "user_id": user_id,
                "contact_user_id": contact_user_id,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            204,
            "add contact: {}",
            resp.text().await.unwrap()
        );
    }

    /// `DELETE /v1/devices/{id}` with the API key: the tenant revokes a device.
    pub async fn revoke_device(&self, device_id: uuid::Uuid) {
        let resp = self
            .http
            .delete(self.url(&format!("/v1/devices/{device_id}")))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            204,
            "revoke device: {}",
            resp.text().await.unwrap()
        );
    }
}

/// A clock for the SDK that starts at the wall clock's now and moves only when told.
#[derive(Debug, Clone)]
pub struct TestClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl TestClock {
    /// Starts at the current wall-clock time.
    pub fn now() -> Self {
        Self(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
            cloak_sdk::Clock::now_ms(&cloak_sdk::SystemClock),
        )))
    }

    /// Sets the time (Unix ms).
    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl cloak_sdk::Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Runs `async fn name(env: ServerEnv)` scenarios as tests on both backends:
/// `embedded::name` (SQLite, in-process broker) and `postgres::name` (PostgreSQL + Redis).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::ServerEnv::embedded()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let database = $crate::fresh_postgres().await;
                    super::$name($crate::ServerEnv::production(database)).await;
                }
            )*
        }
    };
}
