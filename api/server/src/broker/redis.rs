//! The Redis broker: several API nodes share one Redis; pub/sub wakes the right node.
//!
//! Commands (PUBLISH, PING) go through a deadpool-redis pool. One dedicated pub/sub
//! connection per node carries every subscription; a background task reads it, hands
//! messages to the node-local [`Fanout`], and reconnects (re-subscribing) when it drops.
//!
//! Redis going away degrades a node, it does not stop it. Local subscribers still get
//! this node's publications (they are delivered before Redis is asked), subscriptions are
//! taken locally and joined on Redis at the reconnect, rate limits fall back to this
//! node's own GCRA state (per node instead of shared, until Redis answers again), and
//! after a reconnect every subscriber, on this node and (through [`WAKE_CHANNEL`]) on the
//! others, is woken with an empty payload, because publications of the outage were lost
//! both ways.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::Pool;
use deadpool_redis::redis::{self, AsyncCommands, aio::PubSubSink};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::RwLock;

use super::fanout::Fanout;
use super::gcra::{self, Rate, RateDecision};
use super::memory::MemoryBroker;
use super::{Broker, BrokerError, Subscription, check_topic};

const CHANNEL_PREFIX: &str = "cloak:";
/// Every node listens here, outside the topic namespace: a node whose Redis connection came
/// back says so (with its id), and the others wake their subscribers too, because that
/// node's publications of the outage never reached them.
const WAKE_CHANNEL: &str = "cloak-wake";
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const JANITOR_PERIOD: Duration = Duration::from_secs(10);
const NODE_ID_LEN: usize = 16;
/// Longest wait for Redis to confirm a subscription before it is left to the reconnect.
const SUBSCRIBE_TIMEOUT: Duration = crate::redis_pool::TIMEOUT;

