//! Content-free push: `PUT /v1/devices/me/push`, and `device.pending` webhooks coalesced to
//! one per device per window, only for a device that did not take its entries.

use std::time::Duration;

use base64::Engine as _;
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::billing_helpers::Receiver;
use crate::delivery_helpers::next_frame;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_in};
use crate::identity_helpers::TestDevice;
use cloak_proto::tenants::MailboxStorage;

const WINDOW_MS: i64 = 30_000;

const CANARY: &[u8] = b"CANARY-ciphertext-5f1e9a";

/// The app with a webhook receiver, and a (sender) with b registered for push, in a
/// conversation.
async fn setup(app: &TestApp) -> (Receiver, TestDevice, TestDevice, Uuid) {
    let receiver = Receiver::start(&[]).await;
    let resp = app
        .put_json("/v1/webhooks", &app.api_key, &json!({"url": receiver.url}))
        .await;
    assert_eq!(resp.status(), 200);
    let (a, b, conv) = app.pair().await;
    let resp = app
        .client
        .put(app.url("/v1/devices/me/push"))
        .bearer_auth(&b.token)
        .json(&json!({"token": "apns-token-of-b", "provider": "apns"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    (receiver, a, b, conv)
}

async fn send_canaries(app: &TestApp, a: &TestDevice, conv: Uuid, n: usize) {
    for _ in 0..n {
        assert_eq!(
            app.send(a, conv, 1, Uuid::new_v4(), CANARY).await.status(),
            201
        );
    }
    // Let the worker (every 50 ms) open the window.
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// Ends the window and lets the workers write and deliver.
async fn end_window(app: &TestApp) {
    app.clock.advance_ms(WINDOW_MS + 1_000);
    tokio::time::sleep(Duration::from_millis(600)).await;
}

fn pending_webhooks(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .filter(|v| v["type"] == "device.pending")
        .collect()
}

async fn an_offline_device_gets_one_content_free_webhook_per_window(
    backend: Backend,
    storage: MailboxStorage,
) {
    let app = spawn_in(backend, storage).await;
    let (receiver, a, b, conv) = setup(&app).await;
    send_canaries(&app, &a, conv, 5).await;
    assert!(
        pending_webhooks(&receiver).is_empty(),
        "not before the window ends"
    );
    end_window(&app).await;
    receiver.wait_for(1).await;
    let got = pending_webhooks(&receiver);
    assert_eq!(got.len(), 1, "one webhook however many messages: {got:?}");
    let waiting = app.mailbox(&b, 0).await.len();
    assert_eq!(
        got[0],
        json!({"type": "device.pending", "data": {
            "tenant_id": b.tenant_id, "user_id": b.user_id, "device_id": b.id,
            "push_token": "apns-token-of-b", "provider": "apns", "pending": waiting,
        }})
    );
    // Nothing of the messages: neither the ciphertext nor its base64, nor who sent it where.
    let raw = &receiver.received()[0].body;
    for secret in [
        String::from_utf8_lossy(CANARY).into_owned(),
        base64::engine::general_purpose::STANDARD.encode(CANARY),
        conv.to_string(),
        a.id.to_string(),
        a.user_id.to_string(),
    ] {
        assert!(!raw.contains(&secret), "the webhook carries {secret}");
    }
    // New messages: another window, another webhook; none without new messages.
    send_canaries(&app, &a, conv, 3).await;
    end_window(&app).await;
    receiver.wait_for(2).await;
    end_window(&app).await;
    end_window(&app).await;
    let got = pending_webhooks(&receiver);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["data"]["pending"], waiting + 3);
}

async fn an_online_device_gets_none(backend: Backend, storage: MailboxStorage) {
    let app = spawn_in(backend, storage).await;
    let (receiver, a, b, conv) = setup(&app).await;
    let mut ws = app.socket(&app.address, &b, 0).await;
    // The Welcome that added b, then the messages as they arrive: each acknowledged.
    let mut taken = 0;
    for round in 0..3 {
        if round > 0 {
            assert_eq!(
                app.send(&a, conv, 1, Uuid::new_v4(), CANARY).await.status(),
                201
            );
        }
        loop {
            let frame = next_frame(&mut ws).await;
            if frame["type"] == "envelope" {
                let seq = frame["seq"].as_u64().unwrap();
                ws.send(Message::text(
                    json!({"type": "ack", "up_to": seq}).to_string(),
                ))
                .await
                .unwrap();
                taken += 1;
                break;
            }
        }
    }
    assert_eq!(taken, 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    end_window(&app).await;
    end_window(&app).await;
    assert!(pending_webhooks(&receiver).is_empty());
}

async fn a_device_that_takes_its_entries_within_the_window_gets_none(
    backend: Backend,
    storage: MailboxStorage,
) {
    let app = spawn_in(backend, storage).await;
    let (receiver, a, b, conv) = setup(&app).await;
    send_canaries(&app, &a, conv, 2).await;
    // b comes online before the window ends and takes everything.
    let entries = app.mailbox(&b, 0).await;
    let last = entries.last().unwrap()["seq"].as_u64().unwrap();
    let resp = app
        .post_json("/v1/mailbox/ack", &b.token, &json!({"up_to": last}))
        .await;
    assert_eq!(resp.status(), 200);
    end_window(&app).await;
    end_window(&app).await;
    assert!(pending_webhooks(&receiver).is_empty());
}

async fn registrations_are_checked_and_can_be_removed(backend: Backend, storage: MailboxStorage) {
    let app = spawn_in(backend, storage).await;
    let (receiver, a, b, conv) = setup(&app).await;
    let put = |token: &str, body: Value| {
        app.client
            .put(app.url("/v1/devices/me/push"))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    for bad in [
        json!({"token": "t", "provider": "APNs!"}),
        json!({"token": "", "provider": "apns"}),
        json!({"token": "t", "provider": "x".repeat(33)}),
        json!({"token": "t"}),
    ] {
        let resp = put(&b.token, bad.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    // Any short plain name, in either case.
    let resp = put(&b.token, json!({"token": "t", "provider": "Web-Push.v2"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let pending = app.new_device(b.user_id).await;
    assert_problem(
        put(&pending.token, json!({"token": "t", "provider": "fcm"}))
            .await
            .unwrap(),
        403,
        "device_pending",
    )
    .await;
    let resp = app
        .client
        .put(app.url("/v1/devices/me/push"))
        .json(&json!({"token": "t", "provider": "fcm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Removed: no webhook any more.
    assert_eq!(
        app.delete("/v1/devices/me/push", &b.token).await.status(),
        204
    );
    send_canaries(&app, &a, conv, 2).await;
    end_window(&app).await;
    assert!(pending_webhooks(&receiver).is_empty());
}

crate::storage_tests!(
    an_offline_device_gets_one_content_free_webhook_per_window,
    an_online_device_gets_none,
    a_device_that_takes_its_entries_within_the_window_gets_none,
    registrations_are_checked_and_can_be_removed,
);
