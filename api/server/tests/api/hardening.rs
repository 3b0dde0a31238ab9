//! Regression tests for the security review (issue "Server hardening"), each tried as the
//! attacker would with a valid device or tenant key: the numbers are the review's items.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::delivery_helpers::{commit_frame, welcome_frame};
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_app_with};
use crate::identity_helpers::{TestDevice, b64};

async fn two_users(app: &TestApp) -> (TestDevice, TestDevice) {
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    (app.new_device(alice).await, app.new_device(bob).await)
}

/// A device of a new user who is a contact of `of`'s user.
async fn contact_of(app: &TestApp, of: &TestDevice, name: &str) -> TestDevice {
    let user = app.create_user(name).await;
    app.make_contacts(of.user_id, user).await;
    app.new_device(user).await
}

async fn raw_commit(app: &TestApp, by: &TestDevice, conv: Uuid, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/v1/conversations/{conv}/commits"),
        &by.token,
        &body,
    )
    .await
}

async fn epoch_of(app: &TestApp, by: &TestDevice, conv: Uuid) -> u64 {
    let c: Value = app
        .get_json(&format!("/v1/conversations/{conv}"), &by.token)
        .await;
    c["epoch"].as_u64().unwrap()
}

/// (Item 1.) A commit the server can see is no MLS commit for this group and epoch is refused and
/// leaves the epoch alone, so one member cannot wedge the conversation.
async fn garbage_commits_do_not_advance_the_epoch(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    let other = Uuid::new_v4();
    let app_message = cloak_proto::mls_frame::private_message(
        conv.as_bytes(),
        1,
        cloak_proto::mls_frame::ContentType::Application,
        b"x",
    );
    for commit in [
        b"garbage".to_vec(),
        commit_frame(other, 1),
        commit_frame(conv, 7),
        app_message,
        {
            let mut c = commit_frame(conv, 1);
            c.push(0);
            c
        },
    ] {
        let resp = raw_commit(
            &app,
            &a,
            conv,
            json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "commit": b64(&commit)}),
        )
        .await;
        assert_problem(resp, 400, "invalid_commit").await;
    }
    assert_eq!(epoch_of(&app, &a, conv).await, 1);

    // A Welcome without one secret per added device, or not a Welcome at all.
    let carol = contact_of(&app, &a, "carol").await;
    for welcome in [welcome_frame(2), b"welcome".to_vec(), commit_frame(conv, 1)] {
        let resp = raw_commit(
            &app,
            &a,
            conv,
            json!({
                "client_msg_id": Uuid::new_v4(), "epoch": 1,
                "commit": b64(&commit_frame(conv, 1)),
                "welcome": b64(&welcome), "add": [carol.id],
            }),
        )
        .await;
        assert_problem(resp, 400, "invalid_welcome").await;
    }
    assert_eq!(epoch_of(&app, &a, conv).await, 1);
    // The honest commit still goes through.
    assert_eq!(
        app.commit(&a, conv, 1, &[carol.id], &[]).await.status(),
        201
    );
    assert_eq!(epoch_of(&app, &a, conv).await, 2);
}

/// (Item 1.) Sizes: the commit and the Welcome are capped, and so are the Welcome copies one commit
/// stores (its size times the devices added).
async fn commit_and_welcome_sizes_are_capped(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("CLOAK_MAX_COMMIT_BYTES", "2000"),
            ("CLOAK_MAX_WELCOME_BYTES", "3000"),
            ("CLOAK_MAX_WELCOME_FANOUT_BYTES", "5000"),
        ],
    )
    .await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    let big_commit = cloak_proto::mls_frame::private_message(
        conv.as_bytes(),
        1,
        cloak_proto::mls_frame::ContentType::Commit,
        &[7u8; 2500],
    );
    let resp = raw_commit(
        &app,
        &a,
        conv,
        json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "commit": b64(&big_commit)}),
    )
    .await;
    let p = assert_problem(resp, 400, "commit_too_large").await;
    assert!(p["detail"].as_str().unwrap().contains("2000"), "{p}");

    let extra = [
        contact_of(&app, &a, "carol").await,
        contact_of(&app, &a, "dave").await,
    ];
    let ids: Vec<Uuid> = extra.iter().map(|d| d.id).collect();
    for (welcome, add) in [
        (cloak_proto::mls_frame::welcome(1, &[1u8; 3500]), &ids[..1]),
        (cloak_proto::mls_frame::welcome(2, &[1u8; 2800]), &ids[..]),
    ] {
        let resp = raw_commit(
            &app,
            &a,
            conv,
            json!({
                "client_msg_id": Uuid::new_v4(), "epoch": 1,
                "commit": b64(&commit_frame(conv, 1)),
                "welcome": b64(&welcome), "add": add,
            }),
        )
        .await;
        assert_problem(resp, 400, "commit_too_large").await;
    }
    assert_eq!(epoch_of(&app, &a, conv).await, 1);
}

