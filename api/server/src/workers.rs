//! Background workers: the sweeper (expired rows), tenant webhook delivery, and Stripe
//! meter-event reporting. Each runs for as long as the store lives; several nodes may run
//! them at once (work is leased in the database).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::services::{meter, webhooks};
use crate::store::Store;

/// How often expired key packages and login challenges are deleted.
const SWEEP_PERIOD: Duration = Duration::from_secs(300);

/// Starts every worker.
pub fn spawn_all(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    poll: Duration,
    stripe: Option<Arc<crate::services::stripe_api::StripeApi>>,
    webhook_allow_private: bool,
) {
    spawn_sweeper(store.clone(), clock.clone());
    spawn_webhooks(store.clone(), clock.clone(), poll, webhook_allow_private);
    if let Some(stripe) = stripe {
        spawn_meter(store.clone(), clock.clone(), poll, stripe);
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
