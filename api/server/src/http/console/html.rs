//! The console's pages: small server-rendered HTML with no external assets or scripts.

/// Escapes text for HTML.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The pages in the navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console", "Dashboard"),
    ("/console/wallets", "Wallets"),
    ("/console/prices", "Prices"),
    ("/console/trust-levels", "Trust levels"),
    ("/console/settings", "Billing settings"),
    ("/console/accounts", "Accounts"),
];

/// The page's style: system fonts, contrast of at least 4.5:1 for text, a visible focus
/// ring, and a single column that fits a phone (wide tables scroll inside their box).
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;color:#1a1a1a;line-height:1.45}\
a{color:#0b57d0}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:1}\
header nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0;margin:0 0 .5rem}\
header nav a[aria-current=page]{font-weight:700;color:#1a1a1a}.who{color:#555;margin:0 0 1rem}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ccc;padding:.4rem;text-align:left;vertical-align:top}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:600;padding:.3rem 0}\
form.inline{display:inline}.error{color:#a00000}.ok{color:#006100}.field-error{color:#a00000;display:block;font-size:.9em}\
input,select,button{font:inherit;padding:.35rem;max-width:100%}button{cursor:pointer}\
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(11rem,1fr));gap:.75rem;margin:1rem 0}\
.card{border:1px solid #ccc;border-radius:.4rem;padding:.6rem}.card .value{font-size:1.4rem;font-weight:700}\
.chart{display:grid;grid-template-columns:minmax(0,2fr) minmax(12rem,1fr);gap:1rem;align-items:start;margin-bottom:1.5rem}\
.chart svg{width:100%;height:auto;border:1px solid #ddd}\
@media (max-width:40rem){.chart{grid-template-columns:1fr}body{padding:.5rem}}";

/// The header of a signed-in page: who is signed in, the page's path (for the current
/// link) and the session's CSRF token (for the sign-out button).
pub struct Nav<'a> {
    pub who: String,
    pub current: &'a str,
    pub csrf: &'a str,
}

/// A whole page, with the navigation and sign-out button when someone is signed in.
pub fn page(title: &str, nav: Option<Nav<'_>>, body: &str) -> String {
    let header = nav.map_or(String::new(), |nav| {
        let mut links = String::new();
        for (path, label) in NAV {
            let here = if *path == nav.current {
                " aria-current=\"page\""
            } else {
                ""
            };
            links.push_str(&format!("<li><a href=\"{path}\"{here}>{label}</a></li>"));
        }
        format!(
            "<header><nav aria-label=\"Console\"><ul>{links}</ul></nav><p class=\"who\">Signed in as {}</p>{}</header>",
            esc(&nav.who),
            sign_out(nav.csrf)
        )
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Cloak console</title><style>{STYLE}</style></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>{header}<main id=\"main\"><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

/// A message line (error or success).
pub fn notice(error: Option<&str>, ok: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(e) = error {
        out.push_str(&format!("<p class=\"error\" id=\"error\">{}</p>", esc(e)));
    }
    if let Some(m) = ok {
        out.push_str(&format!("<p class=\"ok\" id=\"ok\">{}</p>", esc(m)));
    }
    out
}

pub fn login_form(error: Option<&str>) -> String {
    page(
        "Sign in",
        None,
        &format!(
            "{}<form method=\"post\" action=\"/console/login\">\
             <p><label>E-mail <input type=\"email\" name=\"email\" id=\"email\" required autocomplete=\"username\"></label></p>\
             <p><label>Password <input type=\"password\" name=\"password\" id=\"password\" required autocomplete=\"current-password\"></label></p>\
             <details><summary>Accounts at several tenants?</summary>\
             <p><label>Tenant ID <input type=\"text\" name=\"tenant\" id=\"tenant\" autocomplete=\"organization\"></label></p></details>\
             <p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>",
            notice(error, None)
        ),
    )
}

pub fn setup_form(token: &str, error: Option<&str>) -> String {
    page(
        "Choose a password",
        None,
        &format!(
            "{}<form method=\"post\" action=\"/console/setup\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
             <p><label>Password (12 or more characters) <input type=\"password\" name=\"password\" id=\"password\" required minlength=\"12\" autocomplete=\"new-password\"></label></p>\
             <p><button type=\"submit\" id=\"set-password\">Set password</button></p></form>",
            notice(error, None),
            esc(token)
        ),
    )
}

/// The hidden CSRF field every state-changing form carries. Alone, it guards the forms
/// whose repeat is harmless (a role change, a removal) or refused (an address invited
/// twice); [`form_guard`] adds an idempotency key for the rest.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// The CSRF field and an idempotency key (a repeated submission acts once).
pub fn form_guard(csrf: &str, idempotency_key: &str) -> String {
    format!(
        "{}<input type=\"hidden\" name=\"idempotency_key\" value=\"{}\">",
        csrf_field(csrf),
        esc(idempotency_key)
    )
}

/// A table in a box that scrolls sideways on narrow screens.
pub fn table(id: &str, caption: &str, head: &[&str], rows: &str) -> String {
    let mut th = String::new();
    for h in head {
        let class = if h.starts_with('#') {
            " class=\"num\""
        } else {
            ""
        };
        th.push_str(&format!(
            "<th scope=\"col\"{class}>{}</th>",
            esc(h.trim_start_matches('#'))
        ));
    }
    format!(
        "<div class=\"scroll\"><table id=\"{id}\"><caption>{}</caption><thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table></div>",
        esc(caption)
    )
}

/// A number cell.
pub fn num(n: i64) -> String {
    format!("<td class=\"num\">{n}</td>")
}

/// A labelled text input with its error (if any) announced with it.
pub fn input(label: &str, name: &str, value: &str, attrs: &str, error: Option<&str>) -> String {
    let (described, message) = match error {
        Some(e) => (
            format!(" aria-invalid=\"true\" aria-describedby=\"{name}-error\""),
            format!(
                "<span class=\"field-error\" id=\"{name}-error\">{}</span>",
                esc(e)
            ),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "<label for=\"{name}\">{}</label> <input id=\"{name}\" name=\"{name}\" value=\"{}\" {attrs}{described}>{message}",
        esc(label),
        esc(value)
    )
}

/// The sign-out button.
pub fn sign_out(csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/console/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><button type=\"submit\" id=\"sign-out\">Sign out</button></p></form>",
        esc(csrf)
    )
}

/// Form-encodes a message for a `?ok=` / `?error=` query.
pub fn query_text(text: &str) -> String {
    text.replace('%', "%25")
        .replace('&', "%26")
        .replace('+', "%2B")
        .replace('#', "%23")
        .replace(' ', "+")
}
