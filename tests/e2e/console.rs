//! The billing console in a real browser (headless Chromium through chromedriver): set up,
//! sign in, grant and buy credits through (fake) Stripe Checkout, a viewer who cannot grant,
//! lockout; and every page for every role (owner, billing admin, viewer), with the
//! dashboard's numbers read from the page and checked against the ledger, labelled inputs,
//! a layout that fits a phone, and a screenshot of each page kept as a test artifact.

use cloak_e2e::webdriver::Browser;
use cloak_e2e::{ServerEnv, Stack, on_both_backends};
use cloak_fake_stripe::FakeStripe;
use cloak_sdk::Messenger;
use serde_json::{Value, json};

use crate::billing::{KEY, WHSEC, balance, tenant_put, with_stripe};

/// `embedded` or `postgres`, for artifact names.
fn backend(env: &ServerEnv) -> &'static str {
    if env.vars.iter().any(|(k, _)| k == "CLOAK_DATABASE_URL") {
        "postgres"
    } else {
        "embedded"
    }
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
    // The URL changes before the new page has loaded: wait for its header.
    browser.wait_text("Signed in as").await;
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
    browser
        .save_screenshot(&format!("console-{}-after-checkout", backend(&env)))
        .await;

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
        page.contains("id=\"total-balance\"") && !browser.has("#grant-form").await,
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

