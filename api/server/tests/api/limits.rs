//! Trust levels and rate limits (REST and WebSocket, 429 with Retry-After and RateLimit
//! headers), automatic promotion, attachment sizes by level, per-IP login limits and
//! per-tenant request limits.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::backend_tests;
use crate::delivery_helpers::next_frame;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_app_with};
use crate::identity_helpers::b64;

fn defaults() -> Value {
    json!({"levels": cloak_api::services::limits::default_levels()})
}

async fn set_levels(app: &TestApp, levels: &Value) {
    let resp = app
        .client
        .put(app.url("/v1/trust-levels"))
        .bearer_auth(&app.api_key)
        .json(levels)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

async fn a_new_users_second_message_within_ten_seconds_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    set_levels(&app, &defaults()).await;
    let (a, _b, conv) = app.pair().await;
    let first = Uuid::new_v4();
    assert_eq!(app.send(&a, conv, 1, first, b"one").await.status(), 201);
    app.clock.advance_ms(1_000);
    let refused = app.send(&a, conv, 1, Uuid::new_v4(), b"two").await;
    assert_eq!(refused.headers()["retry-after"], "9");
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        "\"messages\";q=1;w=10"
    );
    assert_eq!(refused.headers()["ratelimit"], "\"messages\";r=0;t=9");
    let problem = assert_problem(refused, 429, "rate_limited").await;
    assert_eq!(problem["retry_after_secs"], 9);
    // A retry of the accepted message is still answered as accepted.
    assert_eq!(app.send(&a, conv, 1, first, b"one").await.status(), 200);

    // The WebSocket refuses alike, with the wait in milliseconds.
    let mut ws = app.socket(&app.address, &a, 0).await;
    let id = Uuid::new_v4();
    ws.send(Message::text(
        json!({"type": "send", "conversation_id": conv,
        "client_msg_id": id, "epoch": 1, "body": b64(b"ws")})
        .to_string(),
    ))
    .await
    .unwrap();
    let frame = loop {
        let f = next_frame(&mut ws).await;
        if f["type"] == "error" {
            break f;
        }
    };
    assert_eq!(
        (frame["code"].as_str(), frame["retry_after_ms"].as_i64()),
        (Some("rate_limited"), Some(9_000)),
        "{frame}"
    );
    assert_eq!(frame["client_msg_id"], json!(id));
    let _ = ws.close(None).await;
    let _ = ws.next().await;

    app.clock.advance_ms(9_000);
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"three")
            .await
            .status(),
        201
    );
    // Receipts and typing have their own allowance.
    let control = app
        .post_json(&format!("/v1/conversations/{conv}/messages"), &a.token,
            &json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "body": b64(b"r"), "class": "control"}))
        .await;
    assert_eq!(control.status(), 201);
}

async fn levels_set_limits_attachments_and_promotion(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut levels = defaults();
    levels["levels"][0]["promote_after_secs"] = json!(86_400);
    set_levels(&app, &levels).await;
    let got: Value = app
        .get("/v1/trust-levels", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, levels);
    let bad = app
        .client
        .put(app.url("/v1/trust-levels"))
        .bearer_auth(&app.api_key)
        .json(&json!({"levels": [levels["levels"][0], levels["levels"][0]]}))
        .send()
        .await
        .unwrap();
    assert_problem(bad, 400, "invalid_trust_level").await;

    let (a, _b, conv) = app.pair().await;
    let patch = |level: &str| {
        let req = app
            .client
            .patch(app.url(&format!("/v1/users/{}", a.user_id)))
            .bearer_auth(&app.api_key)
            .json(&json!({"trust_level": level}));
        async move { req.send().await.unwrap() }
    };
    assert_problem(patch("gold").await, 400, "unknown_trust_level").await;
    let path = format!("/v1/conversations/{conv}/messages");
    let medium = |id: Uuid| {
        let body = json!({"client_msg_id": id, "epoch": 1, "body": b64(b"file"), "class": "attachment_medium"});
        let req = app
            .client
            .post(app.url(&path))
            .bearer_auth(&a.token)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    assert_problem(medium(Uuid::new_v4()).await, 403, "attachment_not_allowed").await;
    assert_eq!(patch("trusted").await.status(), 200);
    assert_eq!(
        medium(Uuid::new_v4()).await.status(),
        201,
        "trusted users send medium files"
    );
    assert_eq!(patch("new").await.status(), 200);

    // After a day with no upheld reports, `new` is promoted to `basic` (30 a minute).
    app.clock.advance_ms(86_400_000 + 1_000);
    let mut a = a;
    a.token = app.login(&a).await;
    for _ in 0..5 {
        assert_eq!(
            app.send(&a, conv, 1, Uuid::new_v4(), b"m").await.status(),
            201
        );
    }
    let user: Value = app
        .get(&format!("/v1/users/{}", a.user_id), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["trust_level"], "basic");
}

async fn login_endpoints_are_limited_per_ip(backend: Backend) {
    let app = spawn_app_with(backend, &[("CLOAK_LOGIN_PER_IP_PER_MINUTE", "3")]).await;
    let body = json!({"device_id": Uuid::new_v4()});
    for _ in 0..3 {
        let r = app.post_json("/v1/auth/challenge", "", &body).await;
        assert_ne!(r.status(), 429);
    }
    let limited = app.post_json("/v1/auth/challenge", "", &body).await;
    assert_eq!(
        limited.headers()["ratelimit-policy"],
        "\"login_ip\";q=3;w=60"
    );
    assert_problem(limited, 429, "rate_limited").await;
}

async fn each_tenant_has_a_request_rate(backend: Backend) {
    let app = spawn_app_with(backend, &[("CLOAK_TENANT_REQUESTS_PER_SEC", "5")]).await;
    for _ in 0..5 {
        assert_eq!(app.get("/v1/prices", &app.api_key).await.status(), 200);
    }
    let limited = app.get("/v1/prices", &app.api_key).await;
    assert!(
        limited.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .starts_with("\"tenant_requests\"")
    );
    assert_problem(limited, 429, "rate_limited").await;
    // Another tenant is not affected.
    let (_, other) = crate::helpers::create_tenant(app.store.as_ref(), "Other").await;
    assert_eq!(app.get("/v1/prices", &other).await.status(), 200);
}

backend_tests!(
    a_new_users_second_message_within_ten_seconds_is_refused,
    levels_set_limits_attachments_and_promotion,
    login_endpoints_are_limited_per_ip,
    each_tenant_has_a_request_rate,
);
