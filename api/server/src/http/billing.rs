//! Credits over REST: prices, billing settings, wallets, grants and adjustments, and the
//! ledger (JSON pages and CSV).

use crate::http::documented::problems;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use cloak_proto::billing::{
    AdjustmentRequest, BillingSettings, GrantRequest, LedgerEntry, LedgerPage, LedgerQuery,
    PriceTable, Wallet, WalletList,
};
use uuid::Uuid;
use validator::Validate as _;

use super::auth::TenantAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::ServiceError;
use crate::services::billing::{self, ManualChange};
use crate::services::hot::Invalidation;
use crate::state::AppState;
use crate::store;

/// A ledger entry on the wire.
pub fn entry_view(e: &store::LedgerEntry) -> LedgerEntry {
    LedgerEntry {
        id: e.id,
        wallet: billing::wallet_name(e.tenant_id, e.wallet_id),
        delta: e.delta,
        balance_after: e.balance_after,
        kind: e.kind.clone(),
        reason: e.reason.clone(),
        actor: e.actor.clone(),
        idempotency_key: e.idempotency_key.clone(),
        reference: e.reference.clone(),
        created_at: to_datetime(e.created_at_ms),
    }
}

/// The tenant's price table.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Prices in credits; 0 is free", body = PriceTable),
    )
)]
#[get("/v1/prices")]
pub async fn get_prices(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<PriceTable>, ApiError> {
    let plan = state.store.billing_plan(auth.0.tenant_id).await?;
    Ok(web::Json(billing::price_table(&plan.prices)))
}

/// Replaces the tenant's price table.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    request_body = PriceTable,
    responses(
        (status = 200, description = "The new prices", body = PriceTable),
    )
)]
#[put("/v1/prices")]
pub async fn put_prices(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<PriceTable>,
) -> Result<web::Json<PriceTable>, ApiError> {
    billing::put_prices(state.store.as_ref(), auth.0.tenant_id, &body.0).await?;
    state
        .invalidate(Invalidation::Tenant(auth.0.tenant_id))
        .await;
    Ok(web::Json(body.0))
}

/// Billing settings: who pays, prepaid or postpaid, the low-balance threshold, credit packs.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    responses((status = 200, description = "Settings", body = BillingSettings))
)]
#[get("/v1/billing/settings")]
pub async fn get_billing_settings(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<BillingSettings>, ApiError> {
    Ok(web::Json(
        billing::settings(state.store.as_ref(), auth.0.tenant_id).await?,
    ))
}

problems!(PutBillingSettingsProblems: ValidationFailed, InvalidPack, InvalidBillingSettings);

/// Replaces the billing settings.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    request_body = BillingSettings,
    responses(
        PutBillingSettingsProblems,
        (status = 200, description = "Settings", body = BillingSettings),
    )
)]
#[put("/v1/billing/settings")]
pub async fn put_billing_settings(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<BillingSettings>,
) -> Result<web::Json<BillingSettings>, ApiError> {
    let settings = billing::put_settings(state.store.as_ref(), auth.0.tenant_id, &body.0).await?;
    state
        .invalidate(Invalidation::Tenant(auth.0.tenant_id))
        .await;
    Ok(web::Json(settings))
}

/// Wallets that have held credits.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    responses((status = 200, description = "Wallets", body = WalletList))
)]
#[get("/v1/wallets")]
pub async fn list_wallets(
    auth: TenantAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<WalletList>, ApiError> {
    let tenant = auth.0.tenant_id;
    let items = state
        .store
        .list_wallets(tenant)
        .await?
        .into_iter()
        .map(|w| Wallet {
            wallet: billing::wallet_name(tenant, w.id),
            balance: w.balance,
        })
        .collect();
    Ok(web::Json(WalletList { items }))
}

problems!(GetWalletProblems: InvalidWallet, NotFound);

/// A wallet's balance (0 for one that never held credits).
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    params(("wallet" = String, Path, description = "`tenant` or a user id")),
    responses(
        GetWalletProblems,
        (status = 200, description = "The wallet", body = Wallet),
    )
)]
#[get("/v1/wallets/{wallet}")]
pub async fn get_wallet(
    auth: TenantAuth,
    state: web::Data<AppState>,
    wallet: web::Path<String>,
) -> Result<web::Json<Wallet>, ApiError> {
    let tenant = auth.0.tenant_id;
    let id = billing::parse_wallet(state.store.as_ref(), tenant, &wallet).await?;
    let balance = state
        .store
        .get_wallet(tenant, id)
        .await?
        .map_or(0, |w| w.balance);
    Ok(web::Json(Wallet {
        wallet: billing::wallet_name(tenant, id),
        balance,
    }))
}

