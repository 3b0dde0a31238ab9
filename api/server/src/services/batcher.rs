//! A generic group-commit batcher: callers hand in items one at a time from any task, a
//! writer task per shard takes whatever has queued up (at most `max_batch`) and writes it
//! in one call, then answers every caller.
//!
//! The batch size adapts to load by itself: while a write is in flight the next items
//! queue and go together in the next batch, so one fsync serves as many messages as arrived
//! during the previous one. At moderate rates that still leaves batches of one or two
//! items, each paying a batch's fixed cost (round trips, thread switches, an fsync): then
//! a batch smaller than `linger_fill` waits up to `linger` for company. It waits only
//! when company is likely: the shard is busy (the batch's first item came within `linger`
//! of the previous write's end) and items have been arriving together (a batch found two
//! or more queued, and no linger since came away empty). So a lone message after a quiet
//! spell, or a single client sending one message after another, is written at once, and a
//! batch that reaches `linger_fill` goes at once. The linger counts from when the batch's
//! first item was handed in, so no item waits more than `linger` beyond what the writes
//! ahead of it cost anyway: under load (writes longer than the linger) nothing lingers.
//!
//! Items of one key (a sender device) always go to the same shard and are written in the
//! order they were handed in, so per-sender order holds. A batch that fails quickly as a
//! whole (a dropped connection) is retried once; if it fails again, or failed slowly (no
//! connection within the pool's timeout: the database is down), every caller gets the
//! error. On close the queued items are still written before the writers stop.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::StoreError;

/// A batch that failed faster than this is tried once more (see `run_shard`).
const RETRY_WITHIN: Duration = Duration::from_millis(500);

/// Writes one batch: one result per item, in order. `Err` fails the whole batch.
#[async_trait]
pub trait BatchWriter: Send + Sync + 'static {
    /// Names the writer in metrics.
    const NAME: &'static str;
    type Item: Send + 'static;
    type Output: Send + 'static;
    async fn write(&self, items: &[Self::Item]) -> Result<Vec<Self::Output>, StoreError>;
}

/// How batches are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most items in one batch.
    pub max_batch: usize,
    /// How long a small batch waits for more items while the shard is busy (0: never).
    pub linger: Duration,
    /// A batch with fewer items than this lingers; one with as many goes at once.
    pub linger_fill: usize,
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
            linger_fill: 4,
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

