//! `POST /token` (RFC 6749 §3.2): parse the form into a typed grant, call core, answer
//! JSON with `Cache-Control: no-store`.

use super::client_auth::client_credentials;
use super::error::{no_store, OAuthResponseError};
use super::form::OAuthForm;
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use sigil_core::client_assertion::ClientAuthEndpoint;
use sigil_core::dpop::DpopProof;
use sigil_core::grant::TokenRequest;
use sigil_core::scope::ScopeSet;
use sigil_core::secret::Secret;
use sigil_core::{ErrorCode, OAuthError};

pub fn router() -> Router<AppState> {
    Router::new().route("/token", post(token))
}

/// The token endpoint (RFC 6749 §3.2): one grant per request.
#[utoipa::path(
    post,
    path = "/token",
    tag = "oauth",
    request_body(content = crate::http::form::TokenForm, content_type = "application/x-www-form-urlencoded"),
    params(("DPoP" = Option<String>, Header, description = "RFC 9449 proof for POST {issuer}/token: the tokens are bound to its key (token_type DPoP, cnf.jkt)")),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Tokens issued (`Cache-Control: no-store`)", body = sigil_core::grant::TokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_grant`, `invalid_scope`, `invalid_target`, `unauthorized_client`, `unsupported_grant_type`, or for DPoP (RFC 9449) `invalid_dpop_proof` or `use_dpop_nonce` (with `DPoP-Nonce`)", body = crate::http::error::ErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate`", body = crate::http::error::ErrorBody),
        (status = 413, description = "`invalid_request`: the body is larger than 64 KiB", body = crate::http::error::ErrorBody),
        (status = 429, description = "`temporarily_unavailable`: too many failed sign-ins (password grant), with `Retry-After`", body = crate::http::error::ErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`", body = crate::http::error::ErrorBody),
    )
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    peer: PeerAddress,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let credentials = client_credentials(&headers, &form, ClientAuthEndpoint::Token)?;
    let client_id = credentials.client_id.clone();
    let response = match token_for(&state, peer, &headers, credentials, &form).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let response = super::dpop::with_nonce(&state.authority, response);
    Ok(super::cors::served_client(response, &client_id))
}

async fn token_for(
    state: &AppState,
    peer: PeerAddress,
    headers: &HeaderMap,
    credentials: sigil_core::authority::ClientCredentials,
    form: &OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let request = parse_token_request(form)?;
    let grant = grant_name(&request);
    let dpop = super::dpop::proof(headers)?.map(|proof| DpopProof {
        proof,
        method: "POST",
    });
    let response = state
        .authority
        .token_with_dpop(&credentials, request, dpop, &peer.anonymous())
        .await;
    match &response {
        Ok(_) => {
            state.metrics.token_issued(grant);
            state
                .authority
                .activity()
                .record(sigil_core::activity::Event::TokenIssued {
                    grant,
                    client_id: &credentials.client_id,
                });
            tracing::info!(client = %credentials.client_id, grant, "token issued")
        }
        Err(e) => {
            tracing::info!(client = %credentials.client_id, grant, error = e.code.as_str(), "token request refused")
        }
    }
    let mut response = Json(response?).into_response();
    no_store(&mut response);
    Ok(response)
}

fn grant_name(request: &TokenRequest) -> &'static str {
    match request {
        TokenRequest::Password { .. } => "password",
        TokenRequest::ClientCredentials { .. } => "client_credentials",
        TokenRequest::RefreshToken { .. } => "refresh_token",
        TokenRequest::AuthorizationCode { .. } => "authorization_code",
    }
}

/// Parses the grant-specific parameters. Only shape is checked here; meaning is core's.
pub fn parse_token_request(form: &OAuthForm) -> Result<TokenRequest, OAuthError> {
    let grant_type = form.required("grant_type")?;
    let scope = form.single("scope")?.map(ScopeSet::parse).transpose()?;
    let resources = form.all("resource");
    match grant_type {
        "password" => Ok(TokenRequest::Password {
            username: form.required("username")?.to_string(),
            password: Secret::new(form.required("password")?),
            scope,
            resources,
        }),
        "client_credentials" => Ok(TokenRequest::ClientCredentials { scope, resources }),
        "refresh_token" => Ok(TokenRequest::RefreshToken {
            refresh_token: Secret::new(form.required("refresh_token")?),
            scope,
            resources,
        }),
        "authorization_code" => Ok(TokenRequest::AuthorizationCode {
            code: Secret::new(form.required("code")?),
            redirect_uri: form.single("redirect_uri")?.map(str::to_string),
            code_verifier: form.single("code_verifier")?.map(Secret::new),
            resources,
        }),
        _ => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        )),
    }
}
