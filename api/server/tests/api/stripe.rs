//! Stripe against the fake in `tests/fake-stripe` (which parses requests as Stripe does):
//! Checkout credits a wallet exactly once per payment; duplicates, forgeries, stale and
//! replayed webhooks change nothing; refunds and lost disputes take credits back; postpaid
//! usage reaches Stripe as batched meter events, retried through 429 and 5xx.

use cloak_fake_stripe::FakeStripe;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app_with};

const KEY: &str = "sk_test_cloak";
const WHSEC: &str = "whsec_fake";

async fn stripe_app(backend: Backend) -> (TestApp, FakeStripe) {
    let fake = FakeStripe::start(KEY, WHSEC).await;
    let app = spawn_app_with(
        backend,
        &[
            ("CLOAK_STRIPE_API_BASE", &fake.base_url),
            ("CLOAK_STRIPE_SECRET_KEY", KEY),
            ("CLOAK_STRIPE_WEBHOOK_SECRET", WHSEC),
        ],
    )
    .await;
    fake.set_webhook_url(&app.url("/v1/stripe/webhook"));
    (app, fake)
}

async fn webhook(app: &TestApp, body: &str, signature: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/stripe/webhook"))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn now_s() -> i64 {
    cloak_api::clock::Clock::now_ms(&cloak_api::clock::SystemClock) / 1000
}

