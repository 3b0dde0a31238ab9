//! Viewing is priced (`message_view`): the recipient's payer is charged when a message is
//! first delivered to any of the recipient's devices, once per message and user; an
//! unaffordable message stays queued, and delivery resumes once credits arrive; with
//! durable and memory-only mailboxes alike.

use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::delivery_helpers::next_frame;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_in};
use crate::identity_helpers::TestDevice;
use cloak_proto::tenants::MailboxStorage;

/// Alice and Bob (two devices) in a conversation; Bob pays for his own views (1 credit).
async fn setup(app: &TestApp) -> (TestDevice, TestDevice, TestDevice, Uuid) {
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    let a = app.new_device(alice).await;
    let phone = app.new_device(bob).await;
    let laptop = app.new_device(bob).await;
    assert_eq!(
        app.approve(&phone, &laptop, app.clock_ms()).await.status(),
        200
    );
    let conv = app.conversation(&a, &[&phone, &laptop]).await;
    app.price_only(&[("message_view", 1)]).await;
    let settings = json!({"users_pay": true});
    assert_eq!(
        app.put_json("/v1/billing/settings", &app.api_key, &settings)
            .await
            .status(),
        200
    );
    (a, phone, laptop, conv)
}

/// The bodies of the application entries of `device`'s mailbox after `after`.
async fn texts(app: &TestApp, device: &TestDevice, after: u64) -> (Vec<Vec<u8>>, u64) {
    let entries = app.mailbox(device, after).await;
    let last = entries.last().map_or(after, |e| e["seq"].as_u64().unwrap());
    let bodies = entries
        .iter()
        .filter(|e| e["kind"] == "application")
        .map(crate::delivery_helpers::body_of)
        .collect();
    (bodies, last)
}

async fn views_are_charged_once_per_user_and_held_until_paid(
    backend: Backend,
    storage: MailboxStorage,
) {
    let app = spawn_in(backend, storage).await;
    let (a, phone, laptop, conv) = setup(&app).await;
    let wallet = phone.user_id.to_string();
    app.grant(&wallet, 1).await;
    for body in [b"m1".as_slice(), b"m2"] {
        assert_eq!(
            app.send(&a, conv, 1, Uuid::new_v4(), body).await.status(),
            201
        );
    }
    // One credit: the phone gets m1, m2 waits.
    let (got, after_m1) = texts(&app, &phone, 0).await;
    assert_eq!(got, vec![b"m1".to_vec()]);
    assert_eq!(app.balance(&wallet).await, 0);
    let resp = app
        .get(&format!("/v1/mailbox?after={after_m1}"), &phone.token)
        .await;
    assert_problem(resp, 402, "payment_required").await;
    // The laptop sees m1 free (Bob viewed it already), and waits for m2 too.
    let (got, laptop_after_m1) = texts(&app, &laptop, 0).await;
    assert_eq!(got, vec![b"m1".to_vec()]);
    assert_eq!(app.balance(&wallet).await, 0);
    // Credits arrive: m2 comes, charged once for both devices.
    app.grant(&wallet, 5).await;
    assert_eq!(texts(&app, &phone, after_m1).await.0, vec![b"m2".to_vec()]);
    assert_eq!(
        texts(&app, &laptop, laptop_after_m1).await.0,
        vec![b"m2".to_vec()]
    );
    assert_eq!(app.balance(&wallet).await, 4);
    // Receipts and typing (class control) are free.
    let control = json!({"client_msg_id": Uuid::new_v4(), "epoch": 1,
        "body": crate::identity_helpers::b64(b"typing"), "class": "control"});
    let resp = app
        .post_json(
            &format!("/v1/conversations/{conv}/messages"),
            &a.token,
            &control,
        )
        .await;
    assert_eq!(resp.status(), 201);
    let seen: Value = app.get_json("/v1/mailbox?after=0", &phone.token).await;
    assert!(
        seen["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| crate::delivery_helpers::body_of(e) == b"typing")
    );
    assert_eq!(app.balance(&wallet).await, 4);
}

async fn a_socket_is_told_and_resumes_once_credits_arrive(
    backend: Backend,
    storage: MailboxStorage,
) {
    let app = spawn_in(backend, storage).await;
    let (a, phone, _laptop, conv) = setup(&app).await;
    let wallet = phone.user_id.to_string();
    let mut ws = app.socket(&app.address, &phone, 0).await;
    // The Welcome is free.
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["type"], "envelope", "{frame}");
    assert_eq!(frame["kind"], "welcome");
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"unpaid")
            .await
            .status(),
        201
    );
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "payment_required");
    app.grant(&wallet, 3).await;
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"paid")
            .await
            .status(),
        201
    );
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let frame = next_frame(&mut ws).await;
        assert_eq!(frame["type"], "envelope", "{frame}");
        bodies.push(crate::delivery_helpers::body_of(&frame));
    }
    assert_eq!(bodies, vec![b"unpaid".to_vec(), b"paid".to_vec()]);
    assert_eq!(app.balance(&wallet).await, 1);
    ws.send(Message::Close(None)).await.unwrap();
}

/// A grant alone, with no new message, wakes the payer's sockets: what was held back goes
/// out at once, not at the next heartbeat (15 s, longer than `next_frame` waits).
async fn a_grant_alone_releases_what_a_socket_held_back(backend: Backend, storage: MailboxStorage) {
    let app = spawn_in(backend, storage).await;
    let (a, phone, _laptop, conv) = setup(&app).await;
    let wallet = phone.user_id.to_string();
    let mut ws = app.socket(&app.address, &phone, 0).await;
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["kind"], "welcome", "{frame}");
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"held")
            .await
            .status(),
        201
    );
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["code"], "payment_required", "{frame}");
    app.grant(&wallet, 2).await;
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["type"], "envelope", "{frame}");
    assert_eq!(crate::delivery_helpers::body_of(&frame), b"held".to_vec());
    assert_eq!(app.balance(&wallet).await, 1);
    ws.send(Message::Close(None)).await.unwrap();
}

crate::storage_tests!(
    a_grant_alone_releases_what_a_socket_held_back,
    views_are_charged_once_per_user_and_held_until_paid,
    a_socket_is_told_and_resumes_once_credits_arrive,
);
