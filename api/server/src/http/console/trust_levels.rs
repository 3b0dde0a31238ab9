//! `/console/trust-levels`: the tenant's trust levels and the limits each allows; owners
//! change, add and remove levels, with mistakes shown per field.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use cloak_proto::abuse::{AttachmentSize, TrustLevel, TrustLevels};

use super::forms::{Fields, SettingsForm};
use super::html::{self, esc};
use super::session::{Notice, Signed, authorize_form, new_key, respond, see_other, signed_in};
use crate::http::problem::ApiError;
use crate::services::console::Role;
use crate::services::hot::Invalidation;
use crate::services::{ServiceError, limits};
use crate::state::AppState;

/// Most levels a tenant has (the API's rule).
const MAX_LEVELS: usize = 16;

/// The numeric fields of a level: (field, label).
const NUMBERS: &[(&str, &str)] = &[
    ("messages_per_window", "Messages per window"),
    ("window_secs", "Window (seconds)"),
    ("invites_per_day", "Invites per day"),
    ("new_contacts_per_day", "New contacts per day"),
    ("calls_per_hour", "Calls per hour (0: none)"),
    (
        "promote_after_secs",
        "Promote after (seconds; blank: never)",
    ),
];

const SIZES: &[AttachmentSize] = &[
    AttachmentSize::None,
    AttachmentSize::Small,
    AttachmentSize::Medium,
    AttachmentSize::Large,
];

/// A level's fields as text, keyed by field name.
fn texts(l: &TrustLevel) -> Vec<(&'static str, String)> {
    vec![
        ("name", l.name.clone()),
        ("messages_per_window", l.messages_per_window.to_string()),
        ("window_secs", l.window_secs.to_string()),
        ("max_attachment", l.max_attachment.as_str().to_owned()),
        ("invites_per_day", l.invites_per_day.to_string()),
        ("new_contacts_per_day", l.new_contacts_per_day.to_string()),
        ("calls_per_hour", l.calls_per_hour.to_string()),
        (
            "promote_after_secs",
            l.promote_after_secs
                .map_or(String::new(), |s| s.to_string()),
        ),
    ]
}

