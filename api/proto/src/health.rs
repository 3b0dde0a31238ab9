//! Liveness and readiness bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a check passed: the closed set of `status` values in the health bodies (the
/// fields stay strings on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Reachable (for the process itself: answering).
    Ok,
    /// Not reachable.
    Unavailable,
}

/// Body of `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    #[schema(value_type = CheckStatus)]
    pub status: String,
    /// Server version.
    pub version: String,
}

/// State of one dependency checked by `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DependencyStatus {
    /// `ok` or `unavailable`.
    #[schema(value_type = CheckStatus)]
    pub status: String,
    /// Which implementation is in use, e.g. `postgres`, `sqlite`, `redis`, `in-process`.
    pub backend: String,
}

/// Body of `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` when every dependency is reachable, else `unavailable`.
    #[schema(value_type = CheckStatus)]
    pub status: String,
    /// The database.
    pub database: DependencyStatus,
    /// The cross-node broker.
    pub broker: DependencyStatus,
}
