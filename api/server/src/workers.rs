//! Background workers: the sweeper (expired rows), tenant webhook delivery, the server's
//! MLS removal proposals, and Stripe meter-event reporting. Each runs for as long as the store lives; several nodes may run
//! them at once (work is leased in the database).

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::clock::Clock;
use crate::services::external_sender::ExternalSender;
use crate::services::{meter, removals, webhooks};
use crate::store::Store;

/// How often expired key packages and login challenges are deleted.
const SWEEP_PERIOD: Duration = Duration::from_secs(300);
/// How often (by the server's clock) devices inactive past their tenant's retention are
/// looked for.
const INACTIVE_SWEEP_MS: i64 = 60_000;

/// What the workers need.
pub struct Workers<'a> {
    pub store: &'a Arc<dyn Store>,
    pub blobs: &'a Arc<dyn crate::blobs::BlobStore>,
    pub clock: &'a Arc<dyn Clock>,
    pub broker: &'a Arc<dyn Broker>,
    /// How often the outbox-style workers look for work.
    pub poll: Duration,
    pub stripe: Option<Arc<crate::services::stripe_api::StripeApi>>,
    pub webhook_allow_private: bool,
    pub external_sender: &'a Arc<ExternalSender>,
    pub mailbox_quota: i64,
    pub push_coalesce_secs: u64,
}

/// Starts every worker.
pub fn spawn_all(w: Workers<'_>) {
    spawn_sweeper(w.store.clone(), w.clock.clone());
    spawn_attachment_sweeper(w.store.clone(), w.blobs.clone(), w.clock.clone(), w.poll);
    spawn_webhooks(
        w.store.clone(),
        w.clock.clone(),
        w.poll,
        w.webhook_allow_private,
    );
    spawn_removals(&w);
    spawn_push(
        w.store.clone(),
        w.clock.clone(),
        w.poll,
        w.push_coalesce_secs,
    );
    if let Some(stripe) = w.stripe {
        spawn_meter(w.store.clone(), w.clock.clone(), w.poll, stripe);
    }
}

/// Runs `work` every `period` while the store is alive.
fn every<F, Fut>(store: &Arc<dyn Store>, period: Duration, mut work: F)
where
    F: FnMut(Arc<dyn Store>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let store = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { return };
            work(store).await;
        }
    });
}

/// Deletes expired key packages, challenges and mailbox entries (past the tenant's
/// retention).
fn spawn_sweeper(store: Arc<dyn Store>, clock: Arc<dyn Clock>) {
    every(&store, SWEEP_PERIOD, move |store| {
        let clock = clock.clone();
        async move {
            let now = clock.now_ms();
            match store.purge_expired(now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "expired key packages and challenges purged"),
                Err(e) => tracing::warn!(error = %e, "purge of expired rows failed"),
            }
            match store
                .purge_mailboxes(now, now - crate::services::delivery::DEDUP_WINDOW_MS)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "expired mailbox entries purged"),
                Err(e) => tracing::warn!(error = %e, "purge of expired mailbox entries failed"),
            }
        }
    });
}

/// Deletes attachments that are done with (every recipient downloaded, retention passed,
/// or an upload unfinished after 24 h): the blob first, then the rows.
fn spawn_attachment_sweeper(
    store: Arc<dyn Store>,
    blobs: Arc<dyn crate::blobs::BlobStore>,
    clock: Arc<dyn Clock>,
    poll: Duration,
) {
    let period = (poll * 20).clamp(Duration::from_millis(200), Duration::from_secs(30));
    every(&store, period, move |store| {
        let (blobs, clock) = (blobs.clone(), clock.clone());
        async move {
            match crate::services::attachments::sweep(
                store.as_ref(),
                blobs.as_ref(),
                clock.now_ms(),
            )
            .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(attachments = n, "attachments deleted"),
                Err(e) => tracing::warn!(error = %e, "attachment sweep failed"),
            }
        }
    });
}

fn spawn_webhooks(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    allow_private: bool,
) {
    let http = crate::services::outbound::Outbound::new(allow_private);
    every(&store, poll, move |store| {
        let (clock, http) = (clock.clone(), http.clone());
        async move {
            if let Err(e) = webhooks::deliver_due(store.as_ref(), &http, clock.now_ms()).await {
                tracing::warn!(error = %e, "webhook worker failed");
            }
        }
    });
}

fn spawn_meter(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    stripe: Arc<crate::services::stripe_api::StripeApi>,
) {
    every(&store, poll, move |store| {
        let (clock, stripe) = (clock.clone(), stripe.clone());
        async move {
            if let Err(e) = meter::report_due(store.as_ref(), stripe.as_ref(), clock.as_ref()).await
            {
                tracing::warn!(error = %e, "meter worker failed");
            }
        }
    });
}

/// Finds inactive devices now and then, and proposes every removal due at each poll.
fn spawn_removals(w: &Workers<'_>) {
    let (clock, broker, sender) = (w.clock.clone(), w.broker.clone(), w.external_sender.clone());
    let quota = w.mailbox_quota;
    let mut last_sweep: Option<i64> = None;
    every(w.store, w.poll, move |store| {
        let now = clock.now_ms();
        let sweep = last_sweep.is_none_or(|t| now.saturating_sub(t) >= INACTIVE_SWEEP_MS);
        if sweep {
            last_sweep = Some(now);
        }
        let (broker, sender) = (broker.clone(), sender.clone());
        async move {
            if sweep {
                match store.mark_inactive(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removals = n, "inactive devices to remove"),
                    Err(e) => tracing::warn!(error = %e, "inactive device sweep failed"),
                }
            }
            if let Err(e) =
                removals::propose_due(store.as_ref(), broker.as_ref(), &sender, quota, now).await
            {
                tracing::warn!(error = %e, "removal proposal worker failed");
            }
        }
    });
}

/// Closes and opens the `device.pending` coalescing windows.
fn spawn_push(store: Arc<dyn Store>, clock: Arc<dyn Clock>, poll: Duration, coalesce_secs: u64) {
    every(&store, poll, move |store| {
        let clock = clock.clone();
        async move {
            match crate::services::push_tokens::tick(store.as_ref(), clock.now_ms(), coalesce_secs)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(webhooks = n, "devices told to wake"),
                Err(e) => tracing::warn!(error = %e, "push worker failed"),
            }
        }
    });
}
