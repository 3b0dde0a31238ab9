//! `/v1/devices` and `/v1/auth`: device registration, challenge login, approval, revocation
//! and the device directory.

use crate::http::documented::problems;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use cloak_proto::devices::{
    ApproveDeviceRequest, Challenge, ChallengeRequest, Device, DeviceList, DeviceToken,
    LoginRequest, PushRegistration, RegisterDeviceRequest,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::auth::{CallerAuth, DeviceAuth, UserAuth};
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::devices;
use crate::state::AppState;
use crate::store::DeviceRecord;

/// The wire form of a device.
pub fn device_view(d: &DeviceRecord) -> Device {
    Device {
        id: d.id,
        tenant_id: d.tenant_id,
        user_id: d.user_id,
        name: d.name.clone(),
        identity_key: d.identity_key.clone(),
        status: d.status,
        created_at: to_datetime(d.created_at_ms),
        approved_by: d.approved_by,
        approved_at_ms: d.approved_at_ms,
        approval_signature: d.approval_signature.clone(),
    }
}

fn list(devices: &[DeviceRecord]) -> DeviceList {
    DeviceList {
        items: devices.iter().map(device_view).collect(),
    }
}

problems!(RegisterDeviceProblems: InvalidIdentityKey, UserSuspended, IdentityKeyInUse);

/// Registers this device's identity key for the user. The user's first device is
/// approved; later ones are pending until an approved device signs their approval.
/// Registering the same key again returns the existing device (200).
#[utoipa::path(
    tag = "devices",
    security(("user_token" = [])),
    request_body = RegisterDeviceRequest,
    responses(
        RegisterDeviceProblems,
        (status = 201, description = "Registered", body = Device),
        (status = 200, description = "Already registered", body = Device),
    )
)]
#[post("/v1/devices")]
pub async fn register_device(
    req: HttpRequest,
    auth: UserAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<RegisterDeviceRequest>,
) -> Result<HttpResponse, ApiError> {
    // Spending a user token is a login too.
    super::limits::per_ip(&req, &state).await?;
    let (device, created) = devices::register(
        state.store.as_ref(),
        auth.0,
        &body.0.identity_key,
        body.0.name,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await?;
    if created {
        tracing::info!(device_id = %device.id, status = device.status.as_str(), "device registered");
        Ok(HttpResponse::Created().json(device_view(&device)))
    } else {
        Ok(HttpResponse::Ok().json(device_view(&device)))
    }
}

problems!(LoginChallengeProblems: DeviceRevoked, NotFound);

/// Issues a single-use login challenge (valid 60 seconds) for a device.
#[utoipa::path(
    tag = "devices",
    request_body = ChallengeRequest,
    responses(
        LoginChallengeProblems,
        (status = 200, description = "Sign `signing::login_message(tenant, device, nonce)` with the identity key", body = Challenge),
    )
)]
#[post("/v1/auth/challenge")]
pub async fn login_challenge(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidatedJson<ChallengeRequest>,
) -> Result<web::Json<Challenge>, ApiError> {
    super::limits::per_ip(&req, &state).await?;
    let (nonce, expires) = devices::challenge(
        state.store.as_ref(),
        body.0.device_id,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await?;
    Ok(web::Json(Challenge {
        nonce: nonce.to_vec(),
        expires_at: to_datetime(expires),
    }))
}

problems!(LoginProblems: InvalidChallenge, InvalidLogin, DeviceRevoked, UserSuspended);

/// Exchanges a signed challenge for a device token (valid one hour).
#[utoipa::path(
    tag = "devices",
    request_body = LoginRequest,
    responses(
        LoginProblems,
        (status = 200, description = "Logged in", body = DeviceToken),
    )
)]
#[post("/v1/auth/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ValidatedJson<LoginRequest>,
) -> Result<web::Json<DeviceToken>, ApiError> {
    super::limits::per_ip(&req, &state).await?;
    let b = body.0;
    let (token, expires, device) = devices::login(
        state.store.as_ref(),
        &state.tokens,
        b.device_id,
        &b.nonce,
        &b.signature,
        state.clock.now_ms(),
    )
    .await?;
    Ok(web::Json(DeviceToken {
        token: token.expose_secret().to_owned(),
        expires_at: to_datetime(expires),
        device: device_view(&device),
    }))
}

