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
    /// Serving with less: the database answers but the broker does not, so this node
    /// delivers to its own sockets and to mailboxes, and keeps rate limits per node, until
    /// the broker is back. Only ever the overall `status` of `GET /readyz`.
    Degraded,
    /// Not reachable.
    Unavailable,
}

impl CheckStatus {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Unavailable => "unavailable",
        }
    }
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
    /// `ok` when every dependency is reachable; `degraded` (still 200) when only the broker
    /// is not, so a load balancer keeps the node while it serves from the database;
    /// `unavailable` (503) when the database is not.
    #[schema(value_type = CheckStatus)]
    pub status: String,
    /// The database.
    pub database: DependencyStatus,
    /// The cross-node broker.
    pub broker: DependencyStatus,
}
