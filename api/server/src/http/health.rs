//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use cloak_proto::health::{DependencyStatus, Health, Readiness};

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
    DependencyStatus {
        status: if ok { "ok" } else { "unavailable" }.to_owned(),
        backend: backend.to_owned(),
    }
}

/// The database and the broker are reachable.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency is unreachable", body = Readiness),
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
    let body = Readiness {
        status: if db_ok && broker_ok {
            "ok"
        } else {
            "unavailable"
        }
        .to_owned(),
        database: status(db_ok, state.store.backend()),
        broker: status(broker_ok, state.broker.backend()),
    };
    if db_ok && broker_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
