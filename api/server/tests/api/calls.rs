//! `POST /v1/calls/turn-credentials`: coturn REST-API credentials, gated by trust level,
//! rate-limited and charged per call minute; checked against a real coturn.

use base64::Engine as _;
use cloak_api::clock::Clock as _;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_app_with};
use crate::identity_helpers::TestDevice;

const SECRET: &str = "turn-shared-secret-for-tests";

async fn spawn_with_turn(backend: Backend, ttl: &str) -> TestApp {
    spawn_app_with(
        backend,
        &[
            (
                "CLOAK_TURN_URIS",
                "turn:127.0.0.1:3478?transport=udp, stun:127.0.0.1:3478",
            ),
            ("CLOAK_TURN_SECRET", SECRET),
            ("CLOAK_TURN_TTL_SECS", ttl),
        ],
    )
    .await
}

async fn device(app: &TestApp) -> TestDevice {
    let user = app.create_user("caller").await;
    app.new_device(user).await
}

async fn credentials(app: &TestApp, d: &TestDevice) -> reqwest::Response {
    app.client
        .post(app.url("/v1/calls/turn-credentials"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap()
}

async fn set_calls_per_hour(app: &TestApp, calls: u32) {
    let mut levels = json!({"levels": cloak_api::services::limits::default_levels()});
    for l in levels["levels"].as_array_mut().unwrap() {
        l["calls_per_hour"] = json!(calls);
    }
    let resp = app
        .client
        .put(app.url("/v1/trust-levels"))
        .bearer_auth(&app.api_key)
        .json(&levels)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn expected_password(username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn credentials_follow_the_turn_rest_api_scheme(backend: Backend) {
    let app = spawn_with_turn(backend, "300").await;
    let d = device(&app).await;
    let resp = credentials(&app, &d).await;
    assert_eq!(resp.status(), 200);
    let c: Value = resp.json().await.unwrap();
    let username = c["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, d.user_id.to_string());
    let now = app.clock.now_ms() / 1000;
    assert_eq!(expiry.parse::<i64>().unwrap(), now + 300);
    assert_eq!(c["password"], expected_password(username));
    assert_eq!(
        c["uris"],
        json!(["turn:127.0.0.1:3478?transport=udp", "stun:127.0.0.1:3478"])
    );
    assert_eq!(c["ttl_secs"], 300);
    // Exactly these fields.
    assert_eq!(c.as_object().unwrap().len(), 4, "{c}");
    // Without a token: 401; on a server without TURN: 503 with a clear code.
    let anonymous = app
        .client
        .post(app.url("/v1/calls/turn-credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let plain = spawn_app(backend).await;
    let d = device(&plain).await;
    assert_problem(credentials(&plain, &d).await, 503, "turn_not_configured").await;
}

async fn a_level_may_forbid_calls_and_limits_them_per_hour(backend: Backend) {
    let app = spawn_with_turn(backend, "300").await;
    let d = device(&app).await;
    set_calls_per_hour(&app, 0).await;
    assert_problem(
        credentials(&app, &d).await,
        403,
        "not_allowed_at_trust_level",
    )
    .await;
    set_calls_per_hour(&app, 2).await;
    for _ in 0..2 {
        assert_eq!(credentials(&app, &d).await.status(), 200);
    }
    let refused = credentials(&app, &d).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        "\"calls\";q=2;w=3600"
    );
    assert_problem(refused, 429, "rate_limited").await;
    // An hour later there is room again (under a fresh token: the old one expired).
    app.clock.advance_ms(3_600_000);
    let mut d = d;
    d.token = app.login(&d).await;
    assert_eq!(credentials(&app, &d).await.status(), 200);
}

async fn each_grant_costs_its_call_minutes(backend: Backend) {
    let app = spawn_with_turn(backend, "150").await;
    let d = device(&app).await;
    app.price_only(&[("call_minute", 4)]).await;
    let problem = assert_problem(credentials(&app, &d).await, 402, "insufficient_credits").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("call"),
        "{problem}"
    );
    app.grant("tenant", 20).await;
    // 150 s is three started minutes: 12 credits.
    assert_eq!(credentials(&app, &d).await.status(), 200);
    assert_eq!(app.balance("tenant").await, 8);
    let ledger = app.ledger("tenant").await;
    let debit = ledger.iter().find(|e| e["kind"] == "call").unwrap();
    assert_eq!(debit["delta"], -12);
    // Renewing is a new grant, charged again; a payer short of it gets nothing.
    assert_problem(credentials(&app, &d).await, 402, "insufficient_credits").await;
    assert_eq!(app.balance("tenant").await, 8);
}

backend_tests!(
    credentials_follow_the_turn_rest_api_scheme,
    a_level_may_forbid_calls_and_limits_them_per_hour,
    each_grant_costs_its_call_minutes,
);
