//! One conformance suite for every broker backend.

use std::time::Duration;

use cloak_api::broker::{BrokerError, Notification, Rate};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, fresh_broker};

fn topic() -> String {
    format!("test:{}", Uuid::new_v4())
}

async fn next(sub: &mut cloak_api::broker::Subscription) -> Notification {
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("no notification within 5 s")
        .expect("broker closed")
}

async fn published_payloads_reach_every_subscriber_of_the_topic(backend: Backend) {
    let broker = fresh_broker(backend).await;
    let (t1, t2) = (topic(), topic());
    let mut a = broker.subscribe(&t1).await.unwrap();
    let mut b = broker.subscribe(&t1).await.unwrap();
    let mut other = broker.subscribe(&t2).await.unwrap();
    broker.publish(&t1, b"wake 1").await.unwrap();
    broker.publish(&t2, b"wake 2").await.unwrap();
    assert_eq!(
        next(&mut a).await,
        Notification::Message(b"wake 1".as_slice().into())
    );
    assert_eq!(
        next(&mut b).await,
        Notification::Message(b"wake 1".as_slice().into())
    );
    assert_eq!(
        next(&mut other).await,
        Notification::Message(b"wake 2".as_slice().into())
    );
    assert_eq!(a.topic(), t1);
}

async fn order_is_kept_per_topic(backend: Backend) {
    let broker = fresh_broker(backend).await;
    let t = topic();
    let mut sub = broker.subscribe(&t).await.unwrap();
    let n = u8::try_from(cloak_api::broker::CHANNEL_CAPACITY).unwrap();
    for i in 0..n {
        broker.publish(&t, &[i]).await.unwrap();
    }
    for i in 0..n {
        assert_eq!(next(&mut sub).await, Notification::Message(vec![i].into()));
    }
}

async fn a_subscriber_that_falls_behind_is_told_it_lagged(backend: Backend) {
    let broker = fresh_broker(backend).await;
    let t = topic();
    let mut sub = broker.subscribe(&t).await.unwrap();
    let total = cloak_api::broker::CHANNEL_CAPACITY + 10;
    for i in 0..total {
        broker
            .publish(&t, &[u8::try_from(i).unwrap()])
            .await
            .unwrap();
    }
    // Redis delivers asynchronously: wait until everything has reached this node.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        next(&mut sub).await,
        Notification::Lagged(10),
        "buffering is bounded"
    );
    assert_eq!(next(&mut sub).await, Notification::Message(vec![10].into()));
}

async fn resubscribing_after_drop_works(backend: Backend) {
    let broker = fresh_broker(backend).await;
    let t = topic();
    drop(broker.subscribe(&t).await.unwrap());
    broker.publish(&t, b"nobody").await.unwrap();
    let mut sub = broker.subscribe(&t).await.unwrap();
    broker.publish(&t, b"again").await.unwrap();
    assert_eq!(
        next(&mut sub).await,
        Notification::Message(b"again".as_slice().into())
    );
}

async fn publish_many_reaches_each_topic(backend: Backend) {
    let broker = fresh_broker(backend).await;
    let topics: Vec<String> = (0..5).map(|_| topic()).collect();
    let mut subs = Vec::new();
    for t in &topics {
        subs.push(broker.subscribe(t).await.unwrap());
    }
    broker.publish_many(&topics, b"all").await.unwrap();
    broker.publish_many(&[], b"none").await.unwrap();
    for sub in &mut subs {
        assert_eq!(
            next(sub).await,
            Notification::Message(b"all".as_slice().into())
        );
    }
}

async fn bad_topics_are_refused(backend: Backend) {
    let broker = fresh_broker(backend).await;
    assert!(matches!(
        broker.publish("", b"x").await,
        Err(BrokerError::InvalidTopic)
    ));
    assert!(matches!(
        broker.subscribe(&"x".repeat(201)).await,
        Err(BrokerError::InvalidTopic)
    ));
    broker.ping().await.unwrap();
}

