//! Limits and abuse controls over real processes: one limit enforced exactly by two server
//! processes sharing Redis, with the SDK's typed rate-limit error; a verifiable report
//! through the SDK (the true text passes, a modified client's altered text fails)
//! leading to suspension.

use cloak_e2e::listener::{Listener, joined};
use cloak_e2e::lying_proxy::{Action, LyingProxy};
use cloak_e2e::{ServerEnv, ServerProcess, Stack, fresh_postgres, on_both_backends};
use cloak_sdk::{Error, Event, MessageId};
use serde_json::json;

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

/// Alice has a device on each of two nodes; both send as fast as they can. The user's
/// limit holds across the nodes exactly, and each refusal is the SDK's typed error.
#[tokio::test]
async fn two_processes_sharing_redis_enforce_one_limit_exactly() {
    let env = ServerEnv::production(fresh_postgres().await);
    let stack = Stack::start(&env);
    let second = ServerProcess::start(stack.dir.path(), &env);
    stack.tenant.set_trust_levels_blocking(&levels(6, 3600));
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let phone = stack.cloak(alice.id).await;
    let laptop = stack
        .cloak_builder(alice.id, &second.base_url)
        .build()
        .await
        .unwrap();
    let mut laptop_events = Listener::new(&laptop);
    phone
        .devices()
        .approve(laptop.ids().device_id, &laptop.fingerprint().await)
        .await
        .unwrap();
    let _bob = stack.cloak(bob.id).await;
    let chat = phone.conversation_with(bob.id).await.unwrap();
    laptop_events.until(|e| joined(e, chat.id())).await;
    let on_second = laptop.conversation(chat.id()).await.unwrap();

    let burst = |c: cloak_sdk::ConversationHandle| {
        tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..50 {
                results.push(c.send_text(&format!("message {i}")).await);
            }
            results
        })
    };
    let (one, two) = (burst(chat.clone()), burst(on_second));
    let mut results = one.await.unwrap();
    results.extend(two.await.unwrap());
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let limited: Vec<std::time::Duration> = results
        .iter()
        .filter_map(|r| match r {
            Err(Error::RateLimited { retry_after }) => Some(*retry_after),
            _ => None,
        })
        .collect();
    assert_eq!((accepted, limited.len()), (6, 94), "{results:?}");
    assert!(
        limited.iter().all(|d| d.as_secs() > 500),
        "the wait is the window's rest: {limited:?}"
    );
}

async fn a_report_through_the_sdk_verifies_and_can_suspend(env: ServerEnv) {
    let stack = Stack::start(&env);
    let proxy = LyingProxy::start(&stack.server.base_url).await;
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let a = stack.cloak(alice.id).await;
    // Bob's client goes through a proxy that can alter what it sends.
    let b = stack
        .cloak_builder(bob.id, &proxy.base_url)
        .build()
        .await
        .unwrap();
    let chat = a.conversation_with(bob.id).await.unwrap();
    let sent = chat.send_text("this is abuse").await.unwrap();
    b.sync().await.unwrap();
    let mut b_events = Listener::new(&b);
    let seen = b_events
        .until(|e| matches!(e, Event::Message { payload, .. } if MessageId(payload.message_id) == sent))
        .await;
    assert!(
        matches!(
            seen.last(),
            Some(Event::Message {
                franking: Some(_),
                ..
            })
        ),
        "the message arrived franked and checked"
    );

    // A modified client alters the text it reports: the evidence no longer verifies.
    proxy.rule(
        "POST",
        |p| p == "/v1/reports",
        Action::RewriteRequest(Box::new(|body| {
            let mut report: serde_json::Value = serde_json::from_slice(body).unwrap();
            report["text"] = json!("this is praise");
            serde_json::to_vec(&report).unwrap()
        })),
        Some(1),
    );
    match b.report(chat.id(), sent, Some("spam")).await {
        Err(Error::Problem(p)) => assert_eq!(p.code, cloak_proto::Code::ReportUnverifiable),
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.uses(), vec![1]);
    let report = b.report(chat.id(), sent, Some("spam")).await.unwrap();
    assert_eq!(
        (report.reported_user_id, report.text.as_str()),
        (alice.id, "this is abuse")
    );
    // Only received franked texts can be reported.
    assert!(a.report(chat.id(), sent, None).await.is_err());

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
    match chat.send_text("still here?").await {
        Err(Error::Suspended) => {}
        other => panic!("a suspended user cannot send: {other:?}"),
    }
}

on_both_backends!(a_report_through_the_sdk_verifies_and_can_suspend);
