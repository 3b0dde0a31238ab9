//! `/console/accounts`: the tenant's console accounts. Owners invite people (a one-time
//! set-up link, shown once), change roles and remove accounts; nobody changes or removes
//! their own account here, so a tenant always keeps the owner who is signed in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use uuid::Uuid;

use super::html::{self, esc};
use super::session::{Notice, Signed, authorize_form, respond, see_other, signed_in};
use crate::http::problem::ApiError;
use crate::services::ServiceError;
use crate::services::console::{self, Role};
use crate::state::AppState;
use crate::store::ConsoleAccount;

const ROLES: &[(&str, &str)] = &[
    ("owner", "Owner: everything"),
    ("billing_admin", "Billing admin: buy and grant credits"),
    ("viewer", "Viewer: read only"),
];

fn role_select(id: &str, current: &str) -> String {
    let mut options = String::new();
    for (role, label) in ROLES {
        let selected = if *role == current { " selected" } else { "" };
        options.push_str(&format!(
            "<option value=\"{role}\"{selected}>{label}</option>"
        ));
    }
    format!("<select id=\"{id}\" name=\"role\">{options}</select>")
}

fn render(signed: &Signed, accounts: &[ConsoleAccount], top: &str) -> String {
    let owner = signed.role == Role::Owner;
    let mut rows = String::new();
    for a in accounts {
        let status = if a.password_hash.is_some() {
            "active"
        } else {
            "invited"
        };
        let manage = if owner && a.id != signed.account.id {
            let guard = html::csrf_field(&signed.session.csrf_token);
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/console/accounts/{id}/role\">{guard}\
                 <label for=\"role-{id}\">Role of {email}</label> {select} <button type=\"submit\">Change role</button></form> \
                 <form class=\"inline\" method=\"post\" action=\"/console/accounts/{id}/remove\">{guard}\
                 <button type=\"submit\" id=\"remove-{id}\" aria-label=\"Remove {email}\">Remove</button></form>",
                id = a.id,
                email = esc(&a.email),
                select = role_select(&format!("role-{}", a.id), &a.role)
            )
        } else if a.id == signed.account.id {
            "(you)".to_owned()
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr class=\"account\" data-email=\"{}\"><td>{}</td><td class=\"role\">{}</td><td>{status}</td><td>{manage}</td></tr>",
            esc(&a.email),
            esc(&a.email),
            esc(&a.role)
        ));
    }
    let mut body = top.to_owned();
    body.push_str(&html::table(
        "accounts",
        "Console accounts",
        &["E-mail", "Role", "Status", ""],
        &rows,
    ));
    if owner {
        body.push_str(&format!(
            "<h2>Invite someone</h2><form method=\"post\" action=\"/console/accounts\" id=\"invite-form\">{}\
             <p>{} <label for=\"invite-role\">Role</label> {}</p>\
             <p><button type=\"submit\" id=\"invite\">Create a set-up link</button></p></form>",
            html::csrf_field(&signed.session.csrf_token),
            html::input(
                "E-mail",
                "email",
                "",
                "type=\"email\" required maxlength=\"254\"",
                None
            ),
            role_select("invite-role", "billing_admin")
        ));
    } else {
        body.push_str("<p>Only owners manage accounts.</p>");
    }
    html::page("Accounts", Some(signed.nav("/console/accounts")), &body)
}

/// The tenant's console accounts; owners manage them.
#[utoipa::path(tag = "console", params(Notice), responses(
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console/accounts")]
pub async fn accounts_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let accounts = state
        .store
        .list_console_accounts(signed.account.tenant_id)
        .await?;
    Ok(respond(
        StatusCode::OK,
        render(&signed, &accounts, &notice.html()),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ",
    "email": "bob@example.com",
    "role": "billing_admin"
}))]
pub struct InviteForm {
    csrf: String,
    email: String,
    role: String,
}

