//! `/v1/calls`: TURN relay credentials (call signaling travels inside MLS).

use actix_web::{post, web};
use cloak_proto::Problem;
use cloak_proto::calls::TurnCredentials;

use super::auth::DeviceAuth;
use super::problem::ApiError;
use crate::services::calls;
use crate::state::AppState;

/// Issues time-limited TURN credentials (coturn's TURN REST API scheme) with the relay's
/// URIs. Each grant counts against the user's trust level (`calls_per_hour`; 0 forbids
/// calls) and costs `call_minute` credits for every started minute of `ttl_secs`; ask for
/// new ones to renew.
#[utoipa::path(
    tag = "calls",
    security(("device_token" = [])),
    responses(
        (status = 200, description = "Credentials", body = TurnCredentials),
        (status = 401, description = "Missing or invalid device token", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`insufficient_credits`: the payer cannot afford the call minutes", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`not_allowed_at_trust_level` (the level may not call), `device_pending` or `user_suspended`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the level's `calls_per_hour` is used up (`Retry-After` says when to retry)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`turn_not_configured`: this server has no TURN relay", body = Problem, content_type = "application/problem+json"),
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
