//! Graceful degradation, tried by taking a dependency away from a running node (a
//! [`CutProxy`] between the node and the real PostgreSQL or Redis):
//!
//! - without Redis a node still stores, delivers to its own sockets and serves mailboxes,
//!   says `degraded` on `/readyz`, and after Redis returns the messages other nodes missed
//!   reach them;
//! - without PostgreSQL sends fail fast with 503 problem JSON (REST) or an error frame
//!   (WebSocket), sockets stay open, and the same socket sends again once it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloak_api::clock::{ManualClock, SystemClock};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::cut_proxy::{CutProxy, through, upstream_of};
use crate::delivery_helpers::{Socket, body_of, next_frame};
use crate::helpers::{
    Backend, TestApp, TestDb, assert_problem, create_tenant, fresh_database, redis_url,
    settings_with, spawn_configured, spawn_with_clock, unlimited,
};
use crate::identity_helpers::b64;

/// A PostgreSQL + Redis node on `db`, its settings overridden by `extra`.
async fn node(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    let clock = Arc::new(ManualClock::new(cloak_api::clock::Clock::now_ms(
        &SystemClock,
    )));
    let settings = settings_with(Backend::Postgres, &db, extra);
    let (address, store) = spawn_configured(settings, clock.clone()).await;
    let (tenant_id, api_key) = create_tenant(store.as_ref(), "Acme").await;
    unlimited(store.as_ref(), tenant_id).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    TestApp {
        address,
        clock,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        api_key,
        store,
        db,
    }
}

async fn readiness(app: &TestApp) -> (u16, Value) {
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Polls `/readyz` until its `status` is `want` (at most 15 s).
async fn wait_ready(app: &TestApp, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = readiness(app).await;
        if body["status"] == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never said {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn send_frame(conversation: Uuid, id: Uuid, body: &[u8]) -> Message {
    Message::text(
        json!({"type": "send", "conversation_id": conversation, "client_msg_id": id,
               "epoch": 1, "body": b64(body)})
        .to_string(),
    )
}

/// The next frame of type `kind` or an error; for `envelope`, the next application message
/// (Welcomes and commits are skipped).
async fn next_of(ws: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = next_frame(ws).await;
        if frame["type"] == "error" {
            return frame;
        }
        if frame["type"] == kind && (kind != "envelope" || frame["kind"] == "application") {
            return frame;
        }
    }
}

#[tokio::test]
async fn without_redis_a_node_stores_and_delivers_locally_and_catches_up_after() {
    let redis = CutProxy::start(&upstream_of(&redis_url())).await;
    let redis_via_proxy = through(&redis_url(), &redis);
    let db = fresh_database(Backend::Postgres).await;
    // The per-IP login limit runs, so logins need the limiter too.
    let app = node(
        db,
        &[
            ("CLOAK_REDIS_URL", redis_via_proxy.as_str()),
            ("CLOAK_LOGIN_PER_IP_PER_MINUTE", "1000"),
        ],
    )
    .await;
    // Node B keeps its own, working, Redis connection.
    let (node_b, _) = spawn_with_clock(Backend::Postgres, &app.db, app.clock.clone()).await;
    let (a, b, conv) = app.pair().await;
    let carol = app.create_user("carol").await;
    app.make_contacts(a.user_id, carol).await;
    let c = app.new_device(carol).await;
    let group = app.conversation(&a, &[&b, &c]).await;
    let mut wb = app.socket(&app.address, &b, 0).await;
    let mut wa = app.socket(&app.address, &a, 0).await;
    // Carol's socket is on node B: it hears of node A's messages through Redis.
    let mut wc_far = app.socket(&node_b, &c, 0).await;
    assert_eq!(next_frame(&mut wc_far).await["kind"], "welcome");
    assert_eq!(wait_ready(&app, "ok").await["broker"]["status"], "ok");

    redis.cut();
    let body = wait_ready(&app, "degraded").await;
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["broker"]["status"], "unavailable");
    let (status, _) = readiness(&app).await;
    assert_eq!(status, 200, "a degraded node stays in the load balancer");

    // REST: stored at once (the rate limit is kept on the node), pushed to the local socket.
    let started = Instant::now();
    let resp = app
        .send(&a, conv, 1, Uuid::new_v4(), b"rest, no redis")
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let pushed = next_of(&mut wb, "envelope").await;
    assert_eq!(body_of(&pushed), b"rest, no redis");
    // WebSocket: sent, delivered locally, acknowledged.
    let id = Uuid::new_v4();
    wa.send(send_frame(group, id, b"socket, no redis"))
        .await
        .unwrap();
    let sent = next_of(&mut wa, "sent").await;
    assert_eq!(sent["client_msg_id"], id.to_string(), "{sent}");
    let pushed = next_of(&mut wb, "envelope").await;
    assert_eq!(body_of(&pushed), b"socket, no redis");
    let seq = pushed["seq"].as_u64().unwrap();
    wb.send(Message::text(
        json!({"type": "ack", "up_to": seq}).to_string(),
    ))
    .await
    .unwrap();
    let acked = next_of(&mut wb, "acked").await;
    assert_eq!(acked["up_to"], seq, "{acked}");
    // The mailbox is served from the database (this node's memory mailbox is in Redis).
    let waiting = app.mailbox(&c, 0).await;
    assert!(
        waiting.iter().any(|e| body_of(e) == b"socket, no redis"),
        "{waiting:?}"
    );
    // A login (whose per-IP limit is a rate limit) still works.
    let dave = app.create_user("dave").await;
    let d = app.new_device(dave).await;
    assert!(!d.token.is_empty());
    // Carol's socket on node B could not hear of the group message: node A could not
    // publish it.

    redis.restore();
    wait_ready(&app, "ok").await;
    // Node A announces its return, so node B's socket reads what it missed.
    let missed = next_of(&mut wc_far, "envelope").await;
    assert_eq!(body_of(&missed), b"socket, no redis", "{missed}");
    // And pushes cross nodes again.
    let resp = app
        .send(&a, group, 1, Uuid::new_v4(), b"redis is back")
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        body_of(&next_of(&mut wc_far, "envelope").await),
        b"redis is back"
    );
}

