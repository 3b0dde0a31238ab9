//! Thin HTTP handlers: extract, call a service, map the result. Routes are registered only
//! through utoipa-actix-web's `service`, which requires a `#[utoipa::path]` on every handler,
//! so a routed handler cannot be missing from the OpenAPI document.

pub mod abuse;
pub mod api_keys;
pub mod attachments;
pub mod auth;
pub mod billing;
pub mod calls;
pub mod conformance;
pub mod console;
pub mod console_accounts;
pub mod contract;
pub mod conversations;
pub mod devices;
pub mod documented;
pub mod extract;
pub mod fallback;
pub mod health;
pub mod invites;
pub mod key_packages;
pub mod landing;
pub mod limits;
pub mod mailbox;
pub mod meta;
pub mod metrics;
pub mod problem;
pub mod stripe;
pub mod tenant;
pub mod users;
pub mod webhooks;
pub mod ws;
pub mod ws_session;

use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

/// The document's fixed parts; paths and schemas are collected from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cloak API",
        description = "End-to-end-encrypted messaging for host platforms. The server relays ciphertext only.\n\nErrors are RFC 9457 `application/problem+json` documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(
        cloak_proto::Problem,
        cloak_proto::delivery::ClientFrame,
        cloak_proto::delivery::ServerFrame,
        cloak_proto::events::WalletLowBalanceEvent,
        cloak_proto::events::DevicePendingEvent,
        cloak_proto::events::RateLimitExceededEvent,
        cloak_proto::events::ReportCreatedEvent,
        cloak_proto::events::UserSuspendedEvent,
    )),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "api-keys", description = "A tenant's API keys"),
        (name = "tenant", description = "A tenant's own settings"),
        (name = "users", description = "End users, their tokens and contacts (tenant backend)"),
        (name = "devices", description = "Device registration, challenge login, approval and directory"),
        (name = "key-packages", description = "The MLS KeyPackage directory"),
        (name = "conversations", description = "MLS groups: application messages and ordered commits"),
        (name = "mailbox", description = "A device's queue of envelopes over REST"),
        (name = "realtime", description = "The WebSocket"),
        (name = "invites", description = "Invites as links and QR codes, and the landing page"),
        (name = "billing", description = "Credits: prices, wallets, the ledger, Stripe Checkout and webhooks"),
        (name = "webhooks", description = "Signed events to the tenant, and their delivery log"),
        (name = "console", description = "The billing-admin web console and its accounts"),
        (name = "attachments", description = "Encrypted attachments: resumable uploads (tus 1.0) and ranged downloads of ciphertext"),
        (name = "calls", description = "TURN relay credentials for calls (signaling travels inside MLS)"),
        (name = "trust", description = "Trust levels and rate limits, blocks, verifiable reports, moderation"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ck_…")
                    .description(Some("A tenant API key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cu_…")
                    .description(Some("A user token minted by the tenant (15 minutes)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cd_…")
                    .description(Some("A device token from challenge login (1 hour)"))
                    .build(),
            ),
        );
    }
}

/// Registers every documented route.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics_endpoint)
        .service(meta::openapi_json)
        .service(api_keys::list_api_keys)
        .service(api_keys::create_api_key)
        .service(api_keys::revoke_api_key)
        .service(tenant::get_tenant)
        .service(tenant::update_tenant)
        .service(users::create_user)
        .service(users::find_users)
        .service(users::get_user)
        .service(users::update_user)
        .service(users::delete_user)
        .service(users::create_user_token)
        .service(users::create_contact)
        .service(devices::register_push)
        .service(devices::unregister_push)
        .service(devices::register_device)
        .service(devices::login_challenge)
        .service(devices::login)
        .service(devices::list_devices)
        .service(devices::approve_device)
        .service(devices::revoke_device)
        .service(devices::user_devices)
        .service(key_packages::upload_key_packages)
        .service(key_packages::key_package_stock)
        .service(key_packages::claim_key_packages)
        .service(calls::turn_credentials)
        .service(attachments::tus_options)
        .service(attachments::create_upload)
        .service(attachments::upload_offset)
        .service(attachments::upload_bytes)
        .service(attachments::delete_upload)
        .service(attachments::download)
        .service(conversations::external_sender)
        .service(conversations::create_conversation)
        .service(conversations::list_conversations)
        .service(conversations::get_conversation)
        .service(conversations::send_message)
        .service(conversations::submit_commit)
        .service(mailbox::fetch_mailbox)
        .service(mailbox::ack_mailbox)
        .service(ws::websocket)
        .service(invites::create_invite)
        .service(invites::get_invite)
        .service(invites::invite_qr_png)
        .service(invites::invite_qr_svg)
        .service(invites::revoke_invite)
        .service(invites::user_invites)
        .service(invites::redeem_invite)
        .service(invites::list_contacts)
        .service(landing::landing_page)
        .service(billing::get_prices)
        .service(billing::put_prices)
        .service(billing::get_billing_settings)
        .service(billing::put_billing_settings)
        .service(billing::list_wallets)
        .service(billing::get_wallet)
        .service(billing::grant)
        .service(billing::adjust)
        .service(billing::ledger)
        .service(billing::ledger_csv)
        .service(stripe::create_checkout_session)
        .service(stripe::stripe_webhook)
        .service(webhooks::put_webhook)
        .service(webhooks::get_webhook)
        .service(webhooks::list_deliveries)
        .service(console_accounts::create_account)
        .service(console_accounts::list_accounts)
        .service(console_accounts::delete_account)
        .service(console::sign_in::login_page)
        .service(console::sign_in::login)
        .service(console::sign_in::setup_page)
        .service(console::sign_in::setup)
        .service(console::sign_in::logout)
        .service(console::dashboard::dashboard)
        .service(console::credits::grant)
        .service(console::credits::buy)
        .service(console::wallets::wallets)
        .service(console::wallets::wallet_csv)
        .service(console::wallets::wallet)
        .service(console::wallets::ledger)
        .service(console::prices::prices_page)
        .service(console::prices::save_prices)
        .service(console::trust_levels::trust_levels_page)
        .service(console::trust_levels::save_trust_levels)
        .service(console::billing_settings::settings_page)
        .service(console::billing_settings::save_settings)
        .service(console::accounts::accounts_page)
        .service(console::accounts::invite)
        .service(console::accounts::change_role)
        .service(console::accounts::remove)
        .service(abuse::get_trust_levels)
        .service(abuse::put_trust_levels)
        .service(abuse::block)
        .service(abuse::unblock)
        .service(abuse::list_blocks)
        .service(abuse::create_report)
        .service(abuse::list_reports)
        .service(abuse::uphold_report)
        .service(abuse::dismiss_report)
        .service(abuse::get_moderation)
        .service(abuse::put_moderation);
}

/// The OpenAPI document generated from the routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// Where the committed document says the API is: the embedded default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The document completed with what every route answers (see [`contract`]), naming
/// `server` in `servers`.
pub fn openapi_value(server: &str) -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi()).unwrap_or_default();
    contract::complete(&mut doc);
    contract::with_server(&mut doc, server);
    doc
}

fn pretty(doc: &serde_json::Value) -> String {
    match serde_json::to_string_pretty(doc) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// The document as committed in `openapi/openapi.json` (pretty JSON, trailing newline).
pub fn openapi_json() -> String {
    pretty(&openapi_value(DEFAULT_SERVER))
}

/// The document a node serves at `/openapi.json`: `servers` is its public URL.
pub fn openapi_json_for(public_url: &str) -> String {
    pretty(&openapi_value(public_url))
}
