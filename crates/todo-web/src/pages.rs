//! The pages: the home page (signed out: a sign-in button; signed in: the user's todos with
//! forms to add, complete and delete them) and the form handlers. Every form is a POST with
//! the session's CSRF token; every handler answers with a redirect back to `/`
//! (post/redirect/get), so reloading never sends a form twice.

use crate::oidc::OidcError;
use crate::session::Tokens;
use crate::todo_api::{Todo, TodoApiError};
use crate::web::{render, CsrfForm, FormBody, SignedIn, WebError};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Longest todo title todo-api takes, in characters (checked there too).
const MAX_TITLE: usize = 500;
/// Refresh the access token when less than this much of its life is left, or less than a
/// quarter of its lifetime for short-lived tokens.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "todos.html")]
struct TodosPage<'a> {
    name: &'a str,
    csrf: &'a str,
    open: Vec<Todo>,
    done: Vec<Todo>,
}

#[derive(Deserialize)]
pub struct HomeQuery {
    /// Set by our own redirects: why the user sees the signed-out page.
    notice: Option<String>,
    /// Sigil's `state` after a sign-out there (RP-Initiated Logout 1.0 §3).
    state: Option<String>,
}

/// `GET /`: the todos of the signed-in user, else the sign-in button (with a note when a
/// session has just ended).
pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HomeQuery>,
) -> Result<Response, WebError> {
    let cookie_value = state.cookie.value(&headers);
    let session = cookie_value
        .as_deref()
        .and_then(|value| state.sessions.find(value));
    if let (Some(session), Some(cookie_value)) = (session, cookie_value.as_deref()) {
        let signed_in = SignedIn {
            session,
            cookie_value: crate::secret::Secret::new(cookie_value.to_string()),
        };
        let token = access_token(&state, &signed_in).await?;
        let todos = state.todo_api.list(&token).await.map_err(todo_api_error)?;
        let (done, open) = todos.into_iter().partition(|todo| todo.done);
        return render(&TodosPage {
            name: &signed_in.session.user.name,
            csrf: signed_in.session.csrf.expose(),
            open,
            done,
        });
    }
    let is_back_from_logout = query
        .state
        .as_deref()
        .is_some_and(|s| state.sessions.take_logout(s));
    let notice = match query.notice.as_deref() {
        Some("ended") => Some(
            "Your sign-in has expired or was revoked at Sigil. Sign in again to see your todos.",
        ),
        Some("signed-out") => Some("You have signed out."),
        _ if is_back_from_logout => Some("You have signed out of Todo and of Sigil."),
        // A cookie without a session: it ended (idle, or signed out elsewhere).
        _ if cookie_value.is_some() => {
            Some("Your session has ended. Sign in again to see your todos.")
        }
        _ => None,
    };
    let page = render(&SignedOutPage { notice })?;
    if cookie_value.is_some() {
        return Ok(([(header::SET_COOKIE, state.cookie.clear())], page).into_response());
    }
    Ok(page)
}

#[derive(Deserialize)]
pub struct AddForm {
    csrf: String,
    title: String,
}

/// `POST /todos`: adds a todo.
pub async fn add(
    State(state): State<AppState>,
    signed_in: SignedIn,
    FormBody(form): FormBody<AddForm>,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form.csrf)?;
    let title = form.title.trim();
    if title.is_empty() {
        return Err(WebError::BadRequest("A todo needs a title.".into()));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(WebError::BadRequest(format!(
            "A title has at most {MAX_TITLE} characters."
        )));
    }
    let token = access_token(&state, &signed_in).await?;
    state
        .todo_api
        .create(&token, title)
        .await
        .map_err(todo_api_error)?;
    Ok(Redirect::to("/").into_response())
}

