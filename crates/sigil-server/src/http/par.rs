//! `POST /par` (RFC 9126 §2): a pushed authorization request. The client authenticates as
//! at `/token` (§2.1), the body holds the authorization request's parameters, and the answer
//! is `201` with the `request_uri` to send to `/authorize` (§2.2), or an RFC 6749 §5.2 JSON
//! error (§2.3): never a redirect. Browser apps may push too, from the origins their
//! client lists (CORS, as at `/token`).

use super::client_auth::client_credentials;
use super::error::{no_store, OAuthResponseError};
use super::form::OAuthForm;
use super::respond;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use sigil_core::authority::ClientCredentials;
use sigil_core::authorize::AuthorizeParams;
use sigil_core::client_assertion::ClientAuthEndpoint;
use sigil_core::OAuthError;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/par", post(par))
}

/// The pushed authorization request endpoint (RFC 9126).
#[utoipa::path(
    post,
    path = "/par",
    tag = "oauth",
    request_body(content = PushedRequestForm, content_type = "application/x-www-form-urlencoded"),
    params(("DPoP" = Option<String>, Header, description = "RFC 9449 proof for POST {issuer}/par: the code will be bound to its key")),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 201, description = "Kept: the `request_uri` to send to `/authorize` with `client_id`, once, within `expires_in` seconds (`Cache-Control: no-store`)", body = sigil_core::par::PushedAuthorization),
        (status = 400, description = "`invalid_request` (also for an unregistered `redirect_uri`, and a `request_uri` in the push), `invalid_scope`, `invalid_target`, `unauthorized_client`, `unsupported_response_type` or `request_not_supported`", body = crate::http::error::ErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate`", body = crate::http::error::ErrorBody),
        (status = 413, description = "`invalid_request`: the body is larger than 64 KiB", body = crate::http::error::ErrorBody),
        (status = 429, description = "`temporarily_unavailable`: the client pushed too many requests in the last minute, with `Retry-After`", body = crate::http::error::ErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`", body = crate::http::error::ErrorBody),
    )
)]
pub(crate) async fn par(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let credentials = client_credentials(&headers, &form, ClientAuthEndpoint::PushedAuthorization)?;
    let response = match push(&state, &headers, &credentials, &form).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let response = super::dpop::with_nonce(&state.authority, response);
    Ok(super::cors::served_client(response, &credentials.client_id))
}

async fn push(
    state: &AppState,
    headers: &HeaderMap,
    credentials: &ClientCredentials,
    form: &OAuthForm,
) -> Result<Response, OAuthResponseError> {
    let dpop = super::dpop::proof(headers)?.map(|proof| sigil_core::dpop::DpopProof {
        proof,
        method: "POST",
    });
    let pushed = state
        .authority
        .push_authorization_request_with_dpop(credentials, authorize_params(form), dpop)
        .await;
    match &pushed {
        Ok(_) => tracing::info!(client = %credentials.client_id, "authorization request pushed"),
        Err(e) => {
            tracing::info!(client = %credentials.client_id, error = e.code.as_str(), "pushed authorization request refused")
        }
    }
    let body = serde_json::to_value(pushed?).map_err(|e| OAuthError::server_error(&e))?;
    let mut response = respond::created_json(Json(body));
    no_store(&mut response);
    Ok(response)
}

/// The authorization request's parameters in the body, as `/authorize` reads them from its
/// query; client authentication's own (`client_secret`) and unknown ones are left out.
fn authorize_params(form: &OAuthForm) -> AuthorizeParams {
    let mut repeated = Vec::new();
    let mut take = |name: &str| {
        let mut values = form.all(name);
        if values.len() > 1 {
            repeated.push(name.to_string());
        }
        (!values.is_empty()).then(|| values.swap_remove(0))
    };
    AuthorizeParams {
        client_id: take("client_id"),
        redirect_uri: take("redirect_uri"),
        response_type: take("response_type"),
        response_mode: take("response_mode"),
        scope: take("scope"),
        state: take("state"),
        nonce: take("nonce"),
        code_challenge: take("code_challenge"),
        code_challenge_method: take("code_challenge_method"),
        prompt: take("prompt"),
        max_age: take("max_age"),
        acr_values: take("acr_values"),
        login_hint: take("login_hint"),
        id_token_hint: take("id_token_hint"),
        dpop_jkt: take("dpop_jkt"),
        request: take("request"),
        request_uri: take("request_uri"),
        // RFC 8707 §2: `resource` may be given several times.
        resources: form.all("resource"),
        repeated,
    }
}

/// The form parameters of `POST /par`, for the OpenAPI document: those of an authorization
/// request (see docs/api.md, `GET /authorize`) and client authentication.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PushedRequestForm {
    /// The client; required for a public client, optional with HTTP Basic.
    client_id: Option<String>,
    /// `client_secret_post`.
    client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    client_assertion_type: Option<String>,
    /// `private_key_jwt`: a JWT signed with the client's key; its `aud` may name the
    /// issuer, the token endpoint or this endpoint.
    client_assertion: Option<String>,
    /// `code`.
    response_type: String,
    /// A registered redirect URI; required with `openid`, or when several are registered.
    redirect_uri: Option<String>,
    /// Space-separated scopes.
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    /// PKCE (RFC 7636), required.
    code_challenge: String,
    /// `S256`.
    code_challenge_method: String,
    /// `none`, `login`, `consent`, `select_account`.
    prompt: Option<String>,
    max_age: Option<String>,
    acr_values: Option<String>,
    login_hint: Option<String>,
    id_token_hint: Option<String>,
    /// RFC 8707 resource indicator; may repeat.
    resource: Option<String>,
    /// `query`, the only mode.
    response_mode: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is to be bound to (or send a
    /// `DPoP` proof).
    dpop_jkt: Option<String>,
}
