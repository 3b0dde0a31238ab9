//! `/console`: the tenant at a glance for the last 30 or 90 days: balance and spend over
//! time, spend by action, top spending users, purchases and refunds; and, for roles that
//! may, buying and granting credits.

use crate::http::documented::problems;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;

use super::charts;
use super::html::{self, esc, num};
use super::session::{Notice, Signed, new_key, see_other, signed_in, signed_page};
use crate::http::problem::ApiError;
use crate::services::billing::wallet_name;
use crate::services::insights::{self, Dashboard};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DashboardQuery {
    /// The range shown: 30 days (the default, and for any number up to 30) or 90 (above).
    #[serde(default)]
    days: Option<i64>,
}

problems!(DashboardProblems: InvalidQuery);

/// The dashboard: usage, purchases and refunds, and the credit forms.
#[utoipa::path(tag = "console", params(DashboardQuery, Notice), responses(
    DashboardProblems,
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console")]
pub async fn dashboard(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<DashboardQuery>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let days = if query.days.unwrap_or(30) > 30 {
        90
    } else {
        30
    };
    let tenant = signed.account.tenant_id;
    let d = insights::dashboard(state.store.as_ref(), tenant, days, state.clock.now_ms()).await?;
    let mut body = notice.html();
    body.push_str(&range_links(days));
    body.push_str(&cards(&d));
    body.push_str(&over_time(&d));
    body.push_str(&by_action(&d));
    body.push_str(&top_spenders(tenant, &d));
    if signed.role.can_spend() {
        body.push_str(&credit_forms(&state, &signed).await?);
    }
    Ok(signed_page(&signed, "Dashboard", "/console", &body))
}

fn range_links(days: i64) -> String {
    let link = |n: i64| {
        if n == days {
            format!("<strong aria-current=\"true\">Last {n} days</strong>")
        } else {
            format!("<a href=\"/console?days={n}\">Last {n} days</a>")
        }
    };
    format!("<p id=\"range\">{} · {}</p>", link(30), link(90))
}

fn cards(d: &Dashboard) -> String {
    let card = |id: &str, label: &str, value: i64| {
        format!(
            "<div class=\"card\"><div>{label}</div><div class=\"value\" id=\"{id}\">{value}</div></div>"
        )
    };
    format!(
        "<section aria-label=\"Totals\" class=\"cards\">{}{}{}{}{}{}</section>",
        card("total-balance", "Balance, all wallets", d.balance),
        card("total-spent", "Spent", d.spent),
        card("total-purchased", "Bought", d.purchased),
        card("total-granted", "Granted", d.granted),
        card("total-refunded", "Refunded", d.refunded),
        card("total-wallets", "Wallets", d.wallets),
    )
}

fn over_time(d: &Dashboard) -> String {
    let spend: Vec<(String, i64)> = d.days.iter().map(|x| (x.date.clone(), x.spent)).collect();
    let balance: Vec<(String, i64)> = d.days.iter().map(|x| (x.date.clone(), x.balance)).collect();
    let mut rows = String::new();
    for x in d.days.iter().rev() {
        rows.push_str(&format!(
            "<tr class=\"day\" data-date=\"{}\"><td>{}</td>{}{}{}</tr>",
            x.date,
            x.date,
            num(x.spent),
            num(x.added),
            num(x.balance)
        ));
    }
    format!(
        "<h2>Spend per day</h2><div class=\"chart\">{}<p>{} credits spent over {} days; {} on the busiest day.</p></div>\
         <h2>Balance at the end of each day</h2><div class=\"chart\">{}<p>{} credits now, in {} wallets.</p></div>\
         <details><summary>Daily figures</summary>{}</details>",
        charts::bars("chart-spend", "Credits spent per day", &spend),
        d.spent,
        d.days.len(),
        d.days.iter().map(|x| x.spent).max().unwrap_or(0),
        charts::line(
            "chart-balance",
            "Balance of all wallets at the end of each day",
            &balance
        ),
        d.balance,
        d.wallets,
        html::table(
            "days",
            "Per day",
            &["Date", "#Spent", "#Bought or granted", "#Balance at end"],
            &rows
        )
    )
}

fn by_action(d: &Dashboard) -> String {
    let points: Vec<(String, i64)> = d
        .by_action
        .iter()
        .map(|a| (a.label.to_owned(), a.credits))
        .collect();
    let mut rows = String::new();
    for a in &d.by_action {
        rows.push_str(&format!(
            "<tr class=\"action\" data-action=\"{}\"><td>{}</td>{}{}</tr>",
            a.action,
            a.label,
            num(a.credits),
            num(a.entries)
        ));
    }
    if d.by_action.is_empty() {
        rows.push_str("<tr><td colspan=\"3\">Nothing was charged in this range.</td></tr>");
    }
    format!(
        "<h2>Spend by action</h2><div class=\"chart\">{}{}</div>",
        charts::ranking("chart-actions", "Credits spent by action", &points),
        html::table(
            "actions",
            "By action",
            &["Action", "#Credits", "#Times"],
            &rows
        )
    )
}

fn top_spenders(tenant: uuid::Uuid, d: &Dashboard) -> String {
    let mut rows = String::new();
    for s in &d.top {
        let wallet = wallet_name(tenant, s.user_id);
        rows.push_str(&format!(
            "<tr class=\"spender\"><td><a href=\"/console/wallets/{wallet}\">{}</a></td><td>{}</td>{}{}</tr>",
            esc(s.external_id.as_deref().unwrap_or("(deleted user)")),
            esc(s.display_name.as_deref().unwrap_or("")),
            num(s.spent),
            num(s.entries)
        ));
    }
    if d.top.is_empty() {
        rows.push_str("<tr><td colspan=\"4\">No user was charged in this range.</td></tr>");
    }
    let money = format!(
        "<tr><td>Purchases</td>{}{}</tr><tr><td>Refunds and disputes</td>{}{}</tr>\
         <tr><td>Grants</td>{}<td></td></tr><tr><td>Adjustments</td>{}<td></td></tr>",
        num(d.purchased),
        num(d.purchases),
        num(d.refunded),
        num(d.refunds),
        num(d.granted),
        num(d.adjusted)
    );
    format!(
        "<h2>Top spending users</h2>{}<h2>Credits bought and refunded</h2>{}",
        html::table(
            "top-spenders",
            "Whoever paid, by the user who acted",
            &["External id", "Name", "#Credits", "#Charges"],
            &rows
        ),
        html::table("money", "In and out", &["", "#Credits", "#Count"], &money)
    )
}

async fn credit_forms(state: &AppState, signed: &Signed) -> Result<String, ApiError> {
    let packs = state.store.list_packs(signed.account.tenant_id).await?;
    let guard = html::form_guard(&signed.session.csrf_token, &new_key());
    let mut out = format!(
        "<h2>Grant or adjust credits</h2><form method=\"post\" action=\"/console/grant\" id=\"grant-form\">{guard}\
         <p>{} {}</p><p>{} <button type=\"submit\" id=\"grant\">Apply</button></p></form>",
        html::input(
            "Wallet (tenant or a user id)",
            "wallet",
            "tenant",
            "required",
            None
        ),
        html::input(
            "Credits (negative to remove)",
            "delta",
            "",
            "type=\"number\" required",
            None
        ),
        html::input("Reason", "reason", "", "required maxlength=\"500\"", None),
    );
    if !packs.is_empty() {
        out.push_str("<h2>Buy credits</h2>");
        for p in &packs {
            let guard = html::form_guard(&signed.session.csrf_token, &new_key());
            out.push_str(&format!(
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
    Ok(out)
}
