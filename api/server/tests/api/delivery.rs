//! Delivery: ordered per-device mailboxes, acks, idempotent sends, commit ordering,
//! retention, WebSocket push and resume, several nodes.

use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::backend_tests;
use crate::delivery_helpers::{body_of, next_frame};
use crate::helpers::{Backend, assert_problem, spawn_app, spawn_on};
use crate::identity_helpers::TestDevice;

async fn two_users(app: &crate::helpers::TestApp) -> (TestDevice, TestDevice) {
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    (app.new_device(alice).await, app.new_device(bob).await)
}

async fn entries_arrive_in_order_and_acks_delete_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;

    let welcome = app.mailbox(&b, 0).await;
    assert_eq!(welcome.len(), 1);
    assert_eq!(
        (
            welcome[0]["kind"].as_str(),
            welcome[0]["seq"].as_u64(),
            welcome[0]["epoch"].as_u64()
        ),
        (Some("welcome"), Some(1), Some(1))
    );
    for i in 0..5u8 {
        let resp = app.send(&a, conv, 1, Uuid::new_v4(), &[b'm', i]).await;
        assert_eq!(resp.status(), 201);
        let r: Value = resp.json().await.unwrap();
        assert_eq!(
            (r["recipients"].as_u64(), r["duplicate"].as_bool()),
            (Some(1), Some(false))
        );
    }
    let all = app.mailbox(&b, 0).await;
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    for (i, e) in all[1..].iter().enumerate() {
        assert_eq!(body_of(e), vec![b'm', u8::try_from(i).unwrap()]);
        assert_eq!(e["kind"], "application");
        assert_eq!(e["sender_device_id"], a.id.to_string());
        assert_eq!(e["conversation_id"], conv.to_string());
    }
    assert!(
        app.mailbox(&a, 0).await.is_empty(),
        "the sender gets no copy"
    );
    assert_eq!(app.mailbox(&b, 4).await.len(), 2);

    let ack: Value = app
        .post_json("/v1/mailbox/ack", &b.token, &json!({"up_to": 4}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack["deleted"], 4);
    let rest: Vec<u64> = app
        .mailbox(&b, 0)
        .await
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(rest, vec![5, 6]);
    // Sequence numbers keep rising after acks.
    app.send(&a, conv, 1, Uuid::new_v4(), b"later").await;
    assert_eq!(app.mailbox(&b, 6).await[0]["seq"], 7);
}

async fn a_retried_send_is_stored_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    let id = Uuid::new_v4();
    let first = app.send(&a, conv, 1, id, b"once").await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app.send(&a, conv, 1, id, b"once").await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["sent_at"], first["sent_at"]);
    let bodies: Vec<Vec<u8>> = app.mailbox(&b, 1).await.iter().map(body_of).collect();
    assert_eq!(bodies, vec![b"once".to_vec()]);
}

async fn stale_commits_and_messages_get_409_with_the_current_epoch(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await; // epoch 1
    let a2 = app.new_device(a.user_id).await;
    assert_eq!(app.approve(&a, &a2, app.clock_ms()).await.status(), 200);

    // Two members race to commit at epoch 1: exactly one wins.
    let add = [a2.id];
    let (r1, r2) = tokio::join!(
        app.commit(&a, conv, 1, &add, &[]),
        app.commit(&b, conv, 1, &[], &[])
    );
    let statuses = [r1.status().as_u16(), r2.status().as_u16()];
    assert!(
        statuses.contains(&201) && statuses.contains(&409),
        "{statuses:?}"
    );
    let loser = if r1.status() == 409 { r1 } else { r2 };
    let problem = assert_problem(loser, 409, "stale_epoch").await;
    assert_eq!(problem["current_epoch"], 2);

    let stale = app.send(&a, conv, 1, Uuid::new_v4(), b"old epoch").await;
    assert_eq!(
        assert_problem(stale, 409, "stale_epoch").await["current_epoch"],
        2
    );
    assert_eq!(
        app.send(&a, conv, 2, Uuid::new_v4(), b"new epoch")
            .await
            .status(),
        201
    );

    let c: Value = app
        .get(&format!("/v1/conversations/{conv}"), &a.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["epoch"], 2);
}

