//! A generic group-commit batcher: callers hand in items one at a time from any task, a
//! writer task per shard takes whatever has queued up (at most `max_batch`, waiting at most
//! `linger` for more) and writes it in one call, then answers every caller.
//!
//! The batch size adapts to load by itself: with nothing in flight a lone item is written
//! at once; while a write is in flight the next items queue and go together in the next
//! batch, so one fsync serves as many messages as arrived during the previous one. Items of
//! one key (a sender device) always go to the same shard and are written in the order they
//! were handed in, so per-sender order holds. A batch that fails as a whole is retried
//! once; if it fails again every caller gets the error. On close the queued items are still
//! written before the writers stop.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::StoreError;

/// Writes one batch: one result per item, in order. `Err` fails the whole batch.
#[async_trait]
pub trait BatchWriter: Send + Sync + 'static {
    type Item: Send + 'static;
    type Output: Send + 'static;
    async fn write(&self, items: &[Self::Item]) -> Result<Vec<Self::Output>, StoreError>;
}

/// How batches are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most items in one batch.
    pub max_batch: usize,
    /// How long a batch that is not full waits for more items (0: never waits).
    pub linger: Duration,
    /// Independent writers; an item's key picks one.
    pub shards: usize,
    /// Items that may wait per shard before callers wait to hand theirs in.
    pub queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            linger: Duration::ZERO,
            shards: 1,
            queue: 4096,
        }
    }
}

/// Why an item got no result.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The batch could not be written (after one retry).
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The batcher is closed (the node is shutting down).
    #[error("the server is shutting down")]
    Closed,
}

type Job<W> = (
    <W as BatchWriter>::Item,
    oneshot::Sender<Result<<W as BatchWriter>::Output, BatchError>>,
);

/// Hands items to the writers. Cheap to share behind an `Arc`.
pub struct Batcher<W: BatchWriter> {
    /// `None` once closed.
    shards: std::sync::Mutex<Option<Vec<mpsc::Sender<Job<W>>>>>,
    count: usize,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// The answer to one submitted item.
pub struct Pending<O> {
    reply: oneshot::Receiver<Result<O, BatchError>>,
}

impl<O> Pending<O> {
    /// Waits for the item's result.
    pub async fn wait(self) -> Result<O, BatchError> {
        self.reply.await.unwrap_or(Err(BatchError::Closed))
    }
}

impl<W: BatchWriter> Batcher<W> {
    /// Starts the writer tasks on the current runtime.
    pub fn start(writer: Arc<W>, config: BatchConfig) -> Self {
        let count = config.shards.max(1);
        let mut senders = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            senders.push(tx);
            tasks.push(tokio::spawn(run_shard(writer.clone(), rx, config)));
        }
        Self {
            shards: std::sync::Mutex::new(Some(senders)),
            count,
            tasks: tokio::sync::Mutex::new(tasks),
        }
    }

    /// Queues `item` behind the earlier items of the same `key`. The order of submission
    /// is fixed when this returns; await the [`Pending`] for the result.
    pub async fn submit(
        &self,
        key: impl Hash,
        item: W::Item,
    ) -> Result<Pending<W::Output>, BatchError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = usize::try_from(hasher.finish() % self.count as u64).unwrap_or(0);
        let sender = {
            let guard = self
                .shards
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match guard.as_ref().and_then(|s| s.get(shard)) {
                Some(s) => s.clone(),
                None => return Err(BatchError::Closed),
            }
        };
        let (reply, rx) = oneshot::channel();
        sender
            .send((item, reply))
            .await
            .map_err(|_| BatchError::Closed)?;
        Ok(Pending { reply: rx })
    }

    /// Stops taking items, writes everything already queued, and waits for the writers.
    pub async fn close(&self) {
        drop(
            self.shards
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
    }
}

async fn run_shard<W: BatchWriter>(
    writer: Arc<W>,
    mut rx: mpsc::Receiver<Job<W>>,
    config: BatchConfig,
) {
    let max = config.max_batch.max(1);
    let mut items = Vec::with_capacity(max);
    let mut replies = Vec::with_capacity(max);
    while let Some((item, reply)) = rx.recv().await {
        items.push(item);
        replies.push(reply);
        while items.len() < max {
            match rx.try_recv() {
                Ok((item, reply)) => {
                    items.push(item);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        if items.len() < max && !config.linger.is_zero() {
            let deadline = tokio::time::Instant::now() + config.linger;
            while items.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((item, reply))) => {
                        items.push(item);
                        replies.push(reply);
                    }
                    _ => break,
                }
            }
        }
        metrics::histogram!("delivery_batch_size").record(items.len() as f64);
        let result = match writer.write(&items).await {
            Ok(out) => Ok(out),
            Err(first) => {
                tracing::warn!(error = %first, size = items.len(), "batch failed; retrying once");
                writer.write(&items).await
            }
        };
        match result {
            Ok(outputs) if outputs.len() == items.len() => {
                for (reply, output) in replies.drain(..).zip(outputs) {
                    let _ = reply.send(Ok(output));
                }
            }
            Ok(_) => {
                let e = Arc::new(StoreError::Corrupt("batch answered the wrong count".into()));
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(BatchError::Store(e.clone())));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = items.len(), "batch failed twice");
                let e = Arc::new(e);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(BatchError::Store(e.clone())));
                }
            }
        }
        items.clear();
    }
}