/// (Item 1.) Commits may be priced (`group_commit`): paid once, by the committer's payer,
/// in the commit's transaction; a payer that cannot afford it gets a 402 and the epoch
/// stays.
async fn commits_can_be_priced(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    app.price_only(&[("group_commit", 2)]).await;
    let read: Value = app.get_json("/v1/prices", &app.api_key).await;
    assert_eq!(read["group_commit"], 2);
    app.grant("tenant", 3).await;
    let first = json!({
        "client_msg_id": Uuid::new_v4(),
        "epoch": 1,
        "commit": b64(&commit_frame(conv, 1)),
    });
    assert_eq!(
        raw_commit(&app, &a, conv, first.clone()).await.status(),
        201
    );
    assert_eq!(app.balance("tenant").await, 1);
    // A retry is answered as the replay it is, and not charged again.
    assert_eq!(raw_commit(&app, &a, conv, first).await.status(), 200);
    assert_eq!(app.balance("tenant").await, 1);
    assert_problem(
        app.commit(&b, conv, 2, &[], &[]).await,
        402,
        "insufficient_credits",
    )
    .await;
    assert_eq!(
        epoch_of(&app, &a, conv).await,
        2,
        "the refused commit changed nothing"
    );
}

/// (Items 1 and 6.) Commits are rate-limited per device (a retry of an accepted one still answers
/// as a replay), and a device listed twice is a 400, not a 500.
async fn commits_are_rate_limited_and_duplicates_refused(backend: Backend) {
    let app = spawn_app_with(backend, &[("CLOAK_COMMITS_PER_DEVICE_PER_MINUTE", "3")]).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await; // commit 1 of 3
    let carol = contact_of(&app, &a, "carol").await;

    let dup = raw_commit(
        &app,
        &a,
        conv,
        json!({
            "client_msg_id": Uuid::new_v4(), "epoch": 1,
            "commit": b64(&commit_frame(conv, 1)),
            "welcome": b64(&welcome_frame(2)), "add": [carol.id, carol.id],
        }),
    )
    .await;
    assert_problem(dup, 400, "duplicate_device").await;
    let dup = app.commit(&a, conv, 1, &[carol.id], &[carol.id]).await;
    assert_problem(dup, 400, "duplicate_device").await;

    let id = Uuid::new_v4();
    let body = json!({"client_msg_id": id, "epoch": 1, "commit": b64(&commit_frame(conv, 1))});
    assert_eq!(raw_commit(&app, &a, conv, body.clone()).await.status(), 201); // 2 of 3
    assert_eq!(app.commit(&a, conv, 2, &[], &[]).await.status(), 201); // 3 of 3
    let limited = app.commit(&a, conv, 3, &[], &[]).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429, "rate_limited").await;
    // A retry of the accepted commit is a replay, not a refusal.
    let replay = raw_commit(&app, &a, conv, body).await;
    assert_eq!(replay.status(), 200);
    // Another member is not limited by alice's count.
    assert_eq!(app.commit(&b, conv, 3, &[], &[]).await.status(), 201);
}

