//! The delivery pipeline: pipelined sends over one socket answered in order and charged
//! exactly, socket sends validated as REST bodies are, concurrent retries answered as
//! replays, envelopes pushed from memory with gaps read from the mailbox, commits racing
//! sends without a deadlock, and revocation closing sockets at once on every node.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::backend_tests;
use crate::delivery_helpers::{Socket, body_of, next_frame};
use crate::helpers::{Backend, spawn_app, spawn_on, spawn_with_clock};
use crate::identity_helpers::b64;

fn send_frame(conv: Uuid, id: Uuid, epoch: u64, body: &[u8]) -> Message {
    Message::text(
        json!({"type": "send", "conversation_id": conv, "client_msg_id": id, "epoch": epoch, "body": b64(body)})
            .to_string(),
    )
}

/// Frames until `n` answers (sent or error) have arrived.
async fn answers(ws: &mut Socket, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let frame = next_frame(ws).await;
        if frame["type"] == "sent" || frame["type"] == "error" {
            out.push(frame);
        }
    }
    out
}

async fn pipelined_sends_are_answered_in_order_and_charged_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, conv) = app.pair().await;
    app.set_prices(1, 0).await;
    app.grant("tenant", 500).await;
    let mut ws = app.socket(&app.address, &a, u64::MAX).await;
    let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    // Every frame is written before any answer is read: the socket keeps reading while
    // earlier sends are being stored.
    for (i, id) in ids.iter().enumerate() {
        ws.feed(send_frame(conv, *id, 1, format!("m{i}").as_bytes()))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    let got = answers(&mut ws, 1000).await;
    let order: Vec<&str> = got
        .iter()
        .map(|f| f["client_msg_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(
        order, expected,
        "answers leave in the order the sends came in"
    );
    let (sent, refused): (Vec<&Value>, Vec<&Value>) = got.iter().partition(|f| f["type"] == "sent");
    assert_eq!((sent.len(), refused.len()), (500, 500));
    // The balance runs out in order: the first 500 are stored, the rest refused.
    assert!(got[..500].iter().all(|f| f["type"] == "sent"));
    assert!(
        got[500..]
            .iter()
            .all(|f| f["code"] == "insufficient_credits")
    );
    app.assert_drained_by_500_sends("tenant").await;
    // Bob's mailbox holds the 500, in the sender's order, with consecutive sequence numbers.
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = app.mailbox(&b, after).await;
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap()["seq"].as_u64().unwrap();
        entries.extend(page);
    }
    let apps: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "application")
        .collect();
    assert_eq!(apps.len(), 500);
    for (i, e) in apps.iter().enumerate() {
        assert_eq!(body_of(e), format!("m{i}").as_bytes());
    }
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

async fn socket_sends_are_validated_like_rest_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, conv) = app.pair().await;
    let mut ws = app.socket(&app.address, &a, u64::MAX).await;
    let empty = Uuid::new_v4();
    let huge = Uuid::new_v4();
    let fine = Uuid::new_v4();
    ws.send(send_frame(conv, empty, 1, b"")).await.unwrap();
    ws.send(send_frame(conv, huge, 1, &vec![7u8; 256 * 1024 + 1]))
        .await
        .unwrap();
    ws.send(send_frame(conv, fine, 1, b"fine")).await.unwrap();
    let got = answers(&mut ws, 3).await;
    for (frame, id) in got.iter().zip([empty, huge]) {
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], "validation_failed", "{frame}");
        assert_eq!(frame["client_msg_id"], id.to_string());
    }
    assert_eq!(got[2]["type"], "sent");
    // Only the valid one reached bob.
    let bodies: Vec<Vec<u8>> = app
        .mailbox(&b, 0)
        .await
        .iter()
        .filter(|e| e["kind"] == "application")
        .map(body_of)
        .collect();
    assert_eq!(bodies, vec![b"fine".to_vec()]);
}

