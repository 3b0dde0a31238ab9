//! What every operation of the OpenAPI document answers besides its own responses, added
//! from the rules the server applies to all routes alike, so the document tells the truth
//! without each handler repeating it:
//!
//! - these are added as codes, like a handler's own (`super::documented`): each under its
//!   code's status, listed in the response's `x-codes` and description;
//! - every secured operation answers 401 (the auth extractors) and 429 (the tenant's
//!   request rate, in the same extractors), and so do the login routes (the per-IP limit);
//!   a 429 carries `Retry-After`, `RateLimit` and `RateLimit-Policy`;
//! - every operation with a JSON body answers 400 (malformed JSON, `validation_failed`),
//!   413 (`payload_too_large`) and 415 (`unsupported_media_type`): the JSON extractor;
//! - every operation may answer 503 `database_unavailable` when it reaches the store (a
//!   method a path does not serve answers 405 `method_not_allowed` with `Allow`; that is
//!   no operation's response, so it is stated in the document's description);
//! - operations without credentials say so (`security: []`); the console's routes name
//!   their cookie session; the console's HTML form routes answer 303 with `Location`;
//! - binary responses are `type: string, format: binary` with their media type.
//!
//! It also adds the WebSocket frames and the tenant webhooks (`webhooks`) from their wire
//! types, and `servers`.

use cloak_proto::Code;
use serde_json::{Map, Value, json};

/// One `#[validate]` rule of a wire type's field, as build.rs read it.
pub(crate) struct Constraint {
    /// The type (its component schema's name).
    pub schema: &'static str,
    /// The field's wire name.
    pub property: &'static str,
    /// The type is a query-parameter struct (`IntoParams`).
    pub parameter: bool,
    /// `text`, `bytes` (base64), `items` (a list) or `number`.
    pub kind: &'static str,
    pub min: Option<i128>,
    pub max: Option<i128>,
    pub format: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/constraints.rs"));

/// The JSON Schema keywords of a rule.
fn keywords(c: &Constraint) -> Map<String, Value> {
    let mut k = Map::new();
    let base64 = |n: i128| 4 * ((n + 2) / 3);
    let (lo, hi) = match c.kind {
        "text" => ("minLength", "maxLength"),
        "bytes" => ("minLength", "maxLength"),
        "items" => ("minItems", "maxItems"),
        _ => ("minimum", "maximum"),
    };
    let scale = |n: i128| if c.kind == "bytes" { base64(n) } else { n };
    if let Some(min) = c.min {
        k.insert(lo.into(), json!(scale(min)));
    }
    if let Some(max) = c.max {
        k.insert(hi.into(), json!(scale(max)));
    }
    if let Some(format) = c.format {
        k.insert("format".into(), json!(format));
    }
    k
}

/// Merges keywords into a property schema (into the non-null branch of a nullable one).
fn constrain(schema: &mut Value, keywords: &Map<String, Value>) {
    if let Some(branches) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        for b in branches
            .iter_mut()
            .filter(|b| b["type"] != "null" && b.get("$ref").is_none())
        {
            constrain(b, keywords);
        }
        return;
    }
    if let Some(obj) = schema.as_object_mut() {
        for (k, v) in keywords {
            obj.insert(k.clone(), v.clone());
        }
    }
}

