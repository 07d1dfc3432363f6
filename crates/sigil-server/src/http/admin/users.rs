//! `/admin/users`: list, search, create, edit profiles, reset passwords, grant or remove the
//! admin role, disable and enable, and revoke the applications a user granted.

use super::path::{filters, segment, AdminPath, ClientId, UserId};
use super::{confirm, done, render, render_form, Admin, Chrome, Confirm, NoticeQuery};
use crate::http::error::PageError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sigil_core::admin::{AdminError, NewUser, ProfileUpdate, SignInFacts, UserGrant};
use sigil_core::secret::Secret;
use sigil_core::store::FactorKind;
use sigil_core::user::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/new", get(new_form).post(create))
        .route("/admin/users/{id}", get(show))
        .route("/admin/users/{id}/profile", post(profile))
        .route("/admin/users/{id}/password", post(password))
        .route("/admin/users/{id}/role", post(role))
        .route(
            "/admin/users/{id}/disable",
            get(confirm_disable).post(disable),
        )
        .route("/admin/users/{id}/enable", post(enable))
        .route("/admin/users/{id}/second-factor", post(second_factor))
        .route(
            "/admin/users/{id}/factors/reset",
            get(confirm_reset_factors).post(reset_factors),
        )
        .route("/admin/users/{id}/verification", post(send_verification))
        .route("/admin/users/invite", post(invite))
        .route(
            "/admin/users/{id}/grants/{client_id}/revoke",
            get(confirm_revoke).post(revoke),
        )
}

const LIST_LIMIT: i64 = 200;

#[derive(Template)]
#[template(path = "admin/users.html")]
struct ListPage {
    chrome: Chrome,
    sign_up: &'static str,
    query: String,
    users: Vec<User>,
    truncated: bool,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    notice: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let search = query.q.unwrap_or_default();
    let search = search.trim();
    let found = state
        .admin
        .list_users((!search.is_empty()).then_some(search), LIST_LIMIT + 1)
        .await;
    let mut users = found?;
    let truncated = users.len() as i64 > LIST_LIMIT;
    users.truncate(LIST_LIMIT as usize);
    render(&ListPage {
        chrome: admin.chrome(query.notice.as_deref()),
        sign_up: state.accounts.config().sign_up.as_str(),
        query: search.to_string(),
        users,
        truncated,
    })
}

#[derive(Template)]
#[template(path = "admin/user_new.html")]
struct NewPage {
    chrome: Chrome,
    username: String,
    name: String,
    email: String,
    is_admin: bool,
    must_change: bool,
    error: Option<String>,
}

async fn new_form(admin: Admin) -> Result<Response, PageError> {
    render(&NewPage {
        chrome: admin.chrome(None),
        username: String::new(),
        name: String::new(),
        email: String::new(),
        is_admin: false,
        must_change: true,
        error: None,
    })
}

