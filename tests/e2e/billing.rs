//! Billing over real processes: meter events of a postpaid tenant survive a `kill -9`.

use cloak_e2e::{ServerEnv, ServerProcess, Stack, on_both_backends};
use cloak_fake_stripe::FakeStripe;
use cloak_sdk::Messenger;
use serde_json::{Value, json};

pub(crate) const KEY: &str = "sk_test_e2e";
pub(crate) const WHSEC: &str = "whsec_e2e";

pub(crate) fn with_stripe(env: &ServerEnv, fake: &FakeStripe) -> ServerEnv {
    env.clone()
        .with("CLOAK_STRIPE_API_BASE", &fake.base_url)
        .with("CLOAK_STRIPE_SECRET_KEY", KEY)
        .with("CLOAK_STRIPE_WEBHOOK_SECRET", WHSEC)
        .with("CLOAK_WORKER_POLL_MS", "100")
}

pub(crate) async fn tenant_put(stack: &Stack, path: &str, body: Value) {
    let resp = stack
        .tenant
        .http
        .put(format!("{}{path}", stack.tenant.base_url))
        .bearer_auth(&stack.tenant.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

pub(crate) async fn balance(stack: &Stack) -> i64 {
    let v: Value = stack
        .tenant
        .http
        .get(format!("{}/v1/wallets/tenant", stack.tenant.base_url))
        .bearer_auth(&stack.tenant.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["balance"].as_i64().unwrap()
}

async fn meter_events_survive_a_restart(env: ServerEnv) {
    let fake = FakeStripe::start(KEY, WHSEC).await;
    fake.set_webhook_client(cloak_e2e::tls::http());
    let env = with_stripe(&env, &fake);
    let mut stack = Stack::start(&env);
    tenant_put(
        &stack,
        "/v1/billing/settings",
        json!({"postpaid": true, "stripe_customer_id": "cus_e2e", "meter_event_name": "messages"}),
    )
    .await;
    tenant_put(
        &stack,
        "/v1/prices",
        json!({"text_message": 3, "attachment_small": 0, "attachment_medium": 0,
        "attachment_large": 0, "edit": 0, "delete": 0, "call_minute": 0, "invite_redemption": 0}),
    )
    .await;
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let mut a = Messenger::new(stack.device_client(alice.id).await);
    let mut b = Messenger::new(stack.device_client(bob.id).await);
    b.publish_key_packages(2).await.unwrap();
    let conv = a.create_conversation(&[bob.id]).await.unwrap();
    // Stripe is down while the messages are sent: the usage waits in the outbox.
    fake.set_down(true);
    for i in 0..4 {
        a.send_text(conv, &format!("m{i}")).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(fake.meter_events().is_empty());
    stack.server.kill_hard();
    fake.set_down(false);
    stack.server = ServerProcess::start(stack.dir.path(), &env);
    for _ in 0..300 {
        if fake.meter_events().iter().map(|e| e.value).sum::<i64>() >= 12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Give a duplicate time to show up, if there were one.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let events = fake.meter_events();
    assert_eq!(
        events.iter().map(|e| e.value).sum::<i64>(),
        12,
        "4 messages × 3, once: {events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e.customer == "cus_e2e" && e.event_name == "messages")
    );
}

on_both_backends!(meter_events_survive_a_restart);
