//! `/console`: the billing-admin web console. Sessions are an HttpOnly, SameSite=Strict
//! cookie (Secure when the public URL is https); every form that changes something carries
//! the session's CSRF token (and its Origin must be ours); roles decide who may buy, grant
//! and change prices. Pages have no scripts or external assets.

use crate::http::documented::problems;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use cloak_proto::Code;
use cloak_proto::billing::{CheckoutRequest, PriceTable};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::console_html::{self as html, esc};
use super::problem::ApiError;
use crate::services::billing::{self, ManualChange};
use crate::services::console::{self, Role};
use crate::services::{ServiceError, api_keys::hash_secret, checkout};
use crate::state::AppState;
use crate::store::{ConsoleAccount, ConsoleSession};

pub(crate) const COOKIE: &str = "cloak_console";

fn respond(status: StatusCode, body: String) -> HttpResponse {
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

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("location", to))
        .insert_header(("cache-control", "no-store"))
        .finish()
}

fn cookie_header(state: &AppState, value: &str, max_age_s: i64) -> String {
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
struct Signed {
    session: ConsoleSession,
    account: ConsoleAccount,
    role: Role,
}

impl Signed {
    fn who(&self) -> String {
        format!("{} ({})", self.account.email, self.role.as_str())
    }
}

async fn signed_in(req: &HttpRequest, state: &AppState) -> Result<Option<Signed>, ApiError> {
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
fn check_form(req: &HttpRequest, state: &AppState, signed: &Signed, csrf: &str) -> bool {
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

fn forbidden(signed: &Signed, what: &str) -> HttpResponse {
    respond(
        StatusCode::FORBIDDEN,
        html::page(
            "Not allowed",
            Some(&signed.who()),
            &html::notice(Some(&format!("Your role cannot {what}.")), None),
        ),
    )
}

/// The signed-in account, if it may submit this form: a live session, the session's CSRF
/// token in the form (and our Origin), and a role that `allowed`. `Err` is the response to
/// send instead (to sign-in, or 403).
async fn authorize_form(
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

fn new_key() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    hex::encode(bytes)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "email": "ann@example.com",
    "password": "correct horse battery staple",
    "tenant": "7a1c2e4b-5d6f-4a8b-9c0d-1e2f3a4b5c6d"
}))]
pub struct LoginForm {
    email: String,
    password: String,
    /// The tenant's id, for an address with accounts at several tenants.
    #[serde(default)]
    tenant: Option<String>,
}

/// The sign-in page.
#[utoipa::path(tag = "console", responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
#[get("/console/login")]
pub async fn login_page() -> HttpResponse {
    respond(StatusCode::OK, html::login_form(None))
}

/// Signs in; sets the session cookie. Five failures in a row lock the account for 15 minutes.
#[utoipa::path(tag = "console", operation_id = "console_login", responses(
    (status = 303, description = "Signed in: to the console"),
    (status = 401, description = "Wrong e-mail or password (HTML)", content_type = "text/html", body = String),
    (status = 403, description = "Locked (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    super::limits::per_ip(&req, &state).await?;
    // A malformed tenant id picks no account: a failed login like any other.
    let tenant = form
        .tenant
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<uuid::Uuid>().unwrap_or(uuid::Uuid::nil()));
    let result = console::login(
        state.store.as_ref(),
        &form.email,
        &form.password,
        tenant,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await;
    match result {
        Ok(new) => Ok(HttpResponse::SeeOther()
            .insert_header(("location", "/console"))
            .insert_header((
                "set-cookie",
                cookie_header(
                    &state,
                    new.cookie.expose_secret(),
                    console::SESSION_MS / 1000,
                ),
            ))
            .finish()),
        Err(ServiceError::Unauthorized { detail, .. }) => Ok(respond(
            StatusCode::UNAUTHORIZED,
            html::login_form(Some(&detail)),
        )),
        Err(ServiceError::Forbidden { detail, .. }) => Ok(respond(
            StatusCode::FORBIDDEN,
            html::login_form(Some(&detail)),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SetupQuery {
    token: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "token": "cs_j7bV836AVc5yC9Cx1WWH-IwAcfKFlmuhfnKysSZyqnM",
    "password": "correct horse battery staple"
}))]
pub struct SetupForm {
    token: String,
    password: String,
}

problems!(SetupPageProblems: InvalidQuery);

/// The set-up page a new account's link opens.
#[utoipa::path(
    tag = "console",
    params(("token" = String, Query, description = "The set-up token from the link")),
    responses(
        SetupPageProblems,
        (status = 200, description = "HTML", content_type = "text/html", body = String),
    )
)]
#[get("/console/setup")]
pub async fn setup_page(query: web::Query<SetupQuery>) -> HttpResponse {
    respond(StatusCode::OK, html::setup_form(&query.token, None))
}