async fn tenant_get(stack: &Stack, path: &str) -> Value {
    stack
        .tenant
        .http
        .get(format!("{}{path}", stack.tenant.base_url))
        .bearer_auth(&stack.tenant.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The pages of the console, by the name their screenshots get.
const PAGES: &[(&str, &str)] = &[
    ("dashboard", "/console"),
    ("wallets", "/console/wallets"),
    ("wallet", "/console/wallets/tenant"),
    ("prices", "/console/prices"),
    ("trust-levels", "/console/trust-levels"),
    ("settings", "/console/settings"),
    ("accounts", "/console/accounts"),
];

/// Accessibility the browser can check: one `main` and one `h1`, a label (or aria-label) on
/// every control a person fills, a name on every button, an `alt`-free page (no images but
/// SVG charts, each with a title), and nothing wider than the window.
const A11Y: &str = r#"
const problems = [];
if (document.querySelectorAll('main').length !== 1) problems.push('main');
if (document.querySelectorAll('h1').length !== 1) problems.push('h1');
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  if (el.labels.length === 0 && !el.getAttribute('aria-label')) problems.push('unlabelled ' + (el.id || el.name));
}
for (const b of document.querySelectorAll('button')) {
  if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('unnamed button');
}
for (const svg of document.querySelectorAll('svg')) {
  if (!svg.getAttribute('aria-labelledby') && !svg.querySelector('title')) problems.push('untitled chart ' + svg.id);
}
if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push('wider than the window: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
const skip = document.querySelector('a.skip');
if (!skip || document.querySelector('a, button, input, select') !== skip) problems.push('the skip link is not first');
return problems;
"#;

/// Visits every page as whoever is signed in: each renders, passes [`A11Y`] at desktop and
/// phone width, and is saved as a screenshot.
async fn visit_all(browser: &Browser, name: &str) {
    for (width, height, size) in [(1000, 1000, "desktop"), (390, 844, "phone")] {
        browser.set_size(width, height).await;
        for (page, path) in PAGES {
            browser.goto(&browser_url(browser, path).await).await;
            // The page is read when it has loaded (WebDriver's navigation waits for that,
            // but a screenshot just before can leave the renderer busy for a moment).
            browser.wait_text("Signed in as").await;
            let problems = browser.script(A11Y).await;
            assert_eq!(problems, json!([]), "{name} {page} at {size} width");
            browser
                .save_screenshot(&format!("console-{name}-{page}-{size}"))
                .await;
        }
    }
    browser.set_size(1000, 1000).await;
}

/// `path` on the server the browser is at.
async fn browser_url(browser: &Browser, path: &str) -> String {
    let url = browser.url().await;
    let origin_end = url[url.find("://").map_or(0, |i| i + 3)..]
        .find('/')
        .map_or(url.len(), |i| i + url.find("://").map_or(0, |i| i + 3));
    format!("{}{path}", &url[..origin_end])
}

/// The number in the element with this id, read from the rendered page.
async fn shown(browser: &Browser, id: &str) -> i64 {
    let v = browser
        .script(&format!(
            "return document.getElementById('{id}').textContent.trim();"
        ))
        .await;
    v.as_str().unwrap().parse().unwrap()
}

async fn every_page_works_for_every_role(env: ServerEnv) {
    let env = env.without_tls();
    let stack = Stack::start(&env);
    let label = backend(&env);
    tenant_put(
        &stack,
        "/v1/prices",
        json!({"text_message": 2, "attachment_small": 0, "attachment_medium": 0,
        "attachment_large": 0, "edit": 0, "delete": 0, "call_minute": 0, "invite_redemption": 0,
        "group_commit": 0, "message_view": 0}),
    )
    .await;
    let granted = stack
        .tenant
        .http
        .post(format!(
            "{}/v1/wallets/tenant/grants",
            stack.tenant.base_url
        ))
        .bearer_auth(&stack.tenant.api_key)
        .header("idempotency-key", "e2e-grant-1")
        .json(&json!({"credits": 100, "reason": "launch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 201);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    // Alice gets a wallet of her own (the tenant still pays for messages).
    let gift = stack
        .tenant
        .http
        .post(format!(
            "{}/v1/wallets/{}/grants",
            stack.tenant.base_url, alice.id
        ))
        .bearer_auth(&stack.tenant.api_key)
        .header("idempotency-key", "e2e-grant-2")
        .json(&json!({"credits": 7, "reason": "welcome"}))
        .send()
        .await
        .unwrap();
    assert_eq!(gift.status(), 201);
    let mut a = Messenger::new(stack.device_client(alice.id).await);
    let mut b = Messenger::new(stack.device_client(bob.id).await);
    b.publish_key_packages(2).await.unwrap();
    let conv = a.create_conversation(&[bob.id]).await.unwrap();
    for i in 0..3 {
        a.send_text(conv, &format!("a{i}")).await.unwrap();
    }
    b.sync().await.unwrap();
    b.send_text(conv, "b0").await.unwrap();

    // What the ledger says, through the API.
    let ledger = tenant_get(&stack, "/v1/wallets/tenant/ledger?limit=100").await;
    let entries = ledger["items"].as_array().unwrap();
    let spent: i64 = -entries
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| e["delta"].as_i64().unwrap())
        .sum::<i64>();
    assert_eq!(spent, 8, "four messages at 2 credits: {entries:?}");
    let balance_now = balance(&stack).await + 7;

    let browser = Browser::start().await;
    let roles = [
        ("owner", "olive@acme.test"),
        ("billing_admin", "bill@acme.test"),
        ("viewer", "vera@acme.test"),
    ];
    for (role, email) in roles {
        let setup = account(&stack, email, role).await;
        browser.delete_cookies().await;
        sign_up_and_in(&browser, &setup, email, "a long password 1").await;

        // The dashboard's figures, as rendered, against the ledger.
        assert_eq!(shown(&browser, "total-spent").await, spent);
        assert_eq!(shown(&browser, "total-granted").await, 107);
        assert_eq!(shown(&browser, "total-balance").await, balance_now);
        let bars = browser
            .script("return [...document.querySelectorAll('#chart-spend .bar')].map(b => Number(b.dataset.value));")
            .await;
        let bars: Vec<i64> = serde_json::from_value(bars).unwrap();
        assert_eq!((bars.len(), bars.iter().sum::<i64>()), (30, spent));
        let top = browser
            .script("return [...document.querySelectorAll('#top-spenders tr.spender')].map(r => [...r.cells].map(c => c.textContent.trim()));")
            .await;
        assert_eq!(
            top,
            json!([["alice", "Alice", "6", "3"], ["bob", "Bob", "2", "1"]]),
            "whoever paid, by the user who acted"
        );
        let text = browser
            .script("return [...document.querySelector('tr.action[data-action=text_message]').cells].map(c => c.textContent.trim());")
            .await;
        assert_eq!(text, json!(["Text messages", spent.to_string(), "4"]));

        let forms = [
            ("/console", "#grant-form", role != "viewer"),
            ("/console/prices", "#prices-form", role == "owner"),
            ("/console/trust-levels", "#levels-form", role == "owner"),
            ("/console/settings", "#settings-form", role == "owner"),
            ("/console/accounts", "#invite-form", role == "owner"),
        ];
        for (path, form, expected) in forms {
            browser.goto(&stack.server.url(path)).await;
            assert_eq!(
                browser.has(form).await,
                expected,
                "{role}: {form} on {path}"
            );
        }
        visit_all(&browser, &format!("{label}-{role}")).await;
    }

    // The viewer (signed in last) searches wallets and filters the tenant's ledger.
    browser.goto(&stack.server.url("/console/wallets")).await;
    browser.fill("#q", "ALI").await;
    browser.click("#search").await;
    browser.wait_url(|u| u.contains("q=ALI")).await;
    let found = browser
        .script("return [...document.querySelectorAll('tr.wallet')].map(r => [...r.cells].map(c => c.textContent.trim()));")
        .await;
    assert_eq!(found, json!([["alice", "Alice", "7"]]));
    browser.fill("#q", "tenant").await;
    browser.click("#search").await;
    browser.wait_url(|u| u.contains("q=tenant")).await;
    browser.click("tr.wallet a").await;
    browser
        .wait_url(|u| u.ends_with("/console/wallets/tenant"))
        .await;
    let all = browser
        .script("return document.querySelectorAll('tr.entry').length;")
        .await;
    assert_eq!(all, json!(entries.len()));
    browser
        .script("document.getElementById('kind').value = 'message'; return null;")
        .await;
    browser.click("#filter").await;
    browser.wait_url(|u| u.contains("kind=message")).await;
    let filtered = browser
        .script("return [...document.querySelectorAll('tr.entry td.delta')].map(c => Number(c.textContent));")
        .await;
    assert_eq!(
        filtered,
        json!([-2, -2, -2, -2]),
        "only the messages, newest first"
    );

    // An owner's mistake is marked beside its field, then fixed.
    let setup = account(&stack, "otto@acme.test", "owner").await;
    browser.delete_cookies().await;
    sign_up_and_in(&browser, &setup, "otto@acme.test", "a long password 2").await;
    browser.goto(&stack.server.url("/console/prices")).await;
    browser.fill("#text_message", "-5").await;
    browser
        .script("document.getElementById('prices-form').noValidate = true; return null;")
        .await;
    browser.click("#save-prices").await;
    browser.wait_text("id=\"text_message-error\"").await;
    let invalid = browser
        .script("const i = document.getElementById('text_message'); return [i.getAttribute('aria-invalid'), document.getElementById(i.getAttribute('aria-describedby')).textContent];")
        .await;
    assert_eq!(invalid[0], "true");
    assert!(invalid[1].as_str().unwrap().contains("0"), "{invalid}");
    browser
        .save_screenshot(&format!("console-{label}-prices-mistake"))
        .await;
    browser.fill("#text_message", "3").await;
    browser.click("#save-prices").await;
    browser
        .wait_url(|u| u.contains("/console/prices?ok="))
        .await;
    assert_eq!(tenant_get(&stack, "/v1/prices").await["text_message"], 3);

    // The owner invites someone; the set-up link on the page works.
    browser.goto(&stack.server.url("/console/accounts")).await;
    browser.fill("#email", "nina@acme.test").await;
    browser.click("#invite").await;
    browser.wait_text("id=\"setup-url\"").await;
    let link = browser
        .script("return document.getElementById('setup-url').value;")
        .await;
    browser.delete_cookies().await;
    sign_up_and_in(
        &browser,
        link.as_str().unwrap(),
        "nina@acme.test",
        "a long password 3",
    )
    .await;
    assert!(
        browser.has("#grant-form").await,
        "invited as a billing admin"
    );
}

on_both_backends!(
    the_console_works_in_a_real_browser,
    every_page_works_for_every_role
);
