//! Signing in and out of the console, and setting a new account's password.

use crate::http::documented::problems;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::html;
use super::session::{check_form, cookie_header, respond, see_other, signed_in};
use crate::http::problem::ApiError;
use crate::services::{ServiceError, console};
use crate::state::AppState;

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
    crate::http::limits::per_ip(&req, &state).await?;
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
