//! The billing console over HTTP, per role: the dashboard's figures against the ledger,
//! wallet search and the filtered ledger with its CSV, owners' settings forms with
//! mistakes marked beside their fields, and account management.

use cloak_api::services::insights::date_of;
use cloak_api::store::DAY_MS;
use serde_json::Value;
use uuid::Uuid;

use crate::backend_tests;
use crate::console_helpers::{
    Console, chart_values, console_as, location, number_of, rows, set_up_and_sign_in, text_of,
};
use crate::helpers::{Backend, TestApp, spawn_app};

fn today(app: &TestApp) -> String {
    date_of(app.clock_ms().div_euclid(DAY_MS))
}

/// Every ledger entry of the wallets, through the API.
async fn ledger_of(app: &TestApp, wallets: &[String]) -> Vec<Value> {
    let mut all = Vec::new();
    for w in wallets {
        all.extend(app.ledger(w).await);
    }
    all
}

async fn the_dashboard_adds_up_the_ledger(backend: Backend) {
    let app = spawn_app(backend).await;
    app.price_only(&[("text_message", 2)]).await;
    let (alice, _bob, conv) = app.pair().await;
    app.grant("tenant", 100).await;
    app.grant(&alice.user_id.to_string(), 50).await;
    for _ in 0..3 {
        let sent = app
            .send(&alice, conv, 1, Uuid::new_v4(), b"ciphertext")
            .await;
        assert!(sent.status().is_success(), "{}", sent.status());
    }
    let wallets = ["tenant".to_owned(), alice.user_id.to_string()];
    let ledger = ledger_of(&app, &wallets).await;
    let sum = |kind: &str| -> i64 {
        ledger
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["delta"].as_i64().unwrap())
            .sum()
    };
    let spent = -sum("message");
    let granted = sum("grant");
    assert_eq!((spent, granted), (6, 150), "the ledger the dashboard sums");
    let balance = app.balance("tenant").await + app.balance(&wallets[1]).await;

    let viewer = console_as(&app, "vera@example.test", "viewer").await;
    let (status, page) = viewer.get("/console").await;
    assert_eq!(status, 200);
    assert_eq!(number_of(&page, "total-spent"), spent);
    assert_eq!(number_of(&page, "total-granted"), granted);
    assert_eq!(number_of(&page, "total-purchased"), 0);
    assert_eq!(number_of(&page, "total-balance"), balance);
    assert_eq!(number_of(&page, "total-wallets"), 2);

    let day = rows(&page, &format!("data-date=\"{}\"", today(&app)));
    assert_eq!(
        day,
        vec![vec![
            today(&app),
            spent.to_string(),
            granted.to_string(),
            balance.to_string()
        ]],
        "today's row: spent, added, balance at the end"
    );
    let spend = chart_values(&page, "chart-spend");
    assert_eq!(spend.len(), 30, "one bar per day");
    assert_eq!(spend.iter().sum::<i64>(), spent);
    assert_eq!(spend.last(), Some(&spent), "all of it today");
    let line = chart_values(&page, "chart-balance");
    assert_eq!(line.last(), Some(&balance));
    assert_eq!(line[0], 0, "nothing a month ago");
    assert_eq!(
        rows(&page, "data-action=\"text_message\""),
        vec![vec![
            "Text messages".to_owned(),
            spent.to_string(),
            "3".into()
        ]]
    );
    assert_eq!(chart_values(&page, "chart-actions"), vec![spent]);
    let top = rows(&page, "class=\"spender\"");
    assert_eq!(top.len(), 1);
    assert_eq!(top[0][0], "alice");
    assert_eq!(top[0][2], spent.to_string());
    assert!(!page.contains("id=\"grant-form\""), "viewers do not grant");

    let (_, quarter) = viewer.get("/console?days=90").await;
    assert_eq!(chart_values(&quarter, "chart-spend").len(), 90);
    assert_eq!(number_of(&quarter, "total-spent"), spent);

    let admin = console_as(&app, "bill@example.test", "billing_admin").await;
    let (_, page) = admin.get("/console").await;
    assert!(page.contains("id=\"grant-form\""));
    let done = admin
        .post(
            "/console/grant",
            &[
                ("wallet", "tenant".into()),
                ("delta", "25".into()),
                ("reason", "goodwill".into()),
            ],
        )
        .await;
    assert_eq!(done.status(), 303);
    let (_, page) = admin.get("/console").await;
    assert_eq!(number_of(&page, "total-granted"), granted + 25);
    assert_eq!(number_of(&page, "total-balance"), balance + 25);
}