fn idempotency_key(req: &HttpRequest) -> Result<String, ServiceError> {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    billing::check_idempotency_key(&key)?;
    Ok(key)
}

async fn change(
    req: &HttpRequest,
    state: &AppState,
    tenant_id: Uuid,
    wallet: &str,
    delta: i64,
    kind: &'static str,
    reason: &str,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(req)?;
    let wallet_id = billing::parse_wallet(state.store.as_ref(), tenant_id, wallet).await?;
    let (entry, replayed) = billing::change_balance(
        state.store.as_ref(),
        state.broker.as_ref(),
        ManualChange {
            tenant_id,
            wallet_id,
            delta,
            kind,
            reason,
            actor: "api".into(),
            idempotency_key: &key,
            now_ms: state.clock.now_ms(),
        },
    )
    .await?;
    let mut resp = if replayed {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    if replayed {
        resp.insert_header(("idempotent-replayed", "true"));
    }
    Ok(resp.json(entry_view(&entry)))
}

problems!(GrantProblems: InvalidWallet, NotFound, IdempotencyKeyRequired, ValidationFailed, IdempotencyKeyReused);

/// Grants credits (requires `Idempotency-Key`; a repeat returns the first entry with 200).
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    params(
        ("wallet" = String, Path, description = "`tenant` or a user id"),
        ("Idempotency-Key" = String, Header, description = "Unique per change"),
    ),
    request_body = GrantRequest,
    responses(
        GrantProblems,
        (status = 201, description = "Granted", body = LedgerEntry),
        (status = 200, description = "Already granted with this key", body = LedgerEntry, headers(("Idempotent-Replayed" = String, description = "`true`: this answers a replay of an earlier request with the same `Idempotency-Key`"))),
    )
)]
#[post("/v1/wallets/{wallet}/grants")]
pub async fn grant(
    req: HttpRequest,
    auth: TenantAuth,
    state: web::Data<AppState>,
    wallet: web::Path<String>,
    body: ValidatedJson<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    change(
        &req,
        &state,
        auth.0.tenant_id,
        &wallet,
        b.credits,
        "grant",
        &b.reason,
    )
    .await
}

problems!(AdjustProblems: InvalidWallet, NotFound, IdempotencyKeyRequired, ZeroDelta, BalanceWouldGoNegative, IdempotencyKeyReused);

/// Adds or removes credits (requires `Idempotency-Key`); a balance never goes below zero.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    params(
        ("wallet" = String, Path, description = "`tenant` or a user id"),
        ("Idempotency-Key" = String, Header, description = "Unique per change"),
    ),
    request_body = AdjustmentRequest,
    responses(
        AdjustProblems,
        (status = 201, description = "Adjusted", body = LedgerEntry),
        (status = 200, description = "Already applied with this key", body = LedgerEntry, headers(("Idempotent-Replayed" = String, description = "`true`: this answers a replay of an earlier request with the same `Idempotency-Key`"))),
    )
)]
#[post("/v1/wallets/{wallet}/adjustments")]
pub async fn adjust(
    req: HttpRequest,
    auth: TenantAuth,
    state: web::Data<AppState>,
    wallet: web::Path<String>,
    body: ValidatedJson<AdjustmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    change(
        &req,
        &state,
        auth.0.tenant_id,
        &wallet,
        b.delta,
        "adjustment",
        &b.reason,
    )
    .await
}

problems!(LedgerProblems: InvalidCursor, InvalidWallet, NotFound);

