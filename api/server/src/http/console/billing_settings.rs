//! `/console/settings`: who pays (the tenant's wallet or each sender's), the low-balance
//! threshold, and the credit packs for sale; owners change them, with mistakes shown per
//! field. Postpaid billing stays an API setting (it needs Stripe ids).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use cloak_proto::billing::{BillingSettings, CreditPack};

use super::forms::{Fields, SettingsForm};
use super::html::{self, esc};
use super::session::{Notice, Signed, authorize_form, new_key, respond, see_other, signed_in};
use crate::http::problem::ApiError;
use crate::services::console::Role;
use crate::services::hot::Invalidation;
use crate::services::{ServiceError, billing};
use crate::state::AppState;

/// Most packs (the API's rule).
const MAX_PACKS: usize = 20;

/// A pack's fields: (field, label, input attributes).
const PACK_FIELDS: &[(&str, &str, &str)] = &[
    ("id", "Id", "maxlength=\"64\" pattern=\"[A-Za-z0-9_-]+\""),
    ("name", "Name on the Checkout page", "maxlength=\"100\""),
    ("credits", "Credits", "type=\"number\" min=\"1\""),
    (
        "amount",
        "Price in cents (smallest unit)",
        "type=\"number\" min=\"50\"",
    ),
    (
        "currency",
        "Currency (ISO 4217)",
        "maxlength=\"3\" pattern=\"[a-z]{3}\"",
    ),
];

/// What the form shows: who pays, the threshold and each pack's fields, as text.
struct Shown {
    users_pay: bool,
    threshold: String,
    packs: Vec<Vec<String>>,
}

impl Shown {
    fn of(s: &BillingSettings) -> Self {
        let mut packs: Vec<Vec<String>> = s
            .packs
            .iter()
            .map(|p| {
                vec![
                    p.id.clone(),
                    p.name.clone(),
                    p.credits.to_string(),
                    p.amount.to_string(),
                    p.currency.clone(),
                ]
            })
            .collect();
        if packs.len() < MAX_PACKS {
            packs.push(
                vec![String::new(); 4]
                    .into_iter()
                    .chain(["usd".into()])
                    .collect(),
            );
        }
        Self {
            users_pay: s.users_pay,
            threshold: s
                .low_balance_threshold
                .map_or(String::new(), |t| t.to_string()),
            packs,
        }
    }
}

fn render(
    signed: &Signed,
    s: &BillingSettings,
    shown: &Shown,
    f: Option<&Fields<'_>>,
    top: &str,
) -> String {
    let err = |key: &str| f.and_then(|f| f.error(key));
    let mut body = top.to_owned();
    let payer = if s.users_pay {
        "each sender's own wallet"
    } else {
        "the tenant's wallet"
    };
    body.push_str(&format!(
        "<p id=\"payer\">Actions are paid from {payer}{}.</p>",
        if s.postpaid {
            "; the tenant is postpaid (usage goes to Stripe Billing)"
        } else {
            ""
        }
    ));
    if !signed.role.can_price() {
        let mut rows = String::new();
        for p in &s.packs {
            rows.push_str(&format!(
                "<tr class=\"pack\"><td>{}</td><td>{}</td>{}{}<td>{}</td></tr>",
                esc(&p.id),
                esc(&p.name),
                html::num(p.credits),
                html::num(p.amount),
                esc(&p.currency)
            ));
        }
        body.push_str(&format!(
            "<p>Low-balance warning below: {}</p>{}<p>Only owners change billing settings.</p>",
            s.low_balance_threshold
                .map_or("none".to_owned(), |t| t.to_string()),
            html::table(
                "packs",
                "Credit packs",
                &["Id", "Name", "#Credits", "#Price (cents)", "Currency"],
                &rows
            )
        ));
        return html::page(
            "Billing settings",
            Some(signed.nav("/console/settings")),
            &body,
        );
    }
    let check = |on: bool| if on { " checked" } else { "" };
    let mut packs = String::new();
    for (i, pack) in shown.packs.iter().enumerate() {
        let legend = if pack[0].is_empty() {
            "Add a pack".to_owned()
        } else {
            format!("Pack {}", esc(&pack[0]))
        };
        packs.push_str(&format!(
            "<fieldset class=\"pack\"><legend>{legend}</legend>"
        ));
        for ((field, label, attrs), value) in PACK_FIELDS.iter().zip(pack) {
            let key = format!("{field}.{i}");
            packs.push_str(&format!(
                "<p>{}</p>",
                html::input(label, &key, value, attrs, err(&key))
            ));
        }
        if !pack[0].is_empty() {
            packs.push_str(&format!(
                "<p><input type=\"checkbox\" id=\"remove.{i}\" name=\"remove.{i}\" value=\"1\"> <label for=\"remove.{i}\">Remove this pack</label></p>"
            ));
        }
        packs.push_str("</fieldset>");
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/console/settings\" id=\"settings-form\">{}\
         <input type=\"hidden\" name=\"rows\" value=\"{}\">\
         <fieldset><legend>Who pays</legend>\
         <p><input type=\"radio\" id=\"payer-tenant\" name=\"payer\" value=\"tenant\"{}> <label for=\"payer-tenant\">The tenant's wallet</label></p>\
         <p><input type=\"radio\" id=\"payer-users\" name=\"payer\" value=\"users\"{}> <label for=\"payer-users\">Each sender's own wallet</label></p></fieldset>\
         <p>{}</p>{packs}<p><button type=\"submit\" id=\"save-settings\">Save settings</button></p></form>",
        html::form_guard(&signed.session.csrf_token, &new_key()),
        shown.packs.len(),
        check(!shown.users_pay),
        check(shown.users_pay),
        html::input(
            "Warn (webhook) when a wallet falls below (blank: never)",
            "low_balance_threshold",
            &shown.threshold,
            "type=\"number\" min=\"1\"",
            err("low_balance_threshold")
        ),
    ));
    html::page(
        "Billing settings",
        Some(signed.nav("/console/settings")),
        &body,
    )
}

