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
    app.post_json(&format!("/v1/conversations/{conv}/commits"), &by.token, &body)
        .await
}

async fn epoch_of(app: &TestApp, by: &TestDevice, conv: Uuid) -> u64 {
    let c: Value = app
        .get(&format!("/v1/conversations/{conv}"), &by.token)
        .await
        .json()
        .await
        .unwrap();
    c["epoch"].as_u64().unwrap()
}

/// 1. A commit the server can see is no MLS commit for this group and epoch is refused and
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
    assert_eq!(app.commit(&a, conv, 1, &[carol.id], &[]).await.status(), 201);
    assert_eq!(epoch_of(&app, &a, conv).await, 2);
}

/// 1. Sizes: the commit and the Welcome are capped, and so are the Welcome copies one commit
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

/// 1 and 6. Commits are rate-limited per device (a retry of an accepted one still answers
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

/// 2. A full mailbox leaves out only its device: the others get the message and the
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

/// 2. Revoking a device takes it out of every conversation at once: senders no longer
/// queue for it, and its mailbox is emptied.
async fn a_revoked_device_leaves_every_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let laptop = app.new_device(b.user_id).await;
    assert_eq!(app.approve(&b, &laptop, app.clock_ms()).await.status(), 200);
    let conv = app.conversation(&a, &[&b, &laptop]).await;
    assert_eq!(app.send(&a, conv, 1, Uuid::new_v4(), b"hi").await.status(), 201);
    assert_eq!(
        app.delete(&format!("/v1/devices/{}", laptop.id), &b.token)
            .await
            .status(),
        204
    );
    let c: Value = app
        .get(&format!("/v1/conversations/{conv}"), &a.token)
        .await
        .json()
        .await
        .unwrap();
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
    let mailbox = app.store.fetch_mailbox(laptop.tenant_id, laptop.id, 0, 100, app.clock_ms()).await.unwrap();
    assert!(mailbox.is_empty(), "the revoked device's mailbox is emptied");
    // Members still remove it from the MLS group: that commit is accepted.
    assert_eq!(app.commit(&a, conv, 1, &[], &[laptop.id]).await.status(), 201);
    // A device that was never a member is still a conflict.
    let stranger = contact_of(&app, &a, "erin").await;
    assert_problem(app.commit(&a, conv, 2, &[], &[stranger.id]).await, 409, "membership_conflict").await;
}

crate::backend_tests!(
    a_full_mailbox_blocks_only_its_own_device,
    a_revoked_device_leaves_every_conversation,
    garbage_commits_do_not_advance_the_epoch,
    commit_and_welcome_sizes_are_capped,
    commits_are_rate_limited_and_duplicates_refused,
);
