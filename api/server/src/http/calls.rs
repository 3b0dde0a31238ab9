//! `/v1/calls`: TURN relay credentials (call signaling travels inside MLS).

use crate::http::documented::problems;
use actix_web::{post, web};
use cloak_proto::calls::TurnCredentials;

use super::auth::DeviceAuth;
use super::problem::ApiError;
use crate::services::calls;
use crate::state::AppState;

problems!(TurnCredentialsProblems: InsufficientCredits, NotAllowedAtTrustLevel, DevicePending, UserSuspended, RateLimited, TurnNotConfigured);

/// Issues time-limited TURN credentials (coturn's TURN REST API scheme) with the relay's
/// URIs. Each grant counts against the user's trust level (`calls_per_hour`; 0 forbids
/// calls) and costs `call_minute` credits for every started minute of `ttl_secs`; ask for
/// new ones to renew.
#[utoipa::path(
    tag = "calls",
    security(("device_token" = [])),
    responses(
        TurnCredentialsProblems,
        (status = 200, description = "Credentials", body = TurnCredentials),
    )
)]
#[post("/v1/calls/turn-credentials")]
pub async fn turn_credentials(
    auth: DeviceAuth,
    state: web::Data<AppState>,
) -> Result<web::Json<TurnCredentials>, ApiError> {
    let credentials = calls::turn_credentials(
        state.store.as_ref(),
        state.broker.as_ref(),
        state.settings.turn.as_ref(),
        &auth.0,
        uuid::Uuid::new_v4(),
        state.clock.now_ms(),
    )
    .await?;
    Ok(web::Json(credentials))
}