/// A broker backed by Redis pub/sub.
pub struct RedisBroker {
    pool: Pool,
    shared: Arc<Shared>,
    /// Rate-limit state used while Redis does not answer (this node's share only).
    fallback: MemoryBroker,
    /// Set while rate limits are decided by `fallback`, so the switch is logged once.
    limits_local: AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared {
    /// This node's random id, put before every payload it publishes: the reader skips
    /// its own publications, which were already delivered locally.
    node: [u8; NODE_ID_LEN],
    client: redis::Client,
    fanout: Fanout,
    sink: RwLock<Option<PubSubSink>>,
    /// Channels subscribed on the current Redis connection.
    subscribed: Mutex<HashSet<String>>,
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

impl RedisBroker {
    /// Connects the command pool and the pub/sub connection; fails when Redis is unreachable.
    pub async fn connect(url: &SecretString) -> Result<Self, BrokerError> {
        let pool = crate::redis_pool::open(url.expose_secret()).map_err(unavailable)?;
        let client = redis::Client::open(url.expose_secret()).map_err(unavailable)?;
        let shared = Arc::new(Shared {
            node: *uuid::Uuid::new_v4().as_bytes(),
            client,
            fanout: Fanout::default(),
            sink: RwLock::new(None),
            subscribed: Mutex::new(HashSet::new()),
        });
        // Fail fast at start-up rather than serving while the bus is down.
        let stream = shared.open().await?;
        let reader = tokio::spawn(Shared::read_loop(shared.clone(), stream));
        let janitor = tokio::spawn(Shared::janitor(Arc::downgrade(&shared)));
        let broker = Self {
            pool,
            shared,
            fallback: MemoryBroker::new(),
            limits_local: AtomicBool::new(false),
            tasks: vec![reader, janitor],
        };
        broker.ping().await?;
        Ok(broker)
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    /// Opens a pub/sub connection, installs its sink and re-subscribes local topics.
    async fn open(&self) -> Result<redis::aio::PubSubStream, BrokerError> {
        let pubsub = self.client.get_async_pubsub().await.map_err(unavailable)?;
        let (mut sink, stream) = pubsub.split();
        let topics = self.fanout.topics();
        let channels: Vec<String> = topics.iter().map(|t| channel(t)).collect();
        let mut all = channels.clone();
        all.push(WAKE_CHANNEL.to_owned());
        sink.subscribe(&all).await.map_err(unavailable)?;
        *self
            .subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = channels.into_iter().collect();
        *self.sink.write().await = Some(sink);
        Ok(stream)
    }

    async fn read_loop(shared: Arc<Self>, mut stream: redis::aio::PubSubStream) {
        let mut backoff = Duration::from_millis(100);
        loop {
            while let Some(msg) = stream.next().await {
                if msg.get_channel_name() == WAKE_CHANNEL {
                    if msg.get_payload_bytes() != shared.node {
                        shared.fanout.wake_all();
                    }
                    continue;
                }
                let Some(topic) = msg.get_channel_name().strip_prefix(CHANNEL_PREFIX) else {
                    continue;
                };
                let payload = msg.get_payload_bytes();
                // Another node's publication (ours were delivered locally already).
                match payload.split_at_checked(NODE_ID_LEN) {
                    Some((origin, body)) if origin != shared.node => {
                        shared.fanout.deliver(topic, Arc::from(body));
                    }
                    _ => {}
                }
            }
            *shared.sink.write().await = None;
            tracing::warn!("redis pub/sub connection lost; reconnecting");
            loop {
                tokio::time::sleep(backoff).await;
                match shared.open().await {
                    Ok(s) => {
                        tracing::info!("redis pub/sub connection restored");
                        stream = s;
                        backoff = Duration::from_millis(100);
                        // Publications of the outage are gone, both ways: every local
                        // subscriber re-reads what it follows, and so do the other nodes'.
                        shared.fanout.wake_all();
                        shared.announce_return().await;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "redis pub/sub reconnect failed");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }

    /// Unsubscribes Redis channels whose local subscribers are all gone.
    async fn janitor(shared: std::sync::Weak<Self>) {
        let mut tick = tokio::time::interval(JANITOR_PERIOD);
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let live: HashSet<String> = shared.fanout.topics().iter().map(|t| channel(t)).collect();
            let stale: Vec<String> = {
                let mut subscribed = shared
                    .subscribed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let stale: Vec<String> = subscribed.difference(&live).cloned().collect();
                for c in &stale {
                    subscribed.remove(c);
                }
                stale
            };
            if stale.is_empty() {
                continue;
            }
            if let Some(sink) = shared.sink.write().await.as_mut()
                && let Err(e) = sink.unsubscribe(&stale).await
            {
                tracing::warn!(error = %e, "redis unsubscribe failed");
            }
        }
    }
}

impl Shared {
    /// Tells the other nodes that this one's Redis connection is back.
    async fn announce_return(&self) {
        let published = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            conn.publish::<_, _, i64>(WAKE_CHANNEL, &self.node[..])
                .await
        };
        match tokio::time::timeout(crate::redis_pool::TIMEOUT, published).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "redis wake announcement failed"),
            Err(_) => tracing::warn!("redis wake announcement timed out"),
        }
    }

    fn tagged(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(NODE_ID_LEN + payload.len());
        out.extend_from_slice(&self.node);
        out.extend_from_slice(payload);
        out
    }
}

impl RedisBroker {
    /// GCRA on Redis, shared by every node.
    async fn shared_rate_limit(
        &self,
        key: &str,
        now_ms: i64,
        rate: Rate,
    ) -> Result<RateDecision, BrokerError> {
        let mut conn = self.pool.get().await.map_err(unavailable)?;
        let (allowed, value): (i64, i64) = GCRA_SCRIPT
            .key(format!("cloak:rl:{key}"))
            .arg(now_ms.saturating_mul(1000))
            .arg(rate.emission_us())
            .arg(rate.tolerance_us())
            .invoke_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(if allowed == 1 {
            gcra::allowed(value, now_ms, rate)
        } else {
            gcra::refused(value, now_ms, rate)
        })
    }
}

fn channel(topic: &str) -> String {
    format!("{CHANNEL_PREFIX}{topic}")
}

/// GCRA in one atomic step (see `gcra.rs`): KEYS[1] holds the TAT; ARGV = now, T, τ (µs).
/// Returns {1, new TAT} when allowed, {0, TAT} when refused. The key expires when the
/// limiter is back to full allowance.
static GCRA_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local tau = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - tau > now then
  return {0, tat}
end
local new_tat = tat + t
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, new_tat}
",
    )
});

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        check_topic(topic)?;
        self.shared.fanout.deliver(topic, Arc::from(payload));
        let mut conn = self.pool.get().await.map_err(unavailable)?;
        let _receivers: i64 = conn
            .publish(channel(topic), self.shared.tagged(payload))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn publish_many(&self, topics: &[String], payload: &[u8]) -> Result<(), BrokerError> {
        if topics.is_empty() {
            return Ok(());
        }
        let local: Arc<[u8]> = Arc::from(payload);
        let tagged = self.shared.tagged(payload);
        let mut pipe = redis::pipe();
        for topic in topics {
            check_topic(topic)?;
            self.shared.fanout.deliver(topic, local.clone());
            pipe.publish(channel(topic), &tagged).ignore();
        }
        let mut conn = self.pool.get().await.map_err(unavailable)?;
        pipe.query_async::<()>(&mut *conn)
            .await
            .map_err(unavailable)
    }

    async fn publish_each(&self, items: &[(String, Arc<[u8]>)]) -> Result<(), BrokerError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (topic, payload) in items {
            check_topic(topic)?;
            self.shared.fanout.deliver(topic, payload.clone());
            pipe.publish(channel(topic), self.shared.tagged(payload))
                .ignore();
        }
        let mut conn = self.pool.get().await.map_err(unavailable)?;
        pipe.query_async::<()>(&mut *conn)
            .await
            .map_err(unavailable)
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BrokerError> {
        check_topic(topic)?;
        let subscription = self.shared.fanout.subscribe(topic);
        let channel = channel(topic);
        let needs_redis = !self
            .shared
            .subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&channel);
        if needs_redis {
            let mut guard = self.shared.sink.write().await;
            // Without a connection the reader re-subscribes every local topic on reconnect.
            if let Some(sink) = guard.as_mut() {
                match tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(&channel)).await {
                    Ok(Ok(())) => {
                        self.shared
                            .subscribed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(channel);
                    }
                    // The connection is failing: the reader will notice, reconnect and
                    // subscribe every local topic, this one included. Meanwhile this node's
                    // own publications still reach the subscriber.
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "redis subscribe failed; left to the reconnect")
                    }
                    Err(_) => tracing::warn!("redis subscribe timed out; left to the reconnect"),
                }
            }
        }
        Ok(subscription)
    }

    async fn rate_limit(
        &self,
        key: &str,
        now_ms: i64,
        rate: Rate,
    ) -> Result<RateDecision, BrokerError> {
        match self.shared_rate_limit(key, now_ms, rate).await {
            Ok(decision) => {
                if self.limits_local.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis answers again: rate limits are shared across nodes");
                }
                Ok(decision)
            }
            Err(e) => {
                if !self.limits_local.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "redis unavailable: rate limits are kept per node until it answers");
                }
                metrics::counter!("broker_rate_limit_fallbacks_total").increment(1);
                self.fallback.rate_limit(key, now_ms, rate).await
            }
        }
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        let mut conn = self.pool.get().await.map_err(unavailable)?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(BrokerError::Unavailable(format!(
                "unexpected PING reply {pong:?}"
            )))
        }
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
