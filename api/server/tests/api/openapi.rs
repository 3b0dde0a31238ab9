//! The committed OpenAPI document is what the code generates, what the server serves, and
//! it covers every routed handler.

use std::path::PathBuf;

use crate::backend_tests;
use crate::helpers::{Backend, spawn_app};

const REGENERATE: &str =
    "regenerate it with: cargo run -p cloak-api -- openapi --output openapi/openapi.json";

/// The server package's directory in the checkout being tested: Cargo's run-time value
/// first, since builds are shared between checkouts (CI's cache directory).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn committed_path() -> PathBuf {
    manifest_dir().join("../../openapi/openapi.json")
}

#[test]
fn committed_spec_matches_the_code() {
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    let generated = cloak_api::http::openapi_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date; {REGENERATE}"
    );
}

#[test]
fn spec_is_openapi_3_1_with_problem_errors() {
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    assert!(spec["components"]["schemas"]["Problem"].is_object());
    assert_eq!(
        spec["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
}

/// `(method, path)` of every actix route attribute in the server's source.
fn routed_handlers() -> Vec<(String, String, PathBuf)> {
    let mut found = Vec::new();
    let mut stack = vec![manifest_dir().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().map(str::trim) {
                for method in ["get", "post", "put", "patch", "delete"] {
                    if let Some(rest) = line.strip_prefix(&format!("#[{method}(\"")) {
                        let route = rest.split('"').next().unwrap().to_owned();
                        found.push((method.to_owned(), route, path.clone()));
                    }
                }
                for manual in [".route(", "web::resource(", "web::scope(", "Resource::new("] {
                    assert!(
                        !line.contains(manual),
                        "{}: register routes with #[utoipa::path] + an actix route macro, not {manual}",
                        path.display()
                    );
                }
            }
        }
    }
    found
}

#[test]
fn every_routed_handler_is_in_the_spec() {
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    let handlers = routed_handlers();
    assert!(
        handlers.len() >= 7,
        "the scan found too few handlers: {handlers:?}"
    );
    for (method, route, file) in handlers {
        assert!(
            spec["paths"][&route][&method].is_object(),
            "{} {route} in {} is routed but missing from the spec",
            method.to_uppercase(),
            file.display()
        );
    }
}

async fn every_spec_operation_is_routed(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        uuid::Uuid::nil().to_string()
                    } else {
                        seg.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = app
                .client
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            let code = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned));
            assert!(
                code.as_deref() != Some("route_not_found"),
                "{method} {path} is in the spec but not routed ({status})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 7);
}

async fn served_spec_is_the_generated_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut served: serde_json::Value = resp.json().await.unwrap();
    // It names this server; the committed one names the embedded default.
    assert_eq!(served["servers"][0]["url"], app.address.as_str());
    let mut generated: serde_json::Value =
        serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    assert_eq!(
        generated["servers"][0]["url"],
        cloak_api::http::DEFAULT_SERVER
    );
    served["servers"] = serde_json::Value::Null;
    generated["servers"] = serde_json::Value::Null;
    assert_eq!(served, generated);
}

backend_tests!(
    every_spec_operation_is_routed,
    served_spec_is_the_generated_one
);

/// Generated clients name a method after each operationId: one id, one operation.
#[test]
fn operation_ids_are_unique() {
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    let mut seen = std::collections::HashMap::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str())
                && let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}"))
            {
                panic!("operationId {id} is used by {other} and by {method} {path}");
            }
        }
    }
    assert!(seen.len() > 50, "the spec lists the operations");
}