async fn wallets_are_found_and_their_ledger_filtered_and_exported(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.create_user("ann-1").await.to_string();
    let bob = app.create_user("bob-2").await.to_string();
    for credits in [10, 20, 30] {
        app.grant(&ann, credits).await;
    }
    for _ in 0..52 {
        app.grant(&bob, 1).await;
    }
    let viewer = console_as(&app, "vera@example.test", "viewer").await;

    let (status, found) = viewer.get("/console/wallets?q=ANN").await;
    assert_eq!(status, 200);
    let listed = rows(&found, "class=\"wallet\"");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0][0], "ann-1");
    assert_eq!(listed[0][2], "60");
    let (_, all) = viewer.get("/console/wallets?sort=balance_asc").await;
    let names: Vec<_> = rows(&all, "class=\"wallet\"")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, ["bob-2", "ann-1"]);
    let (_, none) = viewer.get("/console/wallets?q=nobody").await;
    assert!(rows(&none, "class=\"wallet\"").is_empty());

    // Bob's 52 entries: 50 newest first, then the rest behind the cursor.
    let (status, page) = viewer.get(&format!("/console/wallets/{bob}")).await;
    assert_eq!(status, 200);
    assert_eq!(number_of(&page, "balance"), 52);
    assert_eq!(text_of(&page, "external-id"), "bob-2");
    let first = page
        .split("class=\"entry\" data-id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse::<i64>().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(first.len(), 50);
    assert!(first.windows(2).all(|w| w[0] > w[1]), "newest first");
    let older =
        crate::console_helpers::attr_after(&page, "id=\"older\" href=\"").replace("&amp;", "&");
    let (_, rest) = viewer.get(&older).await;
    let second = rest.matches("class=\"entry\"").count();
    assert_eq!(second, 2);
    assert!(!rest.contains("id=\"older\""), "the last page");

    // Filters, and the CSV of exactly the filtered rows (not paged).
    let day = today(&app);
    let (_, grants) = viewer
        .get(&format!(
            "/console/wallets/{ann}?kind=grant&from={day}&to={day}"
        ))
        .await;
    assert_eq!(grants.matches("class=\"entry\"").count(), 3);
    let (_, none) = viewer
        .get(&format!("/console/wallets/{ann}?kind=purchase"))
        .await;
    assert_eq!(none.matches("class=\"entry\"").count(), 0);
    let yesterday = date_of(app.clock_ms().div_euclid(DAY_MS) - 1);
    let (_, before) = viewer
        .get(&format!("/console/wallets/{ann}?to={yesterday}"))
        .await;
    assert_eq!(before.matches("class=\"entry\"").count(), 0);

    let csv = viewer
        .get_raw(&format!(
            "/console/wallets/{bob}/ledger.csv?kind=grant&from={day}"
        ))
        .await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let delta = headers.iter().position(|h| h == "delta").unwrap();
    let records: Vec<_> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 52, "every filtered row, past the page size");
    assert!(records.iter().all(|r| &r[delta] == "1"));
    let empty = viewer
        .get_raw(&format!("/console/wallets/{bob}/ledger.csv?to={yesterday}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(empty.lines().count(), 1, "the header only");

    let (status, bad) = viewer
        .get(&format!("/console/wallets/{ann}?from=yesterday"))
        .await;
    assert_eq!(status, 400);
    assert!(bad.contains("is not a date"));
    let (status, _) = viewer
        .get(&format!("/console/wallets/{ann}?kind=bribe"))
        .await;
    assert_eq!(status, 400);
    let (status, _) = viewer
        .get(&format!("/console/wallets/{}", Uuid::new_v4()))
        .await;
    assert_eq!(status, 404);
    let old = viewer
        .get_raw(&format!("/console/ledger?wallet={ann}"))
        .await;
    assert_eq!(old.status(), 303);
    assert_eq!(location(&old), format!("/console/wallets/{ann}"));
}

fn level(name: &str, window_secs: &str) -> Vec<(&'static str, String)> {
    vec![
        ("rows", "1".into()),
        ("name.0", name.into()),
        ("max_attachment.0", "medium".into()),
        ("messages_per_window.0", "10".into()),
        ("window_secs.0", window_secs.into()),
        ("invites_per_day.0", "5".into()),
        ("new_contacts_per_day.0", "6".into()),
        ("calls_per_hour.0", "7".into()),
        ("promote_after_secs.0", String::new()),
    ]
}

async fn owners_change_settings_with_mistakes_marked(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = console_as(&app, "olive@example.test", "owner").await;
    let prices_before: Value = app.get_json("/v1/prices", &app.api_key).await;
    let mut prices: Vec<(&str, String)> = [
        "text_message",
        "attachment_small",
        "attachment_medium",
        "attachment_large",
        "edit",
        "delete",
        "call_minute",
        "invite_redemption",
        "group_commit",
        "message_view",
    ]
    .into_iter()
    .map(|k| (k, "1".to_owned()))
    .collect();
    prices[0].1 = "-1".into();
    prices[3].1 = "lots".into();
    let refused = owner.post("/console/prices", &prices).await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.unwrap();
    for field in ["text_message", "attachment_large"] {
        assert!(
            page.contains(&format!(
                "aria-invalid=\"true\" aria-describedby=\"{field}-error\""
            )),
            "{field} is marked"
        );
        assert!(page.contains(&format!("id=\"{field}-error\"")));
    }
    assert!(
        !page.contains("aria-describedby=\"edit-error\""),
        "only the mistakes"
    );
    assert!(page.contains("value=\"lots\""), "what was typed stays");
    let after: Value = app.get_json("/v1/prices", &app.api_key).await;
    assert_eq!(after, prices_before, "nothing saved");
    prices[0].1 = "3".into();
    prices[3].1 = "9".into();
    let saved = owner.post("/console/prices", &prices).await;
    assert_eq!(saved.status(), 303);
    assert!(location(&saved).starts_with("/console/prices?ok="));
    let after: Value = app.get_json("/v1/prices", &app.api_key).await;
    assert_eq!(
        (
            after["text_message"].as_i64(),
            after["attachment_large"].as_i64()
        ),
        (Some(3), Some(9))
    );

    let refused = owner
        .post("/console/trust-levels", &level("new", "soon"))
        .await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("id=\"window_secs.0-error\"")
    );
    let refused = owner
        .post("/console/trust-levels", &level("New Level!", "60"))
        .await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("id=\"name.0-error\"")
    );
    let saved = owner
        .post("/console/trust-levels", &level("new", "60"))
        .await;
    assert_eq!(saved.status(), 303);
    let levels: Value = app.get_json("/v1/trust-levels", &app.api_key).await;
    let levels = levels["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 1);
    assert_eq!(levels[0]["name"], "new");
    assert_eq!(levels[0]["window_secs"], 60);
    assert_eq!(levels[0]["max_attachment"], "medium");
    assert_eq!(levels[0]["calls_per_hour"], 7);

    let pack = |currency: &str| {
        vec![
            ("rows", "1".to_owned()),
            ("payer", "users".into()),
            ("low_balance_threshold", "10".into()),
            ("id.0", "starter".into()),
            ("name.0", "Starter".into()),
            ("credits.0", "100".into()),
            ("amount.0", "500".into()),
            ("currency.0", currency.into()),
        ]
    };
    let mut bad = pack("usd");
    bad[2].1 = "0".into();
    let refused = owner.post("/console/settings", &bad).await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("id=\"low_balance_threshold-error\"")
    );
    let refused = owner.post("/console/settings", &pack("dollars")).await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("id=\"currency.0-error\"")
    );
    let saved = owner.post("/console/settings", &pack("USD")).await;
    assert_eq!(saved.status(), 303);
    let settings: Value = app.get_json("/v1/billing/settings", &app.api_key).await;
    assert_eq!(settings["users_pay"], true);
    assert_eq!(settings["low_balance_threshold"], 10);
    assert_eq!(settings["packs"][0]["id"], "starter");
    assert_eq!(settings["packs"][0]["currency"], "usd");
    let (_, page) = owner.get("/console/settings").await;
    assert!(page.contains("id=\"payer-users\" name=\"payer\" value=\"users\" checked"));
}

