//! The in-process broker used when no Redis is configured (one node).

use std::sync::Arc;

use async_trait::async_trait;

use super::fanout::Fanout;
use super::{Broker, BrokerError, Subscription, check_topic};

/// Delivers publications to subscribers of this process only.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    fanout: Fanout,
}

impl MemoryBroker {
    /// A new, empty broker.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BrokerError> {
        check_topic(topic)?;
        self.fanout.deliver(topic, Arc::from(payload));
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
