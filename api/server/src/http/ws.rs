//! `GET /v1/ws`: the real-time channel. The handler authenticates (header token) and
//! upgrades; [`super::ws_session`] runs the connection.

use crate::http::documented::problems;
use actix_web::{HttpRequest, HttpResponse, get, web};
use cloak_proto::Code;

use super::auth::{bearer_token, tenant_rate};
use super::problem::ApiError;
use super::ws_session::{self, MAX_FRAME_BYTES};
use crate::services::devices;
use crate::state::AppState;

problems!(WebsocketProblems: WebsocketUpgradeRequired, DevicePending, RateLimited);

/// Opens the WebSocket. Authenticate with `Authorization: Bearer <device token>` or, where
/// headers cannot be set, with an `auth` frame within 10 seconds. Then send `resume` with
/// the last stored sequence number: every later mailbox entry is pushed as an `envelope`
/// frame at once and after every reconnect, until acknowledged with `ack`. Frames are JSON
/// text (`ClientFrame`, `ServerFrame`); the server pings every 15 s and closes a connection
/// silent for 45 s, a revoked device's, and one that does not read its frames. A device
/// holds at most `CLOAK_WS_PER_DEVICE` sockets per node (a new one closes the oldest);
/// frames count against the tenant's request rate and a per-socket rate
/// (`CLOAK_WS_FRAMES_PER_SEC`): a frame beyond either waits (the server stops reading the
/// socket until the rate allows it), so frames are never refused and keep their order.
#[utoipa::path(
    tag = "realtime",
    security(("device_token" = []), ()),
    responses(
        WebsocketProblems,
        (status = 101, description = "Switching to the WebSocket protocol"),
    )
)]
#[get("/v1/ws")]
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let device = match bearer_token(&req) {
        Some(token) => {
            let device = devices::authenticate_device(
                state.store.as_ref(),
                &state.tokens,
                &token,
                state.clock.now_ms(),
            )
            .await
            .map_err(ApiError::from)?;
            devices::require_approved(&device).map_err(ApiError::from)?;
            // An upgrade is a request like any other: it counts against the tenant's rate.
            tenant_rate(&state, device.tenant_id)
                .await
                .map_err(ApiError::from)?;
            Some(device)
        }
        None => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::new(Code::WebsocketUpgradeRequired, "WebSocket upgrade required")
            .with_detail(e.to_string())
    })?;
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    actix_web::rt::spawn(ws_session::run(state.into_inner(), device, session, stream));
    Ok(response)
}