fn value<'a>(row: &'a [(&'static str, String)], field: &str) -> &'a str {
    row.iter()
        .find(|(f, _)| *f == field)
        .map_or("", |(_, v)| v.as_str())
}

fn fieldset(i: usize, row: &[(&'static str, String)], f: Option<&Fields<'_>>) -> String {
    let err = |field: &str| f.and_then(|f| f.error(&format!("{field}.{i}")));
    let legend = if value(row, "name").is_empty() {
        "Add a level".to_owned()
    } else {
        format!("Level {}: {}", i + 1, esc(value(row, "name")))
    };
    let mut out = format!(
        "<fieldset class=\"level\"><legend>{legend}</legend><p>{}</p>",
        html::input(
            "Name",
            &format!("name.{i}"),
            value(row, "name"),
            "maxlength=\"32\" pattern=\"[a-z0-9_-]+\"",
            err("name")
        )
    );
    let current = value(row, "max_attachment");
    let mut options = String::new();
    for s in SIZES {
        let selected = if s.as_str() == current {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!(
            "<option value=\"{0}\"{selected}>{0}</option>",
            s.as_str()
        ));
    }
    out.push_str(&format!(
        "<p><label for=\"max_attachment.{i}\">Largest attachment</label> <select id=\"max_attachment.{i}\" name=\"max_attachment.{i}\">{options}</select></p>"
    ));
    for (field, label) in NUMBERS {
        out.push_str(&format!(
            "<p>{}</p>",
            html::input(
                label,
                &format!("{field}.{i}"),
                value(row, field),
                "type=\"number\" min=\"0\"",
                err(field)
            )
        ));
    }
    if !value(row, "name").is_empty() {
        out.push_str(&format!(
            "<p><input type=\"checkbox\" id=\"remove.{i}\" name=\"remove.{i}\" value=\"1\"> <label for=\"remove.{i}\">Remove this level</label></p>"
        ));
    }
    out.push_str("</fieldset>");
    out
}

fn read_only(levels: &[TrustLevel]) -> String {
    let mut rows = String::new();
    for l in levels {
        rows.push_str(&format!(
            "<tr class=\"level\"><td>{}</td>{}{}<td>{}</td>{}{}{}<td>{}</td></tr>",
            esc(&l.name),
            html::num(i64::from(l.messages_per_window)),
            html::num(i64::from(l.window_secs)),
            l.max_attachment.as_str(),
            html::num(i64::from(l.invites_per_day)),
            html::num(i64::from(l.new_contacts_per_day)),
            html::num(i64::from(l.calls_per_hour)),
            l.promote_after_secs
                .map_or("never".to_owned(), |s| format!("after {s} s"))
        ));
    }
    html::table(
        "levels",
        "Lowest first; new users start at the first",
        &[
            "Name",
            "#Messages",
            "#Window (s)",
            "Attachments",
            "#Invites/day",
            "#Contacts/day",
            "#Calls/hour",
            "Promotion",
        ],
        &rows,
    )
}

/// One level's fields as typed: (name, value) pairs.
type Typed = Vec<(&'static str, String)>;

fn render(
    signed: &Signed,
    levels: &[TrustLevel],
    typed: Option<(&[Typed], &Fields<'_>)>,
    top: &str,
) -> String {
    let mut body = top.to_owned();
    body.push_str(&read_only(levels));
    if signed.role.can_price() {
        let rows: Vec<Typed> = match typed {
            Some((rows, _)) => rows.to_vec(),
            None => {
                let mut rows: Vec<_> = levels.iter().map(texts).collect();
                if rows.len() < MAX_LEVELS {
                    rows.push(vec![("max_attachment", "small".to_owned())]);
                }
                rows
            }
        };
        let mut sets = String::new();
        for (i, row) in rows.iter().enumerate() {
            sets.push_str(&fieldset(i, row, typed.map(|t| t.1)));
        }
        body.push_str(&format!(
            "<h2>Change levels</h2><form method=\"post\" action=\"/console/trust-levels\" id=\"levels-form\">{}\
             <input type=\"hidden\" name=\"rows\" value=\"{}\">{sets}\
             <p><button type=\"submit\" id=\"save-levels\">Save levels</button></p></form>",
            html::form_guard(&signed.session.csrf_token, &new_key()),
            rows.len()
        ));
    } else {
        body.push_str("<p>Only owners change trust levels.</p>");
    }
    html::page(
        "Trust levels",
        Some(signed.nav("/console/trust-levels")),
        &body,
    )
}

/// The tenant's trust levels; owners can change them.
#[utoipa::path(tag = "console", params(Notice), responses(
    (status = 200, description = "HTML", content_type = "text/html", body = String),
    (status = 303, description = "Not signed in: to sign-in"),
))]
#[get("/console/trust-levels")]
pub async fn trust_levels_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, ApiError> {
    let Some(signed) = signed_in(&req, &state).await? else {
        return Ok(see_other("/console/login"));
    };
    let levels = limits::levels(state.store.as_ref(), signed.account.tenant_id).await?;
    Ok(respond(
        StatusCode::OK,
        render(&signed, &levels, None, &notice.html()),
    ))
}

/// Reads row `i` of the form: `None` for a blank or removed row.
fn read_row(f: &mut Fields<'_>, i: usize) -> Option<TrustLevel> {
    let key = |field: &str| format!("{field}.{i}");
    if f.text(&key("name")).is_empty() || f.checked(&key("remove")) {
        return None;
    }
    let size = f.text(&key("max_attachment"));
    let max_attachment = SIZES.iter().copied().find(|s| s.as_str() == size);
    if max_attachment.is_none() {
        f.errors
            .insert(key("max_attachment"), "choose a size".into());
    }
    let level = TrustLevel {
        name: f.text(&key("name")).to_owned(),
        messages_per_window: f.int(&key("messages_per_window")),
        window_secs: f.int(&key("window_secs")),
        max_attachment: max_attachment.unwrap_or(AttachmentSize::None),
        invites_per_day: f.int(&key("invites_per_day")),
        new_contacts_per_day: f.int(&key("new_contacts_per_day")),
        calls_per_hour: f.int(&key("calls_per_hour")),
        promote_after_secs: f.opt_int(&key("promote_after_secs")),
    };
    f.validated(validator::Validate::validate(&level), &format!(".{i}"));
    Some(level)
}

/// Saves the levels (owner); a mistake shows the form again with it marked.
#[utoipa::path(tag = "console", responses(
    (status = 303, description = "Saved: back to the levels"),
    (status = 400, description = "A mistake, marked on the form (HTML)", content_type = "text/html", body = String),
    (status = 403, description = "Role or CSRF check failed (HTML)", content_type = "text/html", body = String),
))]
#[post("/console/trust-levels")]
pub async fn save_trust_levels(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, ApiError> {
    let signed = match authorize_form(
        &req,
        &state,
        &form.csrf,
        Role::can_price,
        "change trust levels",
    )
    .await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let tenant = signed.account.tenant_id;
    let mut f = Fields::new(&form.fields);
    let rows = f.int::<usize>("rows").min(MAX_LEVELS + 1);
    let mut levels = Vec::new();
    for i in 0..rows {
        if let Some(level) = read_row(&mut f, i) {
            if levels.iter().any(|l: &TrustLevel| l.name == level.name) {
                f.errors
                    .insert(format!("name.{i}"), "another level has this name".into());
            }
            levels.push(level);
        }
    }
    let levels = TrustLevels { levels };
    let mut problem = None;
    if levels.levels.is_empty() || levels.levels.len() > MAX_LEVELS {
        problem = Some(format!("Keep 1 to {MAX_LEVELS} levels."));
    } else if f.is_ok() {
        match limits::put_levels(state.store.as_ref(), tenant, &levels, state.clock.now_ms()).await
        {
            Ok(()) => {
                state.invalidate(Invalidation::Tenant(tenant)).await;
                return Ok(see_other("/console/trust-levels?ok=Saved"));
            }
            Err(ServiceError::Store(e)) => return Err(e.into()),
            Err(e) => problem = Some(e.to_string()),
        }
    }
    let typed: Vec<Vec<(&'static str, String)>> = (0..rows)
        .map(|i| {
            [
                "name",
                "max_attachment",
                "messages_per_window",
                "window_secs",
                "invites_per_day",
                "new_contacts_per_day",
                "calls_per_hour",
                "promote_after_secs",
            ]
            .iter()
            .map(|field| (*field, f.text(&format!("{field}.{i}")).to_owned()))
            .collect()
        })
        .collect();
    let current = limits::levels(state.store.as_ref(), tenant).await?;
    let top = html::notice(
        Some(&problem.unwrap_or_else(|| "Nothing was saved: fix the marked fields.".into())),
        None,
    );
    Ok(respond(
        StatusCode::BAD_REQUEST,
        render(&signed, &current, Some((&typed, &f)), &top),
    ))
}