/// A wallet's ledger, oldest first, with cursor pagination.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    params(("wallet" = String, Path, description = "`tenant` or a user id"), LedgerQuery),
    responses(
        LedgerProblems,
        (status = 200, description = "A page", body = LedgerPage),
    )
)]
#[get("/v1/wallets/{wallet}/ledger")]
pub async fn ledger(
    auth: TenantAuth,
    state: web::Data<AppState>,
    wallet: web::Path<String>,
    query: web::Query<LedgerQuery>,
) -> Result<web::Json<LedgerPage>, ApiError> {
    query.validate().map_err(|e| ApiError::validation(&e))?;
    let tenant = auth.0.tenant_id;
    let id = billing::parse_wallet(state.store.as_ref(), tenant, &wallet).await?;
    let after = billing::parse_cursor(query.cursor.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    let mut rows = state
        .store
        .ledger_page(tenant, id, after, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(100));
    let next_cursor = more
        .then(|| rows.last().map(|e| billing::cursor_after(e.id)))
        .flatten();
    Ok(web::Json(LedgerPage {
        items: rows.iter().map(entry_view).collect(),
        next_cursor,
    }))
}

problems!(LedgerCsvProblems: InvalidCursor, InvalidWallet, NotFound);

/// The whole ledger of a wallet as CSV (oldest first), streamed a page of 1,000 entries at
/// a time: the server never holds more than one page, however long the ledger.
#[utoipa::path(
    tag = "billing",
    security(("api_key" = [])),
    params(("wallet" = String, Path, description = "`tenant` or a user id")),
    responses(
        LedgerCsvProblems,
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
    )
)]
#[get("/v1/wallets/{wallet}/ledger.csv")]
pub async fn ledger_csv(
    auth: TenantAuth,
    state: web::Data<AppState>,
    wallet: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = auth.0.tenant_id;
    let id = billing::parse_wallet(state.store.as_ref(), tenant, &wallet).await?;
    let store = state.store.clone();
    // (after, header written, done)
    let pages =
        futures_util::stream::try_unfold((0i64, false, false), move |(after, header, done)| {
            let store = store.clone();
            async move {
                if done {
                    return Ok::<_, actix_web::Error>(None);
                }
                let page = store
                    .ledger_page(tenant, id, after, CSV_PAGE)
                    .await
                    .map_err(|e| actix_web::Error::from(ApiError::from(e)))?;
                let entries: Vec<LedgerEntry> = page.iter().map(entry_view).collect();
                let chunk = to_csv(&entries, !header)
                    .map_err(|e| actix_web::Error::from(ApiError::internal(&e)))?;
                let last = page.last().map(|e| e.id);
                let done = i64::try_from(page.len()).unwrap_or(0) < CSV_PAGE;
                Ok(Some((
                    web::Bytes::from(chunk),
                    (last.unwrap_or(after), true, done),
                )))
            }
        });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!(
                "attachment; filename=\"ledger-{}.csv\"",
                billing::wallet_name(tenant, id)
            ),
        ))
        .streaming(pages))
}

/// Ledger entries per streamed CSV chunk.
const CSV_PAGE: i64 = 1000;

/// Ledger entries as CSV. Text fields that a spreadsheet would run as a formula are
/// prefixed with `'`.
pub(crate) fn to_csv(entries: &[LedgerEntry], header: bool) -> Result<Vec<u8>, csv::Error> {
    fn cell(text: &str) -> String {
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{text}")
        } else {
            text.to_owned()
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        w.write_record([
            "id",
            "created_at",
            "wallet",
            "kind",
            "delta",
            "balance_after",
            "reason",
            "actor",
            "idempotency_key",
            "reference",
        ])?;
    }
    for e in entries {
        let created = e
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        w.write_record([
            e.id.to_string(),
            created,
            e.wallet.clone(),
            e.kind.clone(),
            e.delta.to_string(),
            e.balance_after.to_string(),
            cell(e.reason.as_deref().unwrap_or("")),
            cell(&e.actor),
            cell(&e.idempotency_key),
            cell(e.reference.as_deref().unwrap_or("")),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
