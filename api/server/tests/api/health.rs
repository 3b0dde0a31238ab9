use crate::backend_tests;
use crate::helpers::{Backend, spawn_app};

async fn healthz_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

async fn readyz_names_the_backends(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let (db, broker) = match backend {
        Backend::Sqlite => ("sqlite", "in-process"),
        Backend::Postgres => ("postgres", "redis"),
    };
    assert_eq!(body["database"]["backend"], db);
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["broker"]["backend"], broker);
    assert_eq!(body["broker"]["status"], "ok");
}

async fn metrics_count_requests_by_route_and_status(backend: Backend) {
    let app = spawn_app(backend).await;
    app.get("/v1/api-keys", &app.api_key).await;
    app.get("/v1/api-keys", "ck_nope").await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "http_requests_total{method=\"GET\",route=\"/v1/api-keys\",status=\"200\"}",
        "http_requests_total{method=\"GET\",route=\"/v1/api-keys\",status=\"401\"}",
        "http_request_duration_seconds_bucket{",
        "db_pool_max_connections 5",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    assert!(
        !text.contains(&app.api_key),
        "metrics must never contain a key"
    );
}

async fn metrics_cover_delivery(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    let (a, b) = (app.new_device(alice).await, app.new_device(bob).await);
    let conv = app.conversation(&a, &[&b]).await;
    assert_eq!(
        app.send(&a, conv, 1, uuid::Uuid::new_v4(), b"x")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.send(&a, conv, 0, uuid::Uuid::new_v4(), b"stale")
            .await
            .status(),
        409
    );
    let _ws = app.socket(&app.address, &b, 0).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "delivery_envelopes_stored_total",
        "delivery_commit_conflicts_total",
        "mailbox_depth_entries_bucket{le=\"10\"}",
        "ws_connected_devices",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

async fn docs_ui_is_served_without_external_assets(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("src=\"http"),
        "docs UI must not load scripts from a CDN"
    );
    assert!(
        !html.contains("href=\"http"),
        "docs UI must not load styles from a CDN"
    );
    let config = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bundle.status(),
        200,
        "the UI's script is served by the binary"
    );
}

backend_tests!(
    healthz_answers,
    readyz_names_the_backends,
    metrics_count_requests_by_route_and_status,
    docs_ui_is_served_without_external_assets,
    metrics_cover_delivery,
);
