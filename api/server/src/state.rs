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
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Prometheus registry handle.
    pub metrics: PrometheusHandle,
    /// The OpenAPI document, serialised once at start-up.
    pub openapi_json: Arc<String>,
    /// Stripe, when a secret key is configured.
    pub stripe: Option<Arc<crate::services::stripe_api::StripeApi>>,
    /// Becomes `true` when the server starts shutting down: sockets close with "going away".
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