/// Sets the password with the one-time token.
#[utoipa::path(tag = "console", responses(
    (status = 303, description = "Set: to sign-in"),
    (status = 400, description = "Weak password (HTML)", content_type = "text/html", body = String),
    (status = 410, description = "Unknown, used or expired link (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/setup")]
pub async fn setup(
    state: web::Data<AppState>,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, ApiError> {
    let result = console::complete_setup(
        state.store.as_ref(),
        &form.token,
        &form.password,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await;
    match result {
        Ok(_) => Ok(see_other("/console/login")),
        Err(ServiceError::Invalid { detail, .. }) => Ok(respond(
            StatusCode::BAD_REQUEST,
            html::setup_form(&form.token, Some(&detail)),
        )),
        Err(ServiceError::Gone { detail, .. }) => Ok(respond(
            StatusCode::GONE,
            html::page("Link not valid", None, &html::notice(Some(&detail), None)),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Notice {
    #[serde(default)]
    ok: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Balances, buying credits, and granting or adjusting them.
#[utoipa::path(tag = "console", responses(
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console")]
pub async fn dashboard(
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let tenant = signed.account.tenant_id;
    let wallets = state.store.list_wallets(tenant).await?;
    let packs = state.store.list_packs(tenant).await?;
    let mut body = html::notice(notice.error.as_deref(), notice.ok.as_deref());
    body.push_str(&html::wallets_table(tenant, &wallets));
    if signed.role.can_spend() {
        let guard = html::form_guard(&signed.session.csrf_token, &new_key());
        body.push_str(&format!(
            "<h2>Grant or adjust credits</h2><form method=\"post\" action=\"/console/grant\" id=\"grant-form\">{guard}\
             <p><label>Wallet <input name=\"wallet\" id=\"wallet\" value=\"tenant\" required></label> \
             <label>Credits (negative to remove) <input type=\"number\" name=\"delta\" id=\"delta\" required></label></p>\
             <p><label>Reason <input name=\"reason\" id=\"reason\" required maxlength=\"500\"></label> \
             <button type=\"submit\" id=\"grant\">Apply</button></p></form>"
        ));
        if !packs.is_empty() {
            body.push_str("<h2>Buy credits</h2>");
            for p in &packs {
                let guard = html::form_guard(&signed.session.csrf_token, &new_key());
                body.push_str(&format!(
                    "<form class=\"inline\" method=\"post\" action=\"/console/buy\">{guard}\
                     <input type=\"hidden\" name=\"wallet\" value=\"tenant\"><input type=\"hidden\" name=\"pack\" value=\"{}\">\
                     <button type=\"submit\">{}: {} credits for {}.{:02} {}</button></form> ",
                    esc(&p.id),
                    esc(&p.name),
                    p.credits,
                    p.amount / 100,
                    p.amount % 100,
                    esc(&p.currency.to_uppercase())
                ));
            }
        }
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/console/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><button type=\"submit\" id=\"sign-out\">Sign out</button></p></form>",
        esc(&signed.session.csrf_token)
    ));
    Ok(respond(
        StatusCode::OK,
        html::page("Balances", Some(&signed.who()), &body),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ",
    "idempotency_key": "7adab921d7f81971d93c3c3e936c67e5",
    "wallet": "tenant",
    "delta": 500,
    "reason": "Welcome bonus"
}))]
pub struct GrantForm {
    csrf: String,
    idempotency_key: String,
    wallet: String,
    delta: i64,
    reason: String,
}

/// Grants or adjusts credits (owner, billing admin).
#[utoipa::path(tag = "console", operation_id = "console_grant", responses(
    (status = 303, description = "Done (or refused): back to the balances with a message"),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/grant")]
pub async fn grant(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<GrantForm>,
) -> Result<HttpResponse, ApiError> {
    let signed = match authorize_form(
        &req,
        &state,
        &form.csrf,
        Role::can_spend,
        "grant or adjust credits",
    )
    .await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let tenant = signed.account.tenant_id;
    let outcome = async {
        let wallet_id =
            billing::parse_wallet(state.store.as_ref(), tenant, form.wallet.trim()).await?;
        if form.reason.trim().is_empty() || form.reason.len() > 500 {
            return Err(ServiceError::invalid(
                Code::InvalidReason,
                "a reason has 1 to 500 characters",
            ));
        }
        billing::change_balance(
            state.store.as_ref(),
            state.broker.as_ref(),
            ManualChange {
                tenant_id: tenant,
                wallet_id,
                delta: form.delta,
                kind: if form.delta > 0 {
                    "grant"
                } else {
                    "adjustment"
                },
                reason: form.reason.trim(),
                actor: format!("console:{}", signed.account.email),
                idempotency_key: &format!("console:{}", form.idempotency_key),
                now_ms: state.clock.now_ms(),
            },
        )
        .await
    }
    .await;
    let query = match outcome {
        Ok((entry, _)) => format!(
            "ok=Applied {:+} credits; balance {}",
            entry.delta, entry.balance_after
        ),
        Err(ServiceError::Store(e)) => return Err(e.into()),
        Err(e) => format!("error={e}"),
    };
    Ok(see_other(&format!(
        "/console?{}",
        query
            .replace('%', "%25")
            .replace('&', "%26")
            .replace('+', "%2B")
            .replace(' ', "+")
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ",
    "wallet": "tenant",
    "pack": "starter"
}))]
pub struct BuyForm {
    csrf: String,
    wallet: String,
    pack: String,
}

/// Starts a Stripe Checkout for a credit pack (owner, billing admin): redirects to Stripe.
#[utoipa::path(tag = "console", responses(
    (status = 303, description = "To Stripe Checkout"),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/buy")]
pub async fn buy(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<BuyForm>,
) -> Result<HttpResponse, ApiError> {
    let signed =
        match authorize_form(&req, &state, &form.csrf, Role::can_spend, "buy credits").await? {
            Ok(signed) => signed,
            Err(response) => return Ok(response),
        };
    let Some(stripe) = state.stripe.as_ref() else {
        return Ok(see_other(
            "/console?error=Stripe+is+not+configured+on+this+server",
        ));
    };
    let request = CheckoutRequest {
        wallet: form.wallet.clone(),
        pack: form.pack.clone(),
        success_url: Some(format!(
            "{}/console?ok=Payment+received",
            state.settings.public_url
        )),
        cancel_url: Some(format!("{}/console", state.settings.public_url)),
    };
    let session = checkout::create(
        state.store.as_ref(),
        stripe,
        signed.account.tenant_id,
        &request,
        &state.settings.public_url,
        state.clock.now_ms(),
    )
    .await?;
    Ok(see_other(&session.url))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    #[serde(default)]
    wallet: Option<String>,
}

/// A wallet's latest 200 ledger entries.
#[utoipa::path(tag = "console", operation_id = "console_ledger", responses(
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console/ledger")]
pub async fn ledger(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LedgerQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let tenant = signed.account.tenant_id;
    let name = query.wallet.clone().unwrap_or_else(|| "tenant".into());
    let wallet = match billing::parse_wallet(state.store.as_ref(), tenant, &name).await {
        Ok(w) => w,
        Err(ServiceError::Store(e)) => return Err(e.into()),
        Err(e) => {
            let body = html::notice(Some(&e.to_string()), None);
            return Ok(respond(
                StatusCode::NOT_FOUND,
                html::page("Ledger", Some(&signed.who()), &body),
            ));
        }
    };
    // The newest 200: page forward from the start, keeping the tail.
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = state.store.ledger_page(tenant, wallet, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        entries.extend(page);
        if entries.len() > 200 {
            entries.drain(..entries.len() - 200);
        }
    }
    let body = format!(
        "<p>Wallet <strong>{}</strong> · <a href=\"/v1/wallets/{}/ledger.csv\">CSV (API key)</a></p>{}",
        esc(&name),
        esc(&name),
        html::ledger_table(tenant, &entries)
    );
    Ok(respond(
        StatusCode::OK,
        html::page("Ledger", Some(&signed.who()), &body),
    ))
}

/// The price table; the owner can change it.
#[utoipa::path(tag = "console", responses(
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console/prices")]
pub async fn prices_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let plan = state.store.billing_plan(signed.account.tenant_id).await?;
    let t = billing::price_table(&plan.prices);
    let fields = [
        ("text_message", "Text message", t.text_message),
        ("attachment_small", "Attachment, small", t.attachment_small),
        (
            "attachment_medium",
            "Attachment, medium",
            t.attachment_medium,
        ),
        ("attachment_large", "Attachment, large", t.attachment_large),
        ("edit", "Edit", t.edit),
        ("delete", "Delete", t.delete),
        ("call_minute", "Call minute", t.call_minute),
        (
            "invite_redemption",
            "Invite redemption",
            t.invite_redemption,
        ),
        ("group_commit", "Membership change (commit)", t.group_commit),
        ("message_view", "Viewing a message", t.message_view),
    ];
    let editable = signed.role.can_price();
    let mut rows = String::new();
    for (name, label, value) in fields {
        let cell = if editable {
            format!("<input type=\"number\" min=\"0\" name=\"{name}\" value=\"{value}\" required>")
        } else {
            value.to_string()
        };
        rows.push_str(&format!("<tr><td>{label}</td><td>{cell}</td></tr>"));
    }
    let mut body = html::notice(notice.error.as_deref(), notice.ok.as_deref());
    let table =
        format!("<table id=\"prices\"><tr><th>Action</th><th>Credits</th></tr>{rows}</table>");
    if editable {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/console/prices\">{}{table}<p><button type=\"submit\">Save prices</button></p></form>",
            html::form_guard(&signed.session.csrf_token, &new_key())
        ));
    } else {
        body.push_str(&table);
    }
    Ok(respond(
        StatusCode::OK,
        html::page("Prices", Some(&signed.who()), &body),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = PricesForm::example)]
pub struct PricesForm {
    csrf: String,
    text_message: i64,
    attachment_small: i64,
    attachment_medium: i64,
    attachment_large: i64,
    edit: i64,
    delete: i64,
    call_minute: i64,
    invite_redemption: i64,
    /// Absent in forms from before the row existed: free.
    #[serde(default)]
    group_commit: i64,
    #[serde(default)]
    message_view: i64,
}

impl PricesForm {
    /// The API's example price table with the form's CSRF token.
    fn example() -> serde_json::Value {
        let mut example = PriceTable::example();
        example["csrf"] = serde_json::json!("fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ");
        example
    }
}

/// Saves the price table (owner).
#[utoipa::path(tag = "console", responses(
    (status = 303, description = "Saved: back to the prices"),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/prices")]
pub async fn save_prices(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<PricesForm>,
) -> Result<HttpResponse, ApiError> {
    let signed =
        match authorize_form(&req, &state, &form.csrf, Role::can_price, "change prices").await? {
            Ok(signed) => signed,
            Err(response) => return Ok(response),
        };
    let prices = PriceTable {
        text_message: form.text_message,
        attachment_small: form.attachment_small,
        attachment_medium: form.attachment_medium,
        attachment_large: form.attachment_large,
        edit: form.edit,
        delete: form.delete,
        call_minute: form.call_minute,
        invite_redemption: form.invite_redemption,
        group_commit: form.group_commit,
        message_view: form.message_view,
    };
    if validator::Validate::validate(&prices).is_err() {
        return Ok(see_other(
            "/console/prices?error=Prices+are+0+to+1000000+credits",
        ));
    }
    billing::put_prices(state.store.as_ref(), signed.account.tenant_id, &prices).await?;
    state
        .invalidate(crate::services::hot::Invalidation::Tenant(
            signed.account.tenant_id,
        ))
        .await;
    Ok(see_other("/console/prices?ok=Saved"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ"
}))]
pub struct LogoutForm {
    csrf: String,
}

/// Signs out.
#[utoipa::path(tag = "console", responses((status = 303, description = "To sign-in")))]
#[post("/console/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, ApiError> {
    if let Some(signed) = signed_in(&req, &state).await?
        && check_form(&req, &state, &signed, &form.csrf)
    {
        state
            .store
            .delete_console_session(&signed.session.token_hash)
            .await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header(("location", "/console/login"))
        .insert_header(("set-cookie", cookie_header(&state, "", 0)))
        .finish())
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
