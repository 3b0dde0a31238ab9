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
);