/// The contract an integrator generates clients from: tenant webhooks and WebSocket frames
/// are named schemas; secured operations document 401 and 429 (with its headers), bodies
/// 400/413/415; public ones say `security: []`; PNGs are binary.
#[test]
fn the_spec_documents_webhooks_frames_and_common_answers() {
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    for (kind, schema, _) in cloak_proto::events::EVENTS {
        let op = &spec["webhooks"][kind]["post"];
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}")
        );
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    for frame in ["ClientFrame", "ServerFrame"] {
        assert!(spec["components"]["schemas"][frame].is_object(), "{frame}");
    }
    let mut secured = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no security"));
            if !security.is_empty() && path.starts_with("/v1/") {
                secured += 1;
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path}: no 401"
                );
                let limited = &op["responses"]["429"];
                assert!(
                    limited["headers"]["Retry-After"].is_object(),
                    "{method} {path}: no 429 headers"
                );
            }
            if op["requestBody"]["content"]["application/json"].is_object() {
                for status in ["400", "413", "415"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
    }
    assert!(secured > 50);
    assert_eq!(
        spec["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
    let png = &spec["paths"]["/v1/invites/{code}/qr.png"]["get"]["responses"]["200"]["content"]["image/png"]
        ["schema"];
    assert_eq!(
        (png["type"].as_str(), png["format"].as_str()),
        (Some("string"), Some("binary"))
    );
}

/// The validator's rules are in the schemas (build.rs reads them from the wire types).
#[test]
fn validation_rules_are_in_the_schema() {
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let uses = &schemas["CreateInviteRequest"]["properties"]["max_uses"];
    assert_eq!(
        (uses["minimum"].as_i64(), uses["maximum"].as_i64()),
        (Some(1), Some(1000))
    );
    let level = &schemas["TrustLevel"]["properties"]["name"];
    assert_eq!(
        (level["minLength"].as_i64(), level["maxLength"].as_i64()),
        (Some(1), Some(32))
    );
    // Base64 of 1 to 262,144 bytes.
    let body = &schemas["SendMessageRequest"]["properties"]["body"];
    assert_eq!(
        (body["minLength"].as_i64(), body["maxLength"].as_i64()),
        (Some(4), Some(349_528))
    );
    let url = &schemas["WebhookConfigRequest"]["properties"]["url"];
    assert_eq!(url["format"], "uri");
    let limit = spec["paths"]["/v1/users"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (
            limit["schema"]["minimum"].as_i64(),
            limit["schema"]["maximum"].as_i64()
        ),
        (Some(1), Some(500))
    );
}

/// Every problem response lists its codes (`x-codes`), each of them answers exactly that
/// status (`Code::status`), and the description names them: the statuses follow from the
/// codes, never the other way round.
#[test]
fn problem_responses_are_derived_from_their_codes() {
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                if response
                    .pointer("/content/application~1problem+json")
                    .is_none()
                {
                    continue;
                }
                let codes = response["x-codes"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {path} {status}: no x-codes"));
                assert!(!codes.is_empty(), "{method} {path} {status}: empty x-codes");
                for code in codes {
                    let name = code.as_str().unwrap();
                    let parsed: cloak_proto::Code = serde_json::from_value(code.clone()).unwrap();
                    assert_ne!(parsed, cloak_proto::Code::Unknown, "{name} is no code");
                    assert_eq!(
                        parsed.status().to_string(),
                        *status,
                        "{method} {path}: `{name}` is documented under {status}"
                    );
                    assert!(
                        response["description"]
                            .as_str()
                            .unwrap()
                            .contains(&format!("`{name}`")),
                        "{method} {path} {status}: the description omits `{name}`"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} documented codes");
}

/// Every request body carries an example.
#[test]
fn every_request_body_has_an_example() {
    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let mut missing = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(content) = op
                .pointer("/requestBody/content")
                .and_then(|c| c.as_object())
            else {
                continue;
            };
            for (media, body) in content {
                let schema = &body["schema"];
                let named = schema["$ref"]
                    .as_str()
                    .and_then(|r| r.rsplit('/').next())
                    .map(|n| &schemas[n]);
                let has = |v: &serde_json::Value| {
                    v.get("example").is_some() || v.get("examples").is_some()
                };
                let binary = schema["format"] == "binary";
                if !(has(body) || has(schema) || named.is_some_and(has) || binary) {
                    missing.push(format!("{method} {path} ({media})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "request bodies without an example: {missing:#?}"
    );
}

/// Each JSON request body's example is a body the wire type takes: it deserializes and
/// passes the same `validate()` the handlers run.
#[test]
fn request_examples_are_bodies_the_server_takes() {
    use cloak_proto::{
        abuse::*, api_keys::*, billing::*, console::*, delivery::*, devices::*, invites::*,
        key_packages::*, tenants::*, users::*,
    };
    use validator::Validate;

    let spec: serde_json::Value = serde_json::from_str(&cloak_api::http::openapi_json()).unwrap();
    fn accepts<T: serde::de::DeserializeOwned + Validate + utoipa::ToSchema>(
        spec: &serde_json::Value,
    ) {
        let name = T::name();
        let schema = &spec["components"]["schemas"][name.as_ref()];
        let example = schema
            .get("example")
            .cloned()
            .or_else(|| schema["examples"].get(0).cloned())
            .unwrap_or_else(|| panic!("{name}: no example"));
        let body: T = serde_json::from_value(example)
            .unwrap_or_else(|e| panic!("{name}: the example does not deserialize: {e}"));
        if let Err(e) = body.validate() {
            panic!("{name}: the example fails validation: {e}");
        }
    }
    accepts::<CreateApiKeyRequest>(&spec);
    accepts::<RegisterDeviceRequest>(&spec);
    accepts::<ApproveDeviceRequest>(&spec);
    accepts::<ChallengeRequest>(&spec);
    accepts::<LoginRequest>(&spec);
    accepts::<PushRegistration>(&spec);
    accepts::<PriceTable>(&spec);
    accepts::<BillingSettings>(&spec);
    accepts::<GrantRequest>(&spec);
    accepts::<AdjustmentRequest>(&spec);
    accepts::<CheckoutRequest>(&spec);
    accepts::<WebhookConfigRequest>(&spec);
    accepts::<TrustLevels>(&spec);
    accepts::<BlockRequest>(&spec);
    accepts::<ReportRequest>(&spec);
    accepts::<ModerationSettings>(&spec);
    accepts::<CreateConsoleAccountRequest>(&spec);
    accepts::<CreateUserRequest>(&spec);
    accepts::<UpdateUserRequest>(&spec);
    accepts::<CreateContactRequest>(&spec);
    accepts::<CreateConversationRequest>(&spec);
    accepts::<SendMessageRequest>(&spec);
    accepts::<CommitRequest>(&spec);
    accepts::<AckRequest>(&spec);
    accepts::<CreateInviteRequest>(&spec);
    accepts::<UploadKeyPackagesRequest>(&spec);
    accepts::<UpdateTenantRequest>(&spec);
}
