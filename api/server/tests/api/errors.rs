//! Bad input always gets problem JSON with a stable code: never a 500, never a panic.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, assert_problem, spawn_app};

async fn unknown_route_is_404_problem(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "route_not_found").await;
}

/// A path the server serves, under another method: 405 with `Allow`.
async fn a_wrong_method_is_405_with_allow(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.client.put(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    assert_problem(resp, 405, "method_not_allowed").await;
    let resp = app
        .client
        .delete(app.url(&format!("/v1/invites/{}/qr.png", uuid::Uuid::new_v4())))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    assert_problem(resp, 405, "method_not_allowed").await;
    let trace = reqwest::Method::from_bytes(b"TRACE").unwrap();
    let resp = app
        .client
        .request(trace, app.url("/v1/tenant"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 405, "method_not_allowed").await;
    // A path parameter must not be empty: `/v1/users/` is no user route.
    let resp = app
        .client
        .patch(app.url("/v1/users/"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "route_not_found").await;
}

async fn malformed_and_invalid_json_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "malformed_json").await;

    let resp = app
        .post_json("/v1/api-keys", &app.api_key, &json!({"name": 5}))
        .await;
    assert_problem(resp, 400, "invalid_json").await;

    let resp = app
        .post_json(
            "/v1/api-keys",
            &app.api_key,
            &json!({"name": "x", "admin": true}),
        )
        .await;
    let body = assert_problem(resp, 400, "invalid_json").await;
    assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
}

async fn validation_failures_name_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in [String::new(), "x".repeat(101)] {
        let resp = app
            .post_json("/v1/api-keys", &app.api_key, &json!({ "name": name }))
            .await;
        let body = assert_problem(resp, 400, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "name", "{body}");
        assert_eq!(body["errors"][0]["code"], "length", "{body}");
    }
}

async fn wrong_content_type_is_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&app.api_key)
        .header("content-type", "text/plain")
        .body("{\"name\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 415, "unsupported_media_type").await;
}

async fn oversized_body_is_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let big = "x".repeat(70_000); // the test server's limit is 65,536 bytes
    let resp = app
        .post_json("/v1/api-keys", &app.api_key, &json!({ "name": big }))
        .await;
    assert_problem(resp, 413, "payload_too_large").await;
}

async fn malformed_path_id_is_404_problem(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.delete("/v1/api-keys/not-a-uuid", &app.api_key).await;
    assert_problem(resp, 404, "not_found").await;
}

backend_tests!(
    a_wrong_method_is_405_with_allow,
    unknown_route_is_404_problem,
    malformed_and_invalid_json_are_400,
    validation_failures_name_the_field,
    wrong_content_type_is_415,
    oversized_body_is_413,
    malformed_path_id_is_404_problem,
);
