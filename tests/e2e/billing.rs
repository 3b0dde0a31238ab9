//! Billing over real processes: meter events of a postpaid tenant survive a `kill -9`, and
//! the billing-admin console works in a real browser (headless Chromium via chromedriver):
//! set up, sign in, grant credits and see the ledger row, buy a pack through (fake) Stripe
//! Checkout, and a viewer cannot grant.

use cloak_e2e::webdriver::Browser;
use cloak_e2e::{ServerEnv, ServerProcess, Stack, on_both_backends};
use cloak_fake_stripe::FakeStripe;
use cloak_sdk::Messenger;
use serde_json::{Value, json};

const KEY: &str = "sk_test_e2e";
const WHSEC: &str = "whsec_e2e";

fn with_stripe(env: &ServerEnv, fake: &FakeStripe) -> ServerEnv {
    env.clone()
        .with("CLOAK_STRIPE_API_BASE", &fake.base_url)
        .with("CLOAK_STRIPE_SECRET_KEY", KEY)
        .with("CLOAK_STRIPE_WEBHOOK_SECRET", WHSEC)
        .with("CLOAK_WORKER_POLL_MS", "100")
}

async fn tenant_put(stack: &Stack, path: &str, body: Value) {
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

async fn balance(stack: &Stack) -> i64 {
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

fn hidden(source: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = source
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {source}"))
        + marker.len();
    source[start..].split('"').next().unwrap().to_owned()
}

async fn console_post(
    stack: &Stack,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(
            &cloak_e2e::tls::sdk_tls().config(),
        ))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(stack.server.url(path))
        .header("cookie", format!("cloak_console={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn account(stack: &Stack, email: &str, role: &str) -> String {
    let resp = stack
        .tenant
        .http
        .post(format!("{}/v1/console/accounts", stack.tenant.base_url))
        .bearer_auth(&stack.tenant.api_key)
        .json(&json!({"email": email, "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["setup_url"].as_str().unwrap().to_owned()
}

async fn sign_up_and_in(browser: &Browser, setup_url: &str, email: &str, password: &str) {
    browser.goto(setup_url).await;
    browser.fill("#password", password).await;
    browser.click("#set-password").await;
    browser.wait_url(|u| u.ends_with("/console/login")).await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser.click("#sign-in").await;
    browser.wait_url(|u| u.ends_with("/console")).await;
}

async fn the_console_works_in_a_real_browser(env: ServerEnv) {
    let fake = FakeStripe::start(KEY, WHSEC).await;
    fake.set_webhook_client(cloak_e2e::tls::http());
    // Over plain HTTP on loopback: Chromium keeps no Secure session cookie from a page
    // whose certificate it was told to accept rather than trust (the console's cookie is
    // Secure whenever the public URL is https).
    let env = with_stripe(&env.without_tls(), &fake);
    let stack = Stack::start(&env);
    fake.set_webhook_url(&stack.server.url("/v1/stripe/webhook"));
    tenant_put(&stack, "/v1/billing/settings",
        json!({"packs": [{"id": "starter", "name": "Starter", "credits": 1000, "amount": 900, "currency": "usd"}]})).await;
    let owner_setup = account(&stack, "owner@acme.test", "owner").await;
    let viewer_setup = account(&stack, "viewer@acme.test", "viewer").await;
    let browser = Browser::start().await;

    sign_up_and_in(
        &browser,
        &owner_setup,
        "owner@acme.test",
        "owner password 1",
    )
    .await;
    let cookie = browser.cookie("cloak_console").await.unwrap();
    assert_eq!(
        (cookie["httpOnly"].as_bool(), cookie["sameSite"].as_str()),
        (Some(true), Some("Strict")),
        "{cookie}"
    );
    // The set-up link works once.
    browser.goto(&owner_setup).await;
    browser.fill("#password", "another password").await;
    browser.click("#set-password").await;
    browser.wait_text("unknown, used or expired").await;

    // Grant credits and see the ledger row.
    browser.goto(&stack.server.url("/console")).await;
    browser.fill("#wallet", "tenant").await;
    browser.fill("#delta", "250").await;
    browser.fill("#reason", "launch bonus").await;
    browser.click("#grant").await;
    browser.wait_text("Applied +250").await;
    assert_eq!(balance(&stack).await, 250);
    browser.goto(&stack.server.url("/console/ledger")).await;
    let ledger = browser.source().await;
    assert!(
        ledger.contains("launch bonus") && ledger.contains("console:owner@acme.test"),
        "{ledger}"
    );

    // A form without the session's CSRF token is refused.
    let session = cookie["value"].as_str().unwrap().to_owned();
    let forged = console_post(
        &stack,
        "/console/grant",
        &session,
        &[
            ("csrf", "wrong"),
            ("idempotency_key", "x"),
            ("wallet", "tenant"),
            ("delta", "1000"),
            ("reason", "forged"),
        ],
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(balance(&stack).await, 250);

    // Buy a pack: to (fake) Stripe Checkout, pay, back to the console, credited by webhook.
    browser.goto(&stack.server.url("/console")).await;
    browser.click("form[action='/console/buy'] button").await;
    browser.wait_url(|u| u.starts_with(&fake.base_url)).await;
    browser.click("#pay").await;
    browser.wait_url(|u| u.contains("/console?ok=")).await;
    assert_eq!(balance(&stack).await, 1250);
    let shot = browser.screenshot().await;
    assert!(shot.starts_with(b"\x89PNG"));
    std::fs::write(stack.dir.path().join("console.png"), shot).unwrap();

    // A viewer sees balances but cannot grant, even by posting the form directly.
    browser.delete_cookies().await;
    sign_up_and_in(
        &browser,
        &viewer_setup,
        "viewer@acme.test",
        "viewer password 1",
    )
    .await;
    let page = browser.source().await;
    assert!(
        page.contains("id=\"wallets\"") && !browser.has("#grant-form").await,
        "{page}"
    );
    let csrf = hidden(&page, "csrf");
    let viewer_cookie = browser.cookie("cloak_console").await.unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = console_post(
        &stack,
        "/console/grant",
        &viewer_cookie,
        &[
            ("csrf", &csrf),
            ("idempotency_key", "v-1"),
            ("wallet", "tenant"),
            ("delta", "5"),
            ("reason", "sneaky"),
        ],
    )
    .await;
    assert_eq!(denied.status(), 403);
    assert!(denied.text().await.unwrap().contains("cannot grant"));
    assert_eq!(balance(&stack).await, 1250);

    // Five wrong passwords lock the account, even against the right one.
    for _ in 0..5 {
        let r = console_post(
            &stack,
            "/console/login",
            "",
            &[("email", "viewer@acme.test"), ("password", "guess")],
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let locked = console_post(
        &stack,
        "/console/login",
        "",
        &[
            ("email", "viewer@acme.test"),
            ("password", "viewer password 1"),
        ],
    )
    .await;
    assert_eq!(locked.status(), 403);
    assert!(
        locked
            .text()
            .await
            .unwrap()
            .contains("too many failed logins")
    );
}

on_both_backends!(
    meter_events_survive_a_restart,
    the_console_works_in_a_real_browser
);
