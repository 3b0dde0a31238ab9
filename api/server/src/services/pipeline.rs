//! The node's delivery pipeline: application messages from every socket and REST call go
//! through one group-commit batcher (stored in one transaction per batch, then pushed from
//! memory to the recipients' sockets), and acknowledgements through another (one
//! transaction and one delete statement per batch).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::ServiceError;
use super::batcher::{BatchConfig, BatchError, BatchWriter, Batcher, Pending};
use super::push;
use crate::broker::Broker;
use crate::store::{Ack, NewSend, SendOutcome, Store, StoreError};

/// How the pipeline batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Most messages per transaction.
    pub max_batch: usize,
    /// How long a batch that is not full waits for more messages.
    pub linger: Duration,
    /// Batches written at once (senders are spread over them by device; one sender's
    /// messages always share one).
    pub shards: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            linger: Duration::ZERO,
            shards: 1,
        }
    }
}

struct SendWriter {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
}

#[async_trait]
impl BatchWriter for SendWriter {
    const NAME: &'static str = "sends";
    type Item = NewSend;
    type Output = SendOutcome;

    async fn write(&self, items: &[NewSend]) -> Result<Vec<SendOutcome>, StoreError> {
        let outcomes = self.store.store_applications(items).await?;
        // Pushed before the senders hear back, so a receipt never overtakes its delivery
        // on one node, and in batch order, so sockets rarely see a gap.
        push::push_batch(self.broker.as_ref(), items, &outcomes).await;
        Ok(outcomes)
    }
}

struct AckWriter {
    store: Arc<dyn Store>,
}

#[async_trait]
impl BatchWriter for AckWriter {
    const NAME: &'static str = "acks";
    type Item = Ack;
    type Output = u64;

    async fn write(&self, items: &[Ack]) -> Result<Vec<u64>, StoreError> {
        self.store.ack_mailboxes(items).await
    }
}

/// The send and ack batchers of this node.
pub struct Pipeline {
    sends: Batcher<SendWriter>,
    acks: Batcher<AckWriter>,
}

fn batch_error(e: BatchError) -> ServiceError {
    match e {
        BatchError::Store(e) => ServiceError::Store(StoreError::Unavailable(e.to_string())),
        BatchError::Closed => ServiceError::Store(StoreError::Unavailable(
            "the server is shutting down".into(),
        )),
    }
}

impl Pipeline {
    /// Starts the writer tasks on the current runtime.
    pub fn start(store: Arc<dyn Store>, broker: Arc<dyn Broker>, config: PipelineConfig) -> Self {
        let sends = Batcher::start(
            Arc::new(SendWriter {
                store: store.clone(),
                broker,
            }),
            BatchConfig {
                max_batch: config.max_batch,
                linger: config.linger,
                shards: config.shards,
                ..BatchConfig::default()
            },
        );
        let acks = Batcher::start(
            Arc::new(AckWriter { store }),
            BatchConfig {
                max_batch: config.max_batch,
                linger: config.linger,
                shards: 1,
                ..BatchConfig::default()
            },
        );
        Self { sends, acks }
    }

    /// Queues a message behind the sender device's earlier ones.
    pub async fn send(&self, send: NewSend) -> Result<Pending<SendOutcome>, ServiceError> {
        self.sends
            .submit(send.sender.device_id, send)
            .await
            .map_err(batch_error)
    }

    /// Queues an acknowledgement.
    pub async fn ack(&self, ack: Ack) -> Result<Pending<u64>, ServiceError> {
        self.acks
            .submit(ack.device_id, ack)
            .await
            .map_err(batch_error)
    }

    /// Writes what is queued and stops (graceful shutdown).
    pub async fn close(&self) {
        self.sends.close().await;
        self.acks.close().await;
    }
}

/// Waits for a queued item's result.
pub async fn settle<O>(pending: Pending<O>) -> Result<O, ServiceError> {
    pending.wait().await.map_err(batch_error)
}
