//! Authentication extractors. A handler states who may call it by the extractor it takes.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use secrecy::SecretString;

use super::problem::ApiError;
use crate::services::{ServiceError, api_keys};
use crate::state::AppState;

/// A request authenticated by a tenant API key (`Authorization: Bearer ck_…`).
#[derive(Debug, Clone, Copy)]
pub struct TenantAuth(pub api_keys::TenantPrincipal);

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

impl FromRequest for TenantAuth {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&"application state missing"))?;
            let token = token.ok_or(ApiError::from(ServiceError::MissingCredentials))?;
            let now = state.clock.now_ms();
            let principal = api_keys::authenticate(state.store.as_ref(), &token, now)
                .await
                .map_err(ApiError::from)?;
            Ok(TenantAuth(principal))
        })
    }
}
