//! `POST /introspect` (RFC 7662), for authenticated confidential clients.

use super::client_auth::client_credentials;
use super::error::{no_store, OAuthResponseError};
use super::form::OAuthForm;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use sigil_core::client_assertion::ClientAuthEndpoint;
use sigil_core::revocation::TokenTypeHint;
use sigil_core::secret::Secret;

pub fn router() -> Router<AppState> {
    Router::new().route("/introspect", post(introspect))
}

/// Token introspection (RFC 7662): the authoritative answer, revocations included.
#[utoipa::path(
    post,
    path = "/introspect",
    tag = "oauth",
    request_body(content = crate::http::form::TokenForm, content_type = "application/x-www-form-urlencoded", description = "`token` and an optional `token_type_hint`, with client authentication"),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "`{\"active\": false}` for any token that is not live", body = sigil_core::introspection::Introspection),
        (status = 400, description = "`invalid_request`", body = crate::http::error::ErrorBody),
        (status = 401, description = "`invalid_client`", body = crate::http::error::ErrorBody),
    )
)]
pub(crate) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let credentials = client_credentials(&headers, &form, ClientAuthEndpoint::Introspection)?;
    let token = Secret::new(form.required("token")?);
    let hint = form
        .single("token_type_hint")?
        .and_then(TokenTypeHint::parse);
    let answer = state
        .authority
        .introspect(&credentials, token, hint)
        .await?;
    let mut response = Json(answer).into_response();
    no_store(&mut response);
    Ok(response)
}
