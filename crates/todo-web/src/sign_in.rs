//! `GET /login` and `GET /callback`: the authorization code flow with PKCE (RFC 7636),
//! `state` (RFC 6749 §10.12) and `nonce` (OIDC Core §3.1.2.1), the sign-in kept on the
//! server until the callback.

use crate::oidc::OidcError;
use crate::web::WebError;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// `GET /login`: starts a sign-in at Sigil. The state, nonce and PKCE verifier stay here,
/// under a fresh cookie; the browser carries only the cookie and the `state`.
pub async fn login(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let is_signed_in = state
        .cookie
        .value(&headers)
        .is_some_and(|value| state.sessions.find(&value).is_some());
    if is_signed_in {
        return Redirect::to("/").into_response();
    }
    let (authorize_url, pending) = state.provider.start_login();
    let Some(cookie_value) = state.sessions.create_pending(pending) else {
        return WebError::Upstream {
            service: "todo-web",
            cause: "too many sign-ins in flight".into(),
        }
        .into_response();
    };
    (
        [(header::SET_COOKIE, state.cookie.set(&cookie_value))],
        Redirect::to(authorize_url.as_str()),
    )
        .into_response()
}

/// What Sigil sends back (RFC 6749 §4.1.2, §4.1.2.1; `iss` from RFC 9207).
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`: checks `state` against the sign-in this browser started, exchanges the
/// code, validates the ID token, and starts a session under a new cookie value (so a
/// value planted before sign-in is worth nothing after it).
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, WebError> {
    let pending = state
        .cookie
        .value(&headers)
        .and_then(|value| state.sessions.take_pending(&value))
        .ok_or_else(|| {
            WebError::SignIn(
                "This sign-in has expired or was started in another browser. Start again.".into(),
            )
        })?;
    if let Some(iss) = query.iss.as_deref() {
        if iss != state.provider.issuer() {
            return Err(WebError::SignIn(
                "The answer came from another issuer.".into(),
            ));
        }
    }
    let state_matches = query
        .state
        .as_deref()
        .is_some_and(|returned| pending.state.matches(returned));
    if !state_matches {
        return Err(WebError::SignIn(
            "The answer does not belong to the sign-in this browser started. Start again.".into(),
        ));
    }
    if let Some(error) = query.error {
        let text = match error.as_str() {
            "access_denied" => "Access was not allowed at Sigil.".to_string(),
            _ => format!(
                "Sigil answered {error}{}",
                query
                    .error_description
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        };
        return Err(WebError::SignIn(text));
    }
    let code = query
        .code
        .ok_or_else(|| WebError::BadRequest("the callback has no code".into()))?;
    let (user, tokens) =
        state
            .provider
            .finish_login(&pending, &code)
            .await
            .map_err(|e| match e {
                OidcError::Unreachable(cause) => WebError::Upstream {
                    service: "Sigil",
                    cause,
                },
                OidcError::Refused(_) => WebError::SignIn(
                    "Sigil did not accept the sign-in (it may have expired).".into(),
                ),
                OidcError::Invalid(cause) => {
                    tracing::warn!(cause = %cause, "a sign-in answer failed validation");
                    WebError::SignIn("Sigil's answer could not be verified.".into())
                }
            })?;
    tracing::info!(sub = %user.subject, "signed in");
    let cookie_value = state.sessions.create(user, tokens);
    Ok((
        [(header::SET_COOKIE, state.cookie.set(&cookie_value))],
        Redirect::to("/"),
    )
        .into_response())
}