/// (Item 2.) A full mailbox leaves out only its device: the others get the message and the
/// receipt names the device skipped. A message no one could get is still a 409.
async fn a_full_mailbox_blocks_only_its_own_device(backend: Backend) {
    let app = spawn_app_with(backend, &[("CLOAK_MAILBOX_QUOTA", "3")]).await;
    let (a, b) = two_users(&app).await;
    let c = contact_of(&app, &a, "carol").await;
    let conv = app.conversation(&a, &[&b, &c]).await; // a Welcome in b's and c's mailboxes
    // b never reads; c acknowledges as it goes.
    for i in 0..2u8 {
        let resp = app.send(&a, conv, 1, Uuid::new_v4(), &[i]).await;
        let r: Value = resp.json().await.unwrap();
        assert_eq!(r["skipped"], json!([]), "{r}");
    }
    let ack = app
        .post_json("/v1/mailbox/ack", &c.token, &json!({"up_to": 3}))
        .await;
    assert_eq!(ack.status(), 200);
    let resp = app.send(&a, conv, 1, Uuid::new_v4(), b"b is full").await;
    assert_eq!(resp.status(), 201);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(
        (r["recipients"].as_u64(), &r["skipped"]),
        (Some(1), &json!([b.id]))
    );
    let got: Vec<Vec<u8>> = app
        .mailbox(&c, 0)
        .await
        .iter()
        .map(crate::delivery_helpers::body_of)
        .collect();
    assert!(got.contains(&b"b is full".to_vec()));
    assert_eq!(app.mailbox(&b, 0).await.len(), 3);

    // A commit still reaches b (commits may go past the quota, to twice it), so b stays in
    // step with the group once it reads.
    let resp = app.commit(&a, conv, 1, &[], &[]).await;
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["skipped"], json!([]), "{r}");
    assert_eq!(app.mailbox(&b, 0).await.len(), 4);

    // In a one-to-one conversation with a full mailbox, nobody would get it: 409.
    app.make_contacts(c.user_id, b.user_id).await;
    let conv2 = app.conversation(&c, &[&b]).await; // b: 5 entries now
    let full = app.send(&c, conv2, 1, Uuid::new_v4(), b"to nobody").await;
    assert_problem(full, 409, "mailbox_full").await;
}

/// (Item 2.) Revoking a device takes it out of every conversation at once: senders no longer
/// queue for it, and its mailbox is emptied.
async fn a_revoked_device_leaves_every_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let laptop = app.new_device(b.user_id).await;
    assert_eq!(app.approve(&b, &laptop, app.clock_ms()).await.status(), 200);
    let conv = app.conversation(&a, &[&b, &laptop]).await;
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"hi").await.status(),
        201
    );
    assert_eq!(
        app.delete(&format!("/v1/devices/{}", laptop.id), &b.token)
            .await
            .status(),
        204
    );
    let c: Value = app
        .get_json(&format!("/v1/conversations/{conv}"), &a.token)
        .await;
    let members: Vec<&str> = c["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["device_id"].as_str().unwrap())
        .collect();
    assert!(!members.contains(&laptop.id.to_string().as_str()), "{c}");
    let resp = app.send(&a, conv, 1, Uuid::new_v4(), b"after").await;
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["recipients"].as_u64(), Some(1), "{r}");
    let mailbox = app
        .store
        .fetch_mailbox(laptop.tenant_id, laptop.id, 0, 100, app.clock_ms())
        .await
        .unwrap();
    assert!(
        mailbox.is_empty(),
        "the revoked device's mailbox is emptied"
    );
    // Members still remove it from the MLS group: that commit is accepted.
    assert_eq!(
        app.commit(&a, conv, 1, &[], &[laptop.id]).await.status(),
        201
    );
    // A device that was never a member is still a conflict.
    let stranger = contact_of(&app, &a, "erin").await;
    assert_problem(
        app.commit(&a, conv, 2, &[], &[stranger.id]).await,
        409,
        "membership_conflict",
    )
    .await;
}

