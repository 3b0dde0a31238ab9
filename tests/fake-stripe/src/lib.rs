//! A fake Stripe for tests. It checks requests the way Stripe parses them — the
//! `Authorization: Bearer sk_…` secret key, `application/x-www-form-urlencoded` bodies with
//! bracketed keys (`line_items[0][price_data][currency]`), `Idempotency-Key` replays — and
//! answers in Stripe's JSON shapes (objects, and `{"error": {…}}` with Stripe's statuses).
//! It can fail on purpose (HTTP 429/500, or down), records what it received, and sends
//! webhooks signed exactly as Stripe signs them (`Stripe-Signature: t=…,v1=…`).
//!
//! Endpoints: `POST /v1/checkout/sessions`, `POST /v1/billing/meter_events`, and a tiny
//! hosted "checkout page" (`GET`/`POST /pay/{id}`) that completes a session and redirects
//! to its `success_url`, for browser tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A meter event as Stripe stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEvent {
    pub event_name: String,
    pub customer: String,
    pub value: i64,
    pub identifier: String,
    pub timestamp: i64,
}

#[derive(Default)]
struct Inner {
    /// Sends webhooks (set it to trust the server's CA).
    webhook_client: Option<reqwest::Client>,
    secret_key: String,
    webhook_url: Option<String>,
    webhook_secret: String,
    base_url: String,
    sessions: HashMap<String, Value>,
    meter_events: Vec<MeterEvent>,
    idempotent: HashMap<String, (u16, Value)>,
    /// Answer the next `n` API calls with this status.
    failures: Vec<u16>,
    down: bool,
    requests: u64,
    counter: u64,
}

/// A running fake. Dropping it stops the server.
pub struct FakeStripe {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
    handle: actix_web::dev::ServerHandle,
}

fn error(status: u16, kind: &str, message: &str, param: Option<&str>) -> (u16, Value) {
    let mut e = json!({"type": kind, "message": message});
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    (status, json!({ "error": e }))
}

fn respond((status, body): (u16, Value)) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .insert_header((
            "request-id",
            format!("req_{}", uuid::Uuid::new_v4().simple()),
        ))
        .body(body.to_string())
}

/// Stripe's form decoding: every key is `name` or `name[sub]…` with non-empty names.
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, (u16, Value)> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        let (head, rest) = k.split_once('[').map_or((k.as_ref(), ""), |(h, r)| (h, r));
        let head_ok = !head.is_empty() && head.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = rest.is_empty()
            || (rest.ends_with(']')
                && rest[..rest.len() - 1].split("][").all(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                }));
        if !head_ok || !rest_ok {
            return Err(error(
                400,
                "invalid_request_error",
                &format!("Invalid parameter name: {k}"),
                Some(&k),
            ));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

fn required<'a>(form: &'a HashMap<String, String>, key: &str) -> Result<&'a str, (u16, Value)> {
    form.get(key).map(String::as_str).ok_or_else(|| {
        error(
            400,
            "invalid_request_error",
            &format!("Missing required param: {key}."),
            Some(key),
        )
    })
}

fn integer(form: &HashMap<String, String>, key: &str) -> Result<i64, (u16, Value)> {
    required(form, key)?.parse().map_err(|_| {
        error(
            400,
            "invalid_request_error",
            &format!("Invalid integer: {key}"),
            Some(key),
        )
    })
}

