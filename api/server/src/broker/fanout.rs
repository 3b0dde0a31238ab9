//! The node-local side of every broker: a registry of topic subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::broadcast;

/// How many notifications a slow subscriber may lag behind before it misses some.
/// Notifications only wake readers (state is in the database), so a lagging reader gets
/// [`Notification::Lagged`] and re-reads the database; the broker never buffers without
/// bound. Kept small: every connected device holds one channel of this many slots.
pub const CHANNEL_CAPACITY: usize = 16;

#[derive(Default)]
struct Topics {
    senders: HashMap<String, broadcast::Sender<Arc<[u8]>>>,
}

/// Topic → local subscribers. Cheap to clone; all clones share one registry.
#[derive(Clone, Default)]
pub(crate) struct Fanout {
    inner: Arc<Mutex<Topics>>,
}

impl Fanout {
    pub fn subscribe(&self, topic: &str) -> Subscription {
        let mut topics = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = match topics.senders.get(topic) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
                topics.senders.insert(topic.to_owned(), sender);
                receiver
            }
        };
        Subscription {
            receiver,
            topic: topic.to_owned(),
            registry: Arc::downgrade(&self.inner),
        }
    }

    /// Delivers to local subscribers; returns how many received it.
    pub fn deliver(&self, topic: &str, payload: Arc<[u8]>) -> usize {
        let topics = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match topics.senders.get(topic) {
            Some(sender) => sender.send(payload).unwrap_or(0),
            None => 0,
        }
    }

    /// Sends an empty payload to every local subscriber: "something may have been missed,
    /// re-read what you follow" (after a broker reconnect).
    pub fn wake_all(&self) {
        let topics = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let empty: Arc<[u8]> = Arc::from(&[][..]);
        for sender in topics.senders.values() {
            let _ = sender.send(empty.clone());
        }
    }

    /// Topics that currently have local subscribers.
    pub fn topics(&self) -> Vec<String> {
        let topics = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        topics.senders.keys().cloned().collect()
    }
}

/// A live subscription to one topic on this node.
pub struct Subscription {
    receiver: broadcast::Receiver<Arc<[u8]>>,
    topic: String,
    registry: Weak<Mutex<Topics>>,
}

/// What [`Subscription::recv`] yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Notification {
    /// A payload published to the topic.
    Message(Arc<[u8]>),
    /// The subscriber fell behind and `n` notifications were dropped; re-read durable state.
    Lagged(u64),
}

impl Subscription {
    /// Waits for the next notification; `None` when the broker is gone.
    pub async fn recv(&mut self) -> Option<Notification> {
        match self.receiver.recv().await {
            Ok(payload) => Some(Notification::Message(payload)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Notification::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The topic subscribed to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The last subscriber leaving removes the topic so the registry does not grow.
        if let Some(registry) = self.registry.upgrade() {
            let mut topics = registry.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(sender) = topics.senders.get(&self.topic) {
                // This receiver still counts until it is dropped after this body runs.
                if sender.receiver_count() <= 1 {
                    topics.senders.remove(&self.topic);
                }
            }
        }
    }
}
