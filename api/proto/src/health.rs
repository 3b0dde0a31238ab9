//! Liveness and readiness bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    /// Server version.
    pub version: String,
}

/// State of one dependency checked by `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DependencyStatus {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Which implementation is in use, e.g. `postgres`, `sqlite`, `redis`, `in-process`.
    pub backend: String,
}

/// Body of `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` when every dependency is reachable, else `unavailable`.
    pub status: String,
    /// The database.
    pub database: DependencyStatus,
    /// The cross-node broker.
    pub broker: DependencyStatus,
}
