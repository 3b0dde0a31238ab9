//! Credits: prices, charging sends in their own transaction (REST and WebSocket), concurrent
//! sends against a small balance, grants and adjustments, the ledger, low-balance webhooks.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::backend_tests;
use crate::billing_helpers::Receiver;
use crate::delivery_helpers::next_frame;
use crate::helpers::{Backend, assert_problem, spawn_app};
use crate::identity_helpers::b64;

async fn prices_and_settings_round_trip_and_validate(backend: Backend) {
    let app = spawn_app(backend).await;
    let prices: Value = app
        .get("/v1/prices", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prices["text_message"], 0, "free until priced: {prices}");
    app.set_prices(3, 7).await;
    let prices: Value = app
        .get("/v1/prices", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            prices["text_message"].as_i64(),
            prices["invite_redemption"].as_i64()
        ),
        (Some(3), Some(7))
    );
    let bad = app
        .put_json("/v1/prices", &app.api_key, &json!({"text_message": -1, "attachment_small": 0, "attachment_medium": 0,
            "attachment_large": 0, "edit": 0, "delete": 0, "call_minute": 0, "invite_redemption": 0}))
        .await;
    assert_problem(bad, 400, "validation_failed").await;

    let settings = json!({"users_pay": false, "postpaid": false, "low_balance_threshold": 5,
        "packs": [{"id": "starter", "name": "Starter", "credits": 1000, "amount": 999, "currency": "usd"}]});
    let got: Value = app
        .put_json("/v1/billing/settings", &app.api_key, &settings)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["packs"][0]["credits"], 1000);
    assert_eq!(got["low_balance_threshold"], 5);
    let postpaid_without_ids = app
        .put_json(
            "/v1/billing/settings",
            &app.api_key,
            &json!({"postpaid": true}),
        )
        .await;
    assert_problem(postpaid_without_ids, 400, "invalid_billing_settings").await;
    let dup = app
        .put_json(
            "/v1/billing/settings",
            &app.api_key,
            &json!({"packs": [
            {"id": "a", "name": "A", "credits": 1, "amount": 100, "currency": "usd"},
            {"id": "a", "name": "B", "credits": 2, "amount": 200, "currency": "usd"}]}),
        )
        .await;
    assert_problem(dup, 400, "invalid_pack").await;
}

async fn sends_are_charged_in_their_transaction(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, conv) = app.pair().await;
    app.set_prices(1, 0).await;
    // Unpriced tenants' sends were free; now the tenant's wallet pays and is empty.
    let refused = app.send(&a, conv, 1, Uuid::new_v4(), b"no credits").await;
    let problem = assert_problem(refused, 402, "insufficient_credits").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("0 credits"),
        "{problem}"
    );
    assert!(
        app.mailbox(&b, 0).await.len() == 1,
        "only the commit: nothing stored"
    );

    app.grant("tenant", 2).await;
    let first = Uuid::new_v4();
    assert_eq!(app.send(&a, conv, 1, first, b"one").await.status(), 201);
    // A retry of the same message is answered again and charged once.
    assert_eq!(app.send(&a, conv, 1, first, b"one").await.status(), 200);
    assert_eq!(app.balance("tenant").await, 1);
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"two").await.status(),
        201
    );
    assert_eq!(app.balance("tenant").await, 0);
    assert_problem(
        app.send(&a, conv, 1, Uuid::new_v4(), b"three").await,
        402,
        "insufficient_credits",
    )
    .await;
    // Control messages (receipts, typing) are free but small.
    let control = app
        .post_json(&format!("/v1/conversations/{conv}/messages"), &a.token,
            &json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "body": b64(b"read"), "class": "control"}))
        .await;
    assert_eq!(control.status(), 201);
    let big = app
        .post_json(&format!("/v1/conversations/{conv}/messages"), &a.token,
            &json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "body": b64(&[0u8; 2000]), "class": "control"}))
        .await;
    assert_problem(big, 400, "control_too_large").await;
    let bodies: Vec<Value> = app.mailbox(&b, 0).await;
    assert_eq!(bodies.len(), 4, "commit, one, two, control");

    // The WebSocket refuses alike, with the client's message id.
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
    assert_eq!(frame["code"], "insufficient_credits", "{frame}");
    assert_eq!(frame["client_msg_id"], json!(id));
    let _ = ws.close(None).await;
    let _ = ws.next().await;

    let ledger = app.ledger("tenant").await;
    let kinds: Vec<&str> = ledger.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["grant", "message", "message"]);
    assert_eq!(ledger[1]["actor"], format!("device:{}", a.id));
    assert_eq!(ledger[1]["reference"], first.to_string());

    // Where users pay, the sender's own wallet is charged.
    let settings = json!({"users_pay": true});
    assert_eq!(
        app.put_json("/v1/billing/settings", &app.api_key, &settings)
            .await
            .status(),
        200
    );
    assert_problem(
        app.send(&a, conv, 1, Uuid::new_v4(), b"mine").await,
        402,
        "insufficient_credits",
    )
    .await;
    app.grant(&a.user_id.to_string(), 1).await;
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"mine")
            .await
            .status(),
        201
    );
    assert_eq!(app.balance(&a.user_id.to_string()).await, 0);
}

