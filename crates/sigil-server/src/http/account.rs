//! `GET, POST /account/password`: a signed-in user changes their own password. Until a
//! password set for one-time use (by an admin's reset, or the bootstrap admin's) is
//! replaced here, no sign-in finishes: the authorization flow sends the browser here and
//! resumes the pending request afterwards. Changing the password ends every other session
//! and revokes the user's refresh tokens and access tokens; this session continues.

use super::authorize::proceed;
use super::browser;
use super::error::PageError;
use super::form::OAuthForm;
use super::{pages, respond};
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::accounts::AccountError;
use sigil_core::audit::Caller;
use sigil_core::secret::Secret;
use sigil_core::user::User;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new().route("/account/password", get(show).post(change))
}

#[derive(Template)]
#[template(path = "account_password.html")]
struct PasswordPage<'a> {
    csrf: &'a str,
    req: &'a str,
    username: &'a str,
    forced: bool,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct PasswordQuery {
    req: Option<String>,
}

/// The user this session is signed in as, if the session still counts for them.
async fn current_user(state: &AppState, session: &Session) -> Result<Option<User>, PageError> {
    Ok(browser::current_user(state, session, None)
        .await?
        .map(|(user, _)| user))
}

/// A pending-request id as Sigil makes them (`browser::save_pending`: 16 random bytes), or
/// nothing.
pub(super) fn request_id(req: Option<&str>) -> &str {
    match req {
        Some(id) if sigil_core::secret::is_random_token(id, 16) => id,
        _ => "",
    }
}

fn sign_in_first(req: &str) -> Response {
    let target = if req.is_empty() {
        "/login".to_string()
    } else {
        format!("/login?req={req}")
    };
    respond::see_other(&target)
}

/// The password form; shown again with `error` (422) when the change was refused.
async fn page(
    session: &Session,
    user: &User,
    req: &str,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let csrf = browser::csrf_token(session).await?;
    let page = pages::render(
        &PasswordPage {
            csrf: &csrf,
            req,
            username: &user.username,
            forced: user.must_change_password,
            error,
        },
        &[],
    )?;
    match error {
        Some(_) => Err(PageError::InvalidForm(page)),
        None => Ok(page.into_response()),
    }
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PasswordQuery>,
) -> Result<Response, PageError> {
    let req = request_id(query.req.as_deref());
    match current_user(&state, &session).await? {
        Some(user) => page(&session, &user, req, None).await,
        None => Ok(sign_in_first(req)),
    }
}

async fn change(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let field = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
    let req = request_id(form.single("req").ok().flatten()).to_string();
    let Some(user) = current_user(&state, &session).await? else {
        return Ok(sign_in_first(&req));
    };
    let new_password = field("new_password");
    if new_password != field("repeat_password") {
        return page(&session, &user, &req, Some("The two new passwords differ.")).await;
    }
    let result = state
        .accounts
        .change_password(
            &Caller::user(user.id.clone(), user.username.clone(), peer.0.clone()),
            &user.id,
            Secret::new(field("current_password")),
            Secret::new(new_password),
        )
        .await;
    let user = match result {
        Ok(user) => user,
        Err(AccountError::Fields(fields)) => {
            let message = sigil_core::accounts::field_messages(&fields);
            return page(&session, &user, &req, Some(&message)).await;
        }
        Err(AccountError::WrongPassword) => {
            return page(
                &session,
                &user,
                &req,
                Some("The current password is not correct."),
            )
            .await
        }
        Err(error) => return Err(PageError::Account(error)),
    };
    // Every session ended with the new epoch; this one continues as a new one.
    let now = state.authority.now();
    let methods = browser::methods_with_password(&session, &user.id, now).await?;
    browser::start_session(&state, &session, &user, peer.0.clone(), &headers, methods).await?;
    tracing::info!(user = %user.id, "password changed");
    if !req.is_empty() {
        return match browser::find_pending(&session, &req, now).await? {
            Some(pending) => proceed(&state, &session, &req, pending).await,
            None => Err(PageError::SignInExpired),
        };
    }
    Ok(pages::message(
        "Password changed",
        "Your new password is set. Other browsers and apps signed in as you have been signed out.",
        false,
    )?
    .into_response())
}
