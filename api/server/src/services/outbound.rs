//! Outbound HTTP(S) for tenant webhooks: hyper with rustls (ring, webpki roots), the same
//! stack async-stripe uses, so webhooks reach `https://` endpoints. Every connection goes
//! through [`egress`]'s policy: names resolve to checked addresses only, and IP literals
//! are checked before the request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use super::egress;

/// Resolves names to the addresses the egress policy allows, so the connector connects
/// only to checked addresses.
#[derive(Clone, Copy)]
pub struct PolicyResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            // Port 0: the connector puts in the URL's port.
            egress::resolve_allowed(name.as_str(), 0, allow_private)
                .await
                .map(Vec::into_iter)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
        })
    }
}

/// A pooled client for `http://` and `https://` URLs.
#[derive(Clone)]
pub struct Outbound {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector<PolicyResolver>>, Full<Bytes>>,
    allow_private: bool,
}

impl Outbound {
    /// A client that connects to public addresses only, or to private ones too.
    pub fn new(allow_private: bool) -> Self {
        let mut http = HttpConnector::new_with_resolver(PolicyResolver { allow_private });
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            allow_private,
        }
    }

    /// POSTs `body` with `headers`; the status, or why there is none.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: String,
        timeout: Duration,
    ) -> Result<u16, String> {
        // The connector skips the resolver for IP literals: check those here.
        let (host, port) = egress::host_and_port(url)?;
        if host.parse::<std::net::IpAddr>().is_ok() {
            egress::resolve_allowed(&host, port, self.allow_private).await?;
        }
        let mut request = hyper::Request::post(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("invalid request: {e}"))?;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response.status().as_u16()),
            Ok(Err(e)) => Err(format!("request failed: {e}")),
            Err(_) => Err("no answer in time".into()),
        }
    }
}
