//! Authentication extractors. A handler states who may call it by the extractor it takes:
//! [`TenantAuth`] (API key), [`UserAuth`] (user token), [`DeviceAuth`] (device token),
//! or [`CallerAuth`] (API key or device token, told apart by prefix).

use std::future::Future;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use secrecy::{ExposeSecret, SecretString};

use super::problem::ApiError;
use crate::services::principals::{Caller, DevicePrincipal, UserPrincipal};
use crate::services::{ServiceError, api_keys, devices};
use crate::state::AppState;

/// A request authenticated by a tenant API key (`Authorization: Bearer ck_…`).
#[derive(Debug, Clone, Copy)]
pub struct TenantAuth(pub api_keys::TenantPrincipal);

/// A request authenticated by a user token (`Bearer cu_…`).
#[derive(Debug, Clone, Copy)]
pub struct UserAuth(pub UserPrincipal);

/// A request authenticated by a device token (`Bearer cd_…`); approved or pending.
#[derive(Debug, Clone, Copy)]
pub struct DeviceAuth(pub DevicePrincipal);

/// A request by the tenant's backend or by a device.
#[derive(Debug, Clone, Copy)]
pub struct CallerAuth(pub Caller);

/// The bearer token of a request, if any. The token never reaches a log.
pub fn bearer_token(req: &HttpRequest) -> Option<SecretString> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| SecretString::from(token.to_owned()))
}

/// The tenant's request rate (protects the service from one tenant's flood).
pub(crate) async fn tenant_rate(
    state: &AppState,
    tenant_id: uuid::Uuid,
) -> Result<(), ServiceError> {
    let policy = crate::services::limits::Policy {
        name: "tenant_requests",
        rate: crate::broker::Rate {
            limit: state.settings.tenant_requests_per_sec,
            window_ms: 1000,
        },
    };
    match crate::services::limits::hit(
        state.broker.as_ref(),
        &tenant_id.to_string(),
        &policy,
        state.clock.now_ms(),
    )
    .await
    {
        // This limit protects the service; without the limiter (Redis down) requests go on.
        Err(ServiceError::Unavailable { detail, .. }) => {
            tracing::warn!(error = %detail, "tenant request limiter unavailable");
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

/// Runs `check` with the app state, the bearer token and the current time.
fn authenticate<T, F, Fut>(
    req: &HttpRequest,
    check: F,
) -> LocalBoxFuture<'static, Result<T, actix_web::Error>>
where
    T: 'static,
    F: FnOnce(web::Data<AppState>, SecretString, i64) -> Fut + 'static,
    Fut: Future<Output = Result<T, ServiceError>> + 'static,
{
    let token = bearer_token(req);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    Box::pin(async move {
        let state = state.ok_or_else(|| ApiError::internal(&"application state missing"))?;
        let token = token.ok_or(ApiError::from(ServiceError::MissingCredentials))?;
        let now = state.clock.now_ms();
        Ok(check(state, token, now).await.map_err(ApiError::from)?)
    })
}

impl FromRequest for TenantAuth {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        authenticate(req, |state, token, now| async move {
            let tenant = api_keys::authenticate(state.store.as_ref(), &token, now).await?;
            tenant_rate(&state, tenant.tenant_id).await?;
            Ok(TenantAuth(tenant))
        })
    }
}

impl FromRequest for UserAuth {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        authenticate(req, |state, token, now| async move {
            devices::authenticate_user(state.store.as_ref(), &state.tokens, &token, now)
                .await
                .map(UserAuth)
        })
    }
}

impl FromRequest for DeviceAuth {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        authenticate(req, |state, token, now| async move {
            let device =
                devices::authenticate_device(state.store.as_ref(), &state.tokens, &token, now)
                    .await?;
            tenant_rate(&state, device.tenant_id).await?;
            Ok(DeviceAuth(device))
        })
    }
}

impl FromRequest for CallerAuth {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        authenticate(req, |state, token, now| async move {
            let caller = if token.expose_secret().starts_with(api_keys::KEY_PREFIX) {
                Caller::Tenant(api_keys::authenticate(state.store.as_ref(), &token, now).await?)
            } else {
                Caller::Device(
                    devices::authenticate_device(state.store.as_ref(), &state.tokens, &token, now)
                        .await?,
                )
            };
            tenant_rate(&state, caller.tenant_id()).await?;
            Ok(CallerAuth(caller))
        })
    }
}
