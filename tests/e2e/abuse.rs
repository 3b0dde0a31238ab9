//! Limits and abuse controls over real processes: one limit enforced exactly by two server
//! processes sharing Redis; the SDK's typed rate-limit error; a verifiable report through
//! the SDK (true text passes, altered text fails) leading to suspension.

use cloak_e2e::{ServerEnv, ServerProcess, Stack, fresh_postgres_url, on_both_backends};
use cloak_sdk::{Event, Messenger, PayloadKind};
use futures_util::StreamExt as _;
use serde_json::json;
use uuid::Uuid;

fn levels(messages: u32, window_secs: u32) -> String {
    let names = ["new", "basic", "trusted", "verified"];
    let levels: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            json!({"name": n, "messages_per_window": messages, "window_secs": window_secs,
            "max_attachment": "large", "invites_per_day": 100, "new_contacts_per_day": 100})
        })
        .collect();
    json!({ "levels": levels }).to_string()
}

#[tokio::test]
async fn two_processes_sharing_redis_enforce_one_limit_exactly() {
    let env = ServerEnv::production(&fresh_postgres_url().await);
    let stack = Stack::start(&env);
    let second = ServerProcess::start(stack.dir.path(), &env);
    stack.tenant.set_trust_levels_blocking(&levels(6, 3600));
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let mut a = Messenger::new(stack.device_client(alice.id).await);
    let mut b = Messenger::new(stack.device_client(bob.id).await);
    b.publish_key_packages(2).await.unwrap();
    let conv = a.create_conversation(&[bob.id]).await.unwrap();
    let token = a.client().token().await.unwrap();
    let token = secrecy::ExposeSecret::expose_secret(&token).to_owned();
    let nodes = [stack.server.base_url.clone(), second.base_url.clone()];
    let http = reqwest::Client::new();
    let statuses: Vec<u16> = futures_util::stream::iter(0..100)
        .map(|i| {
            let url = format!("{}/v1/conversations/{conv}/messages", nodes[i % 2]);
            let (http, token) = (http.clone(), token.clone());
            async move {
                http.post(url)
                    .bearer_auth(token)
                    .json(&json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "body": "AAAA"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let accepted = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((accepted, limited), (6, 94), "{statuses:?}");
    // The SDK surfaces the refusal as a typed error with the wait.
    match a.send_text(conv, "one more").await {
        Err(cloak_sdk::Error::RateLimited { retry_after, .. }) => {
            assert!(retry_after.as_secs() > 500, "{retry_after:?}");
        }
        other => panic!("{other:?}"),
    }
    drop(b);
}

async fn a_report_through_the_sdk_verifies_and_can_suspend(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let mut a = Messenger::new(stack.device_client(alice.id).await);
    let mut b = Messenger::new(stack.device_client(bob.id).await);
    b.publish_key_packages(2).await.unwrap();
    let conv = a.create_conversation(&[bob.id]).await.unwrap();
    a.send_text(conv, "this is abuse").await.unwrap();
    let message = b
        .sync()
        .await
        .unwrap()
        .into_iter()
        .find(|e| matches!(e, Event::Message { .. }))
        .unwrap();
    let Event::Message { franking, .. } = &message else {
        unreachable!()
    };
    assert!(
        franking.is_some(),
        "the message arrived franked and checked"
    );

    // Altering the text breaks the evidence.
    let mut forged = message.clone();
    if let Event::Message { payload, .. } = &mut forged {
        payload.kind = PayloadKind::Text {
            text: "this is praise".into(),
        };
    }
    match b.report(&forged, Some("spam")).await {
        Err(cloak_sdk::Error::Problem(p)) => {
            assert_eq!(p.code, cloak_proto::Code::ReportUnverifiable);
        }
        other => panic!("{other:?}"),
    }
    let report = b.report(&message, Some("spam")).await.unwrap();
    assert_eq!(
        (report.reported_user_id, report.text.as_str()),
        (alice.id, "this is abuse")
    );

    // The tenant upholds it; at a threshold of one, alice is suspended and locked out.
    let http = &stack.tenant.http;
    let base = &stack.tenant.base_url;
    let put = http
        .put(format!("{base}/v1/moderation/settings"))
        .bearer_auth(&stack.tenant.api_key)
        .json(&json!({"suspend_after_upheld_reports": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let upheld = http
        .post(format!("{base}/v1/reports/{}/uphold", report.id))
        .bearer_auth(&stack.tenant.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(upheld.status(), 200);
    match a.send_text(conv, "still here?").await {
        Err(cloak_sdk::Error::Suspended) => {}
        other => panic!("a suspended user cannot send: {other:?}"),
    }
}

on_both_backends!(a_report_through_the_sdk_verifies_and_can_suspend);
