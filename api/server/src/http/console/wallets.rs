//! `/console/wallets`: wallets found by their user (external id or display name), paged and
//! sorted by balance; a wallet's page with its ledger in cursor pages, filtered by kind and
//! date, and a CSV export of exactly the filtered rows, streamed.

use crate::http::documented::problems;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;

use super::html::{self, esc, num};
use super::session::{Signed, new_key, respond, see_other, signed_in, signed_page};
use crate::http::billing::{entry_view, to_csv};
use crate::http::problem::ApiError;
use crate::services::ServiceError;
use crate::services::billing::{self, LEDGER_KINDS, wallet_name};
use crate::state::AppState;
use crate::store::{DAY_MS, LedgerFilter, WalletQuery, WalletSort};

/// Wallets per page.
const WALLET_PAGE: i64 = 50;
/// Ledger entries per page.
const LEDGER_PAGE: i64 = 50;
/// Ledger entries per streamed CSV chunk.
const CSV_PAGE: i64 = 1000;

#[derive(Deserialize, Clone, Copy, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    BalanceDesc,
    BalanceAsc,
    Newest,
}

impl Sort {
    fn store(self) -> WalletSort {
        match self {
            Self::BalanceDesc => WalletSort::BalanceDesc,
            Self::BalanceAsc => WalletSort::BalanceAsc,
            Self::Newest => WalletSort::Newest,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::BalanceDesc => "balance_desc",
            Self::BalanceAsc => "balance_asc",
            Self::Newest => "newest",
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WalletsQuery {
    /// Part of a user's external id or display name (`tenant` finds the tenant's wallet).
    #[serde(default)]
    q: Option<String>,
    /// The order: by balance, highest or lowest first, or newest wallet first.
    #[serde(default)]
    #[param(inline)]
    sort: Sort,
    /// Page number, from 1.
    #[serde(default)]
    page: Option<u32>,
}

problems!(WalletsProblems: InvalidQuery);

/// Wallets, searched and sorted.
#[utoipa::path(tag = "console", params(WalletsQuery), responses(
    WalletsProblems,
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console/wallets")]
pub async fn wallets(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<WalletsQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let tenant = signed.account.tenant_id;
    let page = i64::from(query.page.unwrap_or(1).max(1));
    let text = query.q.clone().unwrap_or_default();
    let mut found = state
        .store
        .search_wallets(
            tenant,
            &WalletQuery {
                text: Some(text.clone()),
                sort: query.sort.store(),
                offset: (page - 1) * WALLET_PAGE,
                limit: WALLET_PAGE + 1,
            },
        )
        .await?;
    let more = found.len() > usize::try_from(WALLET_PAGE).unwrap_or(usize::MAX);
    found.truncate(usize::try_from(WALLET_PAGE).unwrap_or(0));
    let mut options = String::new();
    for (sort, label) in [
        (Sort::BalanceDesc, "Balance, highest first"),
        (Sort::BalanceAsc, "Balance, lowest first"),
        (Sort::Newest, "Newest first"),
    ] {
        let selected = if sort == query.sort { " selected" } else { "" };
        options.push_str(&format!(
            "<option value=\"{}\"{selected}>{label}</option>",
            sort.as_str()
        ));
    }
    let mut body = format!(
        "<form method=\"get\" action=\"/console/wallets\" role=\"search\" id=\"wallet-search\"><p>{} \
         <label for=\"sort\">Order</label> <select id=\"sort\" name=\"sort\">{options}</select> \
         <button type=\"submit\" id=\"search\">Search</button></p></form>",
        html::input(
            "User (external id or name)",
            "q",
            &text,
            "type=\"search\"",
            None
        ),
    );
    let mut rows = String::new();
    for w in &found {
        let name = wallet_name(tenant, w.wallet_id);
        let user = if w.wallet_id == tenant {
            "The tenant's wallet".to_owned()
        } else {
            esc(w.external_id.as_deref().unwrap_or("(deleted user)"))
        };
        rows.push_str(&format!(
            "<tr class=\"wallet\"><td><a href=\"/console/wallets/{name}\">{user}</a></td><td>{}</td><td class=\"num balance\" data-wallet=\"{name}\">{}</td></tr>",
            esc(w.display_name.as_deref().unwrap_or("")),
            w.balance
        ));
    }
    if found.is_empty() {
        rows.push_str("<tr><td colspan=\"3\">No wallet matches.</td></tr>");
    }
    body.push_str(&html::table(
        "wallets",
        &format!("Page {page}"),
        &["User", "Name", "#Balance"],
        &rows,
    ));
    let link = |p: i64, label: &str, rel: &str| {
        format!(
            "<a rel=\"{rel}\" href=\"/console/wallets?q={}&amp;sort={}&amp;page={p}\">{label}</a>",
            esc(&html::query_text(&text)),
            query.sort.as_str()
        )
    };
    let mut pager = Vec::new();
    if page > 1 {
        pager.push(link(page - 1, "Previous page", "prev"));
    }
    if more {
        pager.push(link(page + 1, "Next page", "next"));
    }
    body.push_str(&format!("<p class=\"pager\">{}</p>", pager.join(" · ")));
    Ok(signed_page(&signed, "Wallets", "/console/wallets", &body))
}

#[derive(Deserialize, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerFilterQuery {
    /// Only entries of this kind.
    #[serde(default)]
    kind: Option<String>,
    /// From this day (`YYYY-MM-DD`, UTC), inclusive.
    #[serde(default)]
    from: Option<String>,
    /// To this day (`YYYY-MM-DD`, UTC), inclusive.
    #[serde(default)]
    to: Option<String>,
    /// Entries older than this id (the next page).
    #[serde(default)]
    before: Option<i64>,
}

/// A day as `YYYY-MM-DD` to its first millisecond.
fn day_ms(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl LedgerFilterQuery {
    /// The store's filter, or the message for a filter that does not parse.
    fn filter(&self) -> Result<LedgerFilter, String> {
        let kind = match nonempty(&self.kind) {
            Some(k) if LEDGER_KINDS.contains(&k) => Some(k.to_owned()),
            Some(k) => return Err(format!("{k:?} is not a kind of entry")),
            None => None,
        };
        let day = |v: &Option<String>| match nonempty(v) {
            None => Ok(None),
            Some(t) => day_ms(t)
                .map(Some)
                .ok_or_else(|| format!("{t:?} is not a date (YYYY-MM-DD)")),
        };
        Ok(LedgerFilter {
            kind,
            from_ms: day(&self.from)?,
            to_ms: day(&self.to)?.map(|ms| ms + DAY_MS),
        })
    }

    /// The filter as a query string (without the cursor).
    fn query(&self) -> String {
        format!(
            "kind={}&from={}&to={}",
            html::query_text(nonempty(&self.kind).unwrap_or("")),
            html::query_text(nonempty(&self.from).unwrap_or("")),
            html::query_text(nonempty(&self.to).unwrap_or(""))
        )
    }
}

problems!(WalletProblems: InvalidQuery);

/// A wallet: its user, balance and ledger (filtered, newest first), and the grant form.
#[utoipa::path(tag = "console",
    params(("wallet" = String, Path, description = "`tenant` or a user id"), LedgerFilterQuery),
    responses(
        WalletProblems,
        (status = 200, description = "HTML", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to sign-in"),
        (status = 400, description = "A filter that does not parse (HTML)", content_type = "text/html", body = String),
        (status = 404, description = "No such wallet (HTML)", content_type = "text/html", body = String),
    ))]
#[get("/console/wallets/{wallet}")]
pub async fn wallet(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<LedgerFilterQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let tenant = signed.account.tenant_id;
    let name = path.into_inner();
    let id = match find(&state, &signed, &name).await? {
        Ok(id) => id,
        Err(response) => return Ok(response),
    };
    // The canonical name (a user id parses in several spellings).
    let name = wallet_name(tenant, id);
    let title = format!("Wallet {name}");
    let (filter, error) = match query.filter() {
        Ok(f) => (f, None),
        Err(e) => (LedgerFilter::default(), Some(e)),
    };
    let balance = state
        .store
        .get_wallet(tenant, id)
        .await?
        .map_or(0, |w| w.balance);
    let mut body = String::new();
    if id != tenant
        && let Some(user) = state.store.get_user(tenant, id).await?
    {
        body.push_str(&format!(
            "<p>User <strong id=\"external-id\">{}</strong> ({})</p>",
            esc(&user.external_id),
            esc(&user.display_name)
        ));
    }
    body.push_str(&format!(
        "<p>Balance <strong id=\"balance\">{balance}</strong> credits</p>"
    ));
    if let Some(e) = &error {
        body.push_str(&html::notice(Some(e), None));
    }
    body.push_str(&filter_form(&name, &query));
    let entries = if error.is_some() {
        Vec::new()
    } else {
        state
            .store
            .ledger_search(tenant, id, &filter, query.before, LEDGER_PAGE)
            .await?
    };
    let mut rows = String::new();
    for e in &entries {
        rows.push_str(&format!(
            "<tr class=\"entry\" data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"num delta\">{}</td>{}<td class=\"reason\">{}</td><td>{}</td></tr>",
            e.id,
            e.id,
            esc(&crate::clock::to_datetime(e.created_at_ms).date().to_string()),
            esc(&e.kind),
            e.delta,
            num(e.balance_after),
            esc(e.reason.as_deref().unwrap_or("")),
            esc(&e.actor)
        ));
    }
    if entries.is_empty() {
        rows.push_str("<tr><td colspan=\"7\">No entries.</td></tr>");
    }
    body.push_str(&html::table(
        "ledger",
        "Ledger, newest first",
        &["#", "Date", "Kind", "#Change", "#Balance", "Reason", "By"],
        &rows,
    ));
    let mut pager = Vec::new();
    if query.before.is_some() {
        pager.push(format!(
            "<a href=\"/console/wallets/{name}?{}\">Newest</a>",
            esc(&query.query())
        ));
    }
    if let Some(last) = entries.last()
        && i64::try_from(entries.len()).unwrap_or(0) == LEDGER_PAGE
    {
        pager.push(format!(
            "<a rel=\"next\" id=\"older\" href=\"/console/wallets/{name}?{}&amp;before={}\">Older entries</a>",
            esc(&query.query()),
            last.id
        ));
    }
    body.push_str(&format!("<p class=\"pager\">{}</p>", pager.join(" · ")));
    if signed.role.can_spend() {
        body.push_str(&grant_form(&signed, &name));
    }
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(respond(
        status,
        html::page(&title, Some(signed.nav("/console/wallets")), &body),
    ))
}

/// The wallet a name means, or the 404 page.
async fn find(
    state: &AppState,
    signed: &Signed,
    name: &str,
) -> Result<Result<uuid::Uuid, HttpResponse>, ApiError> {
    match billing::parse_wallet(state.store.as_ref(), signed.account.tenant_id, name).await {
        Ok(id) => Ok(Ok(id)),
        Err(ServiceError::Store(e)) => Err(e.into()),
        Err(e) => Ok(Err(respond(
            StatusCode::NOT_FOUND,
            html::page(
                "No such wallet",
                Some(signed.nav("/console/wallets")),
                &html::notice(Some(&e.to_string()), None),
            ),
        ))),
    }
}

fn filter_form(name: &str, q: &LedgerFilterQuery) -> String {
    let current = nonempty(&q.kind).unwrap_or("");
    let mut kinds = String::from("<option value=\"\">All kinds</option>");
    for k in LEDGER_KINDS {
        let selected = if *k == current { " selected" } else { "" };
        kinds.push_str(&format!("<option value=\"{k}\"{selected}>{k}</option>"));
    }
    format!(
        "<form method=\"get\" action=\"/console/wallets/{name}\" id=\"ledger-filter\"><p>\
         <label for=\"kind\">Kind</label> <select id=\"kind\" name=\"kind\">{kinds}</select> {} {} \
         <button type=\"submit\" id=\"filter\">Filter</button> \
         <a id=\"csv\" href=\"/console/wallets/{name}/ledger.csv?{}\">Export these entries as CSV</a></p></form>",
        html::input(
            "From",
            "from",
            nonempty(&q.from).unwrap_or(""),
            "type=\"date\"",
            None
        ),
        html::input(
            "To",
            "to",
            nonempty(&q.to).unwrap_or(""),
            "type=\"date\"",
            None
        ),
        esc(&q.query())
    )
}

fn grant_form(signed: &Signed, name: &str) -> String {
    format!(
        "<h2>Grant or adjust credits</h2><form method=\"post\" action=\"/console/grant\" id=\"grant-form\">{}\
         <input type=\"hidden\" name=\"wallet\" value=\"{}\"><input type=\"hidden\" name=\"back\" value=\"wallet\">\
         <p>{} {} <button type=\"submit\" id=\"grant\">Apply</button></p></form>",
        html::form_guard(&signed.session.csrf_token, &new_key()),
        esc(name),
        html::input(
            "Credits (negative to remove)",
            "delta",
            "",
            "type=\"number\" required",
            None
        ),
        html::input("Reason", "reason", "", "required maxlength=\"500\"", None),
    )
}

problems!(CsvProblems: InvalidQuery);

/// The wallet's entries matching the filter, newest first, as CSV (streamed).
#[utoipa::path(tag = "console",
    params(("wallet" = String, Path, description = "`tenant` or a user id"), LedgerFilterQuery),
    responses(
        CsvProblems,
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 303, description = "Not signed in: to sign-in"),
        (status = 400, description = "A filter that does not parse (HTML)", content_type = "text/html", body = String),
        (status = 404, description = "No such wallet (HTML)", content_type = "text/html", body = String),
    ))]
