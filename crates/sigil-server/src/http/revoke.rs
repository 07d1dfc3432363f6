//! `POST /revoke` (RFC 7009).

use super::client_auth::client_credentials;
use super::error::{no_store, OAuthResponseError};
use super::form::OAuthForm;
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sigil_core::client_assertion::ClientAuthEndpoint;
use sigil_core::revocation::TokenTypeHint;
use sigil_core::secret::Secret;

pub fn router() -> Router<AppState> {
    Router::new().route("/revoke", post(revoke))
}

/// Token revocation (RFC 7009).
#[utoipa::path(
    post,
    path = "/revoke",
    tag = "oauth",
    request_body(content = crate::http::form::TokenForm, content_type = "application/x-www-form-urlencoded", description = "`token` and an optional `token_type_hint`, with client authentication"),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009 §2.2): the body is empty"),
        (status = 400, description = "`invalid_request` or `unauthorized_client` (a token of another client)", body = crate::http::error::ErrorBody),
        (status = 401, description = "`invalid_client`", body = crate::http::error::ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    peer: PeerAddress,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let credentials = client_credentials(&headers, &form, ClientAuthEndpoint::Revocation)?;
    let client_id = credentials.client_id.clone();
    revoke_for(state, peer, credentials, &form)
        .await
        .map(|response| super::cors::served_client(response, &client_id))
        .or_else(|error| {
            Ok(super::cors::served_client(
                error.into_response(),
                &client_id,
            ))
        })
}

async fn revoke_for(
    state: AppState,
    peer: PeerAddress,
    credentials: sigil_core::authority::ClientCredentials,
    form: &OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let token = Secret::new(form.required("token")?);
    let hint = form
        .single("token_type_hint")?
        .and_then(TokenTypeHint::parse);
    state
        .authority
        .revoke(&credentials, token, hint, &peer.anonymous())
        .await?;
    // §2.2: 200 with no content to speak of, also for tokens that were already invalid.
    let mut response = ().into_response();
    no_store(&mut response);
    Ok(response)
}