/// Carries the validator's rules into the schemas and query parameters.
fn apply_constraints(doc: &mut Value) {
    for c in CONSTRAINTS.iter().filter(|c| !c.parameter) {
        let pointer = format!("/components/schemas/{}/properties/{}", c.schema, c.property);
        if let Some(property) = doc.pointer_mut(&pointer) {
            constrain(property, &keywords(c));
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|i| i.values_mut())
    {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params.iter_mut().filter(|p| p["in"] == "query") {
            let Some(name) = p["name"].as_str().map(str::to_owned) else {
                continue;
            };
            let rules: Vec<&Constraint> = CONSTRAINTS
                .iter()
                .filter(|c| c.parameter && c.property == name)
                .collect();
            // Applied only when every query type with this name agrees on it.
            let Some(first) = rules.first() else { continue };
            if rules.iter().all(|r| keywords(r) == keywords(first)) {
                constrain(&mut p["schema"], &keywords(first));
            }
        }
    }
}

/// The console's session cookie, as a security scheme.
pub const CONSOLE_SCHEME: &str = "console_session";

/// Paths limited per client IP (login attempts).
const PER_IP: &[(&str, &str)] = &[
    ("post", "/v1/auth/challenge"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/devices"),
    ("post", "/console/login"),
];

/// Console routes that take the session cookie.
fn console_session(path: &str) -> bool {
    path.starts_with("/console") && !matches!(path, "/console/login" | "/console/setup")
}

/// Routes that never touch the database.
fn store_free(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics" | "/openapi.json")
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The headers every 429 carries.
fn rate_limited_headers() -> Value {
    json!({
        "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}},
        "RateLimit": {"description": "The policy's remaining quota and reset (draft-ietf-httpapi-ratelimit-headers), e.g. `\"messages\";r=0;t=9`", "schema": {"type": "string"}},
        "RateLimit-Policy": {"description": "The policy (draft-ietf-httpapi-ratelimit-headers), e.g. `\"messages\";q=1;w=10`", "schema": {"type": "string"}}
    })
}

/// The security schemes an operation accepts (any one of them).
fn schemes(security: &Value) -> Vec<String> {
    security
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect()
}

/// Adds codes to the operation's problem responses, each under its own status: into the
/// response's `x-codes` (and the description, which lists them) when the handler
/// documents that status already, as a new response otherwise.
fn add_codes(responses: &mut Map<String, Value>, codes: &[Code]) {
    for code in codes {
        let response = responses
            .entry(code.status().to_string())
            .or_insert_with(|| problem(""));
        // A status the handler documents with another body (an HTML page) stays as it is.
        if response.get("content").is_some()
            && response
                .pointer("/content/application~1problem+json")
                .is_none()
        {
            continue;
        }
        let mut names: Vec<String> = response["x-codes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !names.iter().any(|n| n == code.as_str()) {
            names.push(code.as_str().to_owned());
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        response["description"] = json!(super::documented::describe(&refs));
        response["x-codes"] = json!(names);
        if *code == Code::RateLimited {
            response["headers"] = rate_limited_headers();
        }
        if code.status() == 401 {
            response["headers"]["WWW-Authenticate"] = json!({
                "description": "`Bearer`: the scheme the credentials are sent in",
                "schema": {"type": "string"}
            });
        }
    }
}

/// Closed sets the wire types keep as strings, listed from the server's own sets.
fn closed_sets(doc: &mut Value) {
    let kinds: Vec<&str> = cloak_proto::events::EVENTS
        .iter()
        .map(|(k, _, _)| *k)
        .collect();
    let sets = [
        (
            "LedgerEntry",
            "kind",
            crate::services::billing::LEDGER_KINDS.to_vec(),
        ),
        ("WebhookDeliveryInfo", "event_type", kinds),
    ];
    for (schema, property, values) in sets {
        let pointer = format!("/components/schemas/{schema}/properties/{property}");
        if let Some(p) = doc.pointer_mut(&pointer) {
            p["enum"] = json!(values);
        }
    }
    // An adjustment of 0 credits is refused (`zero_delta`, services::billing).
    if let Some(p) = doc.pointer_mut("/components/schemas/AdjustmentRequest/properties/delta") {
        p["not"] = json!({"const": 0});
    }
}

/// Completes the document (see the module documentation).
pub fn complete(doc: &mut Value) {
    apply_constraints(doc);
    closed_sets(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            complete_operation(path, method, op);
        }
    }
    if let Some(ws) = doc
        .pointer_mut("/paths/~1v1~1ws/get")
        .and_then(Value::as_object_mut)
    {
        // The frames a socket carries, as named schemas (text frames of JSON).
        ws.insert(
            "x-websocket-frames".into(),
            json!({
                "client": {"$ref": "#/components/schemas/ClientFrame"},
                "server": {"$ref": "#/components/schemas/ServerFrame"}
            }),
        );
    }
    if let Some(d) = doc.as_object_mut() {
        d.insert("webhooks".into(), webhooks());
    }
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(components) = components {
        components["securitySchemes"][CONSOLE_SCHEME] = json!({
            "type": "apiKey",
            "in": "cookie",
            "name": super::console::COOKIE,
            "description": "The billing console's session (HttpOnly, SameSite=Strict), set by `POST /console/login`"
        });
    }
}

fn complete_operation(path: &str, method: &str, op: &mut Map<String, Value>) {
    if console_session(path) {
        op.insert("security".into(), json!([{ CONSOLE_SCHEME: [] }]));
    }
    // `security(())` in a path attribute is `[{}]`: anonymous, like no security at all.
    let secured = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
    if !secured {
        op.insert("security".into(), json!([]));
    }
    let json_body = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("application/json"));
    let form_body = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("application/x-www-form-urlencoded"));
    let per_ip = PER_IP.contains(&(method, path));
    // Query parameters, and path parameters other than UUIDs (a malformed UUID is a 404),
    // are checked: 400 when they are not valid.
    let checked_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| {
            ps.iter().any(|p| {
                p["in"] == "query" || (p["in"] == "path" && p["schema"]["format"] != "uuid")
            })
        });
    // Closed values of parameters the handlers check by hand.
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut() {
            match (p["in"].as_str(), p["name"].as_str()) {
                (Some("header"), Some("Tus-Resumable")) => p["schema"]["enum"] = json!(["1.0.0"]),
                // At most 18 digits (`cloak_proto::attachments::tus_number`).
                (Some("header"), Some("Upload-Length" | "Upload-Offset")) => {
                    p["schema"]["minimum"] = json!(0);
                    p["schema"]["maximum"] = json!(999_999_999_999_999_999_i64);
                }
                // `services::billing::check_idempotency_key`.
                (Some("header"), Some("Idempotency-Key")) => {
                    p["schema"]["minLength"] = json!(1);
                    p["schema"]["maxLength"] = json!(200);
                    p["schema"]["pattern"] = json!("^[!-~]{1,200}$");
                }
                // A tus metadata list naming the conversation
                // (`cloak_proto::attachments::metadata_conversation`).
                (Some("header"), Some("Upload-Metadata")) => {
                    p["schema"]["pattern"] =
                        json!("^(.*,)? *conversation_id +[A-Za-z0-9+/]+={0,2} *(,.*)?$");
                }
                (Some("path"), Some("wallet")) => {
                    p["schema"]["pattern"] = json!(
                        "^(tenant|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
                    );
                }
                _ => {}
            }
        }
    }
    // A tus PATCH carries the part's raw bytes.
    if let Some(raw) = op
        .get_mut("requestBody")
        .and_then(|b| b.pointer_mut("/content/application~1offset+octet-stream"))
    {
        raw["schema"] = json!({"type": "string", "format": "binary", "contentMediaType": "application/offset+octet-stream"});
    }
    if path == "/v1/stripe/webhook" {
        // Verified against the raw bytes, then parsed: any JSON object (a Stripe Event).
        op["requestBody"]["content"]["application/json"]["schema"] = json!({"type": "object", "additionalProperties": true, "description": "A Stripe Event, as Stripe sends it"});
        op["requestBody"]["content"]["application/json"]["example"] = json!({
            "id": "evt_1QExample", "object": "event", "type": "checkout.session.completed",
            "created": 1_796_400_000, "livemode": false, "api_version": "2024-06-20",
            "data": {"object": {"id": "cs_test_1QExample", "object": "checkout.session",
                "payment_status": "paid", "client_reference_id": "3f6c1b7e-8a2d-4c1e-9b5a-2d7e4f1a0c93"}}
        });
    }
    let op_security = op.get("security").cloned().unwrap_or(Value::Null);
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    let api = path.starts_with("/v1/");
    if secured && api {
        for scheme in schemes(&op_security) {
            let codes: &[Code] = match scheme.as_str() {
                "api_key" => &[Code::MissingCredentials, Code::InvalidApiKey],
                "user_token" => &[
                    Code::MissingCredentials,
                    Code::InvalidToken,
                    Code::TokenExpired,
                    Code::UserSuspended,
                ],
                _ => &[
                    Code::MissingCredentials,
                    Code::InvalidToken,
                    Code::TokenExpired,
                    Code::DeviceRevoked,
                    Code::UserSuspended,
                ],
            };
            add_codes(responses, codes);
        }
        add_codes(responses, &[Code::RateLimited]);
    }
    if per_ip {
        add_codes(responses, &[Code::RateLimited]);
    }
    if checked_params {
        add_codes(
            responses,
            &[
                Code::InvalidQuery,
                Code::ValidationFailed,
                Code::InvalidCursor,
            ],
        );
    }
    if path == "/openapi.json"
        && let Some(schema) = responses
            .get_mut("200")
            .and_then(|r| r.pointer_mut("/content/application~1json/schema"))
    {
        *schema = json!({"type": "object", "additionalProperties": true, "description": "An OpenAPI 3.1 document"});
    }
    if json_body || form_body {
        add_codes(
            responses,
            &[
                Code::MalformedJson,
                Code::InvalidJson,
                Code::ValidationFailed,
                Code::PayloadTooLarge,
                Code::UnsupportedMediaType,
            ],
        );
    }
    if !store_free(path) && method != "options" {
        add_codes(responses, &[Code::DatabaseUnavailable]);
    }
    // Redirects name their target; signing in (and out) of the console sets the cookie.
    if let Some(redirect) = responses.get_mut("303") {
        redirect["headers"]["Location"] =
            json!({"description": "Where the browser goes next", "schema": {"type": "string"}});
        if matches!(path, "/console/login" | "/console/logout") {
            redirect["headers"]["Set-Cookie"] = json!({
                "description": "The console session cookie (HttpOnly, SameSite=Strict, Path=/console); cleared on sign-out",
                "schema": {"type": "string"}
            });
        }
    }
    // A 429 a handler lists gets the headers every 429 carries.
    if let Some(limited) = responses.get_mut("429") {
        limited["headers"] = rate_limited_headers();
    }
    for response in responses.values_mut() {
        binary_content(response);
    }
}

