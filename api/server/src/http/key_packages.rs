//! `/v1/key-packages`: the MLS KeyPackage directory.

use actix_web::{get, post, web};
use cloak_proto::Problem;
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

/// Publishes one-time KeyPackages (at most 100 per call) and optionally replaces the
/// last-resort package. Pending devices may publish too.
#[utoipa::path(
    tag = "key-packages",
    security(("device_token" = [])),
    request_body = UploadKeyPackagesRequest,
    responses(
        (status = 200, description = "The stock after the upload", body = KeyPackageStock),
        (status = 400, description = "Invalid body or `key_package_expired`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid device token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`key_package_stock_full`: the device holds as many unclaimed packages as the server keeps (`CLOAK_KEY_PACKAGE_STOCK`, 200 by default)", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "Missing or invalid device token", body = Problem, content_type = "application/problem+json"),
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

/// Claims one KeyPackage for each approved device of a user (the caller's own device
/// excepted): a one-time package, handed out at most once, or else the last-resort one.
/// The caller must be the user or one of the user's contacts.
#[utoipa::path(
    tag = "key-packages",
    security(("device_token" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "One package per device that has one", body = ClaimedKeyPackages),
        (status = 401, description = "Missing or invalid device token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`device_pending`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many claims by this device (`CLOAK_KEY_PACKAGE_CLAIMS_PER_MINUTE`)", body = Problem, content_type = "application/problem+json"),
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