async fn membership_changes_only_through_commits(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let carol = app.create_user("carol").await;
    let c = app.new_device(carol).await;
    let conv = app.conversation(&a, &[&b]).await;

    // Not a contact of alice: cannot be added. A non-member cannot send or read.
    assert_problem(
        app.commit(&a, conv, 1, &[c.id], &[]).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.send(&c, conv, 1, Uuid::new_v4(), b"x").await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/conversations/{conv}"), &c.token)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.commit(&a, conv, 1, &[b.id], &[]).await,
        409,
        "membership_conflict",
    )
    .await;
    let no_welcome = app
        .post_json(
            &format!("/v1/conversations/{conv}/commits"),
            &a.token,
            &json!({"client_msg_id": Uuid::new_v4(), "epoch": 1, "commit": "AA==", "add": [b.id]}),
        )
        .await;
    assert_problem(no_welcome, 400, "welcome_mismatch").await;

    // Removing bob: bob receives the commit, then nothing more.
    assert_eq!(app.commit(&a, conv, 1, &[], &[b.id]).await.status(), 201);
    let before = app.mailbox(&b, 0).await.len();
    assert_eq!(
        app.send(&a, conv, 2, Uuid::new_v4(), b"after removal")
            .await
            .status(),
        201
    );
    let after = app.mailbox(&b, 0).await;
    assert_eq!(after.len(), before);
    assert_eq!(after.last().unwrap()["kind"], "commit");
    assert_problem(
        app.send(&b, conv, 2, Uuid::new_v4(), b"x").await,
        404,
        "not_found",
    )
    .await;
    let listed: Value = app
        .get("/v1/conversations", &a.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["members"].as_array().unwrap().len(), 1);

    // A pending device can read nothing.
    let pending = app.new_device(a.user_id).await;
    assert_problem(
        app.get("/v1/mailbox", &pending.token).await,
        403,
        "device_pending",
    )
    .await;
    assert_problem(
        app.get("/v1/conversations", &pending.token).await,
        403,
        "device_pending",
    )
    .await;
}

async fn unacknowledged_entries_expire_after_the_retention(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    app.send(&a, conv, 1, Uuid::new_v4(), b"short-lived").await;
    assert_eq!(app.mailbox(&b, 0).await.len(), 2);
    app.clock.advance_ms(30 * 24 * 3600 * 1000 + 1);
    // Device tokens expired meanwhile; log in again.
    let mut b = b;
    b.token = app.login(&b).await;
    // (Both devices were inactive past the retention too, so the server may have proposed
    // their removal meanwhile: those proposals are new entries.)
    let left: Vec<serde_json::Value> = app
        .mailbox(&b, 0)
        .await
        .into_iter()
        .filter(|e| e["kind"] != "proposal")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let purged = app.store.purge_mailboxes(app.clock_ms(), 0).await.unwrap();
    assert_eq!(purged, 2);
}