/// `image/png` (and other binary) content as `type: string, format: binary`.
fn binary_content(response: &mut Value) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    for (media, body) in content.iter_mut() {
        if media.starts_with("image/png") {
            body["schema"] =
                json!({"type": "string", "format": "binary", "contentMediaType": media});
        }
    }
}

/// Every tenant webhook event, as the tenant's endpoint receives it.
fn webhooks() -> Value {
    let mut out = Map::new();
    for (kind, schema, summary) in cloak_proto::events::EVENTS {
        out.insert(
            (*kind).to_owned(),
            json!({"post": {
                "summary": summary,
                // Authenticated by its signature header, not by a scheme.
                "security": [],
                "operationId": format!("webhook_{}", kind.replace('.', "_")),
                "tags": ["webhooks"],
                "parameters": [{
                    "name": "Cloak-Signature",
                    "in": "header",
                    "required": true,
                    "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 over \"<t>.<body>\" with the endpoint's secret>`, as Stripe signs",
                    "schema": {"type": "string"}
                }],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
                },
                "responses": {
                    "2XX": {"description": "Received. Any other answer (or none in 10 s) is retried with backoff; deliveries are listed at `GET /v1/webhooks/deliveries`."}
                }
            }}),
        );
    }
    Value::Object(out)
}

/// The document served by a node at `public_url`: `servers` names it.
pub fn with_server(doc: &mut Value, public_url: &str) {
    doc["servers"] = json!([{ "url": public_url, "description": "this server" }]);
}
