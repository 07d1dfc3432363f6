//! `POST /revoke` (RFC 7009).

use super::client_auth::client_credentials;
use super::error::{no_store, OAuthResponseError};
use super::form::OAuthForm;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sigil_core::revocation::TokenTypeHint;
use sigil_core::secret::Secret;

pub fn router() -> Router<AppState> {
    Router::new().route("/revoke", post(revoke))
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let credentials = client_credentials(&headers, &form)?;
    let token = Secret::new(form.required("token")?);
    let hint = form
        .single("token_type_hint")?
        .and_then(TokenTypeHint::parse);
    state.authority.revoke(&credentials, token, hint).await?;
    // §2.2: 200 with no content to speak of, also for tokens that were already invalid.
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    Ok(response)
}
