//! The node's delivery pipeline: application messages and acknowledgements from every
//! socket and REST call go through one group-commit batcher. A batch is one transaction
//! (one fsync): its acknowledgements are applied with one delete, its messages stored with
//! multi-row inserts, and then pushed from memory to the recipients' sockets.

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
    /// How long a small batch waits for more messages while they arrive together.
    pub linger: Duration,
    /// A batch with fewer messages than this lingers.
    pub linger_fill: usize,
    /// Batches written at once (senders are spread over them by device; one sender's
    /// messages always share one).
    pub shards: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            linger: Duration::ZERO,
            linger_fill: 4,
            shards: 1,
        }
    }
}

/// One unit of work for the batch writer.
pub enum Work {
    Send(Box<NewSend>),
    Ack(Ack),
}

/// Its result.
pub enum Done {
    Sent(SendOutcome),
    Acked(u64),
}

struct DeliveryWriter {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
}

#[async_trait]
impl BatchWriter for DeliveryWriter {
    const NAME: &'static str = "delivery";
    type Item = Work;
    type Output = Done;

    async fn write(&self, items: &[Work]) -> Result<Vec<Done>, StoreError> {
        let mut sends = Vec::new();
        let mut acks = Vec::new();
        for item in items {
            match item {
                Work::Send(send) => sends.push((**send).clone()),
                Work::Ack(ack) => acks.push(*ack),
            }
        }
        let (outcomes, acked) = self.store.store_batch(&sends, &acks).await?;
        // Pushed before the senders hear back, so a receipt never overtakes its delivery
        // on one node, and in batch order, so sockets rarely see a gap.
        push::push_batch(self.broker.as_ref(), &sends, &outcomes).await;
        let mut outcomes = outcomes.into_iter();
        let mut acked = acked.into_iter();
        items
            .iter()
            .map(|item| match item {
                Work::Send(_) => outcomes.next().map(Done::Sent),
                Work::Ack(_) => acked.next().map(Done::Acked),
            })
            .collect::<Option<Vec<Done>>>()
            .ok_or_else(|| StoreError::Corrupt("batch answered the wrong count".into()))
    }
}

/// The node's batch writers: sends and acks share transactions.
pub struct Pipeline {
    batcher: Batcher<DeliveryWriter>,
}

fn batch_error(e: BatchError) -> ServiceError {
    match e {
        BatchError::Store(e) => ServiceError::Store(StoreError::Unavailable(e.to_string())),
        BatchError::Closed => ServiceError::Store(StoreError::Unavailable(
            "the server is shutting down".into(),
        )),
    }
}

/// A queued send or ack.
pub struct Queued<O> {
    pending: Pending<Done>,
    pick: fn(Done) -> Option<O>,
}

impl<O> Queued<O> {
    /// Waits for the batch that writes it.
    pub async fn wait(self) -> Result<O, ServiceError> {
        let done = self.pending.wait().await.map_err(batch_error)?;
        (self.pick)(done).ok_or_else(|| {
            ServiceError::Store(StoreError::Corrupt("batch answered the wrong kind".into()))
        })
    }
}

impl Pipeline {
    /// Starts the writer tasks on the current runtime.
    pub fn start(store: Arc<dyn Store>, broker: Arc<dyn Broker>, config: PipelineConfig) -> Self {
        let batcher = Batcher::start(
            Arc::new(DeliveryWriter { store, broker }),
            BatchConfig {
                max_batch: config.max_batch,
                linger: config.linger,
                linger_fill: config.linger_fill,
                shards: config.shards,
                ..BatchConfig::default()
            },
        );
        Self { batcher }
    }

    /// Queues a message behind the sender device's earlier work.
    pub async fn send(&self, send: NewSend) -> Result<Queued<SendOutcome>, ServiceError> {
        let pending = self
            .batcher
            .submit(send.sender.device_id, Work::Send(Box::new(send)))
            .await
            .map_err(batch_error)?;
        Ok(Queued {
            pending,
            pick: |d| match d {
                Done::Sent(o) => Some(o),
                Done::Acked(_) => None,
            },
        })
    }

    /// Queues an acknowledgement behind the device's earlier work.
    pub async fn ack(&self, ack: Ack) -> Result<Queued<u64>, ServiceError> {
        let pending = self
            .batcher
            .submit(ack.device_id, Work::Ack(ack))
            .await
            .map_err(batch_error)?;
        Ok(Queued {
            pending,
            pick: |d| match d {
                Done::Acked(n) => Some(n),
                Done::Sent(_) => None,
            },
        })
    }

    /// Writes what is queued and stops (graceful shutdown).
    pub async fn close(&self) {
        self.batcher.close().await;
    }
}

/// Waits for a queued item's result.
pub async fn settle<O>(queued: Queued<O>) -> Result<O, ServiceError> {
    queued.wait().await
}
