//! Signing out: `POST /logout` (the user's button: RP-Initiated Logout 1.0) and
//! `POST /backchannel-logout` (Sigil's call: Back-Channel Logout 1.0 §2.5, §2.8).

use crate::secret::{random_token, Secret};
use crate::web::{CsrfForm, FormBody, SignedIn, WebError};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;

/// `POST /logout`: ends the local session, then sends the browser to Sigil's
/// `end_session_endpoint` with `id_token_hint`, `post_logout_redirect_uri` and `state`, so
/// the user is signed out there too.
pub async fn sign_out(
    State(state): State<AppState>,
    signed_in: SignedIn,
    FormBody(form): FormBody<CsrfForm>,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form.csrf)?;
    let id_token: Secret = signed_in.session.tokens.lock().await.id_token.clone();
    state.sessions.delete(signed_in.cookie_value.expose());
    tracing::info!(sub = %signed_in.session.user.subject, "signed out");
    let logout_state = random_token();
    state.sessions.remember_logout(&logout_state);
    let target = match state.provider.logout_url(id_token.expose(), &logout_state) {
        Some(url) => url.to_string(),
        None => "/?notice=signed-out".to_string(),
    };
    Ok((
        [(header::SET_COOKIE, state.cookie.clear())],
        Redirect::to(&target),
    )
        .into_response())
}

/// `POST /backchannel-logout`: Sigil says a user's session there ended. A valid logout
/// token ends every local session it names: 200 with `Cache-Control: no-store`. Anything
/// else is 400 with an OAuth-style JSON error (§2.8). The body is parsed by hand so that a
/// missing `logout_token` gets that JSON error too.
pub async fn backchannel_logout(State(state): State<AppState>, body: Bytes) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "logout_token")
        .map(|(_, value)| value.into_owned());
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return invalid_request("the form field logout_token is missing");
    };
    match state.logout_tokens.verify(&token).await {
        Ok(target) => {
            let ended = state
                .sessions
                .delete_matching(target.session_id.as_deref(), target.subject.as_deref());
            tracing::info!(
                sid = target.session_id.as_deref().unwrap_or("-"),
                sub = target.subject.as_deref().unwrap_or("-"),
                ended,
                "back-channel logout"
            );
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a logout token");
            invalid_request(&e.to_string())
        }
    }
}

fn invalid_request(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "error": "invalid_request",
            "error_description": description,
        })),
    )
        .into_response()
}
