//! Domain errors, each with a stable code. The HTTP layer maps them to problem JSON.

use crate::store::StoreError;

/// A domain failure.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No usable credentials were presented.
    #[error("missing credentials")]
    MissingCredentials,
    /// The API key is malformed, unknown or revoked.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The addressed resource does not exist for this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with current state; the code says how.
    #[error("{detail}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// A value failed a domain rule.
    #[error("{detail}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