/// `POST /todos/{id}/complete`: marks a todo done.
pub async fn complete(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    FormBody(form): FormBody<CsrfForm>,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form.csrf)?;
    let token = access_token(&state, &signed_in).await?;
    state
        .todo_api
        .complete(&token, &id)
        .await
        .map_err(todo_api_error)?;
    Ok(Redirect::to("/").into_response())
}

/// `POST /todos/{id}/delete`: deletes a todo.
pub async fn delete(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    FormBody(form): FormBody<CsrfForm>,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form.csrf)?;
    let token = access_token(&state, &signed_in).await?;
    state
        .todo_api
        .delete(&token, &id)
        .await
        .map_err(todo_api_error)?;
    Ok(Redirect::to("/").into_response())
}

pub async fn not_found() -> WebError {
    WebError::NotFound
}

/// The session's access token, refreshed first when it is about to expire. The session's
/// token lock is held across the refresh, so concurrent requests of one session (two tabs)
/// wait for one refresh instead of spending the same rotating refresh token twice; they
/// then find the new token. If Sigil refuses the refresh token (`invalid_grant`: revoked,
/// expired, or its family ended by a reuse), the session ends and the user signs in again.
async fn access_token(state: &AppState, signed_in: &SignedIn) -> Result<String, WebError> {
    let mut tokens = signed_in.session.tokens.lock().await;
    if needs_refresh(&tokens, Instant::now()) {
        match state.provider.refresh(&mut tokens).await {
            Ok(()) => tracing::debug!("refreshed the access token"),
            Err(OidcError::Unreachable(cause)) => {
                return Err(WebError::Upstream {
                    service: "Sigil",
                    cause,
                })
            }
            Err(e) => {
                tracing::info!(error = %e, "the refresh failed; the session ends");
                state.sessions.delete(signed_in.cookie_value.expose());
                return Err(WebError::SessionEnded);
            }
        }
    }
    Ok(tokens.access_token.expose().to_string())
}

/// Whether less than the refresh margin (30 s, or a quarter of the lifetime for shorter
/// tokens) is left.
fn needs_refresh(tokens: &Tokens, now: Instant) -> bool {
    let margin = REFRESH_MARGIN.min(tokens.access_token_lifetime / 4);
    tokens
        .access_token_expires_at
        .saturating_duration_since(now)
        <= margin
}

fn todo_api_error(error: TodoApiError) -> WebError {
    match error {
        TodoApiError::Unreachable(cause) => WebError::Upstream {
            service: "todo-api",
            cause,
        },
        TodoApiError::Refused { status: 404, .. } => {
            WebError::Refused("That todo does not exist (any more).".into())
        }
        TodoApiError::Refused { status, detail } if (400..500).contains(&status) => {
            WebError::Refused(if detail.is_empty() {
                format!("todo-api refused the request ({status}).")
            } else {
                detail
            })
        }
        TodoApiError::Refused { status, detail } => WebError::Upstream {
            service: "todo-api",
            cause: format!("{status}: {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn tokens(lifetime: u64, left: u64) -> (Tokens, Instant) {
        let now = Instant::now();
        let tokens = Tokens {
            access_token: Secret::new("at".into()),
            access_token_expires_at: now + Duration::from_secs(left),
            access_token_lifetime: Duration::from_secs(lifetime),
            refresh_token: None,
            id_token: Secret::new("id".into()),
        };
        (tokens, now)
    }

    #[test]
    fn refreshes_near_the_end_of_the_lifetime() {
        let (fresh, now) = tokens(600, 500);
        assert!(!needs_refresh(&fresh, now));
        let (late, now) = tokens(600, 20);
        assert!(needs_refresh(&late, now), "less than 30 s left");
        let (short, now) = tokens(8, 5);
        assert!(
            !needs_refresh(&short, now),
            "a short token is used for 3/4 of its life"
        );
        let (short, now) = tokens(8, 1);
        assert!(needs_refresh(&short, now));
        let (expired, now) = tokens(8, 0);
        assert!(needs_refresh(&expired, now));
    }
}