/// HMAC-SHA256 of `"{t}.{payload}"`, hex: Stripe's `v1` signature.
pub fn sign(secret: &str, t: i64, payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Inner {
    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!(
            "{prefix}_test_{:08}{}",
            self.counter,
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    }

    /// Common checks: availability, injected failures, the secret key, the content type.
    fn gate(&mut self, req: &HttpRequest) -> Result<(), (u16, Value)> {
        self.requests += 1;
        if let Some(status) = (!self.failures.is_empty()).then(|| self.failures.remove(0)) {
            return Err(error(status, "api_error", "Injected failure", None));
        }
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {}", self.secret_key) {
            return Err(error(
                401,
                "invalid_request_error",
                "Invalid API Key provided",
                None,
            ));
        }
        let ct = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(error(
                400,
                "invalid_request_error",
                "Content-Type must be application/x-www-form-urlencoded",
                None,
            ));
        }
        Ok(())
    }

    fn create_session(
        &mut self,
        form: &HashMap<String, String>,
    ) -> Result<(u16, Value), (u16, Value)> {
        if required(form, "mode")? != "payment" {
            return Err(error(
                400,
                "invalid_request_error",
                "Only mode=payment is faked",
                Some("mode"),
            ));
        }
        let success_url = required(form, "success_url")?.to_owned();
        let quantity = integer(form, "line_items[0][quantity]")?;
        let currency = required(form, "line_items[0][price_data][currency]")?.to_owned();
        let unit_amount = integer(form, "line_items[0][price_data][unit_amount]")?;
        let name = required(form, "line_items[0][price_data][product_data][name]")?.to_owned();
        let mut metadata = serde_json::Map::new();
        for (k, v) in form {
            if let Some(key) = k
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
            {
                metadata.insert(key.to_owned(), json!(v));
            }
        }
        let id = self.next_id("cs");
        let session = json!({
            "id": id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": unit_amount * quantity,
            "currency": currency,
            "client_reference_id": form.get("client_reference_id"),
            "metadata": metadata,
            "success_url": success_url,
            "cancel_url": form.get("cancel_url"),
            "payment_intent": null,
            "created": now_s(),
            "livemode": false,
            "url": format!("{}/pay/{id}", self.base_url),
            "expires_at": now_s() + 86_400,
            "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
            "custom_fields": [],
            "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
            "payment_method_types": ["card"],
            "shipping_options": [],
            "collected_information": null,
            "phone_number_collection": {"enabled": false},
            "saved_payment_method_options": null,
            "shipping_address_collection": null,
            "payment_method_configuration_details": null,
        });
        let _ = name;
        self.sessions.insert(id, session.clone());
        Ok((200, session))
    }

    fn meter_event(
        &mut self,
        form: &HashMap<String, String>,
    ) -> Result<(u16, Value), (u16, Value)> {
        let event = MeterEvent {
            event_name: required(form, "event_name")?.to_owned(),
            customer: required(form, "payload[stripe_customer_id]")?.to_owned(),
            value: integer(form, "payload[value]")?,
            identifier: required(form, "identifier")?.to_owned(),
            timestamp: integer(form, "timestamp")?,
        };
        if self
            .meter_events
            .iter()
            .any(|e| e.identifier == event.identifier)
        {
            return Err(error(
                400,
                "invalid_request_error",
                "An event already exists with identifier",
                Some("identifier"),
            ));
        }
        let body = json!({
            "object": "billing.meter_event",
            "event_name": event.event_name,
            "identifier": event.identifier,
            "payload": {"stripe_customer_id": event.customer, "value": event.value.to_string()},
            "timestamp": event.timestamp,
            "created": now_s(),
            "livemode": false,
        });
        self.meter_events.push(event);
        Ok((200, body))
    }
}

async fn api(
    req: HttpRequest,
    body: web::Bytes,
    inner: web::Data<Arc<Mutex<Inner>>>,
) -> HttpResponse {
    let mut inner = inner.lock().unwrap();
    if inner.down {
        return HttpResponse::ServiceUnavailable().finish();
    }
    if let Err(e) = inner.gate(&req) {
        return respond(e);
    }
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(previous) = key.as_ref().and_then(|k| inner.idempotent.get(k)) {
        return respond(previous.clone());
    }
    let result = parse_form(&body).and_then(|form| match req.path() {
        "/v1/checkout/sessions" => inner.create_session(&form),
        "/v1/billing/meter_events" => inner.meter_event(&form),
        other => Err(error(
            404,
            "invalid_request_error",
            &format!("Unrecognized request URL (POST: {other})"),
            None,
        )),
    });
    let answer = result.unwrap_or_else(|e| e);
    if let Some(k) = key
        && answer.0 < 500
    {
        inner.idempotent.insert(k, answer.clone());
    }
    respond(answer)
}

async fn pay_page(path: web::Path<String>, inner: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let inner = inner.lock().unwrap();
    let Some(s) = inner.sessions.get(path.as_str()) else {
        return HttpResponse::NotFound().body("no such session");
    };
    HttpResponse::Ok().content_type("text/html").body(format!(
        "<!doctype html><title>Fake Stripe Checkout</title><h1>Pay {} {}</h1>\
         <form method=\"post\"><button id=\"pay\" type=\"submit\">Pay</button></form>",
        s["amount_total"], s["currency"]
    ))
}

async fn pay(path: web::Path<String>, inner: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let fake = Shared(inner.get_ref().clone());
    match fake.complete(&path).await {
        Some(success) => HttpResponse::SeeOther()
            .insert_header(("location", success))
            .finish(),
        None => HttpResponse::NotFound().body("no such session"),
    }
}

struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    /// Marks the session paid and sends `checkout.session.completed`; the success URL.
    async fn complete(&self, id: &str) -> Option<String> {
        let (event, success) = {
            let mut inner = self.0.lock().unwrap();
            let pi = inner.next_id("pi");
            let evt = inner.next_id("evt");
            let session = inner.sessions.get_mut(id)?;
            session["status"] = json!("complete");
            session["payment_status"] = json!("paid");
            session["payment_intent"] = json!(pi);
            let success = session["success_url"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let event = json!({
                "id": evt, "object": "event", "type": "checkout.session.completed",
                "created": now_s(), "livemode": false, "api_version": "2025-03-31.basil",
                "data": {"object": session.clone()},
            });
            (event, success)
        };
        self.send(&event.to_string()).await;
        Some(success)
    }

    async fn send(&self, payload: &str) -> Option<u16> {
        let (url, secret, client) = {
            let inner = self.0.lock().unwrap();
            (
                inner.webhook_url.clone()?,
                inner.webhook_secret.clone(),
                inner.webhook_client.clone(),
            )
        };
        let t = now_s();
        let header = format!("t={t},v1={}", sign(&secret, t, payload));
        let resp = client
            .unwrap_or_default()
            .post(url)
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(payload.to_owned())
            .send()
            .await
            .ok()?;
        Some(resp.status().as_u16())
    }
}

impl FakeStripe {
    /// Starts on a free loopback port. `secret_key` is the only key it accepts;
    /// `webhook_secret` signs the webhooks it sends.
    pub async fn start(secret_key: &str, webhook_secret: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            secret_key: secret_key.to_owned(),
            webhook_secret: webhook_secret.to_owned(),
            ..Inner::default()
        }));
        let data = web::Data::new(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/pay/{id}", web::get().to(pay_page))
                .route("/pay/{id}", web::post().to(pay))
                .default_service(web::post().to(api))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        let base_url = format!("http://127.0.0.1:{port}");
        inner.lock().unwrap().base_url = base_url.clone();
        Self {
            base_url,
            inner,
            handle,
        }
    }

    /// The HTTP client webhooks are sent with (one that trusts the server's certificate).
    pub fn set_webhook_client(&self, client: reqwest::Client) {
        self.inner.lock().unwrap().webhook_client = Some(client);
    }

    /// Where webhooks go (the server's `/v1/stripe/webhook`).
    pub fn set_webhook_url(&self, url: &str) {
        self.inner.lock().unwrap().webhook_url = Some(url.to_owned());
    }

    /// The next calls answer these statuses (e.g. `[429, 500]`).
    pub fn fail_next(&self, statuses: &[u16]) {
        self.inner
            .lock()
            .unwrap()
            .failures
            .extend_from_slice(statuses);
    }

    /// While down, every API call answers 503 with no body.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// API calls received (including refused ones).
    pub fn requests(&self) -> u64 {
        self.inner.lock().unwrap().requests
    }

    /// Meter events stored (each identifier once).
    pub fn meter_events(&self) -> Vec<MeterEvent> {
        self.inner.lock().unwrap().meter_events.clone()
    }

    /// A created Checkout Session.
    pub fn session(&self, id: &str) -> Option<Value> {
        self.inner.lock().unwrap().sessions.get(id).cloned()
    }

    /// Pays a session: `checkout.session.completed` goes to the webhook. Returns the
    /// payment intent.
    pub async fn complete_session(&self, id: &str) -> Option<String> {
        Shared(self.inner.clone()).complete(id).await?;
        self.session(id)?["payment_intent"]
            .as_str()
            .map(str::to_owned)
    }

    /// A signed event body and its `Stripe-Signature` header, signed at `t` (Unix s).
    pub fn signed_event(&self, event_type: &str, object: Value, t: i64) -> (String, String) {
        let id = self.inner.lock().unwrap().next_id("evt");
        let payload = json!({
            "id": id, "object": "event", "type": event_type, "created": t,
            "livemode": false, "api_version": "2025-03-31.basil", "data": {"object": object},
        })
        .to_string();
        let secret = self.inner.lock().unwrap().webhook_secret.clone();
        let header = format!("t={t},v1={}", sign(&secret, t, &payload));
        (payload, header)
    }

    /// `charge.refunded` for `amount_refunded` of `amount` on a payment intent.
    pub async fn refund(
        &self,
        payment_intent: &str,
        amount: i64,
        amount_refunded: i64,
    ) -> Option<u16> {
        let charge = json!({"id": format!("ch_{payment_intent}"), "object": "charge", "payment_intent": payment_intent,
                            "amount": amount, "amount_refunded": amount_refunded, "refunded": amount == amount_refunded});
        let (payload, _) = self.signed_event("charge.refunded", charge, now_s());
        Shared(self.inner.clone()).send(&payload).await
    }

    /// Sends an event body as is, signed now.
    pub async fn send_event(&self, payload: &str) -> Option<u16> {
        Shared(self.inner.clone()).send(payload).await
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}
