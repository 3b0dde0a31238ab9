//! `GET /i/{code}`: the page a person sees when opening an invite link in a browser.
//! Server-rendered, no external assets: the QR code is inline SVG.

use actix_web::{HttpResponse, get, web};
use cloak_proto::Code;

use super::invites::invite_url;
use super::problem::ApiError;
use crate::services::{ServiceError, invites, qr, tenants};
use crate::state::AppState;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;\
         padding:0 1rem;text-align:center;color:#222}}.qr svg{{width:16rem;height:16rem}}\
         a.open{{display:inline-block;margin-top:1rem;padding:.75rem 1.5rem;background:#222;color:#fff;\
         border-radius:.5rem;text-decoration:none}}</style></head><body>{body}</body></html>"
    )
}

/// The invite's landing page: who invites, the QR code, an "Open in app" link, or why the
/// invite no longer works.
#[utoipa::path(
    tag = "invites",
    params(("code" = String, Path, description = "Invite code")),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html", body = String),
        (status = 404, description = "No such invite (HTML page)", content_type = "text/html", body = String),
        (status = 410, description = "Expired, revoked or used up (HTML page)", content_type = "text/html", body = String),
    )
)]
#[get("/i/{code}")]
pub async fn landing_page(
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let html = |status: actix_web::http::StatusCode, title: &str, body: String| {
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ))
            .body(page(title, &body))
    };
    let invite = match invites::find(state.store.as_ref(), &code).await {
        Ok(i) => i,
        Err(ServiceError::NotFound(_)) => {
            return Ok(html(
                actix_web::http::StatusCode::NOT_FOUND,
                "Invite not found",
                "<h1>Invite not found</h1><p>Check the link you were given.</p>".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let inviter = state
        .store
        .get_user(invite.tenant_id, invite.inviter_user_id)
        .await?
        .map(|u| u.display_name)
        .unwrap_or_default();
    if let Some(ServiceError::Gone { code, .. }) = invites::unusable(&invite, state.clock.now_ms())
    {
        let why = match code {
            Code::InviteExpired => "This invite has expired.",
            Code::InviteRevoked => "This invite was withdrawn.",
            _ => "This invite has been used as often as allowed.",
        };
        return Ok(html(
            actix_web::http::StatusCode::GONE,
            "Invite no longer valid",
            format!(
                "<h1 data-state=\"{code}\">Invite no longer valid</h1><p>{why}</p><p>Ask {} for a new one.</p>",
                escape(&inviter)
            ),
        ));
    }
    let url = invite_url(&state, &invite).await?;
    let svg = qr::svg(&url)?;
    let open = match tenants::get(state.store.as_ref(), invite.tenant_id)
        .await?
        .open_in_app_template
    {
        Some(template) => {
            let fp = url.split_once("#fp=").map(|(_, fp)| fp);
            tenants::render_template(&template, &invite.code, &url, fp)
        }
        None => url.clone(),
    };
    Ok(html(
        actix_web::http::StatusCode::OK,
        "You're invited",
        format!(
            "<h1 data-state=\"valid\">{} invites you to chat</h1><p>Scan the code with the app, or open the link on this device.</p>\
             <div class=\"qr\">{svg}</div><a class=\"open\" href=\"{}\">Open in app</a>\
             <p class=\"fp\">Key fingerprint as the server's directory holds it (trust on first use).</p>",
            escape(&inviter),
            escape(&open)
        ),
    ))
}