async fn checkout_credits_once_and_takes_back_refunds(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let settings = json!({"packs": [{"id": "starter", "name": "Starter", "credits": 1000, "amount": 1000, "currency": "usd"}]});
    assert_eq!(
        app.put_json("/v1/billing/settings", &app.api_key, &settings)
            .await
            .status(),
        200
    );
    assert_problem(
        app.post_json(
            "/v1/billing/checkout-sessions",
            &app.api_key,
            &json!({"wallet": "tenant", "pack": "nope"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let resp = app
        .post_json(
            "/v1/billing/checkout-sessions",
            &app.api_key,
            &json!({"wallet": "tenant", "pack": "starter"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let session: Value = resp.json().await.unwrap();
    let id = session["id"].as_str().unwrap();
    assert!(
        session["url"].as_str().unwrap().starts_with(&fake.base_url),
        "{session}"
    );
    // What Stripe received, parsed Stripe's way.
    let at_stripe = fake.session(id).unwrap();
    assert_eq!(
        (
            at_stripe["amount_total"].as_i64(),
            at_stripe["currency"].as_str()
        ),
        (Some(1000), Some("usd"))
    );
    assert_eq!(at_stripe["metadata"]["pack"], "starter");
    assert_eq!(app.balance("tenant").await, 0, "nothing until paid");

    let intent = fake.complete_session(id).await.unwrap();
    assert_eq!(app.balance("tenant").await, 1000);

    // Stripe delivers the same event again (signed anew): acknowledged, credited once.
    let event: Value = json!({"id": "evt_again", "object": "event", "type": "checkout.session.completed",
        "data": {"object": fake.session(id).unwrap()}});
    let body = event.to_string();
    let first_t = now_s() - 10;
    let sig = |t: i64| format!("t={t},v1={}", cloak_fake_stripe::sign(WHSEC, t, &body));
    assert_eq!(webhook(&app, &body, &sig(first_t)).await.status(), 200);
    let again = webhook(&app, &body, &sig(first_t + 1)).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    // The very same delivery replayed: refused.
    assert_problem(
        webhook(&app, &body, &sig(first_t)).await,
        400,
        "replayed_event",
    )
    .await;
    assert_eq!(app.balance("tenant").await, 1000, "still credited once");

    // Forged (wrong secret, altered body) and stale events: 400, nothing changes.
    let (forged_body, _) = fake.signed_event(
        "checkout.session.completed",
        fake.session(id).unwrap(),
        now_s(),
    );
    let forged_sig = format!(
        "t={},v1={}",
        now_s(),
        cloak_fake_stripe::sign("whsec_attacker", now_s(), &forged_body)
    );
    assert_problem(
        webhook(&app, &forged_body, &forged_sig).await,
        400,
        "invalid_signature",
    )
    .await;
    let (good_body, good_sig) = fake.signed_event(
        "checkout.session.completed",
        fake.session(id).unwrap(),
        now_s(),
    );
    let altered = good_body.replace("checkout.session.completed", "checkout.session.completed ");
    assert_problem(
        webhook(&app, &altered, &good_sig).await,
        400,
        "invalid_signature",
    )
    .await;
    let (old_body, old_sig) = fake.signed_event(
        "charge.refunded",
        json!({"payment_intent": intent, "amount": 1000, "amount_refunded": 1000}),
        cloak_api::clock::Clock::now_ms(app.clock.as_ref()) / 1000 - 301,
    );
    assert_problem(
        webhook(&app, &old_body, &old_sig).await,
        400,
        "stale_signature",
    )
    .await;
    assert_problem(
        webhook(&app, &good_body, "").await,
        400,
        "invalid_signature",
    )
    .await;
    assert_eq!(app.balance("tenant").await, 1000);

    // A partial refund takes back its share; a lost dispute takes the rest.
    app.grant("tenant", 5).await;
    assert_eq!(fake.refund(&intent, 1000, 250).await, Some(200));
    assert_eq!(app.balance("tenant").await, 755);
    let (lost, lost_sig) = fake.signed_event("charge.dispute.closed",
        json!({"id": "dp_1", "object": "dispute", "payment_intent": intent, "status": "lost", "amount": 1000}), now_s());
    assert_eq!(webhook(&app, &lost, &lost_sig).await.status(), 200);
    assert_eq!(app.balance("tenant").await, 5);
    let kinds: Vec<String> = app
        .ledger("tenant")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["purchase", "grant", "refund", "dispute"]);

    // Unknown event types are acknowledged and ignored.
    let (other, other_sig) = fake.signed_event("customer.created", json!({"id": "cus_1"}), now_s());
    assert_eq!(webhook(&app, &other, &other_sig).await.status(), 200);
}

async fn postpaid_usage_is_reported_as_batched_meter_events(backend: Backend) {
    let (app, fake) = stripe_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    let a = app.new_device(alice).await;
    let b = app.new_device(bob).await;
    let conv = app.conversation(&a, &[&b]).await;
    let settings = json!({"postpaid": true, "stripe_customer_id": "cus_acme", "meter_event_name": "cloak_messages"});
    assert_eq!(
        app.put_json("/v1/billing/settings", &app.api_key, &settings)
            .await
            .status(),
        200
    );
    app.set_prices(2, 0).await;
    // Stripe is rate limiting and failing at first; the worker backs off and retries.
    fake.fail_next(&[429, 500, 503]);
    for _ in 0..5 {
        assert_eq!(
            app.send(&a, conv, 1, Uuid::new_v4(), b"m").await.status(),
            201
        );
    }
    assert_eq!(app.balance("tenant").await, 0, "postpaid debits no wallet");
    let mut total = 0;
    for _ in 0..200 {
        app.clock.advance_ms(60_000);
        total = fake.meter_events().iter().map(|e| e.value).sum::<i64>();
        if total == 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(total, 10, "5 messages × 2 credits, each reported once");
    let events = fake.meter_events();
    // (How many batches depends on how the sends fall between worker polls; the batching
    // itself is tested at store level in delivery_conformance.)
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e.identifier.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "each batch reported once");
    assert!(
        events
            .iter()
            .all(|e| e.customer == "cus_acme" && e.event_name == "cloak_messages")
    );
    assert!(fake.requests() >= 4, "the failures were retried");
    let mut pending = -1;
    for _ in 0..100 {
        pending = app.store.pending_meter_events().await.unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0, "every batch marked reported");
}

async fn stripe_needs_configuration(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    assert_problem(
        app.post_json(
            "/v1/billing/checkout-sessions",
            &app.api_key,
            &json!({"wallet": "tenant", "pack": "x"}),
        )
        .await,
        503,
        "stripe_not_configured",
    )
    .await;
    let resp = app
        .client
        .post(app.url("/v1/stripe/webhook"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 503, "stripe_not_configured").await;
}

backend_tests!(
    checkout_credits_once_and_takes_back_refunds,
    postpaid_usage_is_reported_as_batched_meter_events,
    stripe_needs_configuration,
);