/// Billing settings; owners can change them.
#[utoipa::path(tag = "console", params(Notice), responses(
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console/settings")]
pub async fn settings_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let s = billing::settings(state.store.as_ref(), signed.account.tenant_id).await?;
    Ok(respond(
        StatusCode::OK,
        render(&signed, &s, &Shown::of(&s), None, &notice.html()),
    ))
}

/// Saves the billing settings (owner); a mistake shows the form again with it marked.
#[utoipa::path(tag = "console", responses(
    (status = 303, description = "Saved: back to the settings"),
    (status = 400, description = "A mistake, marked on the form (HTML)", content_type = "text/html", body = String),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/settings")]
pub async fn save_settings(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, ApiError> {
    let signed = match authorize_form(
        &req,
        &state,
        &form.csrf,
        Role::can_price,
        "change billing settings",
    )
    .await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let tenant = signed.account.tenant_id;
    let current = billing::settings(state.store.as_ref(), tenant).await?;
    let mut f = Fields::new(&form.fields);
    let rows = f.int::<usize>("rows").min(MAX_PACKS + 1);
    let mut packs = Vec::new();
    for i in 0..rows {
        let key = |field: &str| format!("{field}.{i}");
        if f.text(&key("id")).is_empty() || f.checked(&key("remove")) {
            continue;
        }
        let pack = CreditPack {
            id: f.text(&key("id")).to_owned(),
            name: f.text(&key("name")).to_owned(),
            credits: f.int(&key("credits")),
            amount: f.int(&key("amount")),
            currency: f.text(&key("currency")).to_lowercase(),
        };
        f.validated(validator::Validate::validate(&pack), &format!(".{i}"));
        packs.push(pack);
    }
    let settings = BillingSettings {
        users_pay: f.text("payer") == "users",
        low_balance_threshold: f.opt_int("low_balance_threshold"),
        packs,
        ..current.clone()
    };
    if settings.low_balance_threshold.is_some_and(|t| t < 1) {
        f.errors
            .insert("low_balance_threshold".into(), "at least 1".into());
    }
    let mut problem = None;
    if f.is_ok() {
        match billing::put_settings(state.store.as_ref(), tenant, &settings).await {
            Ok(_) => {
                state.invalidate(Invalidation::Tenant(tenant)).await;
                return Ok(see_other("/console/settings?ok=Saved"));
            }
            Err(ServiceError::Store(e)) => return Err(e.into()),
            Err(e) => problem = Some(e.to_string()),
        }
    }
    let shown = Shown {
        users_pay: settings.users_pay,
        threshold: f.text("low_balance_threshold").to_owned(),
        packs: (0..rows)
            .map(|i| {
                PACK_FIELDS
                    .iter()
                    .map(|(field, _, _)| f.text(&format!("{field}.{i}")).to_owned())
                    .collect()
            })
            .collect(),
    };
    let top = html::notice(
        Some(&problem.unwrap_or_else(|| "Nothing was saved: fix the marked fields.".into())),
        None,
    );
    Ok(respond(
        StatusCode::BAD_REQUEST,
        render(&signed, &current, &shown, Some(&f), &top),
    ))
}