#[get("/console/wallets/{wallet}/ledger.csv")]
pub async fn wallet_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<LedgerFilterQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let tenant = signed.account.tenant_id;
    let name = path.into_inner();
    let id = match find(&state, &signed, &name).await? {
        Ok(id) => id,
        Err(response) => return Ok(response),
    };
    // The canonical name (a user id parses in several spellings).
    let name = wallet_name(tenant, id);
    let filter = match query.filter() {
        Ok(f) => f,
        Err(e) => {
            return Ok(respond(
                StatusCode::BAD_REQUEST,
                html::page(
                    "Export",
                    Some(signed.nav("/console/wallets")),
                    &html::notice(Some(&e), None),
                ),
            ));
        }
    };
    let store = state.store.clone();
    // (before, header written, done)
    let start = (query.before, false, false);
    let pages = futures_util::stream::try_unfold(start, move |(before, header, done)| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            if done {
                return Ok::<_, actix_web::Error>(None);
            }
            let page = store
                .ledger_search(tenant, id, &filter, before, CSV_PAGE)
                .await
                .map_err(|e| actix_web::Error::from(ApiError::from(e)))?;
            let entries: Vec<_> = page.iter().map(entry_view).collect();
            let chunk = to_csv(&entries, !header)
                .map_err(|e| actix_web::Error::from(ApiError::internal(&e)))?;
            let last = page.last().map(|e| e.id).or(before);
            let done = i64::try_from(page.len()).unwrap_or(0) < CSV_PAGE;
            Ok(Some((web::Bytes::from(chunk), (last, true, done))))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"ledger-{name}.csv\""),
        ))
        .streaming(pages))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    #[serde(default)]
    wallet: Option<String>,
}