async fn create(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let text = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
    let new = NewUser {
        username: text("username"),
        email: Some(text("email")),
        name: Some(text("name")),
        is_admin: !text("is_admin").is_empty(),
        must_change_password: !text("must_change_password").is_empty(),
        unverified_email: !text("unverified_email").is_empty(),
    };
    let result = state
        .admin
        .create_user(&admin.caller(), new.clone(), Secret::new(text("password")))
        .await;
    match result {
        Ok(user) => {
            if new.unverified_email {
                state
                    .accounts
                    .mail_verification(&admin.caller(), &user.id)
                    .await
                    .map_err(PageError::Account)?;
            }
            Ok(done(
                &format!("/admin/users/{}", segment(&user.id)),
                "user-created",
            ))
        }
        Err(AdminError::Invalid(message)) => render_form(
            &NewPage {
                chrome: admin.chrome(None),
                username: new.username,
                name: new.name.unwrap_or_default(),
                email: new.email.unwrap_or_default(),
                is_admin: new.is_admin,
                must_change: new.must_change_password,
                error: Some(message),
            },
            true,
        ),
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    chrome: Chrome,
    user: User,
    grants: Vec<UserGrant>,
    /// The user's second factors, and whether the policy (`--mfa`) requires one of them.
    factors: Vec<crate::http::account_security::FactorRow>,
    recovery_codes_left: i64,
    is_required_by_policy: bool,
    error: Option<String>,
    audit_link: String,
    /// The user's live browser sessions.
    sessions: Vec<super::sessions::SessionRow>,
    sign_in: SignInPanel,
}

/// The "Sign-in" panel of a user's page, in words.
struct SignInPanel {
    /// When and how they last signed in, if the audit log knows.
    last: Option<(String, String)>,
    failure_count: i64,
    last_failure: Option<String>,
    failures_last_week: String,
    identities: Vec<IdentityRow>,
}

struct IdentityRow {
    provider: String,
    email: Option<String>,
    linked: String,
    last_used: String,
}

impl SignInPanel {
    fn new(facts: SignInFacts) -> Self {
        let time = super::format_time;
        Self {
            last: facts
                .last_sign_in
                .map(|last| (time(last.at), last.method.describe())),
            failure_count: facts.failure_count,
            last_failure: facts.last_failure_at.map(time),
            failures_last_week: if facts.failures_last_week_capped {
                format!("more than {}", facts.failures_last_week)
            } else {
                facts.failures_last_week.to_string()
            },
            identities: facts
                .identities
                .into_iter()
                .map(|identity| IdentityRow {
                    provider: identity
                        .provider_name
                        .unwrap_or_else(|| format!("{} (removed)", identity.provider_id)),
                    email: identity.email,
                    linked: time(identity.linked_at),
                    last_used: identity
                        .last_used_at
                        .map(time)
                        .unwrap_or_else(|| "never".into()),
                })
                .collect(),
        }
    }
}

async fn find_user(state: &AppState, id: &str) -> Result<User, AdminError> {
    state.admin.find_user(id).await?.ok_or(AdminError::NotFound)
}

async fn user_page(
    state: &AppState,
    admin: &Admin,
    user_id: &str,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let user = find_user(state, user_id).await?;
    let grants = state.admin.user_grants(user_id).await?;
    let summary = state.factors.summary(user_id).await?;
    let mut factors = crate::http::account_security::rows(&summary, FactorKind::Totp);
    factors.extend(crate::http::account_security::rows(
        &summary,
        FactorKind::Passkey,
    ));
    let is_required_by_policy = state.factors.config().policy.requires_role(user.is_admin);
    let sessions = state
        .admin
        .user_sessions(user_id, state.session_ttl)
        .await?;
    let current = super::sessions::current_session_id(admin).await?;
    let sign_in = SignInPanel::new(state.admin.sign_in_facts(&user).await?);
    let is_invalid = error.is_some();
    let audit_link = format!(
        "/admin/audit?target={}",
        form_urlencoded::byte_serialize(user.username.as_bytes()).collect::<String>()
    );
    render_form(
        &UserPage {
            chrome: admin.chrome(notice),
            user,
            grants,
            factors,
            recovery_codes_left: summary.recovery_codes_left,
            is_required_by_policy,
            error,
            audit_link,
            sessions: super::sessions::rows(sessions, current.as_deref()),
            sign_in,
        },
        is_invalid,
    )
}

async fn show(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    user_page(&state, &admin, id.as_str(), query.notice.as_deref(), None).await
}

/// Runs an action from a user page: on success back to the page with a notice; a rule
/// broken is shown on the page.
async fn after(
    state: &AppState,
    admin: &Admin,
    id: &UserId,
    result: Result<(), AdminError>,
    notice: &str,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => Ok(done(&format!("/admin/users/{id}"), notice)),
        Err(AdminError::Invalid(message)) => {
            user_page(state, admin, id.as_str(), None, Some(message)).await
        }
        Err(error) => Err(error.into()),
    }
}

/// Mails an unverified user a new verification link.
async fn send_verification(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    state
        .accounts
        .mail_verification(&admin.caller(), id.as_str())
        .await
        .map_err(PageError::Account)?;
    Ok(done(&format!("/admin/users/{id}"), "verification-sent"))
}

/// Sends an invitation to sign up (with `--sign-up invite`).
async fn invite(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let email = form.single("email").ok().flatten().unwrap_or("");
    match state.accounts.invite(&admin.caller(), email).await {
        Ok(_) => Ok(done("/admin/users", "invitation-sent")),
        Err(sigil_core::accounts::AccountError::Fields(fields)) => Err(PageError::Admin(
            AdminError::Invalid(sigil_core::accounts::field_messages(&fields)),
        )),
        Err(error) => Err(PageError::Account(error)),
    }
}

async fn profile(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let text = |name: &str| form.single(name).ok().flatten().map(str::to_string);
    let update = ProfileUpdate {
        email: text("email"),
        email_verified: text("email_verified").is_some(),
        name: text("name"),
    };
    let result = state
        .admin
        .update_profile(&admin.caller(), id.as_str(), update)
        .await
        .map(|_| ());
    after(&state, &admin, &id, result, "saved").await
}

