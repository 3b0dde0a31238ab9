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
    // Without a filter it lists the tenant's users.
    let all: Value = app
        .get("/v1/users", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"][0]["id"], id);
    assert_problem(
        app.get("/v1/users?external_id=", &app.api_key).await,
        400,
        "validation_failed",
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
    assert_problem(mint, 409, "suspended_user").await;
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

/// `GET /v1/users` pages through every user, oldest first, with filters.
async fn users_are_listed_in_cursor_pages_with_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..5 {
        app.create_user(&format!("list-{i}")).await;
        app.clock.advance_ms(1);
    }
    let suspended = app.create_user("list-suspended").await;
    let resp = app
        .client
        .patch(app.url(&format!("/v1/users/{suspended}")))
        .bearer_auth(&app.api_key)
        .json(&json!({"suspended": true, "trust_level": "trusted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users?limit=2&cursor={c}"),
            None => "/v1/users?limit=2".to_owned(),
        };
        let page = app.get_json(&path, &app.api_key).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|u| u["external_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "list-0",
            "list-1",
            "list-2",
            "list-3",
            "list-4",
            "list-suspended"
        ],
        "every user once, oldest first"
    );
    let only = app.get_json("/v1/users?suspended=true", &app.api_key).await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    assert_eq!(only["items"][0]["external_id"], "list-suspended");
    let trusted = app
        .get_json(
            "/v1/users?trust_level=trusted&suspended=false",
            &app.api_key,
        )
        .await;
    assert!(trusted["items"].as_array().unwrap().is_empty());
    let active = app
        .get_json("/v1/users?suspended=false&limit=500", &app.api_key)
        .await;
    assert_eq!(active["items"].as_array().unwrap().len(), 5);
    assert!(active.get("next_cursor").is_none());
    let resp = app.get("/v1/users?cursor=garbage", &app.api_key).await;
    assert_problem(resp, 400, "invalid_cursor").await;
    let resp = app.get("/v1/users?limit=0", &app.api_key).await;
    assert_problem(resp, 400, "validation_failed").await;
}

backend_tests!(
    users_are_listed_in_cursor_pages_with_filters,
    users_are_created_found_updated_and_deleted,
    user_input_is_validated,
    user_tokens_expire_and_die_with_suspension_or_deletion,
);