async fn concurrent_sends_never_overdraw(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, _b, conv) = app.pair().await;
    app.set_prices(1, 0).await;
    app.grant("tenant", 500).await;
    let url = app.url(&format!("/v1/conversations/{conv}/messages"));
    let results: Vec<u16> = futures_util::stream::iter(0..1000)
        .map(|i| {
            let (client, url, token) = (app.client.clone(), url.clone(), a.token.clone());
            async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "body": b64(format!("m{i}").as_bytes())}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let accepted = results.iter().filter(|s| **s == 201).count();
    let refused = results.iter().filter(|s| **s == 402).count();
    assert_eq!((accepted, refused), (500, 500), "{results:?}");
    app.assert_drained_by_500_sends("tenant").await;
}

async fn grants_and_adjustments_are_idempotent_and_never_negative(backend: Backend) {
    let app = spawn_app(backend).await;
    let post = |path: String, key: Option<&'static str>, body: Value| {
        let req = app
            .client
            .post(app.url(&path))
            .bearer_auth(&app.api_key)
            .json(&body);
        let req = match key {
            Some(k) => req.header("idempotency-key", k),
            None => req,
        };
        async move { req.send().await.unwrap() }
    };
    let missing = post(
        "/v1/wallets/tenant/grants".into(),
        None,
        json!({"credits": 5, "reason": "x"}),
    )
    .await;
    assert_problem(missing, 400, "idempotency_key_required").await;
    let first = post(
        "/v1/wallets/tenant/grants".into(),
        Some("g-1"),
        json!({"credits": 5, "reason": "welcome"}),
    )
    .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post(
        "/v1/wallets/tenant/grants".into(),
        Some("g-1"),
        json!({"credits": 5, "reason": "welcome"}),
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let reused = post(
        "/v1/wallets/tenant/grants".into(),
        Some("g-1"),
        json!({"credits": 6, "reason": "other"}),
    )
    .await;
    assert_problem(reused, 409, "idempotency_key_reused").await;
    assert_eq!(app.balance("tenant").await, 5);

    let too_much = post(
        "/v1/wallets/tenant/adjustments".into(),
        Some("a-1"),
        json!({"delta": -6, "reason": "oops"}),
    )
    .await;
    assert_problem(too_much, 409, "balance_would_go_negative").await;
    let ok = post(
        "/v1/wallets/tenant/adjustments".into(),
        Some("a-2"),
        json!({"delta": -5, "reason": "correction"}),
    )
    .await;
    assert_eq!(ok.status(), 201);
    assert_eq!(app.balance("tenant").await, 0);
    let zero = post(
        "/v1/wallets/tenant/adjustments".into(),
        Some("a-3"),
        json!({"delta": 0, "reason": "x"}),
    )
    .await;
    assert_problem(zero, 400, "zero_delta").await;

    // Wallets: `tenant` or a user of this tenant only.
    assert_problem(
        app.get("/v1/wallets/nobody", &app.api_key).await,
        400,
        "invalid_wallet",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/wallets/{}", Uuid::new_v4()), &app.api_key)
            .await,
        404,
        "not_found",
    )
    .await;
    let (_, other_key) = crate::helpers::create_tenant(app.store.as_ref(), "Other").await;
    let user = app.create_user("carol").await;
    assert_problem(
        app.get(&format!("/v1/wallets/{user}"), &other_key).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.balance(&user.to_string()).await, 0);

    // Pages follow cursors; the CSV has every entry.
    for i in 0..250 {
        let key: &'static str = Box::leak(format!("bulk-{i}").into_boxed_str());
        let r = post(
            format!("/v1/wallets/{user}/grants"),
            Some(key),
            json!({"credits": 1, "reason": "=SUM(A1)"}),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    let ledger = app.ledger(&user.to_string()).await;
    assert_eq!(ledger.len(), 250);
    assert_eq!(ledger.last().unwrap()["balance_after"], 250);
    let ids: Vec<i64> = ledger.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "oldest first, no repeats"
    );
    assert_problem(
        app.get(
            &format!("/v1/wallets/{user}/ledger?cursor=bogus"),
            &app.api_key,
        )
        .await,
        400,
        "invalid_cursor",
    )
    .await;
    let csv = app
        .get(&format!("/v1/wallets/{user}/ledger.csv"), &app.api_key)
        .await;
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert_eq!(csv.lines().count(), 251, "header + entries");
    assert!(
        csv.lines().nth(1).unwrap().contains("'=SUM(A1)"),
        "formulas are defused: {}",
        csv.lines().nth(1).unwrap()
    );
}

async fn low_balance_fires_a_signed_webhook_with_retries(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, _b, conv) = app.pair().await;
    let receiver = Receiver::start(&[500]).await;
    let set: Value = app
        .put_json("/v1/webhooks", &app.api_key, &json!({"url": receiver.url}))
        .await
        .json()
        .await
        .unwrap();
    let secret = set["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let shown: Value = app
        .get("/v1/webhooks", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert!(shown.get("secret").is_none(), "the secret is shown once");
    let settings = json!({"low_balance_threshold": 2});
    assert_eq!(
        app.put_json("/v1/billing/settings", &app.api_key, &settings)
            .await
            .status(),
        200
    );
    app.set_prices(1, 0).await;
    app.grant("tenant", 3).await;
    for _ in 0..3 {
        assert_eq!(
            app.send(&a, conv, 1, Uuid::new_v4(), b"m").await.status(),
            201
        );
    }
    // 3 → 2 → 1 (crosses below 2: one event) → 0.
    let first = receiver.wait_for(1).await;
    // The first attempt got 500; the retry comes after the backoff (10 s of server time).
    app.clock.advance_ms(11_000);
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2, "one event, two attempts");
    assert_eq!(first[0].body, got[1].body);
    let event: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(event["type"], "wallet.low_balance");
    assert_eq!(
        event["data"],
        json!({"wallet": "tenant", "balance": 1, "threshold": 2})
    );
    // The signature verifies the way Stripe's does.
    let t: i64 = got[1]
        .signature
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert_eq!(
        got[1].signature,
        cloak_api::services::webhooks::signature_header(&secret, t, got[1].body.as_bytes())
    );
    // The worker records the answer just after the receiver has it: wait for the write.
    let mut log = Value::Null;
    for _ in 0..100 {
        log = app
            .get("/v1/webhooks/deliveries", &app.api_key)
            .await
            .json()
            .await
            .unwrap();
        if log["items"][0]["attempts"].as_i64() == Some(2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let d = &log["items"][0];
    assert_eq!(
        (d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some(2), Some(200)),
        "{log}"
    );
    assert!(d["delivered_at"].is_string());
}

async fn redeeming_an_invite_can_cost_credits(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.new_device(alice).await;
    let b = app.new_device(bob).await;
    app.set_prices(0, 4).await;
    let inv: Value = app
        .post_json(
            "/v1/invites",
            &app.api_key,
            &json!({"inviter_user_id": alice, "max_uses": 1, "expires_in_secs": 600}),
        )
        .await
        .json()
        .await
        .unwrap();
    let code = inv["code"].as_str().unwrap();
    let path = format!("/v1/invites/{code}/redeem");
    assert_problem(
        app.post_json(&path, &b.token, &json!({})).await,
        402,
        "insufficient_credits",
    )
    .await;
    let still: Value = app
        .get(&format!("/v1/invites/{code}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["uses"], 0, "a refused redemption uses nothing");
    app.grant("tenant", 5).await;
    assert_eq!(
        app.post_json(&path, &b.token, &json!({})).await.status(),
        200
    );
    assert_eq!(
        app.post_json(&path, &b.token, &json!({})).await.status(),
        200,
        "idempotent"
    );
    assert_eq!(app.balance("tenant").await, 1, "charged once");
    let ledger = app.ledger("tenant").await;
    assert_eq!(ledger.last().unwrap()["kind"], "invite_redemption");
}

backend_tests!(
    prices_and_settings_round_trip_and_validate,
    sends_are_charged_in_their_transaction,
    concurrent_sends_never_overdraw,
    grants_and_adjustments_are_idempotent_and_never_negative,
    low_balance_fires_a_signed_webhook_with_retries,
    redeeming_an_invite_can_cost_credits,
);
