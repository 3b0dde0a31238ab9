//! The console's session: the HttpOnly, SameSite=Strict cookie (Secure when the public URL
//! is https), the CSRF token every state-changing form carries (and a browser's Origin must
//! be ours), and the role that decides what an account may do. Pages are sent with a
//! strict CSP: no scripts, no external assets.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use subtle::ConstantTimeEq as _;

use super::html;
use crate::http::problem::ApiError;
use crate::services::api_keys::hash_secret;
use crate::services::console::Role;
use crate::state::AppState;
use crate::store::{ConsoleAccount, ConsoleSession};

pub(crate) const COOKIE: &str = "cloak_console";

pub(crate) fn respond(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("cache-control", "no-store"))
        .insert_header(("referrer-policy", "same-origin"))
        .body(body)
}

pub(crate) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("location", to))
        .insert_header(("cache-control", "no-store"))
        .finish()
}

pub(crate) fn cookie_header(state: &AppState, value: &str, max_age_s: i64) -> String {
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    )
}

fn session_cookie(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get("cookie")?.to_str().ok()?;
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

/// The signed-in account, if any.
pub(crate) struct Signed {
    pub session: ConsoleSession,
    pub account: ConsoleAccount,
    pub role: Role,
}

impl Signed {
    pub fn who(&self) -> String {
        format!("{} ({})", self.account.email, self.role.as_str())
    }

    /// The header of a page at `current`.
    pub fn nav<'a>(&'a self, current: &'a str) -> html::Nav<'a> {
        html::Nav {
            who: self.who(),
            current,
            csrf: &self.session.csrf_token,
        }
    }
}

pub(crate) async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Signed>, ApiError> {
    let Some(token) = session_cookie(req) else {
        return Ok(None);
    };
    let found = state
        .store
        .console_session(&hash_secret(&token), state.clock.now_ms())
        .await?;
    Ok(found.and_then(|(session, account)| {
        Role::parse(&account.role).map(|role| Signed {
            session,
            account,
            role,
        })
    }))
}

/// A state-changing form must carry the session's CSRF token, and a browser's Origin (when
/// sent) must be this server.
pub(crate) fn check_form(req: &HttpRequest, state: &AppState, signed: &Signed, csrf: &str) -> bool {
    let origin_ok = match req.headers().get("origin").and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => origin == origin_of(&state.settings.public_url),
    };
    let token_ok = bool::from(csrf.as_bytes().ct_eq(signed.session.csrf_token.as_bytes()));
    origin_ok && token_ok
}

/// `scheme://host[:port]` of a URL (what browsers send as `Origin`).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

pub(crate) fn forbidden(signed: &Signed, what: &str) -> HttpResponse {
    respond(
        StatusCode::FORBIDDEN,
        html::page(
            "Not allowed",
            Some(signed.nav("")),
            &html::notice(Some(&format!("Your role cannot {what}.")), None),
        ),
    )
}

/// The signed-in account, if it may submit this form: a live session, the session's CSRF
/// token in the form (and our Origin), and a role that `allowed`. `Err` is the response to
/// send instead (to sign-in, or 403).
pub(crate) async fn authorize_form(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
    allowed: fn(Role) -> bool,
    what: &str,
) -> Result<Result<Signed, HttpResponse>, ApiError> {
    let Some(signed) = signed_in(req, state).await? else {
        return Ok(Err(see_other("/console/login")));
    };
    if !check_form(req, state, &signed, csrf) {
        return Ok(Err(forbidden(
            &signed,
            "submit this form (it expired; reload the page)",
        )));
    }
    if !allowed(signed.role) {
        return Ok(Err(forbidden(&signed, what)));
    }
    Ok(Ok(signed))
}

pub(crate) fn new_key() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// A page for the signed-in account.
pub(crate) fn signed_page(signed: &Signed, title: &str, path: &str, body: &str) -> HttpResponse {
    respond(
        StatusCode::OK,
        html::page(title, Some(signed.nav(path)), body),
    )
}

/// `?ok=` and `?error=` after a form's redirect.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Notice {
    #[serde(default)]
    pub ok: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl Notice {
    pub fn html(&self) -> String {
        html::notice(self.error.as_deref(), self.ok.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn origins_compare_whole() {
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            origin_of("https://chat.example/base"),
            "https://chat.example"
        );
        assert_ne!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:80");
    }
}