async fn password(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let new_password = form.single("password").ok().flatten().unwrap_or("");
    let must_change = form.single("must_change_password").ok().flatten().is_some();
    let result = state
        .admin
        .reset_password(
            &admin.caller(),
            id.as_str(),
            Secret::new(new_password),
            must_change,
        )
        .await
        .map(|_| ());
    after(&state, &admin, &id, result, "password-reset").await
}

async fn role(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let is_admin = form.single("is_admin").ok().flatten() == Some("1");
    let result = state
        .admin
        .set_admin(&admin.caller(), id.as_str(), is_admin)
        .await
        .map(|_| ());
    after(&state, &admin, &id, result, "saved").await
}

/// Requires a second factor of this user, or no longer (the policy may still).
async fn second_factor(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let is_required = form.single("requires_second_factor").ok().flatten() == Some("1");
    let result = state
        .admin
        .set_second_factor_required(&admin.caller(), id.as_str(), is_required)
        .await
        .map(|_| ());
    after(&state, &admin, &id, result, "saved").await
}

async fn confirm_reset_factors(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
) -> Result<Response, PageError> {
    let user = find_user(&state, id.as_str()).await?;
    confirm(
        &admin,
        Confirm {
            title: format!("Reset the second factors of {}?", user.username),
            message: "Every authenticator app, passkey and recovery code of theirs is removed, and they are told by mail. Do this only when you know it is them asking (they lost their phone, say): whoever has their password can then sign in with it alone, unless a second factor is required, in which case they add a new one at their next sign-in.",
            action: format!("/admin/users/{id}/factors/reset"),
            button: "Reset second factors",
            cancel: format!("/admin/users/{id}"),
            is_danger: true,
        },
    )
}

async fn reset_factors(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    let user = find_user(&state, id.as_str()).await?;
    state.factors.reset(&admin.caller(), &user).await?;
    tracing::info!(user = %user.id, "second factors reset by an admin");
    Ok(done(&format!("/admin/users/{id}"), "factors-reset"))
}

async fn confirm_disable(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
) -> Result<Response, PageError> {
    let user = find_user(&state, id.as_str()).await?;
    confirm(
        &admin,
        Confirm {
            title: format!("Disable {}?", user.username),
            message: "They can no longer sign in. All their sessions end and all their refresh tokens are revoked at once; their access tokens stop passing introspection and userinfo.",
            action: format!("/admin/users/{id}/disable"),
            button: "Disable user",
            cancel: format!("/admin/users/{id}"),
            is_danger: true,
        },
    )
}

async fn disable(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    set_disabled(&state, &admin, &id, &body, true).await
}

async fn enable(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<UserId>,
    body: Bytes,
) -> Result<Response, PageError> {
    set_disabled(&state, &admin, &id, &body, false).await
}

async fn set_disabled(
    state: &AppState,
    admin: &Admin,
    id: &UserId,
    body: &[u8],
    is_disabled: bool,
) -> Result<Response, PageError> {
    admin.form(body).await?;
    let result = state
        .admin
        .set_disabled(&admin.caller(), id.as_str(), is_disabled)
        .await
        .map(|_| ());
    let notice = if is_disabled {
        "user-disabled"
    } else {
        "user-enabled"
    };
    after(state, admin, id, result, notice).await
}

async fn confirm_revoke(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath((id, client_id)): AdminPath<(UserId, ClientId)>,
) -> Result<Response, PageError> {
    let user = find_user(&state, id.as_str()).await?;
    let client_name = state
        .admin
        .find_client(client_id.as_str())
        .await?
        .map(|c| c.name)
        .unwrap_or_else(|| client_id.to_string());
    confirm(
        &admin,
        Confirm {
            title: format!("Revoke {client_name}'s access for {}?", user.username),
            message: "The remembered consent is forgotten and every refresh token the application holds for this user is revoked. The application must ask again.",
            action: format!("/admin/users/{id}/grants/{client_id}/revoke"),
            button: "Revoke access",
            cancel: format!("/admin/users/{id}"),
            is_danger: true,
        },
    )
}

async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath((id, client_id)): AdminPath<(UserId, ClientId)>,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    let result = state
        .admin
        .revoke_grant(&admin.caller(), id.as_str(), client_id.as_str())
        .await;
    after(&state, &admin, &id, result, "grant-revoked").await
}
