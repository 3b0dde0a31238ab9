//! Tenant-side user management.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, assert_problem, spawn_app};

async fn users_are_created_found_updated_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .post_json(
            "/v1/users",
            &app.api_key,
            &json!({"external_id": "u-1", "display_name": " Alice "}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["display_name"], "Alice");
    assert_eq!(user["trust_level"], "new");
    assert_eq!(user["suspended"], false);
    let id = user["id"].as_str().unwrap();

    let dup = app
        .post_json(
            "/v1/users",
            &app.api_key,
            &json!({"external_id": "u-1", "display_name": "Other"}),
        )
        .await;
    assert_problem(dup, 409, "external_id_taken").await;

    let found: Value = app
        .get("/v1/users?external_id=u-1", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"][0]["id"], id);
    let none: Value = app
        .get("/v1/users?external_id=nobody", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    assert_problem(
        app.get("/v1/users", &app.api_key).await,
        400,
        "invalid_query",
    )
    .await;

    let got: Value = app
        .get(&format!("/v1/users/{id}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, user);

    let patched = app
        .client
        .patch(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(&app.api_key)
        .json(&json!({"display_name": "Alicia", "trust_level": "trusted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        (
            patched["display_name"].as_str(),
            patched["trust_level"].as_str()
        ),
        (Some("Alicia"), Some("trusted"))
    );

    let bad = app
        .client
        .patch(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(&app.api_key)
        .json(&json!({"trust_level": "godlike"}))
        .send()
        .await
        .unwrap();
    assert_problem(bad, 400, "unknown_trust_level").await;

    assert_eq!(
        app.delete(&format!("/v1/users/{id}"), &app.api_key)
            .await
            .status(),
        204
    );
    assert_problem(
        app.get(&format!("/v1/users/{id}"), &app.api_key).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.delete(&format!("/v1/users/{id}"), &app.api_key).await,
        404,
        "not_found",
    )
    .await;
}

async fn user_input_is_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({"external_id": "", "display_name": "A"}),
        json!({"external_id": "x".repeat(129), "display_name": "A"}),
        json!({"external_id": "a", "display_name": ""}),
    ] {
        let resp = app.post_json("/v1/users", &app.api_key, &body).await;
        assert_problem(resp, 400, "validation_failed").await;
    }
    let resp = app
        .post_json("/v1/users", &app.api_key, &json!({"external_id": "a"}))
        .await;
    assert_problem(resp, 400, "invalid_json").await;
}

async fn user_tokens_expire_and_die_with_suspension_or_deletion(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user("carol").await;
    let token = app.user_token(user).await;
    let key = [9u8; 32];
    let register = |token: String| {
        let app = &app;
        async move {
            app.post_json(
                "/v1/devices",
                &token,
                &json!({"identity_key": crate::identity_helpers::b64(&ed25519_dalek::SigningKey::from_bytes(&key).verifying_key().to_bytes())}),
            )
            .await
        }
    };
    // Expiry: 15 minutes.
    app.clock.advance_ms(15 * 60 * 1000);
    assert_problem(register(token.clone()).await, 401, "token_expired").await;

    let token = app.user_token(user).await;
    let suspend = |on: bool| {
        app.client
            .patch(app.url(&format!("/v1/users/{user}")))
            .bearer_auth(&app.api_key)
            .json(&json!({ "suspended": on }))
            .send()
    };
    assert_eq!(suspend(true).await.unwrap().status(), 200);
    assert_problem(register(token.clone()).await, 401, "user_suspended").await;
    let mint = app
        .client
        .post(app.url(&format!("/v1/users/{user}/tokens")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_problem(mint, 409, "user_suspended").await;
    assert_eq!(suspend(false).await.unwrap().status(), 200);
    assert_eq!(register(token.clone()).await.status(), 201);

    assert_eq!(
        app.delete(&format!("/v1/users/{user}"), &app.api_key)
            .await
            .status(),
        204
    );
    assert_problem(register(token).await, 401, "invalid_token").await;
    assert_problem(
        register("cu_forged.token".to_owned()).await,
        401,
        "invalid_token",
    )
    .await;
}

backend_tests!(
    users_are_created_found_updated_and_deleted,
    user_input_is_validated,
    user_tokens_expire_and_die_with_suspension_or_deletion,
);
