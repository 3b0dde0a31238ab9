//! A sleeping device is woken through the tenant's push service: the server sends the
//! tenant a content-free `device.pending` webhook, and a notification extension shows the
//! messages with a read-only peek that leaves them for the app.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use cloak_e2e::listener::{Listener, joined, texts};
use cloak_e2e::{ServerEnv, Stack, on_both_backends};
use cloak_sdk::StoreKey;
use serde_json::Value;

/// A tenant webhook endpoint that keeps every body it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let server = HttpServer::new(move || {
        let g = g.clone();
        App::new().default_service(web::to(move |body: web::Bytes| {
            let g = g.clone();
            async move {
                g.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                actix_web::HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let url = format!("http://127.0.0.1:{}/hook", server.addrs()[0].port());
    tokio::spawn(server.run());
    (url, got)
}

/// A receiver set as the tenant's webhook endpoint; the bodies it gets.
pub(crate) async fn tenant_receiver(stack: &Stack) -> Arc<Mutex<Vec<String>>> {
    let (url, got) = receiver().await;
    let resp = stack
        .tenant
        .http
        .put(format!("{}/v1/webhooks", stack.server.base_url))
        .bearer_auth(&stack.tenant.api_key)
        .json(&serde_json::json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    got
}

/// The first `device.pending` webhook among `got`, waiting up to 20 s for it.
pub(crate) async fn device_pending(got: &Mutex<Vec<String>>) -> Option<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .find(|v| v["type"] == "device.pending");
        if found.is_some() || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_sleeping_device_is_woken_without_content_and_peeks(env: ServerEnv) {
    let env = env
        .with("CLOAK_PUSH_COALESCE_SECS", "1")
        .with("CLOAK_WORKER_POLL_MS", "100");
    let mut stack = Stack::start(&env);
    let got = tenant_receiver(&stack).await;
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob-phone.db");
    let key = [7u8; 32];
    let builder = || {
        stack
            .cloak_builder(bob.id, &stack.server.base_url)
            .store(&path, StoreKey::from_bytes(key))
    };
    let b = builder().build().await.unwrap();
    let bob_device = b.ids().device_id;
    b.set_push_token("fcm-token-of-bob", "fcm").await.unwrap();
    let mut b_events = Listener::new(&b);
    let a = stack.cloak(alice.id).await;
    let chat = a.conversation_with(bob.id).await.unwrap();
    b_events.until(|e| joined(e, chat.id())).await;
    b.shutdown().await;
    drop((b_events, b)); // the app goes to sleep

    let canary = format!("CANARY-{}", uuid::Uuid::new_v4().simple());
    chat.send_text(&canary).await.unwrap();
    let Some(webhook) = device_pending(&got).await else {
        let log = stack
            .tenant
            .http
            .get(format!("{}/v1/webhooks/deliveries", stack.server.base_url))
            .bearer_auth(&stack.tenant.api_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let logs: Vec<String> = stack
            .server
            .logs()
            .into_iter()
            .filter(|l| l.contains("warn") || l.contains("push") || l.contains("ERROR"))
            .collect();
        panic!("no device.pending webhook; deliveries: {log}; logs: {logs:?}");
    };
    let data = &webhook["data"];
    assert_eq!(data["device_id"], bob_device.to_string());
    assert_eq!(data["push_token"], "fcm-token-of-bob");
    assert_eq!(data["provider"], "fcm");
    assert!(data["pending"].as_u64().unwrap() >= 1);
    assert_eq!(data.as_object().unwrap().len(), 6, "{data}");
    for body in got.lock().unwrap().iter() {
        assert!(!body.contains(&canary), "a webhook carries the plaintext");
        assert!(
            !body.contains(&chat.id().0.to_string()),
            "a webhook names the conversation"
        );
    }

    // The notification extension shows it, reading the app's store and writing nothing.
    let peeked = builder().peek(10).await.unwrap();
    assert_eq!(texts(&peeked), vec![(a.ids().device_id, canary.clone())]);
    // Twice: nothing was acknowledged or consumed.
    let again = builder().peek(10).await.unwrap();
    assert_eq!(texts(&again), vec![(a.ids().device_id, canary.clone())]);
    // The app wakes and receives the message from its own state.
    let b = builder().build().await.unwrap();
    let mut b_events = Listener::new(&b);
    assert_eq!(b_events.texts(1).await, vec![(a.ids().device_id, canary)]);
    b.shutdown().await;
}

on_both_backends!(a_sleeping_device_is_woken_without_content_and_peeks);
