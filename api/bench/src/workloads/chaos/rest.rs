//! The REST calls of a chaos run, each tried on every node in turn (with backoff) until
//! one answers: the tenant's prices, grant, balance and ledger, and a receiver's mailbox
//! drain.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use cloak_proto::billing::{LedgerEntry, LedgerPage, PriceTable, Wallet};
use cloak_proto::delivery::{AckRequest, MailboxPage};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::link::Backoff;

/// Attempts per call (over all nodes) before giving up.
const ATTEMPTS: usize = 20;
/// One request's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A REST client over every node.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    nodes: Vec<String>,
}

impl Rest {
    /// A client for the nodes (`http://host:port`).
    pub fn new(nodes: &[String]) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()?,
            nodes: nodes.to_vec(),
        })
    }

    /// Sends a request, built for each node in turn, until one answers 2xx; a 4xx ends
    /// the attempts (the request is wrong, not the service). Returns the JSON body
    /// (`null` when empty).
    async fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<T> {
        let mut backoff = Backoff::new();
        let mut last = anyhow!("{what}: no node");
        for attempt in 0..ATTEMPTS {
            let node = &self.nodes[attempt % self.nodes.len().max(1)];
            match build(&self.http, node).send().await {
                Ok(resp) if resp.status().is_success() => {
                    let bytes = resp.bytes().await?;
                    let body = if bytes.is_empty() {
                        &b"null"[..]
                    } else {
                        &bytes[..]
                    };
                    return serde_json::from_slice(body)
                        .map_err(|e| anyhow!("{what}: unexpected answer: {e}"));
                }
                Ok(resp) if resp.status().is_client_error() => {
                    let status = resp.status();
                    bail!(
                        "{what}: {status}: {}",
                        resp.text().await.unwrap_or_default()
                    );
                }
                Ok(resp) => {
                    let status = resp.status();
                    last = anyhow!(
                        "{what}: {status}: {}",
                        resp.text().await.unwrap_or_default()
                    );
                }
                Err(e) => last = anyhow!("{what} on {node}: {e}"),
            }
            backoff.wait().await;
        }
        Err(last)
    }

    /// Prices every message class at 0 except text messages, at `text` credits.
    pub async fn put_prices(&self, api_key: &str, text: i64) -> Result<()> {
        let prices = PriceTable {
            text_message: text,
            ..PriceTable::default()
        };
        let _: Value = self
            .call("PUT /v1/prices", |http, node| {
                http.request(Method::PUT, format!("{node}/v1/prices"))
                    .bearer_auth(api_key)
                    .json(&prices)
            })
            .await?;
        Ok(())
    }

    /// Grants the tenant wallet `credits` (idempotent under `key`).
    pub async fn grant(&self, api_key: &str, credits: i64, key: &str) -> Result<()> {
        let _: Value = self
            .call("POST /v1/wallets/tenant/grants", |http, node| {
                http.post(format!("{node}/v1/wallets/tenant/grants"))
                    .bearer_auth(api_key)
                    .header("Idempotency-Key", key)
                    .json(&json!({"credits": credits, "reason": "chaos run"}))
            })
            .await?;
        Ok(())
    }

    /// The tenant wallet's balance.
    pub async fn balance(&self, api_key: &str) -> Result<i64> {
        let wallet: Wallet = self
            .call("GET /v1/wallets/tenant", |http, node| {
                http.get(format!("{node}/v1/wallets/tenant"))
                    .bearer_auth(api_key)
            })
            .await?;
        Ok(wallet.balance)
    }

    /// Every entry of the tenant wallet's ledger, oldest first.
    pub async fn ledger(&self, api_key: &str) -> Result<Vec<LedgerEntry>> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page: LedgerPage = self
                .call("GET /v1/wallets/tenant/ledger", |http, node| {
                    // Cursors are `le_<id>`: nothing to escape.
                    let after = cursor
                        .as_deref()
                        .map_or(String::new(), |c| format!("&cursor={c}"));
                    http.get(format!("{node}/v1/wallets/tenant/ledger?limit=500{after}"))
                        .bearer_auth(api_key)
                })
                .await?;
            entries.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(entries),
            }
        }
    }

    /// A page of a device's mailbox after `after`.
    pub async fn mailbox(&self, token: &str, after: u64) -> Result<MailboxPage> {
        self.call("GET /v1/mailbox", |http, node| {
            http.get(format!("{node}/v1/mailbox?after={after}&limit=500"))
                .bearer_auth(token)
        })
        .await
    }

    /// Acknowledges a device's mailbox up to `up_to`.
    pub async fn ack(&self, token: &str, up_to: u64) -> Result<()> {
        let _: Value = self
            .call("POST /v1/mailbox/ack", |http, node| {
                http.post(format!("{node}/v1/mailbox/ack"))
                    .bearer_auth(token)
                    .json(&AckRequest { up_to })
            })
            .await?;
        Ok(())
    }
}
