//! RFC 9457 problem details, the body of every error response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Code;

/// Media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document with a stable machine-readable `code`.
///
/// Clients branch on `code` (stable across releases), never on `title` or `detail`
/// (human-readable, may change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference identifying the problem type: `urn:cloak:problem:{code}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human-readable explanation specific to this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code, e.g. `invalid_api_key`.
    pub code: Code,
    /// Per-field validation failures, present on `validation_failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The conversation's current epoch, present on `stale_epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
    /// Seconds to wait before retrying, present on rate-limit problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The JSON field name.
    pub field: String,
    /// The rule that failed, e.g. `length`.
    pub code: String,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Problem {
    /// The `type` URI for a given code.
    pub fn type_uri_for(code: &str) -> String {
        format!("urn:cloak:problem:{code}")
    }

    /// Builds a problem with the `type` derived from `code`.
    pub fn new(status: u16, code: Code, title: &str, detail: Option<String>) -> Self {
        Self {
            type_uri: Self::type_uri_for(code.as_str()),
            title: title.to_owned(),
            status,
            detail,
            code,
            errors: Vec::new(),
            current_epoch: None,
            retry_after_secs: None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.title, self.code, self.status)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_rfc9457_with_type_field() {
        let p = Problem::new(401, Code::InvalidApiKey, "Invalid API key", None);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "urn:cloak:problem:invalid_api_key");
        assert_eq!(v["status"], 401);
        assert_eq!(v["code"], "invalid_api_key");
        assert!(v.get("detail").is_none());
        assert!(v.get("errors").is_none());
        let back: Problem = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }
}
