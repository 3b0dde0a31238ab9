//! The query of paginated lists.

use serde::{Deserialize, Serialize};
use validator::Validate;

/// Query of the paginated lists (`GET /v1/conversations`, `GET /v1/users/{id}/invites`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From a previous page's `next_cursor`.
    #[serde(default)]
    #[validate(length(max = 200))]
    pub cursor: Option<String>,
    /// Page size (1 to 500, default 100).
    #[serde(default)]
    #[validate(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}