/// (Item 3.) A mailbox page is bounded in bytes as well as entries, and says more follow.
async fn mailbox_pages_are_bounded_in_bytes(backend: Backend) {
    let app = spawn_app_with(backend, &[("CLOAK_MAILBOX_PAGE_BYTES", "3000")]).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    for i in 0..6u8 {
        let resp = app.send(&a, conv, 1, Uuid::new_v4(), &[i; 1000]).await;
        assert_eq!(resp.status(), 201);
    }
    let mut after = 0u64;
    let mut pages = Vec::new();
    loop {
        let page: Value = app
            .get_json(&format!("/v1/mailbox?after={after}&limit=500"), &b.token)
            .await;
        let items = page["items"].as_array().unwrap().clone();
        let bytes: usize = items
            .iter()
            .map(|e| crate::delivery_helpers::body_of(e).len())
            .sum();
        assert!(
            bytes <= 3000,
            "a page holds at most 3000 body bytes: {bytes}"
        );
        assert!(!items.is_empty());
        after = items.last().unwrap()["seq"].as_u64().unwrap();
        pages.push(items.len());
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    // The Welcome and six bodies of 1000 bytes, three bodies a page at most.
    assert_eq!(pages.iter().sum::<usize>(), 7, "{pages:?}");
    assert!(pages.len() >= 3, "{pages:?}");
    // One entry larger than the bound still comes, alone.
    let resp = app.send(&a, conv, 1, Uuid::new_v4(), &[9u8; 5000]).await;
    assert_eq!(resp.status(), 201);
    let page: Value = app
        .get_json(&format!("/v1/mailbox?after={after}"), &b.token)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["more"], false);
}

/// (Item 3.) Conversations and invites come a page at a time, with cursors; a forged cursor is a 400.
async fn lists_are_paginated_with_cursors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(app.conversation(&a, &[&b]).await);
        app.clock.advance_ms(1);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/conversations?limit=2&cursor={c}"),
            None => "/v1/conversations?limit=2".to_owned(),
        };
        let page: Value = app.get_json(&path, &b.token).await;
        pages += 1;
        for c in page["items"].as_array().unwrap() {
            assert_eq!(c["members"].as_array().unwrap().len(), 2, "{c}");
            seen.push(c["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, made, "oldest first, each once");
    assert_eq!(pages, 3);
    for bad in ["p_1_notauuid", "le_5", "x"] {
        assert_problem(
            app.get(&format!("/v1/conversations?cursor={bad}"), &b.token)
                .await,
            400,
            "invalid_cursor",
        )
        .await;
    }
    assert_problem(
        app.get("/v1/conversations?limit=0", &b.token).await,
        400,
        "validation_failed",
    )
    .await;

    // Invites, newest first.
    for _ in 0..3 {
        app.mint_invite(a.user_id, 1).await;
        app.clock.advance_ms(1);
    }
    let first: Value = app
        .get_json(
            &format!("/v1/users/{}/invites?limit=2", a.user_id),
            &app.api_key,
        )
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get_json(
            &format!("/v1/users/{}/invites?limit=2&cursor={next}", a.user_id),
            &app.api_key,
        )
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second.get("next_cursor").is_none());
    let fp = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(a.public_key()))
    };
    for inv in first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
    {
        assert!(
            inv["url"].as_str().unwrap().ends_with(&format!("#fp={fp}")),
            "{inv}"
        );
    }
}

/// (Item 4.) A device's KeyPackage stock is capped, and claims are rate-limited per claimer.
async fn key_package_stock_and_claims_are_bounded(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("CLOAK_KEY_PACKAGE_STOCK", "3"),
            ("CLOAK_KEY_PACKAGE_CLAIMS_PER_MINUTE", "2"),
        ],
    )
    .await;
    let (a, b) = two_users(&app).await;
    let not_after = app.clock_ms() / 1000 + 86_400;
    let upload = |n: usize| {
        let packages: Vec<Value> = (0..n)
            .map(|_| {
                let r = Uuid::new_v4();
                json!({"hash_ref": b64(r.as_bytes()), "data": b64(r.as_bytes()), "not_after": not_after})
            })
            .collect();
        let body = json!({"key_packages": packages});
        let (app, token) = (&app, b.token.clone());
        async move { app.post_json("/v1/key-packages", &token, &body).await }
    };
    assert_eq!(upload(2).await.status(), 200);
    assert_problem(upload(2).await, 409, "key_package_stock_full").await;
    assert_eq!(upload(1).await.status(), 200);
    assert_problem(upload(1).await, 409, "key_package_stock_full").await;

    for _ in 0..2 {
        assert_eq!(app.claim(&a.token, b.user_id).await.status(), 200);
    }
    let limited = app.claim(&a.token, b.user_id).await;
    assert_problem(limited, 429, "rate_limited").await;
    // One package was left: the limiter kept it from being drained.
    let stock: Value = app.get_json("/v1/key-packages/stock", &b.token).await;
    assert_eq!(stock["one_time"], 1, "{stock}");
}

