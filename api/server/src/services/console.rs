//! The billing-admin console's accounts: created by the tenant's backend with a one-time
//! set-up link, passwords hashed with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane),
//! lockout after repeated failures, sessions with a CSRF token, and roles.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloak_proto::Code;
use rand::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::ServiceError;
use super::api_keys::hash_secret;
use crate::store::{ConsoleAccount, ConsoleSession, Store};

/// Consecutive failed logins that lock an account.
pub const LOCK_AFTER: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_MS: i64 = 15 * 60 * 1000;
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;
/// How long a set-up link works.
pub const SETUP_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// What a console account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including the price table.
    Owner,
    /// Buy, grant and adjust credits.
    BillingAdmin,
    /// Read only.
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "billing_admin" => Some(Self::BillingAdmin),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::BillingAdmin => "billing_admin",
            Self::Viewer => "viewer",
        }
    }

    /// Buy, grant and adjust credits.
    pub fn can_spend(self) -> bool {
        matches!(self, Self::Owner | Self::BillingAdmin)
    }

    /// Change prices.
    pub fn can_price(self) -> bool {
        self == Self::Owner
    }
}

fn argon2() -> Argon2<'static> {
    // OWASP's first recommendation for Argon2id. The constants are valid, so `Params::new`
    // cannot fail; the default (also valid) is a fallback that is never taken.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An Argon2id PHC string for `password`.
pub fn hash_password(
    password: &str,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String, ServiceError> {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ServiceError::Store(crate::store::StoreError::Database(e.to_string())))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Store(crate::store::StoreError::Database(e.to_string())))
}

/// [`verify_password`] on a blocking thread.
async fn blocking_verify(password: &str, phc: String) -> bool {
    let password = zeroize::Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false)
}

/// Whether `password` matches the PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

fn random_token(prefix: &str, rng: &mut (impl RngCore + CryptoRng)) -> SecretString {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    SecretString::from(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn check_email(email: &str) -> Result<String, ServiceError> {
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ServiceError::invalid(
            Code::InvalidEmail,
            "not an e-mail address",
        ));
    }
    Ok(email)
}

