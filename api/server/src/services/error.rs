//! Domain errors, each with a stable code. The HTTP layer maps them to problem JSON.

use crate::store::StoreError;
use cloak_proto::Code;

/// A domain failure.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No usable credentials were presented.
    #[error("missing credentials")]
    MissingCredentials,
    /// The API key is malformed, unknown or revoked.
    #[error("invalid API key")]
    InvalidApiKey,
    /// Credentials were presented but are not valid now; the code says why.
    #[error("{detail}")]
    Unauthorized {
        /// Stable code.
        code: Code,
        /// Human-readable explanation.
        detail: String,
    },
    /// The caller is authenticated but may not do this; the code says why.
    #[error("{detail}")]
    Forbidden {
        /// Stable code.
        code: Code,
        /// Human-readable explanation.
        detail: String,
    },
    /// The addressed resource does not exist for this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with current state; the code says how.
    #[error("{detail}")]
    Conflict {
        /// Stable code.
        code: Code,
        /// Human-readable explanation.
        detail: String,
    },
    /// A value failed a domain rule.
    #[error("{detail}")]
    Invalid {
        /// Stable code.
        code: Code,
        /// Human-readable explanation.
        detail: String,
    },
    /// The resource existed but is no longer usable (expired, revoked, used up).
    #[error("{detail}")]
    Gone {
        /// Stable code.
        code: Code,
        /// Human-readable explanation.
        detail: String,
    },
    /// The payer cannot afford the action (402).
    #[error("{detail}")]
    PaymentRequired {
        /// Stable code.
        code: Code,
        /// Human-readable explanation.
        detail: String,
    },
    /// A rate limit refused the request (429, with `Retry-After` and `RateLimit` headers).
    #[error("{detail}")]
    RateLimited {
        /// Stable code.
        code: Code,
        /// Human-readable explanation.
        detail: String,
        /// The limit's name (`RateLimit-Policy`).
        policy: &'static str,
        /// Events per window.
        limit: u32,
        /// The window, in seconds.
        window_secs: i64,
        /// How long to wait.
        retry_after_ms: i64,
    },
    /// A dependency (Stripe) is not configured or failed: 503 / 502.
    #[error("{detail}")]
    Unavailable {
        /// Stable code (`stripe_not_configured` → 503, others → 502).
        code: Code,
        /// Human-readable explanation.
        detail: String,
    },
    /// A send or commit was made for an epoch the conversation is no longer at.
    #[error("stale epoch; current is {0}")]
    StaleEpoch(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    /// 401 with a code.
    pub fn unauthorized(code: Code, detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            detail: detail.into(),
        }
    }

    /// 403 with a code.
    pub fn forbidden(code: Code, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    /// 409 with a code.
    pub fn conflict(code: Code, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// 400 with a code.
    pub fn invalid(code: Code, detail: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            detail: detail.into(),
        }
    }
}
