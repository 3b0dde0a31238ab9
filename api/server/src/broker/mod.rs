//! Cross-node fan-out.
//!
//! A [`Broker`] carries small notifications between API nodes ("device X has new mail",
//! "API key Y was revoked"). With Redis several nodes share one bus; without Redis
//! ([`memory::MemoryBroker`]) a single node delivers them in-process. Payloads are opaque
//! bytes: ids, and the stored envelopes pushed to online devices, which are ciphertext
//! exactly as the mailbox holds it; never a plaintext, a token or a key.

mod fanout;
pub mod gcra;
pub mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

pub use fanout::{CHANNEL_CAPACITY, Notification, Subscription};
pub use gcra::{Rate, RateDecision};

/// Errors from a broker backend.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backend could not be reached or answered with an error.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A topic name was empty or too long.
    #[error("invalid topic")]
    InvalidTopic,
}

/// Longest topic name accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 200;

/// Publish/subscribe between the API nodes.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Sends `payload` to every subscriber of `topic` on every node (including this one).
    /// Delivery is best-effort: durable state lives in the database, the broker only wakes.
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError>;

    /// Publishes one payload to many topics (one round trip where the backend allows).
    async fn publish_many(&self, topics: &[String], payload: &[u8]) -> Result<(), BrokerError> {
        for topic in topics {
            self.publish(topic, payload).await?;
        }
        Ok(())
    }

    /// Publishes a different payload to each topic (one round trip where the backend
    /// allows). Subscribers on this node get theirs directly, without the backend.
    async fn publish_each(&self, items: &[(String, Arc<[u8]>)]) -> Result<(), BrokerError> {
        for (topic, payload) in items {
            self.publish(topic, payload).await?;
        }
        Ok(())
    }

    /// Subscribes this node to `topic`. Every notification published after this returns is
    /// delivered (in publication order per publisher); one published shortly before may be
    /// delivered too. An empty payload means some may have been missed (the backend
    /// reconnected): re-read the durable state. Dropping the subscription unsubscribes.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, BrokerError>;

    /// Counts one event against the limit `rate` under `key`, atomically across every node
    /// sharing this broker (GCRA, see [`gcra`]). `now_ms` is the caller's clock.
    async fn rate_limit(
        &self,
        key: &str,
        now_ms: i64,
        rate: Rate,
    ) -> Result<RateDecision, BrokerError>;

    /// Checks the backend is reachable.
    async fn ping(&self) -> Result<(), BrokerError>;

    /// `redis` or `in-process`.
    fn backend(&self) -> &'static str;
}

fn check_topic(topic: &str) -> Result<(), BrokerError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(BrokerError::InvalidTopic);
    }
    Ok(())
}

/// Connects to Redis when a URL is given, else returns the in-process broker.
pub async fn connect(redis_url: Option<&SecretString>) -> Result<Arc<dyn Broker>, BrokerError> {
    match redis_url {
        Some(url) => Ok(Arc::new(redis::RedisBroker::connect(url).await?)),
        None => Ok(Arc::new(memory::MemoryBroker::new())),
    }
}
