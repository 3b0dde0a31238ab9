//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use cloak_proto::health::{CheckStatus, DependencyStatus, Health, Readiness};

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is alive.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

fn status(ok: bool, backend: &str) -> DependencyStatus {
    let status = if ok {
        CheckStatus::Ok
    } else {
        CheckStatus::Unavailable
    };
    DependencyStatus {
        status: status.as_str().to_owned(),
        backend: backend.to_owned(),
    }
}

/// Whether the node can serve: it needs the database, and serves degraded without the broker.
///
/// `ok` when the database and the broker answer. `degraded` (200) when only the broker does
/// not: the node still stores, delivers to its own sockets and serves mailboxes, with rate
/// limits kept per node, so a load balancer should keep it. `unavailable` (503) when the
/// database does not answer.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve: `ok`, or `degraded` while the broker is unreachable", body = Readiness),
        (status = 503, description = "The database is unreachable", body = Readiness),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (db, broker) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, state.broker.ping()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let broker_ok = matches!(broker, Ok(Ok(())));
    let overall = match (db_ok, broker_ok) {
        (true, true) => CheckStatus::Ok,
        (true, false) => CheckStatus::Degraded,
        (false, _) => CheckStatus::Unavailable,
    };
    let body = Readiness {
        status: overall.as_str().to_owned(),
        database: status(db_ok, state.store.backend()),
        broker: status(broker_ok, state.broker.backend()),
    };
    if db_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