async fn concurrent_retries_are_answered_as_replays(backend: Backend) {
    let app = spawn_app(backend).await;
    // Node B shares A's clock: they share the limiter's state in Redis.
    let (node_b, _) = spawn_with_clock(backend, &app.db, app.clock.clone()).await;
    let (a, b, conv) = app.pair().await;
    let id = Uuid::new_v4();
    let statuses: Vec<u16> = futures_util::stream::iter(0..40)
        .map(|i| {
            let base = if i % 2 == 0 {
                app.address.clone()
            } else {
                node_b.clone()
            };
            let (client, token) = (app.client.clone(), a.token.clone());
            async move {
                client
                    .post(format!("{base}/v1/conversations/{conv}/messages"))
                    .bearer_auth(token)
                    .json(&json!({"client_msg_id": id, "epoch": 1, "body": b64(b"once")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(40)
        .collect()
        .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 200),
        "{statuses:?}"
    );
    let stored = app
        .mailbox(&b, 0)
        .await
        .iter()
        .filter(|e| e["kind"] == "application")
        .count();
    assert_eq!(stored, 1);
}

async fn a_missed_push_is_read_from_the_mailbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, conv) = app.pair().await;
    let mut ws = app.socket(&app.address, &b, 0).await;
    assert_eq!(next_frame(&mut ws).await["kind"], "welcome");
    // Stored behind the pipeline's back: no push, as if the note were lost.
    let alice = a.user_id;
    let quiet = cloak_api::store::NewSend {
        tenant_id: a.tenant_id,
        conversation_id: conv,
        sender: cloak_api::store::Member {
            device_id: a.id,
            user_id: alice,
        },
        client_msg_id: Uuid::new_v4(),
        epoch: 1,
        body: b"missed".to_vec(),
        now_ms: app.clock_ms(),
        mailbox_quota: 100,
        charge: None,
        franking: None,
        viewable: true,
    };
    let outcome = app.store.store_application(&quiet).await.unwrap();
    assert!(matches!(outcome, cloak_api::store::SendOutcome::Stored(_)));
    // The next push shows a gap: the socket reads the mailbox and delivers both, once each.
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"pushed")
            .await
            .status(),
        201
    );
    let first = next_frame(&mut ws).await;
    let second = next_frame(&mut ws).await;
    assert_eq!(body_of(&first), b"missed");
    assert_eq!(body_of(&second), b"pushed");
    assert_eq!(
        second["seq"].as_u64().unwrap(),
        first["seq"].as_u64().unwrap() + 1
    );
    assert_eq!(
        app.send(&a, conv, 1, Uuid::new_v4(), b"after")
            .await
            .status(),
        201
    );
    let third = next_frame(&mut ws).await;
    assert_eq!(body_of(&third), b"after", "no entry is sent twice");
}

async fn commits_racing_sends_never_deadlock(backend: Backend) {
    let app = spawn_app(backend).await;
    // Node B shares A's clock: they share the limiter's state in Redis.
    let (node_b, _) = spawn_with_clock(backend, &app.db, app.clock.clone()).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    let a = app.new_device(alice).await;
    let b = app.new_device(bob).await;
    let mut extra = Vec::new();
    for _ in 0..6 {
        let d = app.new_device(bob).await;
        assert_eq!(app.approve(&b, &d, app.clock_ms()).await.status(), 200);
        extra.push(d);
    }
    let conv = app.conversation(&a, &[&b]).await;
    for (epoch, device) in (1u64..).zip(&extra) {
        // Sends from both sides while bob's device commits another of his devices in.
        let sends = futures_util::stream::iter(0..30)
            .map(|i| {
                let (client, from) = if i % 2 == 0 {
                    (app.address.clone(), a.token.clone())
                } else {
                    (node_b.clone(), b.token.clone())
                };
                let http = app.client.clone();
                async move {
                    let r = http.post(format!("{client}/v1/conversations/{conv}/messages"))
                        .bearer_auth(from)
                        .json(&json!({"client_msg_id": Uuid::new_v4(), "epoch": epoch, "body": b64(b"x")}))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    if status != 201 && status != 409 {
                        eprintln!("send answered {status}: {}", r.text().await.unwrap_or_default());
                    }
                    status
                }
            })
            .buffer_unordered(30)
            .collect::<Vec<u16>>();
        let add = [device.id];
        let commit = app.commit(&b, conv, epoch, &add, &[]);
        let (statuses, commit) = tokio::join!(sends, commit);
        assert_eq!(commit.status(), 201);
        // Each send went in before the commit (201) or after it (409 stale epoch); none failed.
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{statuses:?}"
        );
    }
}

async fn revocation_closes_sockets_on_every_node(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, _conv) = app.pair().await;
    // With Redis the socket sits on another node; the in-process broker is one node.
    let node = if backend == Backend::Postgres {
        spawn_on(backend, &app.db).await.0
    } else {
        app.address.clone()
    };
    let mut ws = app.socket(&node, &b, u64::MAX).await;
    let resp = app
        .delete(&format!("/v1/devices/{}", b.id), &app.api_key)
        .await;
    assert_eq!(resp.status(), 204);
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.reason.to_string()),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the socket is closed at once, not at the next heartbeat");
    assert_eq!(closed.as_deref(), Some("no longer authorised"));
    // A's socket is unaffected.
    let mut wa = app.socket(&app.address, &a, u64::MAX).await;
    wa.send(Message::Ping(vec![1].into())).await.unwrap();
}

backend_tests!(
    pipelined_sends_are_answered_in_order_and_charged_exactly,
    socket_sends_are_validated_like_rest_bodies,
    concurrent_retries_are_answered_as_replays,
    a_missed_push_is_read_from_the_mailbox,
    commits_racing_sends_never_deadlock,
    revocation_closes_sockets_on_every_node,
);