/// A new account (no password yet) and its one-time set-up token.
pub async fn create_account(
    store: &dyn Store,
    tenant_id: Uuid,
    email: &str,
    role: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(ConsoleAccount, SecretString), ServiceError> {
    let email = check_email(email)?;
    let role = Role::parse(role).ok_or_else(|| {
        ServiceError::invalid(
            Code::InvalidRole,
            "the role is owner, billing_admin or viewer",
        )
    })?;
    let token = random_token("cs_", rng);
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let account = ConsoleAccount {
        id: uuid::Builder::from_random_bytes(id).into_uuid(),
        tenant_id,
        email,
        role: role.as_str().into(),
        password_hash: None,
        setup_expires_at_ms: Some(now_ms + SETUP_MS),
        failed_logins: 0,
        locked_until_ms: None,
        created_at_ms: now_ms,
    };
    if !store
        .create_console_account(&account, &hash_secret(token.expose_secret()))
        .await?
    {
        return Err(ServiceError::conflict(
            Code::EmailTaken,
            "this tenant already has a console account with this e-mail address",
        ));
    }
    Ok((account, token))
}

/// The one-time link that sets up a new account.
pub fn setup_url(public_url: &str, token: &SecretString) -> String {
    format!("{public_url}/console/setup?token={}", token.expose_secret())
}

/// Checks a new password: 12 to 128 characters.
pub fn check_password(password: &str) -> Result<(), ServiceError> {
    let n = password.chars().count();
    if !(12..=128).contains(&n) {
        return Err(ServiceError::invalid(
            Code::WeakPassword,
            "a password has 12 to 128 characters",
        ));
    }
    Ok(())
}

/// Sets the password of the account the set-up token belongs to (once).
pub async fn complete_setup(
    store: &dyn Store,
    token: &str,
    password: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<ConsoleAccount, ServiceError> {
    let account = store
        .console_account_by_setup_token(&hash_secret(token))
        .await?
        .filter(|a| a.setup_expires_at_ms.is_some_and(|t| t > now_ms))
        .ok_or_else(|| ServiceError::Gone {
            code: Code::SetupLinkInvalid,
            detail: "this set-up link is unknown, used or expired".into(),
        })?;
    check_password(password)?;
    let mut salt_rng = [0u8; 32];
    rng.fill_bytes(&mut salt_rng);
    let password = zeroize::Zeroizing::new(password.to_owned());
    // Argon2id takes tens of milliseconds of CPU: off the request threads.
    let phc = tokio::task::spawn_blocking(move || {
        hash_password(
            &password,
            &mut <rand::rngs::StdRng as rand::SeedableRng>::from_seed(salt_rng),
        )
    })
    .await
    .map_err(|e| ServiceError::Store(crate::store::StoreError::Database(e.to_string())))??;
    store.set_console_password(account.id, &phc).await?;
    Ok(account)
}

/// A new session: the cookie value (shown once) and the stored session.
pub struct NewSession {
    pub cookie: SecretString,
    pub session: ConsoleSession,
}

/// Logs in with e-mail and password. Unknown e-mail, wrong password and a locked account
/// all answer alike to the caller (`invalid_login` / `account_locked`).
///
/// An address is unique per tenant, so it may have accounts at several tenants: `tenant`
/// (a tenant id) picks one; without it the password is tried on each unlocked account,
/// oldest first, and opens the first it fits. A failure counts against each account tried.
pub async fn login(
    store: &dyn Store,
    email: &str,
    password: &str,
    tenant: Option<Uuid>,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<NewSession, ServiceError> {
    let refused =
        || ServiceError::unauthorized(Code::InvalidLogin, "wrong e-mail address or password");
    let email = email.trim().to_ascii_lowercase();
    let mut candidates = store.console_accounts_by_email(&email).await?;
    if let Some(tenant) = tenant {
        candidates.retain(|a| a.tenant_id == tenant);
    }
    if candidates.is_empty() {
        // Same work as a real check, so timing does not tell which addresses exist.
        blocking_verify(password, DUMMY_HASH.to_owned()).await;
        return Err(refused());
    }
    let (locked, open): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|a| a.locked_until_ms.is_some_and(|t| t > now_ms));
    if open.is_empty() && !locked.is_empty() {
        return Err(ServiceError::forbidden(
            Code::AccountLocked,
            "too many failed logins; try again in 15 minutes",
        ));
    }
    let mut signed_in = None;
    for a in &open {
        let ok = match a.password_hash.clone() {
            Some(phc) => blocking_verify(password, phc).await,
            None => false,
        };
        if ok {
            signed_in = Some(a.clone());
            break;
        }
    }
    let Some(account) = signed_in else {
        for a in &open {
            store
                .console_login_failed(a.id, LOCK_AFTER, now_ms + LOCK_MS)
                .await?;
        }
        return Err(refused());
    };
    store.console_login_succeeded(account.id).await?;
    let cookie = random_token("", rng);
    let csrf = random_token("", rng);
    let session = ConsoleSession {
        token_hash: hash_secret(cookie.expose_secret()).to_vec(),
        account_id: account.id,
        tenant_id: account.tenant_id,
        csrf_token: csrf.expose_secret().to_owned(),
        expires_at_ms: now_ms + SESSION_MS,
        created_at_ms: now_ms,
    };
    store.create_console_session(&session).await?;
    Ok(NewSession { cookie, session })
}

/// An Argon2id hash of a random password, for equal timing on unknown e-mail addresses.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3qU2BuKhbaB0fRRV8lDfzNQ7MXvD5d7Pn1E3kdbBZ3s";

/// The wire's closed set of roles (in the API spec), one for one with [`Role`].
impl From<Role> for cloak_proto::console::ConsoleRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::BillingAdmin => Self::BillingAdmin,
            Role::Viewer => Self::Viewer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_in_the_spec_are_the_roles_the_server_knows() {
        for role in [Role::Owner, Role::BillingAdmin, Role::Viewer] {
            let wire = serde_json::to_value(cloak_proto::console::ConsoleRole::from(role))
                .expect("a role serializes");
            assert_eq!(wire, role.as_str());
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn passwords_hash_with_owasp_argon2id_and_verify() {
        let phc = hash_password("correct horse battery", &mut rand::rngs::OsRng).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterz", &phc));
        assert!(!verify_password("x", "not a hash"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn roles_and_inputs() {
        assert!(Role::parse("owner").is_some_and(Role::can_price));
        assert!(Role::parse("billing_admin").is_some_and(|r| r.can_spend() && !r.can_price()));
        assert!(Role::parse("viewer").is_some_and(|r| !r.can_spend()));
        assert!(Role::parse("root").is_none());
        assert!(check_email(" Ann@Example.COM ").is_ok_and(|e| e == "ann@example.com"));
        assert!(check_email("nope").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough pass").is_ok());
    }
}
