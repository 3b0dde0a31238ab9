//! The API's own description.

use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

/// This OpenAPI 3.1 document.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.as_str().to_owned())
}
