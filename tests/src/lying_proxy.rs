//! A lying server for the SDK's trust tests: an HTTP proxy between the SDK and a real
//! `cloak-api` that forwards every request and, where a rule says so, rewrites the
//! answer, answers an error of its own, forwards the request and never answers (the
//! device "crashes" while waiting), or rewrites the request (a modified client). Each rule matches a method and a path predicate and
//! may be limited to a number of uses.

use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// Rewrites an upstream answer body.
pub type Rewrite = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What a rule does with a matching request.
pub enum Action {
    /// Forward, then replace the answer's body.
    Rewrite(Rewrite),
    /// Answer this status with a problem document, without forwarding.
    Fail(u16),
    /// Forward, then never answer.
    Hang,
    /// Replace the request's body, then forward it (a modified client).
    RewriteRequest(Rewrite),
}

struct Rule {
    method: &'static str,
    matches: Box<dyn Fn(&str) -> bool + Send>,
    action: Arc<Action>,
    uses_left: Option<usize>,
    used: usize,
}

struct State {
    upstream: String,
    http: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
}

/// A running proxy.
pub struct LyingProxy {
    pub base_url: String,
    state: Arc<State>,
    handle: ServerHandle,
}

impl LyingProxy {
    /// Starts a proxy in front of `upstream` (a base URL) on a loopback port.
    pub async fn start(upstream: &str) -> Self {
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: crate::tls::http(),
            rules: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .default_service(web::to(forward))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    /// Adds a rule for `method` requests whose path satisfies `matches`, for `uses` matches
    /// (`None`: every one).
    pub fn rule(
        &self,
        method: &'static str,
        matches: impl Fn(&str) -> bool + Send + 'static,
        action: Action,
        uses: Option<usize>,
    ) {
        self.state.rules.lock().unwrap().push(Rule {
            method,
            matches: Box::new(matches),
            action: Arc::new(action),
            uses_left: uses,
            used: 0,
        });
    }

    /// How often the rules matched, in the order they were added.
    pub fn uses(&self) -> Vec<usize> {
        self.state
            .rules
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.used)
            .collect()
    }

    /// Removes every rule: from now on the proxy tells the truth.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl State {
    fn action(&self, method: &str, path: &str) -> Option<Arc<Action>> {
        let mut rules = self.rules.lock().unwrap();
        let rule = rules.iter_mut().find(|r| {
            r.method == method && (r.matches)(path) && r.uses_left.is_none_or(|n| n > 0)
        })?;
        rule.used += 1;
        if let Some(n) = rule.uses_left.as_mut() {
            *n -= 1;
        }
        Some(rule.action.clone())
    }
}

async fn forward(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let action = state.action(req.method().as_str(), req.path());
    if let Some(Action::Fail(status)) = action.as_deref() {
        let status = actix_web::http::StatusCode::from_u16(*status).unwrap();
        return HttpResponse::build(status)
            .content_type("application/problem+json")
            .body(format!(
                r#"{{"type":"urn:cloak:problem:proxy","title":"Injected","status":{},"code":"proxy_injected"}}"#,
                status.as_u16()
            ));
    }
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut out = state
        .http
        .request(method, format!("{}{path_and_query}", state.upstream));
    for (name, value) in req.headers() {
        // Hop-by-hop headers stay here (a WebSocket upgrade is not proxied).
        let hop = [
            "host",
            "content-length",
            "connection",
            "upgrade",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
        ];
        if !hop.contains(&name.as_str()) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let body = match action.as_deref() {
        Some(Action::RewriteRequest(rewrite)) => rewrite(&body),
        _ => body.to_vec(),
    };
    let Ok(resp) = out.body(body).send().await else {
        return HttpResponse::BadGateway().finish();
    };
    let status = actix_web::http::StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    let body = match action.as_deref() {
        Some(Action::Hang) => std::future::pending().await,
        Some(Action::Rewrite(rewrite)) => rewrite(&bytes),
        _ => bytes.to_vec(),
    };
    let mut answer = HttpResponse::build(status);
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            answer.insert_header((name.as_str(), value.as_bytes()));
        }
    }
    answer.body(body)
}