/// Lists the calling device's user's devices (pending ones included).
#[utoipa::path(
    tag = "devices",
    security(("device_token" = [])),
    responses(
        (status = 200, description = "Oldest first", body = DeviceList),
    )
)]
#[get("/v1/devices")]
pub async fn list_devices(
    auth: DeviceAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<DeviceList>, ApiError> {
    let devices = devices::list_own(state.store.as_ref(), &auth.0).await?;
    Ok(web::Json(list(&devices)))
}

problems!(ApproveDeviceProblems: InvalidSignature, ApprovalTimeSkew, DevicePending, NotFound, DeviceNotPending);

/// Approves a pending device of the same user with the caller's signature over
/// `signing::approval_message(tenant, user, new device key, approved_at_ms)`.
#[utoipa::path(
    tag = "devices",
    security(("device_token" = [])),
    params(("id" = Uuid, Path, description = "The pending device")),
    request_body = ApproveDeviceRequest,
    responses(
        ApproveDeviceProblems,
        (status = 200, description = "Approved", body = Device),
    )
)]
#[post("/v1/devices/{id}/approve")]
pub async fn approve_device(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: ValidatedJson<ApproveDeviceRequest>,
) -> Result<web::Json<Device>, ApiError> {
    let device = devices::approve(
        state.store.as_ref(),
        &auth.0,
        *id,
        body.0.approved_at_ms,
        &body.0.signature,
        state.clock.now_ms(),
    )
    .await?;
    state
        .device_changed(device.tenant_id, device.id, false)
        .await;
    tracing::info!(device_id = %device.id, approver = %auth.0.device_id, "device approved");
    Ok(web::Json(device_view(&device)))
}

problems!(RevokeDeviceProblems: DevicePending, NotFound);

/// Revokes a device (by an approved device of the same user, or by the tenant). Its tokens
/// stop working at once on every node, and its key packages are deleted.
#[utoipa::path(
    tag = "devices",
    security(("device_token" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        RevokeDeviceProblems,
        (status = 204, description = "Revoked"),
    )
)]
#[delete("/v1/devices/{id}")]
pub async fn revoke_device(
    auth: CallerAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let device = devices::revoke(state.store.as_ref(), &auth.0, *id, state.clock.now_ms()).await?;
    state
        .device_changed(device.tenant_id, device.id, true)
        .await;
    tracing::info!(device_id = %device.id, "device revoked");
    Ok(HttpResponse::NoContent().finish())
}

problems!(UserDevicesProblems: DevicePending, NotFound);

/// The device directory of a user: identity keys and approval signatures, for the tenant,
/// the user's own approved devices, and approved devices of the user's contacts.
#[utoipa::path(
    tag = "devices",
    security(("device_token" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        UserDevicesProblems,
        (status = 200, description = "Oldest first", body = DeviceList),
    )
)]
#[get("/v1/users/{id}/devices")]
pub async fn user_devices(
    auth: CallerAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<DeviceList>, ApiError> {
    let devices = devices::directory(state.store.as_ref(), &auth.0, *id).await?;
    Ok(web::Json(list(&devices)))
}

problems!(RegisterPushProblems: ValidationFailed, DevicePending);

/// Registers where the tenant's push service reaches this device (an APNs or FCM token, or
/// any provider the tenant uses). When the device leaves entries waiting for longer than
/// `CLOAK_PUSH_COALESCE_SECS`, the tenant gets one signed `device.pending` webhook per
/// window, holding only tenant, user, device, `push_token`, `provider` and a `pending`
/// count: never a sender, conversation, size or time of a message.
#[utoipa::path(
    tag = "devices",
    security(("device_token" = [])),
    request_body = PushRegistration,
    responses(
        RegisterPushProblems,
        (status = 204, description = "Registered"),
    )
)]
#[put("/v1/devices/me/push")]
pub async fn register_push(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<PushRegistration>,
) -> Result<HttpResponse, ApiError> {
    crate::services::push_tokens::register(state.store.as_ref(), &auth.0, &body.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes this device's push registration.
#[utoipa::path(
    tag = "devices",
    security(("device_token" = [])),
    responses(
        (status = 204, description = "Removed (or there was none)"),
    )
)]
#[delete("/v1/devices/me/push")]
pub async fn unregister_push(
    auth: DeviceAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::services::push_tokens::unregister(state.store.as_ref(), &auth.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