/// (Item 6.) Races that used to answer 500: one Idempotency-Key on two wallets at once, and one
/// invite redeemed twice at the same instant.
async fn idempotency_races_answer_as_replays(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    for i in 0..10 {
        let key = format!("race-{i}");
        let grant = |wallet: String| {
            app.client
                .post(app.url(&format!("/v1/wallets/{wallet}/grants")))
                .bearer_auth(&app.api_key)
                .header("idempotency-key", key.clone())
                .json(&json!({"credits": 5, "reason": "race"}))
                .send()
        };
        let (x, y) = tokio::join!(grant("tenant".into()), grant(a.user_id.to_string()));
        let mut statuses = vec![x.unwrap().status().as_u16(), y.unwrap().status().as_u16()];
        statuses.sort_unstable();
        assert!(
            statuses == [201, 409] || statuses == [200, 201],
            "one grant applies, the other is a replay or a reused key: {statuses:?}"
        );
    }
    let inviter = app.create_user("inviter").await;
    for _ in 0..5 {
        let inv = app.mint_invite(inviter, 5).await;
        let code = inv["code"].as_str().unwrap().to_owned();
        let path = format!("/v1/invites/{code}/redeem");
        let body = json!({});
        let redeem = || app.post_json(&path, &b.token, &body);
        let (x, y) = tokio::join!(redeem(), redeem());
        assert_eq!((x.status().as_u16(), y.status().as_u16()), (200, 200));
        let after: Value = app
            .get_json(&format!("/v1/invites/{code}"), &app.api_key)
            .await;
        assert_eq!(after["uses"], 1, "counted once: {after}");
    }
}

/// (Item 7.) Webhooks may not target loopback, private, link-local or metadata addresses, at
/// registration, nor at connect time (an endpoint whose name later resolves to one).
async fn webhooks_cannot_reach_private_addresses(backend: Backend) {
    let app = spawn_app_with(backend, &[("CLOAK_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://10.0.0.8/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let resp = app
            .client
            .put(app.url("/v1/webhooks"))
            .bearer_auth(&app.api_key)
            .json(&json!({"url": url}))
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "webhook_target_not_allowed").await;
    }
    // An endpoint stored as if its name had resolved elsewhere at registration (DNS
    // rebinding): delivery refuses to connect, and the receiver sees nothing.
    let receiver = crate::billing_helpers::Receiver::start(&[]).await;
    app.store
        .set_webhook(
            &cloak_api::store::WebhookEndpoint {
                tenant_id: a_tenant(&app).await,
                url: receiver.url.replace("127.0.0.1", "localhost"),
                secret: "whsec_x".into(),
            },
            app.clock_ms(),
        )
        .await
        .unwrap();
    let settings = json!({"low_balance_threshold": 2});
    assert_eq!(
        app.put_json("/v1/billing/settings", &app.api_key, &settings)
            .await
            .status(),
        200
    );
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    app.set_prices(1, 0).await;
    app.grant("tenant", 2).await;
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"m").await.status(),
        201
    );
    let mut attempted = false;
    for _ in 0..100 {
        let log: Value = app.get_json("/v1/webhooks/deliveries", &app.api_key).await;
        if let Some(d) = log["items"].as_array().and_then(|i| i.first())
            && d["attempts"].as_i64() >= Some(1)
        {
            assert!(d["delivered_at"].is_null(), "{log}");
            assert!(d["last_status"].is_null(), "no connection was made: {log}");
            attempted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(attempted, "the worker tried the delivery");
    assert!(receiver.received().is_empty());
}

/// (Item 5.) A device holds a bounded number of sockets (a new one closes the oldest), and a
/// socket that floods frames is read more slowly.
async fn websockets_are_capped_and_throttled(backend: Backend) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(
        backend,
        &[
            ("CLOAK_WS_PER_DEVICE", "2"),
            ("CLOAK_WS_FRAMES_PER_SEC", "20"),
        ],
    )
    .await;
    let (a, _b) = two_users(&app).await;
    let mut first = app.socket(&app.address, &a, 0).await;
    let _second = app.socket(&app.address, &a, 0).await;
    let mut third = app.socket(&app.address, &a, 0).await;
    // The first is closed with a reason; the others stay.
    let closed = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), first.next())
            .await
            .expect("the oldest socket is closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    let reason = closed.expect("a close frame with a reason");
    assert!(reason.reason.contains("replaced"), "{reason:?}");

    // A flood of 80 frames at 20 a second: the server reads them more slowly (a second's
    // burst, then 20 a second), and answers every one; none is refused.
    let started = std::time::Instant::now();
    for _ in 0..80 {
        third
            .send(Message::text(
                json!({"type": "ack", "up_to": 0}).to_string(),
            ))
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < 80 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(20), third.next())
            .await
            .expect("every frame is answered")
            .expect("socket open")
            .expect("socket ok");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == "acked" {
                acked += 1;
            }
        }
    }
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(2),
        "60 frames beyond the burst at 20/s wait about 3 s, not {took:?}"
    );
}