async fn pages(console: &Console, wallet: &str) {
    for path in [
        "/console".to_owned(),
        "/console/wallets".into(),
        format!("/console/wallets/{wallet}"),
        "/console/prices".into(),
        "/console/trust-levels".into(),
        "/console/settings".into(),
        "/console/accounts".into(),
    ] {
        let (status, page) = console.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(page.contains("<main"), "{path}");
    }
}

async fn roles_decide_what_each_account_may_do(backend: Backend) {
    let app = spawn_app(backend).await;
    app.grant("tenant", 10).await;
    let owner = console_as(&app, "olive@example.test", "owner").await;
    let admin = console_as(&app, "bill@example.test", "billing_admin").await;
    let viewer = console_as(&app, "vera@example.test", "viewer").await;
    for c in [&owner, &admin, &viewer] {
        pages(c, "tenant").await;
    }
    let (_, page) = viewer.get("/console/prices").await;
    assert!(!page.contains("id=\"prices-form\""));
    let (_, page) = admin.get("/console/trust-levels").await;
    assert!(!page.contains("id=\"levels-form\""));
    let (_, page) = owner.get("/console/trust-levels").await;
    assert!(page.contains("id=\"levels-form\""));

    let grant = [
        ("wallet", "tenant".to_owned()),
        ("delta", "5".into()),
        ("reason", "test".into()),
    ];
    assert_eq!(viewer.post("/console/grant", &grant).await.status(), 403);
    assert_eq!(admin.post("/console/grant", &grant).await.status(), 303);
    assert_eq!(app.balance("tenant").await, 15);
    let price = [("text_message", "5".to_owned())];
    assert_eq!(admin.post("/console/prices", &price).await.status(), 403);
    assert_eq!(admin.post("/console/settings", &[]).await.status(), 403);
    let invite = [
        ("email", "new@example.test".to_owned()),
        ("role", "viewer".into()),
    ];
    assert_eq!(admin.post("/console/accounts", &invite).await.status(), 403);
    let forged = owner.with_csrf("not the token");
    assert_eq!(forged.post("/console/grant", &grant).await.status(), 403);

    // The owner invites by set-up link; the link works once.
    let created = owner.post("/console/accounts", &invite).await;
    assert_eq!(created.status(), 200);
    let page = created.text().await.unwrap();
    let url = crate::console_helpers::attr_after(
        &page,
        "id=\"setup-url\" readonly aria-label=\"Set-up link\" size=\"60\" value=\"",
    )
    .replace("&amp;", "&");
    assert!(url.contains("/console/setup?token="), "{url}");
    let newcomer = set_up_and_sign_in(&app, "new@example.test", &url).await;
    pages(&newcomer, "tenant").await;
    let again = owner.post("/console/accounts", &invite).await;
    assert_eq!(again.status(), 400, "the address is taken");

    let accounts: Value = app.get_json("/v1/console/accounts", &app.api_key).await;
    let id_of = |email: &str| -> String {
        accounts["items"]
            .as_array()
            .or(accounts.as_array())
            .unwrap()
            .iter()
            .find(|a| a["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A role change holds at once, in the session already open.
    let to_admin = [("role", "billing_admin".to_owned())];
    let changed = owner
        .post(
            &format!("/console/accounts/{}/role", id_of("vera@example.test")),
            &to_admin,
        )
        .await;
    assert_eq!(changed.status(), 303);
    assert!(location(&changed).starts_with("/console/accounts?ok="));
    assert_eq!(viewer.post("/console/grant", &grant).await.status(), 303);
    let (_, page) = owner.get("/console/accounts").await;
    let vera = rows(&page, "data-email=\"vera@example.test\"");
    assert_eq!(vera[0][1], "billing_admin");

    let own = owner
        .post(
            &format!("/console/accounts/{}/role", id_of("olive@example.test")),
            &[("role", "viewer".to_owned())],
        )
        .await;
    assert!(location(&own).starts_with("/console/accounts?error="));
    let (_, page) = owner.get("/console/accounts").await;
    assert!(page.contains("(you)"));
    assert_eq!(
        rows(&page, "data-email=\"olive@example.test\"")[0][1],
        "owner"
    );
    let bad_role = owner
        .post(
            &format!("/console/accounts/{}/role", id_of("bill@example.test")),
            &[("role", "king".to_owned())],
        )
        .await;
    assert!(location(&bad_role).starts_with("/console/accounts?error="));

    // A removed account's session ends.
    let removed = owner
        .post(
            &format!("/console/accounts/{}/remove", id_of("bill@example.test")),
            &[],
        )
        .await;
    assert_eq!(removed.status(), 303);
    let gone = admin.get_raw("/console").await;
    assert_eq!(gone.status(), 303);
    assert_eq!(location(&gone), "/console/login");
    let (_, page) = owner.get("/console/accounts").await;
    assert!(rows(&page, "data-email=\"bill@example.test\"").is_empty());
    let not_signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/console/wallets"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_signed_in.status(), 303);
}

backend_tests!(
    the_dashboard_adds_up_the_ledger,
    wallets_are_found_and_their_ledger_filtered_and_exported,
    owners_change_settings_with_mistakes_marked,
    roles_decide_what_each_account_may_do,
);
