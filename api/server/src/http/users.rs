//! `/v1/users`: the tenant's backend manages its end users and mints their tokens.

use crate::http::documented::problems;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use cloak_proto::users::{
    CreateContactRequest, CreateUserRequest, UpdateUserRequest, User, UserList, UserQuery,
    UserToken,
};
use secrecy::ExposeSecret;
use uuid::Uuid;
use validator::Validate;

use super::auth::TenantAuth;
use super::extract::ValidatedJson;
use super::problem::ApiError;
use crate::clock::to_datetime;
use crate::services::users;
use crate::state::AppState;
use crate::store::{UserPatch, UserRecord};

/// The wire form of a user.
pub fn user_view(u: &UserRecord) -> User {
    User {
        id: u.id,
        external_id: u.external_id.clone(),
        display_name: u.display_name.clone(),
        trust_level: u.trust_level.clone(),
        suspended: u.suspended,
        created_at: to_datetime(u.created_at_ms),
    }
}

problems!(CreateUserProblems: ExternalIdTaken);

/// Creates an end user.
#[utoipa::path(
    tag = "users",
    security(("api_key" = [])),
    request_body = CreateUserRequest,
    responses(
        CreateUserProblems,
        (status = 201, description = "Created", body = User),
    )
)]
#[post("/v1/users")]
pub async fn create_user(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = users::create(
        state.store.as_ref(),
        auth.0.tenant_id,
        &body.0.external_id,
        &body.0.display_name,
        state.clock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await?;
    Ok(HttpResponse::Created().json(user_view(&user)))
}

problems!(FindUsersProblems: ValidationFailed, InvalidCursor);

/// Lists the tenant's users, oldest first, in cursor pages (`next_cursor`), filtered by
/// trust level and suspension; with `external_id`, finds that one user (zero or one).
#[utoipa::path(
    tag = "users",
    security(("api_key" = [])),
    params(UserQuery),
    responses(
        FindUsersProblems,
        (status = 200, description = "A page of users", body = UserList),
    )
)]
#[get("/v1/users")]
pub async fn find_users(
    auth: TenantAuth,
    state: web::Data<AppState>,
    query: web::Query<UserQuery>,
) -> Result<web::Json<UserList>, ApiError> {
    query.validate().map_err(|e| ApiError::validation(&e))?;
    let (found, next_cursor) = users::list(state.store.as_ref(), auth.0.tenant_id, &query).await?;
    Ok(web::Json(UserList {
        items: found.iter().map(user_view).collect(),
        next_cursor,
    }))
}

problems!(GetUserProblems: NotFound);

/// Reads a user.
#[utoipa::path(
    tag = "users",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        GetUserProblems,
        (status = 200, description = "The user", body = User),
    )
)]
#[get("/v1/users/{id}")]
pub async fn get_user(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<User>, ApiError> {
    let user = users::get(state.store.as_ref(), auth.0.tenant_id, *id).await?;
    Ok(web::Json(user_view(&user)))
}

problems!(UpdateUserProblems: UnknownTrustLevel, NotFound);

/// Changes a user's display name, trust level or suspension. Suspending stops the user's
/// tokens and devices at once.
#[utoipa::path(
    tag = "users",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = UpdateUserRequest,
    responses(
        UpdateUserProblems,
        (status = 200, description = "The updated user", body = User),
    )
)]
#[patch("/v1/users/{id}")]
pub async fn update_user(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: ValidatedJson<UpdateUserRequest>,
) -> Result<web::Json<User>, ApiError> {
    let b = body.0;
    let patch = UserPatch {
        display_name: b.display_name,
        trust_level: b.trust_level,
        suspended: b.suspended,
    };
    let suspends = patch.suspended == Some(true);
    let user = users::update(state.store.as_ref(), auth.0.tenant_id, *id, patch).await?;
    state.user_changed(auth.0.tenant_id, *id, suspends).await;
    Ok(web::Json(user_view(&user)))
}

problems!(DeleteUserProblems: NotFound);

/// Deletes a user with their devices, key packages and queued messages.
#[utoipa::path(
    tag = "users",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        DeleteUserProblems,
        (status = 204, description = "Deleted"),
    )
)]
#[delete("/v1/users/{id}")]
pub async fn delete_user(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // Their sockets are told to close before the devices go.
    state.user_changed(auth.0.tenant_id, *id, true).await;
    users::delete(state.store.as_ref(), auth.0.tenant_id, *id).await?;
    state.user_changed(auth.0.tenant_id, *id, false).await;
    Ok(HttpResponse::NoContent().finish())
}

problems!(CreateUserTokenProblems: NotFound, SuspendedUser);

/// Mints a short-lived user token (15 minutes) for the tenant's app to register and log in
/// the user's devices.
#[utoipa::path(
    tag = "users",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        CreateUserTokenProblems,
        (status = 201, description = "A new token", body = UserToken),
    )
)]
#[post("/v1/users/{id}/tokens")]
pub async fn create_user_token(
    auth: TenantAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (token, expires) = users::issue_token(
        state.store.as_ref(),
        &state.tokens,
        auth.0.tenant_id,
        *id,
        state.clock.now_ms(),
    )
    .await?;
    Ok(HttpResponse::Created().json(UserToken {
        token: token.expose_secret().to_owned(),
        expires_at: to_datetime(expires),
    }))
}

problems!(CreateContactProblems: SelfContact, NotFound);

/// Makes two users contacts of each other (idempotent).
#[utoipa::path(
    tag = "users",
    security(("api_key" = [])),
    request_body = CreateContactRequest,
    responses(
        CreateContactProblems,
        (status = 204, description = "They are contacts"),
    )
)]
#[post("/v1/contacts")]
pub async fn create_contact(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: ValidatedJson<CreateContactRequest>,
) -> Result<HttpResponse, ApiError> {
    users::add_contact(
        state.store.as_ref(),
        auth.0.tenant_id,
        body.0.user_id,
        body.0.contact_user_id,
        state.clock.now_ms(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