/// Creates an account (owner) and shows its one-time set-up link.
#[utoipa::path(tag = "console", operation_id = "console_invite_account", responses(
    (status = 200, description = "Created: the page with the set-up link (HTML)", content_type = "text/html", body = String),
    (status = 400, description = "Not an e-mail address, unknown role or address taken (HTML)", content_type = "text/html", body = String),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/accounts")]
pub async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, ApiError> {
    let signed = match authorize_form(
        &req,
        &state,
        &form.csrf,
        |r| r == Role::Owner,
        "manage accounts",
    )
    .await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let tenant = signed.account.tenant_id;
    let created = console::create_account(
        state.store.as_ref(),
        tenant,
        &form.email,
        &form.role,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await;
    let (status, top) = match created {
        Ok((account, token)) => (
            StatusCode::OK,
            format!(
                "<p class=\"ok\" id=\"ok\">Created {}. Send this set-up link to them; it works once, for 7 days, and is not shown again:</p>\
                 <p><input id=\"setup-url\" readonly aria-label=\"Set-up link\" size=\"60\" value=\"{}\"></p>",
                esc(&account.email),
                esc(&console::setup_url(&state.settings.public_url, &token))
            ),
        ),
        Err(ServiceError::Store(e)) => return Err(e.into()),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            html::notice(Some(&e.to_string()), None),
        ),
    };
    let accounts = state.store.list_console_accounts(tenant).await?;
    Ok(respond(status, render(&signed, &accounts, &top)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ",
    "role": "viewer"
}))]
pub struct RoleForm {
    csrf: String,
    #[serde(default)]
    role: Option<String>,
}

/// Checks an owner may change account `id`: someone else's, of this tenant.
async fn other_account(
    state: &AppState,
    signed: &Signed,
    id: Uuid,
) -> Result<Result<ConsoleAccount, &'static str>, ApiError> {
    if id == signed.account.id {
        return Ok(Err(
            "You cannot change or remove your own account; ask another owner",
        ));
    }
    let accounts = state
        .store
        .list_console_accounts(signed.account.tenant_id)
        .await?;
    Ok(accounts
        .into_iter()
        .find(|a| a.id == id)
        .ok_or("No such account"))
}

fn back(key: &str, text: &str) -> HttpResponse {
    see_other(&format!(
        "/console/accounts?{key}={}",
        html::query_text(text)
    ))
}

/// Changes an account's role (owner).
#[utoipa::path(tag = "console",
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 303, description = "Done (or refused): back to the accounts with a message"),
        (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
    ))]
#[post("/console/accounts/{id}/role")]
pub async fn change_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, ApiError> {
    let signed = match authorize_form(
        &req,
        &state,
        &form.csrf,
        |r| r == Role::Owner,
        "manage accounts",
    )
    .await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let account = match other_account(&state, &signed, *id).await? {
        Ok(a) => a,
        Err(why) => return Ok(back("error", why)),
    };
    let Some(role) = form.role.as_deref().and_then(Role::parse) else {
        return Ok(back("error", "The role is owner, billing_admin or viewer"));
    };
    state
        .store
        .set_console_role(signed.account.tenant_id, account.id, role.as_str())
        .await?;
    Ok(back(
        "ok",
        &format!("{} is now {}", account.email, role.as_str()),
    ))
}

/// Removes an account and its sessions (owner).
#[utoipa::path(tag = "console",
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 303, description = "Done (or refused): back to the accounts with a message"),
        (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
    ))]
#[post("/console/accounts/{id}/remove")]
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, ApiError> {
    let signed = match authorize_form(
        &req,
        &state,
        &form.csrf,
        |r| r == Role::Owner,
        "manage accounts",
    )
    .await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let account = match other_account(&state, &signed, *id).await? {
        Ok(a) => a,
        Err(why) => return Ok(back("error", why)),
    };
    state
        .store
        .delete_console_account(signed.account.tenant_id, account.id)
        .await?;
    Ok(back("ok", &format!("Removed {}", account.email)))
}
