//! Tenant API keys over REST: list, create (shown once), revoke (fails at once everywhere).

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, assert_problem, create_tenant, spawn_app, spawn_on};

async fn tenant_lists_its_keys_without_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get("/v1/api-keys", &app.api_key).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(&app.api_key),
        "a listing must never contain a secret"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "initial");
    assert!(
        app.api_key
            .starts_with(items[0]["prefix"].as_str().unwrap())
    );
    assert!(items[0]["revoked_at"].is_null());
    assert!(
        items[0]["last_used_at"].is_string(),
        "the key was just used: {body}"
    );
}

async fn missing_bogus_and_malformed_credentials_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .get(app.url("/v1/api-keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_problem(resp, 401, "missing_credentials").await;

    let well_formed_unknown = format!("ck_{}", "A".repeat(43));
    for key in [well_formed_unknown.as_str(), "ck_short", "not-a-key"] {
        let resp = app.get("/v1/api-keys", key).await;
        assert_problem(resp, 401, "invalid_api_key").await;
    }
    let resp = app
        .client
        .get(app.url("/v1/api-keys"))
        .header("authorization", format!("Basic {}", app.api_key))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "missing_credentials").await;
}

async fn created_key_is_shown_once_and_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .post_json("/v1/api-keys", &app.api_key, &json!({"name": "ci runner"}))
        .await;
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.unwrap();
    let secret = created["api_key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ck_") && secret.len() == 46, "{secret}");
    assert_eq!(created["name"], "ci runner");

    let resp = app.get("/v1/api-keys", &secret).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&secret));
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"ci runner") && names.contains(&"initial"));
}

async fn revoked_key_fails_at_once_on_every_node(backend: Backend) {
    let app = spawn_app(backend).await;
    let (node_b, _) = spawn_on(backend, &app.db).await;
    let created: serde_json::Value = app
        .post_json("/v1/api-keys", &app.api_key, &json!({"name": "doomed"}))
        .await
        .json()
        .await
        .unwrap();
    let doomed = created["api_key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let via_b = |key: &str| {
        app.client
            .get(format!("{node_b}/v1/api-keys"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(via_b(doomed).await.unwrap().status(), 200);

    let resp = app
        .delete(&format!("/v1/api-keys/{id}"), &app.api_key)
        .await;
    assert_eq!(resp.status(), 204);
    assert_problem(
        app.get("/v1/api-keys", doomed).await,
        401,
        "invalid_api_key",
    )
    .await;
    assert_problem(via_b(doomed).await.unwrap(), 401, "invalid_api_key").await;

    // Revoking again is idempotent; the listing shows when it happened.
    let resp = app
        .delete(&format!("/v1/api-keys/{id}"), &app.api_key)
        .await;
    assert_eq!(resp.status(), 204);
    let body: serde_json::Value = app
        .get("/v1/api-keys", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    let doomed_row = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert!(doomed_row["revoked_at"].is_string());
}

async fn the_last_active_key_cannot_be_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let body: serde_json::Value = app
        .get("/v1/api-keys", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    let id = body["items"][0]["id"].as_str().unwrap().to_owned();
    let resp = app
        .delete(&format!("/v1/api-keys/{id}"), &app.api_key)
        .await;
    assert_problem(resp, 409, "last_active_key").await;
    assert_eq!(app.get("/v1/api-keys", &app.api_key).await.status(), 200);
}

async fn tenants_cannot_see_or_revoke_each_others_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, other_key) = create_tenant(app.store.as_ref(), "Other").await;
    // A second key so that revocation is not refused as the last one.
    app.post_json("/v1/api-keys", &other_key, &json!({"name": "spare"}))
        .await;
    let other: serde_json::Value = app
        .get("/v1/api-keys", &other_key)
        .await
        .json()
        .await
        .unwrap();
    let mine: serde_json::Value = app
        .get("/v1/api-keys", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["items"].as_array().unwrap().len(), 2);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    for key in other["items"].as_array().unwrap() {
        let id = key["id"].as_str().unwrap();
        let resp = app
            .delete(&format!("/v1/api-keys/{id}"), &app.api_key)
            .await;
        assert_problem(resp, 404, "not_found").await;
    }
    assert_eq!(app.get("/v1/api-keys", &other_key).await.status(), 200);
}

backend_tests!(
    tenant_lists_its_keys_without_secrets,
    missing_bogus_and_malformed_credentials_are_401,
    created_key_is_shown_once_and_works,
    revoked_key_fails_at_once_on_every_node,
    the_last_active_key_cannot_be_revoked,
    tenants_cannot_see_or_revoke_each_others_keys,
);
