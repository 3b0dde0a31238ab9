//! Every error leaves the server as RFC 9457 problem JSON with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use cloak_proto::Code;
use cloak_proto::problem::{FieldError, PROBLEM_CONTENT_TYPE, Problem};

use crate::services::ServiceError;
use crate::store::StoreError;

/// An error response: status, stable code, title and optional detail.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Code,
    title: &'static str,
    detail: Option<String>,
    errors: Vec<FieldError>,
    current_epoch: Option<u64>,
    retry_after_ms: Option<i64>,
    /// `RateLimit-Policy` and `RateLimit` header values.
    rate_headers: Option<(String, String)>,
}

impl ApiError {
    /// A problem with the given code and title; the status is the code's own
    /// ([`Code::status`]).
    pub fn new(code: Code, title: &'static str) -> Self {
        Self {
            status: StatusCode::from_u16(code.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            title,
            detail: None,
            errors: Vec::new(),
            current_epoch: None,
            retry_after_ms: None,
            rate_headers: None,
        }
    }

    /// For rate limits: how long to wait.
    pub fn retry_after_ms(&self) -> Option<i64> {
        self.retry_after_ms
    }

    /// Adds a human-readable detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 400 `validation_failed` listing each failing field.
    pub fn validation(errors: &validator::ValidationErrors) -> Self {
        let mut fields: Vec<FieldError> = errors
            .field_errors()
            .into_iter()
            .flat_map(|(field, errs)| {
                errs.iter().map(move |e| FieldError {
                    field: field.to_string(),
                    code: e.code.to_string(),
                    message: e.message.as_ref().map(|m| m.to_string()),
                })
            })
            .collect();
        fields.sort_by(|a, b| a.field.cmp(&b.field));
        let mut err = Self::new(Code::ValidationFailed, "Validation failed")
            .with_detail("one or more fields are invalid");
        err.errors = fields;
        err
    }

    /// 404 `route_not_found` for paths nothing serves.
    pub fn route_not_found() -> Self {
        Self::new(Code::RouteNotFound, "No such route")
    }

    /// 405 `method_not_allowed` for a path served under other methods (the caller adds
    /// `Allow`).
    pub fn method_not_allowed(method: &actix_web::http::Method) -> Self {
        Self::new(Code::MethodNotAllowed, "Method not allowed")
            .with_detail(format!("{method} is not served on this path; see Allow"))
    }

    /// 500 `internal_error`; the cause is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(Code::InternalError, "Internal server error")
    }

    /// The stable code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let mut p = Problem::new(
            self.status.as_u16(),
            self.code,
            self.title,
            self.detail.clone(),
        );
        p.errors = self.errors.clone();
        p.current_epoch = self.current_epoch;
        p.retry_after_secs = self.retry_after_ms.map(retry_after_secs);
        p
    }
}

/// Whole seconds to wait, rounded up (`Retry-After` is in seconds).
fn retry_after_secs(ms: i64) -> u64 {
    u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000)
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.title, self.code)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        ));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(ms) = self.retry_after_ms {
            response.insert_header((header::RETRY_AFTER, retry_after_secs(ms).to_string()));
        }
        if let Some((policy, state)) = &self.rate_headers {
            response.insert_header(("ratelimit-policy", policy.as_str()));
            response.insert_header(("ratelimit", state.as_str()));
        }
        match serde_json::to_vec(&self.problem()) {
            Ok(body) => response.body(body),
            Err(_) => response.finish(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::new(Code::DatabaseUnavailable, "Database unavailable")
                    .with_detail("try again shortly")
            }
            other => Self::internal(&other),
        }
    }
}

impl ApiError {
    /// A service refusal of the given class: the status is the code's own, and a code
    /// used under the wrong class is a bug the debug builds (and so the tests) catch.
    fn coded(code: Code, class: u16, detail: String) -> Self {
        debug_assert_eq!(code.status(), class, "{code} answers {}", code.status());
        let title = StatusCode::from_u16(code.status())
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Request refused");
        Self::new(code, title).with_detail(detail)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::MissingCredentials => {
                Self::new(Code::MissingCredentials, "Missing credentials")
                    .with_detail("send Authorization: Bearer <key>")
            }
            ServiceError::InvalidApiKey => Self::new(Code::InvalidApiKey, "Invalid API key")
                .with_detail("the API key is malformed, unknown or revoked"),
            ServiceError::Unauthorized { code, detail } => Self::coded(code, 401, detail),
            ServiceError::Forbidden { code, detail } => Self::coded(code, 403, detail),
            ServiceError::NotFound(what) => {
                Self::new(Code::NotFound, "Not found").with_detail(format!("{what} not found"))
            }
            ServiceError::Conflict { code, detail } => Self::coded(code, 409, detail),
            ServiceError::Invalid { code, detail } => Self::coded(code, 400, detail),
            ServiceError::Gone { code, detail } => Self::coded(code, 410, detail),
            ServiceError::PaymentRequired { code, detail } => Self::coded(code, 402, detail),
            ServiceError::RateLimited {
                code,
                detail,
                policy,
                limit,
                window_secs,
                retry_after_ms,
            } => {
                let mut err = Self::new(code, "Too many requests").with_detail(detail);
                let reset = retry_after_secs(retry_after_ms);
                err.retry_after_ms = Some(retry_after_ms.max(0));
                // draft-ietf-httpapi-ratelimit-headers: the policy, and what is left of it.
                err.rate_headers = Some((
                    format!("\"{policy}\";q={limit};w={window_secs}"),
                    format!("\"{policy}\";r=0;t={reset}"),
                ));
                err
            }
            ServiceError::Unavailable { code, detail } => {
                debug_assert!(
                    matches!(code.status(), 502 | 503),
                    "{code} is not an outage"
                );
                Self::new(code, "Upstream unavailable").with_detail(detail)
            }
            ServiceError::StaleEpoch(epoch) => {
                let mut err = Self::new(Code::StaleEpoch, "Stale epoch").with_detail(format!(
                    "the conversation is at epoch {epoch}; process pending commits and retry"
                ));
                err.current_epoch = u64::try_from(epoch).ok();
                err
            }
            ServiceError::Store(e) => e.into(),
        }
    }
}