#[tokio::test]
async fn without_postgres_sends_fail_fast_sockets_stay_and_resume_after() {
    let db = fresh_database(Backend::Postgres).await;
    let postgres = CutProxy::start(&upstream_of(&db.url)).await;
    let url = through(&db.url, &postgres);
    let app = node(
        db,
        &[
            ("CLOAK_DATABASE_URL", url.as_str()),
            ("CLOAK_DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let (a, b, conv) = app.pair().await;
    let mut wa = app.socket(&app.address, &a, 0).await;
    let mut wb = app.socket(&app.address, &b, 0).await;
    assert_eq!(next_frame(&mut wb).await["kind"], "welcome");

    postgres.cut();
    // REST: a problem, within a few seconds (one pool timeout), not a hang.
    let started = Instant::now();
    let resp = app.send(&a, conv, 1, Uuid::new_v4(), b"lost?").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_problem(resp, 503, "database_unavailable").await;
    // WebSocket: an error frame naming the message, and the socket stays open.
    let id = Uuid::new_v4();
    let started = Instant::now();
    wa.send(send_frame(conv, id, b"held")).await.unwrap();
    let error = next_of(&mut wa, "sent").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("database_unavailable")),
        "{error}"
    );
    assert_eq!(error["client_msg_id"], id.to_string());
    let (status, body) = readiness(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["database"]["status"], "unavailable");

    postgres.restore();
    wait_ready(&app, "ok").await;
    // The same socket sends the same message again, and the recipient's socket gets it.
    wa.send(send_frame(conv, id, b"held")).await.unwrap();
    let sent = next_of(&mut wa, "sent").await;
    assert_eq!(
        (sent["type"].as_str(), sent["client_msg_id"].as_str()),
        (Some("sent"), Some(id.to_string().as_str())),
        "{sent}"
    );
    assert_eq!(body_of(&next_of(&mut wb, "envelope").await), b"held");
    let resp = app.send(&a, conv, 1, Uuid::new_v4(), b"rest again").await;
    assert_eq!(resp.status(), 201);
    assert_eq!(body_of(&next_of(&mut wb, "envelope").await), b"rest again");
}

#[tokio::test]
async fn without_redis_only_memory_only_tenants_messages_are_refused() {
    let redis = CutProxy::start(&upstream_of(&redis_url())).await;
    let redis_via_proxy = through(&redis_url(), &redis);
    let db = fresh_database(Backend::Postgres).await;
    let app = node(db, &[("CLOAK_REDIS_URL", redis_via_proxy.as_str())]).await;
    let (a, _b, conv) = app.pair().await;
    // A second tenant keeps its mailboxes in Redis only.
    let (memo, memo_key) = create_tenant(app.store.as_ref(), "Memo").await;
    unlimited(app.store.as_ref(), memo).await;
    let resp = app
        .client
        .patch(app.url("/v1/tenant"))
        .bearer_auth(&memo_key)
        .json(&json!({"mailbox_storage": "memory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m1 = app.tenant_device(&memo_key, "m1").await;
    let m2 = app.tenant_device(&memo_key, "m2").await;
    let resp = app
        .post_json(
            "/v1/contacts",
            &memo_key,
            &json!({"user_id": m1.user_id, "contact_user_id": m2.user_id}),
        )
        .await;
    assert_eq!(resp.status(), 204);
    let memo_conv = app.conversation(&m1, &[&m2]).await;

    redis.cut();
    wait_ready(&app, "degraded").await;
    // Sent together, so they share batches: the memory tenant's refusals stay its own.
    let bodies: Vec<String> = (0..10).map(|i| format!("message {i}")).collect();
    let durable = bodies
        .iter()
        .map(|b| app.send(&a, conv, 1, Uuid::new_v4(), b.as_bytes()));
    let memory = bodies
        .iter()
        .map(|b| app.send(&m1, memo_conv, 1, Uuid::new_v4(), b.as_bytes()));
    let (durable, memory) = tokio::join!(
        futures_util::future::join_all(durable),
        futures_util::future::join_all(memory)
    );
    for resp in durable {
        assert_eq!(resp.status(), 201);
    }
    for resp in memory {
        assert_problem(resp, 503, "database_unavailable").await;
    }

    redis.restore();
    wait_ready(&app, "ok").await;
    let resp = app.send(&m1, memo_conv, 1, Uuid::new_v4(), b"back").await;
    assert_eq!(resp.status(), 201);
    let held = app.mailbox(&m2, 0).await;
    assert!(held.iter().any(|e| body_of(e) == b"back"), "{held:?}");
}