/// The ledger's old address: to the wallet's page.
#[utoipa::path(tag = "console", operation_id = "console_ledger", params(LedgerQuery), responses(
    (status = 303, description = "To the wallet's page"),
))]
#[get("/console/ledger")]
pub async fn ledger(query: web::Query<LedgerQuery>) -> HttpResponse {
    let name = query.wallet.as_deref().unwrap_or("tenant");
    // Anything but a wallet name goes to the list rather than into the Location header.
    if name == "tenant" || uuid::Uuid::parse_str(name).is_ok() {
        see_other(&format!("/console/wallets/{name}"))
    } else {
        see_other("/console/wallets")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_days_and_known_kinds_only() {
        assert_eq!(day_ms("1970-01-02"), Some(DAY_MS));
        for bad in ["1970-1-02", "1970-13-01", "1970-02-30", "x", "19700-01-01"] {
            assert_eq!(day_ms(bad), None, "{bad}");
        }
        let q = LedgerFilterQuery {
            kind: Some("grant".into()),
            from: Some("1970-01-02".into()),
            to: Some("1970-01-02".into()),
            before: None,
        };
        assert_eq!(
            q.filter(),
            Ok(LedgerFilter {
                kind: Some("grant".into()),
                from_ms: Some(DAY_MS),
                to_ms: Some(2 * DAY_MS),
            })
        );
        let bad = LedgerFilterQuery {
            kind: Some("bogus".into()),
            ..q.clone()
        };
        assert!(bad.filter().is_err());
        assert_eq!(q.query(), "kind=grant&from=1970-01-02&to=1970-01-02");
    }
}
