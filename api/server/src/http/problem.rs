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
    /// A problem with the given status, code and title.
    pub fn new(status: StatusCode, code: Code, title: &'static str) -> Self {
        Self {
            status,
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
        let mut err = Self::new(
            StatusCode::BAD_REQUEST,
            Code::ValidationFailed,
            "Validation failed",
        )
        .with_detail("one or more fields are invalid");
        err.errors = fields;
        err
    }

    /// 404 `route_not_found` for paths nothing serves.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::RouteNotFound, "No such route")
    }

    /// 405 `method_not_allowed` for a path served under other methods (the caller adds
    /// `Allow`).
    pub fn method_not_allowed(method: &actix_web::http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::MethodNotAllowed,
            "Method not allowed",
        )
        .with_detail(format!("{method} is not served on this path; see Allow"))
    }

    /// 500 `internal_error`; the cause is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::InternalError,
            "Internal server error",
        )
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
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::DatabaseUnavailable,
                    "Database unavailable",
                )
                .with_detail("try again shortly")
            }
            other => Self::internal(&other),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::MissingCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                Code::MissingCredentials,
                "Missing credentials",
            )
            .with_detail("send Authorization: Bearer <key>"),
            ServiceError::InvalidApiKey => Self::new(
                StatusCode::UNAUTHORIZED,
                Code::InvalidApiKey,
                "Invalid API key",
            )
            .with_detail("the API key is malformed, unknown or revoked"),
            ServiceError::Unauthorized { code, detail } => {
                Self::new(StatusCode::UNAUTHORIZED, code, "Unauthorized").with_detail(detail)
            }
            ServiceError::Forbidden { code, detail } => {
                Self::new(StatusCode::FORBIDDEN, code, "Forbidden").with_detail(detail)
            }
            ServiceError::NotFound(what) => {
                Self::new(StatusCode::NOT_FOUND, Code::NotFound, "Not found")
                    .with_detail(format!("{what} not found"))
            }
            ServiceError::Conflict { code, detail } => {
                Self::new(StatusCode::CONFLICT, code, "Conflict").with_detail(detail)
            }
            ServiceError::Invalid { code, detail } => {
                Self::new(StatusCode::BAD_REQUEST, code, "Invalid request").with_detail(detail)
            }
            ServiceError::Gone { code, detail } => {
                Self::new(StatusCode::GONE, code, "Gone").with_detail(detail)
            }
            ServiceError::PaymentRequired { code, detail } => {
                Self::new(StatusCode::PAYMENT_REQUIRED, code, "Payment required")
                    .with_detail(detail)
            }
            ServiceError::RateLimited {
                code,
                detail,
                policy,
                limit,
                window_secs,
                retry_after_ms,
            } => {
                let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, code, "Too many requests")
                    .with_detail(detail);
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
                let status = if code.as_str().ends_with("not_configured") {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                };
                Self::new(status, code, "Upstream unavailable").with_detail(detail)
            }
            ServiceError::StaleEpoch(epoch) => {
                let mut err = Self::new(StatusCode::CONFLICT, Code::StaleEpoch, "Stale epoch")
                    .with_detail(format!(
                        "the conversation is at epoch {epoch}; process pending commits and retry"
                    ));
                err.current_epoch = u64::try_from(epoch).ok();
                err
            }
            ServiceError::Store(e) => e.into(),
        }
    }
}
