//! `/v1/key-packages`: the MLS KeyPackage directory.

use crate::http::documented::problems;
use actix_web::{get, post, web};
use cloak_proto::key_packages::{
    ClaimedKeyPackage, ClaimedKeyPackages, KeyPackageStock, UploadKeyPackagesRequest,
};
use uuid::Uuid;

use super::auth::DeviceAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::services::key_packages::{self, Stock};
use crate::state::AppState;

fn stock_view(s: Stock) -> KeyPackageStock {
    KeyPackageStock {
        one_time: s.one_time,
        last_resort: s.last_resort,
        low: s.low(),
    }
}

problems!(UploadKeyPackagesProblems: KeyPackageExpired, KeyPackageStockFull);

/// Publishes one-time KeyPackages (at most 100 per call) and optionally replaces the
/// last-resort package. Pending devices may publish too.
#[utoipa::path(
    tag = "key-packages",
    security(("device_token" = [])),
    request_body = UploadKeyPackagesRequest,
    responses(
        UploadKeyPackagesProblems,
        (status = 200, description = "The stock after the upload", body = KeyPackageStock),
    )
)]
#[post("/v1/key-packages")]
pub async fn upload_key_packages(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<UploadKeyPackagesRequest>,
) -> Result<web::Json<KeyPackageStock>, ApiError> {
    let stock = key_packages::upload(
        state.store.as_ref(),
        &auth.0,
        &body.0,
        state.settings.guards.key_package_stock,
        state.clock.now_ms(),
    )
    .await?;
    Ok(web::Json(stock_view(stock)))
}

/// The calling device's stock; `low` says when to upload more.
#[utoipa::path(
    tag = "key-packages",
    security(("device_token" = [])),
    responses(
        (status = 200, description = "Stock", body = KeyPackageStock),
    )
)]
#[get("/v1/key-packages/stock")]
pub async fn key_package_stock(
    auth: DeviceAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<KeyPackageStock>, ApiError> {
    let stock = key_packages::stock(state.store.as_ref(), &auth.0, state.clock.now_ms()).await?;
    Ok(web::Json(stock_view(stock)))
}

problems!(ClaimKeyPackagesProblems: DevicePending, NotFound, RateLimited);

/// Claims one KeyPackage for each approved device of a user (the caller's own device
/// excepted): a one-time package, handed out at most once, or else the last-resort one.
/// The caller must be the user or one of the user's contacts.
#[utoipa::path(
    tag = "key-packages",
    security(("device_token" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        ClaimKeyPackagesProblems,
        (status = 200, description = "One package per device that has one", body = ClaimedKeyPackages),
    )
)]
#[post("/v1/users/{id}/key-packages/claim")]
pub async fn claim_key_packages(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ClaimedKeyPackages>, ApiError> {
    let claimed = key_packages::claim(
        state.store.as_ref(),
        state.broker.as_ref(),
        &auth.0,
        *id,
        state.settings.guards.key_package_claims_per_minute,
        state.clock.now_ms(),
    )
    .await?;
    Ok(web::Json(ClaimedKeyPackages {
        user_id: *id,
        items: claimed
            .into_iter()
            .map(|c| ClaimedKeyPackage {
                device_id: c.device_id,
                hash_ref: c.hash_ref,
                data: c.data,
                last_resort: c.last_resort,
            })
            .collect(),
    }))
}
