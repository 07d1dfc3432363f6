//! The passkey routes (WebAuthn ceremonies run by `templates/passkeys.js`, served at
//! `/static/passkeys.js`). Each ceremony has an options endpoint and a finishing form:
//!
//! | ceremony | options (JSON) | finish (form, HTML answer) |
//! | --- | --- | --- |
//! | add a passkey (signed in) | `POST /account/security/passkey/options` | `POST /account/security/passkey` |
//! | second step of a sign-in, or a step-up | `POST /login/second-factor/passkey/options` | `POST /login/second-factor/passkey` |
//! | passwordless sign-in | `POST /login/passkey/options` | `POST /login/passkey` |
//!
//! Both are form-encoded POSTs with the session's CSRF token (`csrf`) and the pending
//! request (`req`); the finishing form carries the browser's credential as JSON in
//! `credential`. The ceremony's state stays in the session: one at a time (new options
//! replace it), good for five minutes, and taken by the first finishing form.

mod register;
mod sign_in;

use super::error::PageError;
use super::form::OAuthForm;
use crate::passkeys::{CeremonyState, PasskeyError, CEREMONY_TTL_SECONDS};
use crate::state::AppState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/security/passkey/options", post(register::options))
        .route("/account/security/passkey", post(register::finish))
        .route(
            "/login/second-factor/passkey/options",
            post(sign_in::second_factor_options),
        )
        .route(
            "/login/second-factor/passkey",
            post(sign_in::second_factor_finish),
        )
        .route(
            "/login/passkey/options",
            post(sign_in::passwordless_options),
        )
        .route("/login/passkey", post(sign_in::passwordless_finish))
}

/// The session key of the ceremony in progress.
const CEREMONY: &str = "passkey_ceremony";

/// A ceremony in progress, as the session keeps it.
#[derive(Serialize, Deserialize)]
struct Ceremony {
    state: CeremonyState,
    /// Whose ceremony it is (none for a passwordless sign-in, where nobody is known yet).
    user_id: Option<String>,
    started_at: i64,
}

/// Keeps a new ceremony in the session, replacing any other.
async fn begin(
    session: &Session,
    state: CeremonyState,
    user_id: Option<String>,
    now: i64,
) -> Result<(), PageError> {
    let ceremony = Ceremony {
        state,
        user_id,
        started_at: now,
    };
    session.insert(CEREMONY, ceremony).await?;
    Ok(())
}

/// Takes the session's ceremony (it serves once) if it belongs to `user_id` and is recent.
async fn take(
    session: &Session,
    user_id: Option<&str>,
    now: i64,
) -> Result<CeremonyState, PageError> {
    let ceremony = match session.remove::<Ceremony>(CEREMONY).await {
        Ok(ceremony) => ceremony,
        // A state that no longer parses (written by another version) counts as none.
        Err(tower_sessions::session::Error::SerdeJson(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let ceremony = ceremony
        .filter(|c| now - c.started_at < CEREMONY_TTL_SECONDS)
        .filter(|c| c.user_id.as_deref() == user_id);
    ceremony
        .map(|c| c.state)
        .ok_or(PageError::Passkey(PasskeyError::Expired))
}

/// The options of a ceremony, as JSON for the page's script (never cached).
fn options_response(options: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(options)).into_response()
}

/// The browser's credential, JSON in the `credential` field ("" when missing).
fn credential_field(form: &OAuthForm) -> &str {
    form.single("credential").ok().flatten().unwrap_or("")
}
