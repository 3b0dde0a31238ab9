//! Builds the application from settings: store, migrations, broker, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::broker::{self, BrokerError};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::http::{self, extract};
use crate::services::external_sender::ExternalSender;
use crate::services::hot::HotCache;
use crate::services::pipeline::{Pipeline, PipelineConfig};
use crate::services::stripe_api::StripeApi;
use crate::services::tokens::TokenSigner;
use crate::state::AppState;
use crate::store::{self, PoolOptions, Store, StoreError};
use rand::RngCore as _;
use zeroize::Zeroize as _;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database failed to open or migrate.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker failed to connect.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The Stripe client could not be configured.
    #[error("Stripe: {0}")]
    Stripe(String),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The blob store could not be opened.
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
    /// The listen address could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Opens the store (migrating it), connects the broker and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with a given clock (tests).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let pool = PoolOptions {
            max_connections: settings.db_max_connections,
            acquire_timeout: std::time::Duration::from_millis(
                settings.db_acquire_timeout_ms.max(1),
            ),
        };
        // With Redis, memory-only tenants' mailboxes live there.
        let memory: Option<Arc<dyn store::MemoryMailbox>> = match settings.redis_url.as_ref() {
            Some(url) => Some(Arc::new(store::RedisMailbox::connect(url).await?)),
            None => None,
        };
        let store = store::connect_with(&settings.database_url, &pool, memory).await?;
        store.migrate().await?;
        let broker = broker::connect(settings.redis_url.as_ref()).await?;
        let (tokens, external_sender) = server_keys(store.as_ref(), clock.as_ref()).await?;
        let (tokens, external_sender) = (Arc::new(tokens), Arc::new(external_sender));
        let stripe = match settings.stripe_secret_key.as_ref() {
            Some(key) => Some(Arc::new(
                StripeApi::new(key, &settings.stripe_api_base).map_err(StartupError::Stripe)?,
            )),
            None => None,
        };
        let blobs: Arc<dyn crate::blobs::BlobStore> = Arc::new(crate::blobs::ObjectBlobs::open(
            &settings.attachments.blob_url,
            &settings.attachments.s3,
        )?);
        crate::workers::spawn_all(crate::workers::Workers {
            store: &store,
            blobs: &blobs,
            clock: &clock,
            broker: &broker,
            poll: Duration::from_millis(settings.worker_poll_ms.max(10)),
            stripe: stripe.clone(),
            webhook_allow_private: settings.guards.webhook_allow_private,
            external_sender: &external_sender,
            mailbox_quota: settings.mailbox_quota,
            push_coalesce_secs: settings.push_coalesce_secs,
        });
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()
            .map_err(StartupError::Tls)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let mut settings = settings;
        if settings.public_url_from_bind {
            settings.public_url = format!("{scheme}://{}:{port}", settings.bind.ip());
        }
        let settings = Arc::new(settings);
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let hot = Arc::new(HotCache::default());
        tokio::spawn(hot.clone().listen(broker.clone()));
        let shards = match (settings.batch_shards, store.backend()) {
            (0, "sqlite") => 1,
            (0, _) => 2,
            (n, _) => n,
        };
        let pipeline = Arc::new(Pipeline::start(
            store.clone(),
            broker.clone(),
            PipelineConfig {
                max_batch: settings.batch_max,
                linger: Duration::from_micros(settings.batch_linger_us),
                linger_fill: settings.batch_linger_fill,
                shards,
            },
        ));
        let state = web::Data::new(AppState {
            store,
            broker,
            clock,
            tokens,
            external_sender,
            settings: settings.clone(),
            metrics: http::metrics::recorder(),
            openapi_json: Arc::new(http::openapi_json_for(&settings.public_url)),
            stripe,
            hot,
            pipeline,
            sockets: Arc::default(),
            shutdown: shutdown_rx,
            blobs,
        });

        let app_state = state.clone();
        let max_body = settings.max_body_bytes;
        let server = HttpServer::new(move || {
            let (app, _) = App::new()
                .into_utoipa_app()
                .app_data(app_state.clone())
                .app_data(extract::json_config(max_body))
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(extract::path_config())
                .app_data(extract::query_config())
                .configure(http::routes)
                .split_for_parts();
            app.service(web::redirect("/docs", "/docs/"))
                .service(
                    SwaggerUi::new("/docs/{_:.*}").config(SwaggerConfig::from("/openapi.json")),
                )
                .default_service(web::to(http::fallback::unmatched))
                .wrap(from_fn(http::metrics::observe))
                // Debug builds (the tests) check every answer against the document.
                .wrap(actix_web::middleware::Condition::new(
                    cfg!(debug_assertions),
                    from_fn(http::conformance::check),
                ))
        });
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        };
        let mut server = server
            // Signals are handled in `run_until_stopped`, which tells sockets to go away first.
            .disable_signals()
            .shutdown_timeout(settings.shutdown_timeout_secs);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server.run();
        tracing::info!(
            url = %format!("{scheme}://{}:{port}", settings.bind.ip()),
            database = state.store.backend(),
            broker = state.broker.backend(),
            "cloak-api listening"
        );
        Ok(Self {
            port,
            server,
            state,
            shutdown,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Shared state, for tests that inspect the store.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT or SIGTERM, then drains: WebSockets are closed with "going away"
    /// (clients reconnect to another node and resume), in-flight requests finish (up to the
    /// shutdown timeout), and the server stops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let shutdown = self.shutdown;
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: draining connections");
            let _ = shutdown.send(true);
            handle.stop(true).await;
        });
        let served = self.server.await;
        // Requests have finished; whatever they queued is written before the process ends.
        self.state.pipeline.close().await;
        served
    }

    /// Starts the same drain as a signal would (tests).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Waits for SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Loads the token signing secret shared by all nodes, creating it on first start, and
/// derives the MLS external-sender key from it.
async fn server_keys(
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<(TokenSigner, ExternalSender), StartupError> {
    let mut candidate = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut candidate);
    let mut secret = store
        .token_key_or_insert(&candidate, clock.now_ms())
        .await?;
    candidate.zeroize();
    let signer = TokenSigner::new(&secret)
        .ok_or_else(|| StoreError::Corrupt("token key has the wrong length".to_owned()));
    let external = ExternalSender::derive(&secret);
    secret.zeroize();
    Ok((signer?, external))
}
