//! Blocks, verifiable reports (message franking) and moderation with suspension.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::backend_tests;
use crate::billing_helpers::Receiver;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app};
use crate::identity_helpers::{TestDevice, b64, unb64};

async fn trio(app: &TestApp) -> (TestDevice, TestDevice, TestDevice, Uuid) {
    let ids = [
        app.create_user("alice").await,
        app.create_user("bob").await,
        app.create_user("carol").await,
    ];
    app.make_contacts(ids[0], ids[1]).await;
    app.make_contacts(ids[0], ids[2]).await;
    app.make_contacts(ids[1], ids[2]).await;
    let a = app.new_device(ids[0]).await;
    let b = app.new_device(ids[1]).await;
    let c = app.new_device(ids[2]).await;
    let conv = app.conversation(&a, &[&b, &c]).await;
    (a, b, c, conv)
}

fn commitment(key: &[u8; 32], conversation: Uuid, message: Uuid, text: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(&cloak_proto::signing::franking_commitment_input(
        conversation,
        message,
        text,
    ));
    mac.finalize().into_bytes().to_vec()
}

async fn a_blocked_users_messages_and_invites_never_arrive(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, c, conv) = trio(&app).await;
    let r = app
        .post_json("/v1/blocks", &b.token, &json!({"user_id": a.user_id}))
        .await;
    assert_eq!(r.status(), 204);
    let list: Value = app.get("/v1/blocks", &b.token).await.json().await.unwrap();
    assert_eq!(list["user_ids"], json!([a.user_id]));
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"hello all")
            .await
            .status(),
        201
    );
    let to_b = app.mailbox(&b, 0).await;
    let to_c = app.mailbox(&c, 0).await;
    assert_eq!(
        (to_b.len(), to_c.len()),
        (1, 2),
        "b got only the commit; c got the message too"
    );
    // b's own messages still reach a.
    assert_eq!(
        app.send(&b, conv, 1, Uuid::new_v4(), b"from b")
            .await
            .status(),
        201
    );
    assert_eq!(app.mailbox(&a, 0).await.len(), 1);
    // An invite from a blocked user does not reach the blocker... and b cannot block itself.
    let inv: Value = app
        .post_json(
            "/v1/invites",
            &a.token,
            &json!({"max_uses": 5, "expires_in_secs": 600}),
        )
        .await
        .json()
        .await
        .unwrap();
    let code = inv["code"].as_str().unwrap();
    // (a blocked nobody: c can redeem; a's invite to the user who blocked a is refused.)
    assert_problem(
        app.post_json(&format!("/v1/invites/{code}/redeem"), &b.token, &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    let from_b: Value = app
        .post_json(
            "/v1/invites",
            &b.token,
            &json!({"max_uses": 5, "expires_in_secs": 600}),
        )
        .await
        .json()
        .await
        .unwrap();
    let code_b = from_b["code"].as_str().unwrap();
    assert_eq!(
        app.post_json(
            &format!("/v1/invites/{code_b}/redeem"),
            &c.token,
            &json!({})
        )
        .await
        .status(),
        200
    );
    assert_problem(
        app.post_json("/v1/blocks", &b.token, &json!({"user_id": b.user_id}))
            .await,
        400,
        "self_block",
    )
    .await;
    assert_eq!(
        app.delete(&format!("/v1/blocks/{}", a.user_id), &b.token)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"again")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.mailbox(&b, 0).await.len(),
        2,
        "unblocked: messages arrive again"
    );
}

async fn reports_verify_and_upheld_reports_suspend(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, _c, conv) = trio(&app).await;
    let receiver = Receiver::start(&[]).await;
    assert_eq!(
        app.put_json("/v1/webhooks", &app.api_key, &json!({"url": receiver.url}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.put_json(
            "/v1/moderation/settings",
            &app.api_key,
            &json!({"suspend_after_upheld_reports": 1})
        )
        .await
        .status(),
        200
    );

    let key = [7u8; 32];
    let message = Uuid::new_v4();
    let text = "buy my fake watches";
    let tag = commitment(&key, conv, message, text);
    let resp = app
        .post_json(&format!("/v1/conversations/{conv}/messages"), &a.token,
            &json!({"client_msg_id": message, "epoch": 1, "body": b64(b"ciphertext"), "franking_tag": b64(&tag)}))
        .await;
    assert_eq!(resp.status(), 201);
    let entry = app.mailbox(&b, 0).await.pop().unwrap();
    assert_eq!(unb64(&entry["franking_tag"]), tag);
    let stamp = unb64(&entry["franking_stamp"]);
    assert_eq!(stamp.len(), 32);
    let report = |text: &str, sent_at_ms: i64, sender: Uuid| {
        json!({"conversation_id": conv, "message_id": message, "sender_device_id": sender,
               "sent_at_ms": sent_at_ms, "text": text, "franking_key": b64(&key),
               "franking_tag": b64(&tag), "franking_stamp": b64(&stamp), "reason": "spam"})
    };
    let sent_at = entry["sent_at_ms"].as_i64().unwrap();
    // Altered text, time or sender: the evidence does not verify.
    for forged in [
        report("buy my real watches", sent_at, a.id),
        report(text, sent_at + 1, a.id),
        report(text, sent_at, b.id),
    ] {
        assert_problem(
            app.post_json("/v1/reports", &b.token, &forged).await,
            400,
            "report_unverifiable",
        )
        .await;
    }
    let filed = app
        .post_json("/v1/reports", &b.token, &report(text, sent_at, a.id))
        .await;
    assert_eq!(filed.status(), 201);
    let filed: Value = filed.json().await.unwrap();
    assert_eq!(
        (filed["reported_user_id"].clone(), filed["text"].as_str()),
        (json!(a.user_id), Some(text))
    );
    assert_problem(
        app.post_json("/v1/reports", &b.token, &report(text, sent_at, a.id))
            .await,
        409,
        "already_reported",
    )
    .await;

    let open: Value = app
        .get("/v1/reports", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open["items"].as_array().unwrap().len(), 1);
    let id = filed["id"].as_str().unwrap();
    let (_, other_key) = crate::helpers::create_tenant(app.store.as_ref(), "Other").await;
    assert_problem(
        app.post_json(&format!("/v1/reports/{id}/uphold"), &other_key, &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    let upheld = app
        .post_json(
            &format!("/v1/reports/{id}/uphold"),
            &app.api_key,
            &json!({}),
        )
        .await;
    assert_eq!(upheld.status(), 200);
    // Suspended: the sender's tokens stop working at once, and sends are refused.
    assert_problem(
        app.get("/v1/mailbox", &a.token).await,
        401,
        "user_suspended",
    )
    .await;
    let user: Value = app
        .get(&format!("/v1/users/{}", a.user_id), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["suspended"], true);
    assert_problem(
        app.post_json(
            &format!("/v1/reports/{id}/dismiss"),
            &app.api_key,
            &json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let events: Vec<String> = receiver
        .wait_for(2)
        .await
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(events, vec!["report.created", "user.suspended"]);
}

backend_tests!(
    a_blocked_users_messages_and_invites_never_arrive,
    reports_verify_and_upheld_reports_suspend,
);