/// An item, where its answer goes, and when it was handed in.
type Job<W> = (
    <W as BatchWriter>::Item,
    oneshot::Sender<Result<<W as BatchWriter>::Output, BatchError>>,
    tokio::time::Instant,
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
            .send((item, reply, tokio::time::Instant::now()))
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

/// Moves what is already queued into the batch, up to `max` items, without waiting.
fn take_queued<W: BatchWriter>(
    rx: &mut mpsc::Receiver<Job<W>>,
    items: &mut Vec<W::Item>,
    replies: &mut Vec<oneshot::Sender<Result<W::Output, BatchError>>>,
    max: usize,
) {
    while items.len() < max {
        match rx.try_recv() {
            Ok((item, reply, _)) => {
                items.push(item);
                replies.push(reply);
            }
            Err(_) => break,
        }
    }
}

async fn run_shard<W: BatchWriter>(
    writer: Arc<W>,
    mut rx: mpsc::Receiver<Job<W>>,
    config: BatchConfig,
) {
    let max = config.max_batch.max(1);
    let fill = config.linger_fill.min(max);
    let mut items = Vec::with_capacity(max);
    let mut replies = Vec::with_capacity(max);
    // When the previous batch was written: a first item within `linger` of it means the
    // shard is busy and company is likely.
    let mut last_written: Option<tokio::time::Instant> = None;
    // Items have been arriving together: set by a batch that found two or more queued,
    // cleared by a linger that gained nothing.
    let mut crowded = false;
    while let Some((item, reply, queued)) = rx.recv().await {
        let arrived = tokio::time::Instant::now();
        items.push(item);
        replies.push(reply);
        take_queued::<W>(&mut rx, &mut items, &mut replies, max);
        crowded |= items.len() > 1;
        let busy = last_written.is_some_and(|t| arrived.duration_since(t) < config.linger);
        // Counted from when the first item was handed in: one that already waited out a
        // write as long as the linger waits no more.
        let deadline = queued + config.linger;
        if crowded && busy && items.len() < fill && deadline > arrived {
            let before = items.len();
            while items.len() < fill {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((item, reply, _))) => {
                        items.push(item);
                        replies.push(reply);
                    }
                    _ => break,
                }
            }
            crowded = items.len() > before;
            take_queued::<W>(&mut rx, &mut items, &mut replies, max);
        }
        metrics::histogram!("batch_size", "writer" => W::NAME).record(items.len() as f64);
        let started = std::time::Instant::now();
        let result = match writer.write(&items).await {
            Ok(out) => Ok(out),
            // A quick failure (a connection the database dropped as it restarted) is worth
            // one more try on a fresh connection. A slow one (no connection came within the
            // pool's timeout: the database is down) is answered at once, so senders hear
            // 503 within one timeout instead of two.
            Err(first) if started.elapsed() < RETRY_WITHIN => {
                tracing::warn!(error = %first, size = items.len(), "batch failed; retrying once");
                writer.write(&items).await
            }
            Err(first) => Err(first),
        };
        last_written = Some(tokio::time::Instant::now());
        metrics::histogram!("batch_write_seconds", "writer" => W::NAME)
            .record(started.elapsed().as_secs_f64());
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Records every batch; refuses odd items; fails whole batches while `failures` > 0.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<u32>>>,
        failures: AtomicUsize,
        delay: Duration,
    }

    #[async_trait]
    impl BatchWriter for Recorder {
        const NAME: &'static str = "test";
        type Item = u32;
        type Output = Result<u32, &'static str>;

        async fn write(&self, items: &[u32]) -> Result<Vec<Self::Output>, StoreError> {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::Unavailable("down".into()));
            }
            self.batches.lock().unwrap().push(items.to_vec());
            Ok(items
                .iter()
                .map(|i| if i % 2 == 1 { Err("odd") } else { Ok(i * 10) })
                .collect())
        }
    }

    fn config(max_batch: usize) -> BatchConfig {
        BatchConfig {
            max_batch,
            ..BatchConfig::default()
        }
    }

    #[tokio::test]
    async fn a_refused_item_gets_its_own_answer_and_the_others_theirs() {
        let writer = Arc::new(Recorder {
            delay: Duration::from_millis(20),
            ..Recorder::default()
        });
        let batcher = Batcher::start(writer.clone(), config(100));
        let mut pending = Vec::new();
        for i in 0..10u32 {
            pending.push(batcher.submit(1, i).await.unwrap());
        }
        let mut answers = Vec::new();
        for p in pending {
            answers.push(p.wait().await.unwrap());
        }
        for (i, a) in answers.iter().enumerate() {
            let i = i as u32;
            assert_eq!(*a, if i % 2 == 1 { Err("odd") } else { Ok(i * 10) });
        }
        // Items queued while the first write was in flight went together: fewer batches
        // than items, in submission order.
        let batches = writer.batches.lock().unwrap().clone();
        assert!(batches.len() < 10, "{batches:?}");
        assert_eq!(batches.concat(), (0..10).collect::<Vec<_>>());
    }

    fn lingering(linger_ms: u64, fill: usize) -> BatchConfig {
        BatchConfig {
            linger: Duration::from_millis(linger_ms),
            linger_fill: fill,
            ..config(100)
        }
    }

    /// Submits `items` together (queued before the writer looks) and waits for them.
    async fn together(batcher: &Batcher<Recorder>, items: &[u32]) {
        let mut pending = Vec::new();
        for i in items {
            pending.push(batcher.submit(1, *i).await.unwrap());
        }
        for p in pending {
            p.wait().await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_batch_waits_for_company_while_items_arrive_together() {
        let writer = Arc::new(Recorder::default());
        let batcher = Batcher::start(writer.clone(), lingering(100, 3));
        // The first item finds the shard idle: written at once.
        let started = tokio::time::Instant::now();
        together(&batcher, &[0]).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Two come together while busy and wait for a third, which fills the batch: it
        // goes as soon as the third arrives, not at the end of the linger.
        let first = batcher.submit(1, 2).await.unwrap();
        let second = batcher.submit(1, 4).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let third = batcher.submit(1, 6).await.unwrap();
        for p in [first, second, third] {
            p.wait().await.unwrap().unwrap();
        }
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        assert_eq!(
            *writer.batches.lock().unwrap(),
            vec![vec![0], vec![2, 4, 6]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_linger_that_gains_nothing_is_not_repeated() {
        let writer = Arc::new(Recorder::default());
        let batcher = Batcher::start(writer.clone(), lingering(100, 8));
        together(&batcher, &[0]).await;
        // Arriving together: the batch waits out the linger for more, and gains nothing.
        let started = tokio::time::Instant::now();
        together(&batcher, &[2, 4]).await;
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // So the next lone item (one client sending one after another) goes at once.
        let started = tokio::time::Instant::now();
        together(&batcher, &[6]).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Items arriving together again: the batch waits again.
        let started = tokio::time::Instant::now();
        together(&batcher, &[8, 10]).await;
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(
            *writer.batches.lock().unwrap(),
            vec![vec![0], vec![2, 4], vec![6], vec![8, 10]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn items_that_waited_out_a_write_do_not_linger_on_top() {
        let writer = Arc::new(Recorder {
            delay: Duration::from_millis(50),
            ..Recorder::default()
        });
        let batcher = Batcher::start(writer.clone(), lingering(30, 8));
        let started = tokio::time::Instant::now();
        let alone = batcher.submit(1, 0).await.unwrap();
        // Handed in while the first batch is being written (50 ms, longer than the linger).
        tokio::time::sleep(Duration::from_millis(1)).await;
        together(&batcher, &[2, 4]).await;
        alone.wait().await.unwrap().unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(100),
            "two writes, no linger"
        );
        assert_eq!(*writer.batches.lock().unwrap(), vec![vec![0], vec![2, 4]]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_after_a_quiet_spell_is_written_at_once() {
        let writer = Arc::new(Recorder::default());
        let batcher = Batcher::start(writer.clone(), lingering(100, 8));
        together(&batcher, &[0, 2]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let started = tokio::time::Instant::now();
        together(&batcher, &[4, 6]).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn batches_never_exceed_the_maximum() {
        let writer = Arc::new(Recorder {
            delay: Duration::from_millis(5),
            ..Recorder::default()
        });
        let batcher = Batcher::start(writer.clone(), config(3));
        let mut pending = Vec::new();
        for i in 0..20u32 {
            pending.push(batcher.submit(7, i * 2).await.unwrap());
        }
        for p in pending {
            assert!(p.wait().await.unwrap().is_ok());
        }
        let batches = writer.batches.lock().unwrap().clone();
        assert!(batches.iter().all(|b| b.len() <= 3), "{batches:?}");
        assert_eq!(batches.concat().len(), 20);
    }

    #[tokio::test]
    async fn a_batch_that_fails_once_is_retried() {
        let writer = Arc::new(Recorder::default());
        writer.failures.store(1, Ordering::SeqCst);
        let batcher = Batcher::start(writer.clone(), config(10));
        let p = batcher.submit(1, 4).await.unwrap();
        assert_eq!(p.wait().await.unwrap(), Ok(40));
        assert_eq!(writer.batches.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_batch_that_failed_slowly_is_answered_without_a_retry() {
        // As when no database connection came within the pool's timeout.
        let writer = Arc::new(Recorder {
            delay: RETRY_WITHIN + Duration::from_millis(50),
            ..Recorder::default()
        });
        writer.failures.store(1, Ordering::SeqCst);
        let batcher = Batcher::start(writer.clone(), config(10));
        let started = std::time::Instant::now();
        let p = batcher.submit(1, 4).await.unwrap();
        assert!(matches!(p.wait().await, Err(BatchError::Store(_))));
        assert!(
            started.elapsed() < 2 * RETRY_WITHIN,
            "answered after one try"
        );
        assert!(writer.batches.lock().unwrap().is_empty());
        // The next batch is written as usual.
        let q = batcher.submit(1, 6).await.unwrap();
        assert_eq!(q.wait().await.unwrap(), Ok(60));
    }

    #[tokio::test]
    async fn a_batch_that_fails_twice_answers_every_caller_with_the_error() {
        let writer = Arc::new(Recorder {
            delay: Duration::from_millis(10),
            ..Recorder::default()
        });
        writer.failures.store(2, Ordering::SeqCst);
        let batcher = Batcher::start(writer.clone(), config(10));
        let a = batcher.submit(1, 2).await.unwrap();
        let b = batcher.submit(1, 4).await.unwrap();
        assert!(matches!(a.wait().await, Err(BatchError::Store(_))));
        // `b` may have joined the failed batch or the next one; either way it is answered.
        let _ = b.wait().await;
        let c = batcher.submit(1, 6).await.unwrap();
        assert_eq!(c.wait().await.unwrap(), Ok(60));
    }

    #[tokio::test]
    async fn close_writes_what_is_queued_then_refuses_more() {
        let writer = Arc::new(Recorder {
            delay: Duration::from_millis(30),
            ..Recorder::default()
        });
        let batcher = Batcher::start(
            writer.clone(),
            BatchConfig {
                shards: 3,
                ..config(2)
            },
        );
        let mut pending = Vec::new();
        for i in 0..12u32 {
            pending.push(batcher.submit(i % 4, i * 2).await.unwrap());
        }
        batcher.close().await;
        // Everything queued before the close was written.
        assert_eq!(writer.batches.lock().unwrap().concat().len(), 12);
        for p in pending {
            assert!(p.wait().await.unwrap().is_ok());
        }
        assert!(matches!(
            batcher.submit(0, 2).await,
            Err(BatchError::Closed)
        ));
    }

    #[tokio::test]
    async fn one_keys_items_keep_their_order_across_shards() {
        let writer = Arc::new(Recorder::default());
        let batcher = Batcher::start(
            writer.clone(),
            BatchConfig {
                shards: 4,
                ..config(5)
            },
        );
        let mut pending = Vec::new();
        for i in 0..40u32 {
            pending.push(batcher.submit(i % 2, i * 2).await.unwrap());
        }
        for p in pending {
            p.wait().await.unwrap().unwrap();
        }
        let all = writer.batches.lock().unwrap().concat();
        for key in 0..2u32 {
            let of_key: Vec<u32> = all.iter().copied().filter(|v| (v / 2) % 2 == key).collect();
            let mut sorted = of_key.clone();
            sorted.sort_unstable();
            assert_eq!(of_key, sorted);
        }
    }
}
