//! Tenants: created by the operator on the host (`cloak-api tenant create`); their
//! settings, changed over REST.

use rand::{CryptoRng, RngCore};
use secrecy::SecretString;
use uuid::Uuid;

use super::{ServiceError, api_keys};
use cloak_proto::Code;
use cloak_proto::tenants::{MailboxStorage, UpdateTenantRequest};

use crate::store::{NewTenant, Store, Tenant, TenantSettingsUpdate};

/// Longest tenant name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A created tenant and its first API key (shown once).
pub struct CreatedTenant {
    /// The tenant's id.
    pub tenant_id: Uuid,
    /// The tenant's name as stored.
    pub name: String,
    /// The first API key.
    pub api_key: SecretString,
}

/// Creates a tenant with one API key named `initial`.
pub async fn create(
    store: &dyn Store,
    name: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<CreatedTenant, ServiceError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid {
            code: Code::InvalidTenantName,
            detail: format!("a tenant name has 1 to {MAX_NAME_CHARS} printable characters"),
        });
    }
    let mut id_bytes = [0u8; 16];
    rng.fill_bytes(&mut id_bytes);
    let tenant = NewTenant {
        id: uuid::Builder::from_random_bytes(id_bytes).into_uuid(),
        name: name.to_owned(),
        created_at_ms: now_ms,
    };
    let key = api_keys::generate(tenant.id, "initial", now_ms, rng);
    store.create_tenant(&tenant, &key.record).await?;
    Ok(CreatedTenant {
        tenant_id: tenant.id,
        name: tenant.name,
        api_key: key.secret,
    })
}

/// A tenant's settings.
pub async fn get(store: &dyn Store, tenant_id: Uuid) -> Result<Tenant, ServiceError> {
    store
        .get_tenant(tenant_id)
        .await?
        .ok_or(ServiceError::NotFound("tenant"))
}

/// Checks an "Open in app" template: an absolute URL with a scheme that is not script or
/// data, naming `{code}` or `{link}`.
pub fn check_template(template: &str) -> Result<(), ServiceError> {
    let bad = |detail: &str| ServiceError::invalid(Code::InvalidTemplate, detail);
    let Some((scheme, _)) = template.split_once(':') else {
        return Err(bad(
            "the template must be an absolute URL such as myapp://join?invite={link}",
        ));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(bad("the template must start with a URL scheme"));
    }
    if ["javascript", "data", "vbscript", "file"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return Err(bad("script, data and file URLs are not allowed"));
    }
    if template
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "the template must not contain spaces or control characters",
        ));
    }
    if !template.contains("{code}") && !template.contains("{link}") {
        return Err(bad("the template must contain {code} or {link}"));
    }
    Ok(())
}

/// The "Open in app" URL from a template: `{code}`, `{fp}` and `{link}` (percent-encoded).
pub fn render_template(template: &str, code: &str, link: &str, fp: Option<&str>) -> String {
    let encoded = percent_encoding::utf8_percent_encode(link, percent_encoding::NON_ALPHANUMERIC);
    template
        .replace("{code}", code)
        .replace("{fp}", fp.unwrap_or(""))
        .replace("{link}", &encoded.to_string())
}

/// Changes a tenant's settings.
pub async fn update(
    store: &dyn Store,
    tenant_id: Uuid,
    request: &UpdateTenantRequest,
) -> Result<Tenant, ServiceError> {
    let template = match request.open_in_app_template.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(t) => {
            check_template(t)?;
            Some(Some(t.to_owned()))
        }
    };
    if request.mailbox_storage == Some(MailboxStorage::Memory) && !store.holds_memory_mailboxes() {
        return Err(ServiceError::Conflict {
            code: Code::MemoryMailboxUnavailable,
            detail: "mailbox_storage `memory` keeps offline messages in Redis, and this server runs without Redis (set CLOAK_REDIS_URL)".into(),
        });
    }
    let update = TenantSettingsUpdate {
        open_in_app_template: template,
        retention_ms: request.message_retention_secs.map(|s| i64::from(s) * 1000),
        mailbox_storage: request.mailbox_storage,
    };
    if !store.update_tenant_settings(tenant_id, &update).await? {
        return Err(ServiceError::NotFound("tenant"));
    }
    get(store, tenant_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_must_be_safe_urls_with_a_placeholder() {
        assert!(check_template("myapp://join?invite={link}").is_ok());
        assert!(check_template("https://app.example/join/{code}").is_ok());
        for bad in [
            "javascript:alert({code})",
            "JavaScript:alert({code})",
            "data:text/html,{code}",
            "myapp://join",
            "no scheme {code}",
            "/relative/{code}",
            "1app://{code}",
        ] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rendering_encodes_the_link() {
        let out = render_template(
            "myapp://join?i={link}&c={code}&f={fp}",
            "abc",
            "http://h/i/abc#fp=00",
            Some("00"),
        );
        assert_eq!(
            out,
            "myapp://join?i=http%3A%2F%2Fh%2Fi%2Fabc%23fp%3D00&c=abc&f=00"
        );
    }
}