async fn the_rate_limiter_is_exact_and_resets(backend: Backend) {
    let broker = fresh_broker(backend).await;
    let key = topic();
    let rate = Rate {
        limit: 6,
        window_ms: 60_000,
    };
    let results =
        futures_util::future::join_all((0..40).map(|_| broker.rate_limit(&key, 1_000_000, rate)))
            .await;
    let allowed: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap())
        .filter(|d| d.allowed)
        .collect();
    assert_eq!(allowed.len(), 6);
    let refused = broker.rate_limit(&key, 1_000_000, rate).await.unwrap();
    assert_eq!((refused.allowed, refused.retry_after_ms), (false, 10_000));
    // Another key is independent; time restores the allowance.
    assert!(
        broker
            .rate_limit(&topic(), 1_000_000, rate)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        broker
            .rate_limit(&key, 1_010_000, rate)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !broker
            .rate_limit(&key, 1_010_000, rate)
            .await
            .unwrap()
            .allowed
    );
}

backend_tests!(
    the_rate_limiter_is_exact_and_resets,
    published_payloads_reach_every_subscriber_of_the_topic,
    order_is_kept_per_topic,
    a_subscriber_that_falls_behind_is_told_it_lagged,
    resubscribing_after_drop_works,
    publish_many_reaches_each_topic,
    bad_topics_are_refused,
);

/// Two nodes sharing Redis count against one limit exactly.
#[tokio::test]
async fn two_nodes_share_one_limit_through_redis() {
    let nodes = [
        fresh_broker(Backend::Postgres).await,
        fresh_broker(Backend::Postgres).await,
    ];
    let key = topic();
    let rate = Rate {
        limit: 6,
        window_ms: 3_600_000,
    };
    let calls = (0..100).map(|i| nodes[i % 2].rate_limit(&key, 5_000, rate));
    let allowed = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().allowed)
        .count();
    assert_eq!(allowed, 6);
}

/// Two nodes sharing Redis: what one publishes, the other's subscribers receive.
#[tokio::test]
async fn redis_carries_notifications_between_nodes() {
    let node_a = fresh_broker(Backend::Postgres).await;
    let node_b = fresh_broker(Backend::Postgres).await;
    let t = topic();
    let mut on_b = node_b.subscribe(&t).await.unwrap();
    node_a.publish(&t, b"from a").await.unwrap();
    assert_eq!(
        next(&mut on_b).await,
        Notification::Message(b"from a".as_slice().into())
    );
}

/// Pushed envelopes: a node's own subscribers get each payload once, directly (not a second
/// time through Redis), and the other node's subscribers get it once through Redis.
#[tokio::test]
async fn publish_each_reaches_local_and_remote_subscribers_once() {
    let node_a = fresh_broker(Backend::Postgres).await;
    let node_b = fresh_broker(Backend::Postgres).await;
    let (t1, t2) = (topic(), topic());
    let mut local = node_a.subscribe(&t1).await.unwrap();
    let mut remote = node_b.subscribe(&t2).await.unwrap();
    let items: Vec<(String, std::sync::Arc<[u8]>)> = vec![
        (t1.clone(), b"one".as_slice().into()),
        (t2.clone(), b"two".as_slice().into()),
        (t1.clone(), b"three".as_slice().into()),
    ];
    node_a.publish_each(&items).await.unwrap();
    assert_eq!(
        next(&mut local).await,
        Notification::Message(b"one".as_slice().into())
    );
    assert_eq!(
        next(&mut local).await,
        Notification::Message(b"three".as_slice().into())
    );
    assert_eq!(
        next(&mut remote).await,
        Notification::Message(b"two".as_slice().into())
    );
    // Nothing more arrives: the echo of node A's own publications through Redis is skipped.
    node_a.publish(&t1, b"marker").await.unwrap();
    assert_eq!(
        next(&mut local).await,
        Notification::Message(b"marker".as_slice().into())
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), local.recv())
            .await
            .is_err(),
        "a publication came back through Redis"
    );
}
