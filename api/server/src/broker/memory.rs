//! The in-process broker used when no Redis is configured (one node).

use std::sync::Arc;

use async_trait::async_trait;

use super::fanout::Fanout;
use super::gcra::{self, Rate, RateDecision};
use super::{Broker, BrokerError, Subscription, check_topic};

/// Delivers publications to subscribers of this process only.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    fanout: Fanout,
    /// Rate-limit state: key → theoretical arrival time.
    limits: Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

impl MemoryBroker {
    /// A new, empty broker.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn rate_limit(
        &self,
        key: &str,
        now_ms: i64,
        rate: Rate,
    ) -> Result<RateDecision, BrokerError> {
        let mut limits = self
            .limits
            .lock()
            .map_err(|_| BrokerError::Unavailable("rate-limit state poisoned".into()))?;
        // Keys whose TAT has passed are at full allowance again: forget them now and then.
        if limits.len() > 100_000 {
            limits.retain(|_, tat| *tat > now_ms);
        }
        let (decision, tat) = gcra::decide(limits.get(key).copied(), now_ms, rate);
        limits.insert(key.to_owned(), tat);
        Ok(decision)
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        check_topic(topic)?;
        self.fanout.deliver(topic, Arc::from(payload));
        Ok(())
    }

    async fn publish_each(&self, items: &[(String, Arc<[u8]>)]) -> Result<(), BrokerError> {
        for (topic, payload) in items {
            check_topic(topic)?;
            self.fanout.deliver(topic, payload.clone());
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BrokerError> {
        check_topic(topic)?;
        Ok(self.fanout.subscribe(topic))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
