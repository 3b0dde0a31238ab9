//! Debug builds check every answer against the OpenAPI document: a status an operation
//! does not document, or a problem code missing from that status's `x-codes`, is logged
//! and recorded per listening port, and the API tests fail on any (their `TestApp` reads
//! [`violations`] when it is dropped). So a code a service starts to answer is documented
//! by the handler's `problems!` list (or the test suite says which is missing), and the
//! document cannot drift from the server.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use serde_json::Value;

use super::problem::ApiError;

/// (method, path template) → status → its codes (empty: not a problem response).
type Operations = HashMap<(String, String), HashMap<String, Vec<String>>>;

/// The most violations kept (a long-running debug server stays bounded).
const KEPT: usize = 1000;

fn operations() -> &'static Operations {
    static OPS: OnceLock<Operations> = OnceLock::new();
    OPS.get_or_init(|| {
        let doc: Value = serde_json::from_str(&super::openapi_json()).unwrap_or_default();
        let mut ops = Operations::new();
        let Some(paths) = doc["paths"].as_object() else {
            return ops;
        };
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let Some(responses) = op["responses"].as_object() else {
                    continue;
                };
                let statuses = responses
                    .iter()
                    .map(|(status, r)| {
                        let codes = r["x-codes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_str().map(str::to_owned))
                            .collect();
                        (status.clone(), codes)
                    })
                    .collect();
                ops.insert((method.clone(), path.clone()), statuses);
            }
        }
        ops
    })
}

fn recorded() -> &'static Mutex<Vec<(u16, String)>> {
    static RECORDED: OnceLock<Mutex<Vec<(u16, String)>>> = OnceLock::new();
    RECORDED.get_or_init(|| Mutex::new(Vec::new()))
}

/// What the answer breaks, if anything.
fn violation(method: &str, path: &str, status: u16, code: Option<&str>) -> Option<String> {
    let statuses = operations().get(&(method.to_owned(), path.to_owned()))?;
    let Some(codes) = statuses.get(&status.to_string()) else {
        return Some(format!(
            "{method} {path} answered {status}{}, which it does not document",
            code.map(|c| format!(" `{c}`")).unwrap_or_default()
        ));
    };
    match code {
        Some(code) if !codes.is_empty() && !codes.iter().any(|c| c == code) => Some(format!(
            "{method} {path} answered {status} `{code}`, missing from its x-codes {codes:?}"
        )),
        _ => None,
    }
}

/// The middleware.
pub async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = req.method().as_str().to_ascii_lowercase();
    let pattern = req.match_pattern();
    let port = req.app_config().local_addr().port();
    let res = next.call(req).await?;
    if let Some(path) = pattern {
        let code = res
            .response()
            .error()
            .and_then(|e| e.as_error::<ApiError>())
            .map(|e| e.code().as_str());
        if let Some(v) = violation(&method, &path, res.status().as_u16(), code) {
            tracing::warn!(violation = %v, "answer not in the OpenAPI document");
            if let Ok(mut kept) = recorded().lock()
                && kept.len() < KEPT
            {
                kept.push((port, v));
            }
        }
    }
    Ok(res)
}

/// Takes the violations recorded for the server listening on `port`.
pub fn violations(port: u16) -> Vec<String> {
    let Ok(mut kept) = recorded().lock() else {
        return Vec::new();
    };
    let (mine, others) = kept.drain(..).partition(|(p, _)| *p == port);
    *kept = others;
    mine.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undocumented_statuses_and_codes_are_violations() {
        assert_eq!(violation("post", "/v1/invites", 201, None), None);
        assert_eq!(
            violation("post", "/v1/invites", 403, Some("not_own_user")),
            None
        );
        assert!(violation("post", "/v1/invites", 403, Some("account_locked")).is_some());
        assert!(violation("post", "/v1/invites", 418, None).is_some());
        // Paths the document does not describe are not checked.
        assert_eq!(violation("get", "/docs/{_:.*}", 200, None), None);
    }
}
