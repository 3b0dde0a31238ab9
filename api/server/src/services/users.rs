//! End users: created and managed by the tenant's backend, which mints their tokens.

use cloak_proto::Code;
use rand::{CryptoRng, RngCore};
use secrecy::SecretString;
use uuid::Uuid;

use super::ServiceError;
use super::ids::new_id;
use super::tokens::{TokenKind, TokenSigner};
use crate::store::{NewUser, Store, StoreError, UserPatch, UserRecord};

/// How long a user token lives.
pub const USER_TOKEN_TTL_MS: i64 = 15 * 60 * 1000;

fn not_found() -> ServiceError {
    ServiceError::NotFound("user")
}

/// Creates a user at the lowest trust level.
pub async fn create(
    store: &dyn Store,
    tenant_id: Uuid,
    external_id: &str,
    display_name: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<UserRecord, ServiceError> {
    let lowest = super::limits::levels(store, tenant_id)
        .await?
        .into_iter()
        .next()
        .map_or_else(|| "new".to_owned(), |l| l.name);
    let user = NewUser {
        id: new_id(rng),
        tenant_id,
        external_id: external_id.to_owned(),
        display_name: display_name.trim().to_owned(),
        trust_level: lowest,
        created_at_ms: now_ms,
    };
    match store.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::conflict(
                Code::ExternalIdTaken,
                "a user with this external_id already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(UserRecord {
        id: user.id,
        tenant_id,
        external_id: user.external_id,
        display_name: user.display_name,
        trust_level: user.trust_level,
        suspended: false,
        created_at_ms: now_ms,
    })
}

/// A user of the tenant.
pub async fn get(
    store: &dyn Store,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<UserRecord, ServiceError> {
    store
        .get_user(tenant_id, user_id)
        .await?
        .ok_or_else(not_found)
}

/// The user with this external id, if any.
pub async fn find_by_external_id(
    store: &dyn Store,
    tenant_id: Uuid,
    external_id: &str,
) -> Result<Option<UserRecord>, ServiceError> {
    Ok(store
        .find_user_by_external_id(tenant_id, external_id)
        .await?)
}

/// A page of the tenant's users (oldest first), or the one with `external_id`; with the
/// next page's cursor when the page is full.
pub async fn list(
    store: &dyn Store,
    tenant_id: Uuid,
    query: &cloak_proto::users::UserQuery,
) -> Result<(Vec<UserRecord>, Option<String>), ServiceError> {
    let filter = crate::store::UserFilter {
        trust_level: query.trust_level.clone(),
        suspended: query.suspended,
    };
    if let Some(external_id) = &query.external_id {
        let found = store
            .find_user_by_external_id(tenant_id, external_id)
            .await?
            .filter(|u| {
                filter
                    .trust_level
                    .as_ref()
                    .is_none_or(|l| *l == u.trust_level)
            })
            .filter(|u| filter.suspended.is_none_or(|s| s == u.suspended));
        return Ok((found.into_iter().collect(), None));
    }
    let limit = i64::from(query.limit.unwrap_or(super::paging::DEFAULT_LIMIT));
    let after = super::paging::decode_uuid(query.cursor.as_deref())?;
    let users = store.list_users(tenant_id, &filter, after, limit).await?;
    let next = super::paging::next(&users, limit, |u| (u.created_at_ms, u.id.to_string()));
    Ok((users, next))
}

/// Changes display name, trust level or suspension.
pub async fn update(
    store: &dyn Store,
    tenant_id: Uuid,
    user_id: Uuid,
    patch: UserPatch,
) -> Result<UserRecord, ServiceError> {
    if let Some(level) = &patch.trust_level {
        super::limits::check_level_name(store, tenant_id, level).await?;
    }
    let patch = UserPatch {
        display_name: patch.display_name.map(|n| n.trim().to_owned()),
        ..patch
    };
    store
        .update_user(tenant_id, user_id, &patch)
        .await?
        .ok_or_else(not_found)
}

/// Deletes the user with everything attached to it.
pub async fn delete(store: &dyn Store, tenant_id: Uuid, user_id: Uuid) -> Result<(), ServiceError> {
    if store.delete_user(tenant_id, user_id).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// Mints a user token for the tenant's app.
pub async fn issue_token(
    store: &dyn Store,
    signer: &TokenSigner,
    tenant_id: Uuid,
    user_id: Uuid,
    now_ms: i64,
) -> Result<(SecretString, i64), ServiceError> {
    let user = get(store, tenant_id, user_id).await?;
    if user.suspended {
        return Err(ServiceError::conflict(
            Code::SuspendedUser,
            "the user is suspended",
        ));
    }
    let expires = now_ms + USER_TOKEN_TTL_MS;
    Ok((
        signer.issue(TokenKind::User, tenant_id, user_id, now_ms, expires),
        expires,
    ))
}

/// Makes two users contacts of each other.
pub async fn add_contact(
    store: &dyn Store,
    tenant_id: Uuid,
    a: Uuid,
    b: Uuid,
    now_ms: i64,
) -> Result<(), ServiceError> {
    if a == b {
        return Err(ServiceError::invalid(
            Code::SelfContact,
            "a user cannot be their own contact",
        ));
    }
    if store.add_contact(tenant_id, a, b, now_ms).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}