async fn websocket_pushes_at_once_and_resumes_after_reconnect(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    let mut ws = app.socket(&app.address, &b, 0).await;
    let welcome = next_frame(&mut ws).await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["kind"].as_str()),
        (Some("envelope"), Some("welcome"))
    );

    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"live 1")
            .await
            .status(),
        201
    );
    let live = next_frame(&mut ws).await;
    assert_eq!(body_of(&live), b"live 1");
    ws.send(Message::text(
        json!({"type": "ack", "up_to": live["seq"]}).to_string(),
    ))
    .await
    .unwrap();
    let acked = next_frame(&mut ws).await;
    assert_eq!(
        (acked["type"].as_str(), acked["deleted"].as_u64()),
        (Some("acked"), Some(2))
    );
    drop(ws);

    // Sent while bob is offline, fetched on resume after the last acknowledged entry.
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"offline 1")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"offline 2")
            .await
            .status(),
        201
    );
    let mut ws = app
        .socket(&app.address, &b, live["seq"].as_u64().unwrap())
        .await;
    assert_eq!(body_of(&next_frame(&mut ws).await), b"offline 1");
    let second = next_frame(&mut ws).await;
    assert_eq!(body_of(&second), b"offline 2");

    // A quiet ack deletes without an answer: the loud one after it is answered first,
    // and finds nothing left to delete.
    for quiet in [true, false] {
        ws.send(Message::text(
            json!({"type": "ack", "up_to": second["seq"], "quiet": quiet}).to_string(),
        ))
        .await
        .unwrap();
    }
    let acked = next_frame(&mut ws).await;
    assert_eq!(
        (acked["type"].as_str(), acked["deleted"].as_u64()),
        (Some("acked"), Some(0))
    );

    // Sending over the socket answers with a receipt.
    let mut wa = app.socket(&app.address, &a, 0).await;
    let id = Uuid::new_v4();
    let frame = json!({"type": "send", "conversation_id": conv, "client_msg_id": id, "epoch": 1, "body": "aGk="});
    wa.send(Message::text(frame.to_string())).await.unwrap();
    let sent = next_frame(&mut wa).await;
    assert_eq!(
        (sent["type"].as_str(), sent["client_msg_id"].as_str()),
        (Some("sent"), Some(id.to_string().as_str()))
    );
    assert_eq!(body_of(&next_frame(&mut ws).await), b"hi");
    let stale = json!({"type": "send", "conversation_id": conv, "client_msg_id": Uuid::new_v4(), "epoch": 0, "body": "aGk="});
    wa.send(Message::text(stale.to_string())).await.unwrap();
    let err = next_frame(&mut wa).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("stale_epoch"))
    );
    // The acknowledged entry is gone from the mailbox.
    assert!(
        app.mailbox(&b, 0)
            .await
            .iter()
            .all(|e| e["seq"] != live["seq"])
    );
}

async fn websocket_authenticates_by_first_frame_or_refuses(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, b) = two_users(&app).await;
    let url = format!("{}/v1/ws", app.address.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": b.token}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_frame(&mut ws).await["type"], "ready");

    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": "cd_forged"}).to_string(),
    ))
    .await
    .unwrap();
    let err = next_frame(&mut ws).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("invalid_token"))
    );

    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer cd_forged".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401 refusal, got {:?}", other.map(|_| ())),
    }
    let plain = app.get("/v1/ws", &b.token).await;
    assert_problem(plain, 400, "websocket_upgrade_required").await;
}

backend_tests!(
    entries_arrive_in_order_and_acks_delete_them,
    a_retried_send_is_stored_once,
    stale_commits_and_messages_get_409_with_the_current_epoch,
    membership_changes_only_through_commits,
    unacknowledged_entries_expire_after_the_retention,
    websocket_pushes_at_once_and_resumes_after_reconnect,
    websocket_authenticates_by_first_frame_or_refuses,
);

/// Two nodes sharing PostgreSQL and Redis: a socket on node B receives what is sent
/// through node A.
#[tokio::test]
async fn a_socket_on_one_node_receives_what_another_node_accepted() {
    let app = spawn_app(Backend::Postgres).await;
    let (node_b, _) = spawn_on(Backend::Postgres, &app.db).await;
    let (a, b) = two_users(&app).await;
    let conv = app.conversation(&a, &[&b]).await;
    let mut ws = app.socket(&node_b, &b, 1).await;
    let started = std::time::Instant::now();
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"across nodes")
            .await
            .status(),
        201
    );
    assert_eq!(body_of(&next_frame(&mut ws).await), b"across nodes");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

async fn sharing_a_conversation_opens_the_directory(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    app.make_contacts(alice, bob).await;
    app.make_contacts(alice, carol).await;
    let (a, b, c) = (
        app.new_device(alice).await,
        app.new_device(bob).await,
        app.new_device(carol).await,
    );
    // bob and carol are not contacts: neither sees the other until they share a conversation.
    assert_problem(
        app.get(&format!("/v1/users/{carol}/devices"), &b.token)
            .await,
        404,
        "not_found",
    )
    .await;
    app.conversation(&a, &[&b, &c]).await;
    assert_eq!(
        app.get(&format!("/v1/users/{carol}/devices"), &b.token)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/v1/users/{bob}/devices"), &c.token)
            .await
            .status(),
        200
    );
}

mod shared_conversations {
    use super::*;
    crate::backend_tests!(sharing_a_conversation_opens_the_directory);
}
