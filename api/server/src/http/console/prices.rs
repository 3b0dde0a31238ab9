//! `/console/prices`: the price table; owners change it, with mistakes shown per field.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use cloak_proto::billing::PriceTable;

use super::forms::{Fields, SettingsForm};
use super::html;
use super::session::{Notice, Signed, authorize_form, new_key, respond, see_other, signed_in};
use crate::http::problem::ApiError;
use crate::services::billing;
use crate::services::console::Role;
use crate::services::hot::Invalidation;
use crate::state::AppState;

/// The table's rows: (field, label).
const ROWS: &[(&str, &str)] = &[
    ("text_message", "Text message"),
    ("attachment_small", "Attachment, small"),
    ("attachment_medium", "Attachment, medium"),
    ("attachment_large", "Attachment, large"),
    ("edit", "Edit"),
    ("delete", "Delete"),
    ("call_minute", "Call minute"),
    ("invite_redemption", "Invite redemption"),
    ("group_commit", "Membership change (commit)"),
    ("message_view", "Viewing a message"),
];

fn values(t: &PriceTable) -> Vec<String> {
    [
        t.text_message,
        t.attachment_small,
        t.attachment_medium,
        t.attachment_large,
        t.edit,
        t.delete,
        t.call_minute,
        t.invite_redemption,
        t.group_commit,
        t.message_view,
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn render(signed: &Signed, values: &[String], fields: Option<&Fields<'_>>, top: &str) -> String {
    let editable = signed.role.can_price();
    let mut rows = String::new();
    for ((name, label), value) in ROWS.iter().zip(values) {
        let cell = if editable {
            let error = fields.and_then(|f| f.error(name));
            html::input(
                label,
                name,
                value,
                "type=\"number\" min=\"0\" max=\"1000000\" required",
                error,
            )
        } else {
            format!("{label}: {}", html::esc(value))
        };
        rows.push_str(&format!("<tr><td>{cell}</td></tr>"));
    }
    let table = html::table(
        "prices",
        "Credits per action",
        &["Action and credits"],
        &rows,
    );
    let mut body = top.to_owned();
    if editable {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/console/prices\" id=\"prices-form\">{}{table}<p><button type=\"submit\" id=\"save-prices\">Save prices</button></p></form>",
            html::form_guard(&signed.session.csrf_token, &new_key())
        ));
    } else {
        body.push_str(&table);
        body.push_str("<p>Only owners change prices.</p>");
    }
    html::page("Prices", Some(signed.nav("/console/prices")), &body)
}

/// The price table; owners can change it.
#[utoipa::path(tag = "console", params(Notice), responses(
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
    let table = billing::price_table(&plan.prices);
    Ok(respond(
        StatusCode::OK,
        render(&signed, &values(&table), None, &notice.html()),
    ))
}

/// Saves the price table (owner); a mistake shows the form again with it marked.
#[utoipa::path(tag = "console", responses(
    (status = 303, description = "Saved: back to the prices"),
    (status = 400, description = "A price out of range, marked on the form (HTML)", content_type = "text/html", body = String),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/prices")]
pub async fn save_prices(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, ApiError> {
    let signed =
        match authorize_form(&req, &state, &form.csrf, Role::can_price, "change prices").await? {
            Ok(signed) => signed,
            Err(response) => return Ok(response),
        };
    let mut f = Fields::new(&form.fields);
    let prices = PriceTable {
        text_message: f.int("text_message"),
        attachment_small: f.int("attachment_small"),
        attachment_medium: f.int("attachment_medium"),
        attachment_large: f.int("attachment_large"),
        edit: f.int("edit"),
        delete: f.int("delete"),
        call_minute: f.int("call_minute"),
        invite_redemption: f.int("invite_redemption"),
        // Absent in forms from before the rows existed: free.
        group_commit: f.opt_int("group_commit").unwrap_or(0),
        message_view: f.opt_int("message_view").unwrap_or(0),
    };
    f.validated(validator::Validate::validate(&prices), "");
    if !f.is_ok() {
        let typed: Vec<String> = ROWS.iter().map(|(n, _)| f.text(n).to_owned()).collect();
        let top = html::notice(Some("Nothing was saved: fix the marked fields."), None);
        return Ok(respond(
            StatusCode::BAD_REQUEST,
            render(&signed, &typed, Some(&f), &top),
        ));
    }
    billing::put_prices(state.store.as_ref(), signed.account.tenant_id, &prices).await?;
    state
        .invalidate(Invalidation::Tenant(signed.account.tenant_id))
        .await;
    Ok(see_other("/console/prices?ok=Saved"))
}
