//! What the server answers when no route matches: 405 with `Allow` for a path it serves
//! under other methods (known from the OpenAPI document, which lists every route), 404
//! `route_not_found` otherwise.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _};

use super::problem::ApiError;

/// A path template's segments (`None` for a `{parameter}`) and its methods.
type Route = (Vec<Option<String>>, Vec<String>);

fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc = super::openapi_value(super::DEFAULT_SERVER);
        let Some(paths) = doc["paths"].as_object() else {
            return Vec::new();
        };
        paths
            .iter()
            .map(|(path, item)| {
                let segments = path
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|m| m.keys().map(|k| k.to_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                (segments, methods)
            })
            .collect()
    })
}

/// The methods the server takes for `path`, if it serves the path at all.
pub fn allowed(path: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut found: Vec<String> = Vec::new();
    for (template, methods) in routes() {
        let matches = template.len() == segments.len()
            && template.iter().zip(&segments).all(|(t, s)| match t {
                Some(literal) => literal == s,
                None => !s.is_empty(),
            });
        if matches {
            found.extend(methods.iter().cloned());
        }
    }
    found.sort();
    found.dedup();
    (!found.is_empty()).then_some(found)
}

/// The default service.
pub async fn unmatched(req: HttpRequest) -> HttpResponse {
    match allowed(req.path()) {
        Some(methods) if !methods.iter().any(|m| m == req.method().as_str()) => {
            let mut response = ApiError::method_not_allowed(req.method()).error_response();
            if let Ok(value) = header::HeaderValue::from_str(&methods.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        _ => ApiError::route_not_found().error_response(),
    }
}
