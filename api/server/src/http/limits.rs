//! Limits applied at the edge: per client IP on login endpoints (the per-tenant request
//! rate is in the auth extractors). Through the broker's limiter, so they hold across nodes.

use actix_web::HttpRequest;

use super::problem::ApiError;
use crate::broker::Rate;
use crate::services::limits::{self, Policy};
use crate::state::AppState;

/// Counts a login attempt (device challenge and login, device registration with a user
/// token, console sign-in) from the request's peer address. The peer is the TCP peer:
/// behind a load balancer, put the limit there or have it pass the client address on.
pub async fn per_ip(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if state.settings.login_per_ip_per_minute == 0 {
        return Ok(()); // turned off (e.g. behind a proxy that limits instead)
    }
    let ip = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let policy = Policy {
        name: "login_ip",
        rate: Rate {
            limit: state.settings.login_per_ip_per_minute,
            window_ms: 60_000,
        },
    };
    limits::hit(state.broker.as_ref(), &ip, &policy, state.clock.now_ms()).await?;
    Ok(())
}
