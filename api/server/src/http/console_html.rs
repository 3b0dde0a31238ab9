//! The console's pages: small server-rendered HTML with no external assets or scripts.

use crate::store::{LedgerEntry, WalletRecord};

/// Escapes text for HTML.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A whole page.
pub fn page(title: &str, nav: Option<&str>, body: &str) -> String {
    let nav = nav.map_or(String::new(), |who| {
        format!(
            "<nav><a href=\"/console\">Balances</a> · <a href=\"/console/ledger\">Ledger</a> · \
             <a href=\"/console/prices\">Prices</a><span class=\"who\">{}</span></nav>",
            esc(who)
        )
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Cloak console</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         nav{{margin-bottom:1.5rem}}nav .who{{float:right;color:#666}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}}\
         form.inline{{display:inline}}.error{{color:#a00}}.ok{{color:#070}}\
         input,select,button{{font:inherit;padding:.3rem}}</style></head><body>{nav}<h1>{}</h1>{body}</body></html>",
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

/// Hidden fields every state-changing form carries.
pub fn form_guard(csrf: &str, idempotency_key: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"idempotency_key\" value=\"{}\">",
        esc(csrf),
        esc(idempotency_key)
    )
}

/// The wallets table.
pub fn wallets_table(tenant_id: uuid::Uuid, wallets: &[WalletRecord]) -> String {
    let mut rows = String::new();
    for w in wallets {
        let name = crate::services::billing::wallet_name(tenant_id, w.id);
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"balance\" data-wallet=\"{}\">{}</td><td><a href=\"/console/ledger?wallet={}\">ledger</a></td></tr>",
            esc(&name),
            esc(&name),
            w.balance,
            esc(&name)
        ));
    }
    if wallets.is_empty() {
        rows.push_str("<tr><td colspan=\"3\">No wallet has held credits yet.</td></tr>");
    }
    format!("<table id=\"wallets\"><tr><th>Wallet</th><th>Balance</th><th></th></tr>{rows}</table>")
}

/// The ledger table.
pub fn ledger_table(tenant_id: uuid::Uuid, entries: &[LedgerEntry]) -> String {
    let mut rows = String::new();
    for e in entries.iter().rev() {
        rows.push_str(&format!(
            "<tr class=\"entry\"><td>{}</td><td>{}</td><td>{}</td><td class=\"delta\">{}</td><td>{}</td><td class=\"reason\">{}</td><td>{}</td></tr>",
            e.id,
            esc(&crate::services::billing::wallet_name(tenant_id, e.wallet_id)),
            esc(&e.kind),
            e.delta,
            e.balance_after,
            esc(e.reason.as_deref().unwrap_or("")),
            esc(&e.actor)
        ));
    }
    format!(
        "<table id=\"ledger\"><tr><th>#</th><th>Wallet</th><th>Kind</th><th>Change</th><th>Balance</th><th>Reason</th><th>By</th></tr>{rows}</table>"
    )
}
