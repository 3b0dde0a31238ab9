//! Billing test helpers: a webhook receiver, wallets and prices over REST.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub body: String,
}

/// A tenant's webhook endpoint: records requests and answers the statuses queued (then 200).
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    pub async fn start(statuses: &[u16]) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(statuses.to_vec()));
        let (g, s) = (got.clone(), statuses.clone());
        let server = HttpServer::new(move || {
            let (g, s) = (g.clone(), s.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    g.lock().unwrap().push(Received {
                        signature: req
                            .headers()
                            .get("cloak-signature")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let mut s = s.lock().unwrap();
                    let status = if s.is_empty() { 200 } else { s.remove(0) };
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .finish()
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let url = format!("http://127.0.0.1:{}/hook", server.addrs()[0].port());
        tokio::spawn(server.run());
        Self { url, got, statuses }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits up to 10 s for `n` requests.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let got = self.received();
        assert!(
            got.len() >= n,
            "expected {n} webhook requests, got {}",
            got.len()
        );
        let _ = &self.statuses;
        got
    }
}

impl TestApp {
    pub async fn put_json(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Every action free except the `(row, price)` pairs given.
    pub async fn price_only(&self, priced: &[(&str, i64)]) {
        let mut body = json!({"text_message": 0, "attachment_small": 0, "attachment_medium": 0,
            "attachment_large": 0, "edit": 0, "delete": 0, "call_minute": 0,
            "invite_redemption": 0, "group_commit": 0, "message_view": 0});
        for (row, price) in priced {
            body[*row] = json!(price);
        }
        assert_eq!(
            self.put_json("/v1/prices", &self.api_key, &body)
                .await
                .status(),
            200
        );
    }

    pub async fn set_prices(&self, text_message: i64, invite_redemption: i64) {
        let body = json!({"text_message": text_message, "attachment_small": 2, "attachment_medium": 5,
            "attachment_large": 10, "edit": 0, "delete": 0, "call_minute": 3, "invite_redemption": invite_redemption});
        assert_eq!(
            self.put_json("/v1/prices", &self.api_key, &body)
                .await
                .status(),
            200
        );
    }

    /// Grants credits with a fresh idempotency key.
    pub async fn grant(&self, wallet: &str, credits: i64) -> Value {
        self.grant_as(&self.api_key, wallet, credits).await
    }

    /// Grants credits with the API key of a tenant (this app's or another's).
    pub async fn grant_as(&self, api_key: &str, wallet: &str, credits: i64) -> Value {
        let resp = self
            .client
            .post(self.url(&format!("/v1/wallets/{wallet}/grants")))
            .bearer_auth(api_key)
            .header("idempotency-key", Uuid::new_v4().to_string())
            .json(&json!({"credits": credits, "reason": "test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    pub async fn balance(&self, wallet: &str) -> i64 {
        let v: Value = self
            .get(&format!("/v1/wallets/{wallet}"), &self.api_key)
            .await
            .json()
            .await
            .unwrap();
        v["balance"].as_i64().unwrap()
    }

    /// Every ledger entry of a wallet, following cursors.
    /// The 500-credit grant and 500 one-credit debits of a wallet drained by sends: 501
    /// ledger entries summing to 0, none below zero, and a balance of 0.
    pub async fn assert_drained_by_500_sends(&self, wallet: &str) {
        assert_eq!(self.balance(wallet).await, 0);
        let ledger = self.ledger(wallet).await;
        assert_eq!(ledger.len(), 501);
        assert_eq!(
            ledger
                .iter()
                .map(|e| e["delta"].as_i64().unwrap())
                .sum::<i64>(),
            0
        );
        assert!(
            ledger
                .iter()
                .all(|e| e["balance_after"].as_i64().unwrap() >= 0)
        );
    }

    pub async fn ledger(&self, wallet: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: Value = self
                .get(
                    &format!("/v1/wallets/{wallet}/ledger?limit=100&cursor={cursor}"),
                    &self.api_key,
                )
                .await
                .json()
                .await
                .unwrap();
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return out,
            }
        }
    }
}
