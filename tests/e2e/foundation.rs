//! The operator's and the tenant's first steps, on the embedded default and on
//! PostgreSQL + Redis with two nodes.

use cloak_e2e::{ServerEnv, ServerProcess, create_tenant, fresh_postgres, run_cli};
use serde_json::json;

#[tokio::test]
async fn embedded_default_starts_on_sqlite_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &ServerEnv::plaintext());
    let client = cloak_e2e::tls::http();
    let health: serde_json::Value = client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready: serde_json::Value = client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"]["backend"], "sqlite");
    assert_eq!(ready["broker"]["backend"], "in-process");
    assert!(
        dir.path().join("cloak-data/cloak.db").exists(),
        "the default database lives in ./cloak-data"
    );
    let listening = server
        .logs()
        .into_iter()
        .find(|l| l.contains("cloak-api listening"))
        .unwrap();
    assert!(listening.contains("http://127.0.0.1:"), "{listening}");
    assert!(
        server.terminate().success(),
        "SIGTERM is a graceful, successful exit"
    );
}

#[tokio::test]
async fn operator_creates_a_tenant_that_manages_its_keys_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let env = ServerEnv::embedded();
    let server = ServerProcess::start(dir.path(), &env);
    // The CLI opens the same database file while the server runs.
    let (tenant_id, key) = create_tenant(dir.path(), &env, "Acme");
    assert!(uuid::Uuid::parse_str(&tenant_id).is_ok());
    assert!(key.starts_with("ck_"));
    tenant_key_lifecycle(&server, &server, &key).await;
}

#[tokio::test]
async fn two_nodes_on_postgres_and_redis_share_tenants_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let env = ServerEnv::production(fresh_postgres().await);
    let node_a = ServerProcess::start(dir.path(), &env);
    let node_b = ServerProcess::start(dir.path(), &env);
    let client = cloak_e2e::tls::http();
    let ready: serde_json::Value = client
        .get(node_b.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"]["backend"], "postgres");
    assert_eq!(ready["broker"]["backend"], "redis");
    let (_, key) = create_tenant(dir.path(), &env, "Acme");
    tenant_key_lifecycle(&node_a, &node_b, &key).await;
}

/// Lists keys, creates one on `a`, sees it work on `b`, revokes it on `a`, and checks it
/// fails at once on `b`; a bogus key is a 401 problem.
async fn tenant_key_lifecycle(a: &ServerProcess, b: &ServerProcess, key: &str) {
    let client = cloak_e2e::tls::http();
    let list = client
        .get(a.url("/v1/api-keys"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let list: serde_json::Value = list.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let created: serde_json::Value = client
        .post(a.url("/v1/api-keys"))
        .bearer_auth(key)
        .json(&json!({"name": "backend"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = created["api_key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        client
            .get(b.url("/v1/api-keys"))
            .bearer_auth(second)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let revoke = client
        .delete(a.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    for node in [a, b] {
        let resp = client
            .get(node.url("/v1/api-keys"))
            .bearer_auth(second)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_api_key");
    }
    let bogus = client
        .get(b.url("/v1/api-keys"))
        .bearer_auth("ck_bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 401);
}

#[test]
fn cli_prints_the_committed_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, _) = run_cli(dir.path(), &ServerEnv::embedded(), &["openapi"]);
    assert!(status.success());
    let committed =
        std::fs::read_to_string(cloak_e2e::manifest_dir().join("../openapi/openapi.json")).unwrap();
    assert_eq!(
        stdout, committed,
        "regenerate with: cargo run -p cloak-api -- openapi --output openapi/openapi.json"
    );
}

#[test]
fn cli_migrate_and_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_cli(dir.path(), &ServerEnv::embedded(), &["migrate"]);
    assert!(status.success(), "{stderr}");
    assert!(dir.path().join("cloak-data/cloak.db").exists());

    let bad = ServerEnv::embedded().with("CLOAK_BIND", "not-an-address");
    let (status, _, stderr) = run_cli(dir.path(), &bad, &["serve"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("CLOAK_BIND"), "{stderr}");

    let bad_db = ServerEnv::embedded().with("CLOAK_DATABASE_URL", "mysql://nope/x");
    let (status, _, stderr) = run_cli(dir.path(), &bad_db, &["migrate"]);
    assert!(!status.success());
    assert!(stderr.contains("postgres://"), "{stderr}");

    let (status, _, stderr) = run_cli(
        dir.path(),
        &ServerEnv::embedded(),
        &["tenant", "create", "--name", "  "],
    );
    assert!(!status.success());
    assert!(stderr.contains("tenant name"), "{stderr}");
}

#[test]
fn secrets_in_configuration_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    // An unreachable PostgreSQL URL with a password: start-up fails, and must not print it.
    let env = ServerEnv::embedded().with(
        "CLOAK_DATABASE_URL",
        "postgres://cloak:hunter2secret@127.0.0.1:1/x",
    );
    let (status, stdout, stderr) = run_cli(dir.path(), &env, &["serve"]);
    assert!(!status.success());
    assert!(
        !stderr.contains("hunter2secret") && !stdout.contains("hunter2secret"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_sdk_reads_server_info_and_typed_problems() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &ServerEnv::embedded());
    let client = cloak_e2e::tls::http();
    let info = cloak_sdk::server_info(&client, &server.base_url)
        .await
        .unwrap();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    let resp = client.get(server.url("/v1/api-keys")).send().await.unwrap();
    match cloak_sdk::problem_from_response(resp).await {
        cloak_sdk::Error::Problem(p) => assert_eq!(p.code, cloak_proto::Code::MissingCredentials),
        other => panic!("expected a problem, got {other:?}"),
    }
}

/// The server terminates TLS itself with `CLOAK_TLS_CERT`/`CLOAK_TLS_KEY`: clients that
/// trust the CA connect, plain HTTP to the port fails, a client without the CA refuses
/// the certificate, and the SDK refuses plain `http` to a host that is not loopback.
#[tokio::test]
async fn the_server_serves_tls_itself_and_the_sdk_insists_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &ServerEnv::embedded());
    assert!(
        server.base_url.starts_with("https://127.0.0.1:"),
        "{}",
        server.base_url
    );
    let listening = server
        .logs()
        .into_iter()
        .find(|l| l.contains("cloak-api listening"))
        .unwrap();
    assert!(listening.contains("https://127.0.0.1:"), "{listening}");
    let info = cloak_sdk::server_info(&cloak_e2e::tls::http(), &server.base_url)
        .await
        .unwrap();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    // Plain HTTP to the TLS port gets no answer.
    let plain = server.base_url.replacen("https://", "http://", 1);
    assert!(
        cloak_e2e::tls::http()
            .get(format!("{plain}/healthz"))
            .send()
            .await
            .is_err()
    );
    // Without the test CA the certificate is refused.
    let untrusting = cloak_sdk::Tls::new().unwrap().http_client().unwrap();
    let err = cloak_sdk::server_info(&untrusting, &server.base_url)
        .await
        .unwrap_err();
    assert!(matches!(err, cloak_sdk::Error::Transport(_)), "{err:?}");
    // The Cloak builder refuses plain http to anything but loopback.
    let refused = cloak_sdk::Cloak::builder("http://chat.example")
        .user_token(|| async { Ok(String::new()) })
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(refused, cloak_sdk::Error::InvalidUrl(_)),
        "{refused:?}"
    );
}
