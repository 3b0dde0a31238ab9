//! What every handler can reach: the store, the broker, the clock and settings.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::broker::Broker;
use crate::clock::Clock;
use crate::config::Settings;
use crate::services::tokens::TokenSigner;
use crate::store::Store;

/// Shared application state (cloned per worker through `web::Data`).
pub struct AppState {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Cross-node fan-out.
    pub broker: Arc<dyn Broker>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Issues and verifies user and device tokens.
    pub tokens: Arc<TokenSigner>,
    /// Signs the server's MLS proposals (removals of revoked and inactive devices).
    pub external_sender: Arc<crate::services::external_sender::ExternalSender>,
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Prometheus registry handle.
    pub metrics: PrometheusHandle,
    /// The OpenAPI document, serialised once at start-up.
    pub openapi_json: Arc<String>,
    /// Stripe, when a secret key is configured.
    pub stripe: Option<Arc<crate::services::stripe_api::StripeApi>>,
    /// Per-node caches of standing, levels and prices, invalidated through the broker.
    pub hot: Arc<crate::services::hot::HotCache>,
    /// The group-commit pipeline for sends and acks.
    pub pipeline: Arc<crate::services::pipeline::Pipeline>,
    /// The WebSockets open on this node, by device (for the per-device cap).
    pub sockets: Arc<crate::services::socket_limits::SocketRegistry>,
    /// Becomes `true` when the server starts shutting down: sockets close with "going away".
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Attachment ciphertext.
    pub blobs: Arc<dyn crate::blobs::BlobStore>,
}

impl AppState {
    /// What the send path needs.
    pub fn delivery(&self) -> crate::services::delivery::Ctx<'_> {
        crate::services::delivery::Ctx {
            store: self.store.as_ref(),
            broker: self.broker.as_ref(),
            signer: &self.tokens,
            hot: &self.hot,
            pipeline: &self.pipeline,
            mailbox_quota: self.settings.mailbox_quota,
            guards: &self.settings.guards,
        }
    }

    /// Drops what `change` makes stale here and on every node.
    pub async fn invalidate(&self, change: crate::services::hot::Invalidation) {
        self.hot.invalidate(self.broker.as_ref(), change).await;
    }

    /// A user's level, suspension or existence changed: drop cached standing everywhere,
    /// and with `close` (suspension, deletion) close all their devices' sockets on every node.
    pub async fn user_changed(&self, tenant_id: uuid::Uuid, user_id: uuid::Uuid, close: bool) {
        use crate::services::hot::Invalidation;
        self.invalidate(Invalidation::User { tenant_id, user_id })
            .await;
        if close {
            match self.store.list_devices(tenant_id, user_id).await {
                Ok(devices) => {
                    let ids: Vec<uuid::Uuid> = devices.iter().map(|d| d.id).collect();
                    crate::services::push::close_devices(self.broker.as_ref(), &ids).await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot list devices to close their sockets"),
            }
        }
    }

    /// A device's status changed: drop its cached standing everywhere, and with `close`
    /// (revocation) close its sockets on every node.
    pub async fn device_changed(&self, tenant_id: uuid::Uuid, device_id: uuid::Uuid, close: bool) {
        use crate::services::hot::Invalidation;
        self.invalidate(Invalidation::Device {
            tenant_id,
            device_id,
        })
        .await;
        if close {
            crate::services::push::close_devices(self.broker.as_ref(), &[device_id]).await;
        }
    }
}