/// (Item 5.) The WebSocket upgrade counts against the tenant's request rate.
async fn websocket_upgrades_count_against_the_tenant_rate(backend: Backend) {
    let app = spawn_app_with(backend, &[("CLOAK_TENANT_REQUESTS_PER_SEC", "40")]).await;
    // The test clock stands still, so the tenant has 40 requests in all.
    let (a, _b) = two_users(&app).await;
    let url = format!("{}/v1/ws", app.address.replacen("http://", "ws://", 1));
    for _ in 0..60 {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                url.as_str(),
            )
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", a.token).parse().unwrap(),
        );
        match tokio_tungstenite::connect_async(request).await {
            Ok(_) => continue,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 429);
                let body: Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["code"], "rate_limited");
                return;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    panic!("60 upgrades within a rate of 40 were all accepted");
}

/// (Item 8.) Conversation ids are scoped per tenant: an id another tenant uses is no conflict,
/// and the two conversations are separate (members, epochs).
async fn conversation_ids_reveal_nothing_across_tenants(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let (_, b_key) = crate::helpers::create_tenant(app.store.as_ref(), "Tenant B").await;
    let eve = app.tenant_device(&b_key, "b-user").await;
    let id = Uuid::new_v4();
    let create = |token: String| {
        let app = &app;
        async move {
            app.post_json("/v1/conversations", &token, &json!({"conversation_id": id}))
                .await
        }
    };
    assert_eq!(create(eve.token.clone()).await.status(), 201);
    assert_eq!(
        create(a.token.clone()).await.status(),
        201,
        "no cross-tenant conflict"
    );
    assert_problem(create(a.token.clone()).await, 409, "conversation_exists").await;
    assert_eq!(app.commit(&a, id, 0, &[b.id], &[]).await.status(), 201);
    let mine: Value = app
        .get_json(&format!("/v1/conversations/{id}"), &a.token)
        .await;
    let theirs: Value = app
        .get_json(&format!("/v1/conversations/{id}"), &eve.token)
        .await;
    assert_eq!(
        (
            mine["epoch"].as_u64(),
            mine["members"].as_array().unwrap().len()
        ),
        (Some(1), 2)
    );
    assert_eq!(
        (
            theirs["epoch"].as_u64(),
            theirs["members"].as_array().unwrap().len()
        ),
        (Some(0), 1)
    );
    let listed: Value = app.get_json("/v1/conversations", &eve.token).await;
    assert_eq!(
        listed["items"][0]["members"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    // Eve's commit at her epoch works on her conversation only.
    let c = cloak_proto::mls_frame::private_message(
        id.as_bytes(),
        0,
        cloak_proto::mls_frame::ContentType::Commit,
        b"eve",
    );
    let resp = raw_commit(
        &app,
        &eve,
        id,
        json!({"client_msg_id": Uuid::new_v4(), "epoch": 0, "commit": b64(&c)}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(epoch_of(&app, &a, id).await, 1);
    // A send in tenant A reaches bob only.
    assert_eq!(
        app.send(&a, id, 1, Uuid::new_v4(), b"hi").await.status(),
        201
    );
    assert!(
        app.store
            .fetch_mailbox(eve.tenant_id, eve.id, 0, 10, app.clock_ms())
            .await
            .unwrap()
            .is_empty()
    );
}

/// (Item 8.) Console e-mail addresses are unique per tenant: another tenant's account with
/// the same address is no conflict, and signing in opens the account the password fits
/// (or the tenant named).
async fn console_emails_are_unique_per_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let (b_id, b_key) = crate::helpers::create_tenant(app.store.as_ref(), "Tenant B").await;
    // Tell the tenants' consoles apart by their balances.
    for (key, credits) in [(&app.api_key, 111), (&b_key, 222)] {
        app.grant_as(key, "tenant", credits).await;
    }
    let form_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |path: &str, fields: Vec<(&'static str, String)>| {
        let body = fields
            .iter()
            .map(|(k, v)| {
                let v =
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join("&");
        let req = form_client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move { req.send().await.unwrap() }
    };
    for (key, password) in [
        (&app.api_key, "tenant a password"),
        (&b_key, "tenant b password"),
    ] {
        let resp = app
            .post_json(
                "/v1/console/accounts",
                key,
                &json!({"email": "ann@example.test", "role": "owner"}),
            )
            .await;
        assert_eq!(resp.status(), 201, "no cross-tenant conflict");
        let v: Value = resp.json().await.unwrap();
        let url = v["setup_url"].as_str().unwrap();
        let token = url.split("token=").nth(1).unwrap().to_owned();
        let done = form(
            "/console/setup",
            vec![("token", token), ("password", password.into())],
        )
        .await;
        assert!(done.status().is_redirection(), "{}", done.status());
    }
    let again = app
        .post_json(
            "/v1/console/accounts",
            &app.api_key,
            &json!({"email": "Ann@Example.test", "role": "viewer"}),
        )
        .await;
    assert_problem(again, 409, "email_taken").await;

    for (password, balance) in [("tenant a password", "111"), ("tenant b password", "222")] {
        let resp = form(
            "/console/login",
            vec![
                ("email", "ann@example.test".into()),
                ("password", password.into()),
            ],
        )
        .await;
        assert_eq!(
            resp.status().as_u16(),
            303,
            "the password picks its account"
        );
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        let session = cookie.split(';').next().unwrap().to_owned();
        let home = form_client
            .get(app.url("/console"))
            .header("cookie", session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            home.contains(balance),
            "signed in where the balance is {balance}"
        );
    }
    // Naming the other tenant with a's password fails.
    let wrong = form(
        "/console/login",
        vec![
            ("email", "ann@example.test".into()),
            ("password", "tenant a password".into()),
            ("tenant", b_id.to_string()),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 401);
}

async fn a_tenant(app: &TestApp) -> Uuid {
    let t: Value = app.get_json("/v1/tenant", &app.api_key).await;
    t["id"].as_str().unwrap().parse().unwrap()
}

crate::backend_tests!(
    console_emails_are_unique_per_tenant,
    conversation_ids_reveal_nothing_across_tenants,
    websockets_are_capped_and_throttled,
    websocket_upgrades_count_against_the_tenant_rate,
    mailbox_pages_are_bounded_in_bytes,
    lists_are_paginated_with_cursors,
    key_package_stock_and_claims_are_bounded,
    idempotency_races_answer_as_replays,
    webhooks_cannot_reach_private_addresses,
    a_full_mailbox_blocks_only_its_own_device,
    a_revoked_device_leaves_every_conversation,
    garbage_commits_do_not_advance_the_epoch,
    commit_and_welcome_sizes_are_capped,
    commits_are_rate_limited_and_duplicates_refused,
    commits_can_be_priced,
);
