//! `GET, POST /userinfo` (OIDC Core §5.3) with the bearer token in the Authorization
//! header or, for POST, in the form body (RFC 6750 §2.1, §2.2), never in the query; or a
//! DPoP-bound token as `Authorization: DPoP` with its proof (RFC 9449 §7.1).

use super::error::{no_store, BearerError};
use super::form::OAuthForm;
use crate::state::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sigil_core::dpop::DpopProof;
use sigil_core::userinfo::Presented;
use sigil_core::OAuthError;

pub fn router() -> Router<AppState> {
    Router::new().route("/userinfo", get(userinfo).post(userinfo))
}

/// OIDC Core §5.3: claims about the token's user, by scope.
#[utoipa::path(
    get,
    path = "/userinfo",
    tag = "oidc",
    security(("bearer" = [])),
    params(("DPoP" = Option<String>, Header, description = "RFC 9449 proof (with ath) for a DPoP-bound token sent as Authorization: DPoP")),
    responses(
        (status = 200, description = "`sub`, plus `name`/`preferred_username` with `profile` and `email`/`email_verified` with `email`", body = Object),
        (status = 401, description = "No or an invalid token: `WWW-Authenticate: Bearer error=\"invalid_token\"`; a bad DPoP proof: `WWW-Authenticate: DPoP error=\"invalid_dpop_proof\"` (or `use_dpop_nonce`, with `DPoP-Nonce`)"),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`"),
    )
)]
pub(crate) async fn userinfo(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, BearerError> {
    let has_origin = request.headers().contains_key(header::ORIGIN);
    let method = request.method().as_str().to_string();
    let proof = super::dpop::proof(request.headers())?.map(str::to_string);
    // (token, whether the DPoP scheme was used)
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| {
            let value = value
                .to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
            match value.split_once(' ') {
                Some((scheme, token))
                    if (scheme.eq_ignore_ascii_case("bearer")
                        || scheme.eq_ignore_ascii_case("dpop"))
                        && !token.trim().is_empty() =>
                {
                    Ok((
                        token.trim().to_string(),
                        scheme.eq_ignore_ascii_case("dpop"),
                    ))
                }
                _ => Err(OAuthError::invalid_request(
                    "the Authorization header must be Bearer or DPoP",
                )),
            }
        })
        .transpose()?;
    let has_form_body = request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let from_body = if has_form_body {
        let form = OAuthForm::from_request(request, &state)
            .await
            .map_err(|_| {
                BearerError::Oauth(OAuthError::invalid_request(
                    "the body must be a form of at most 64 KiB",
                ))
            })?;
        form.single("access_token")?.map(str::to_string)
    } else {
        None
    };
    let (token, dpop_scheme) = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("send the token in one place only").into())
        }
        (Some(header), None) => header,
        (None, Some(token)) => (token, false),
        (None, None) => return Err(BearerError::Missing),
    };
    let presented = if dpop_scheme {
        Presented::Dpop(proof.as_deref().map(|proof| DpopProof {
            proof,
            method: &method,
        }))
    } else {
        Presented::Bearer
    };
    // The token's client, for CORS: only its registered origins may read the answer. Only
    // a request from a browser page (with `Origin`) needs it.
    let client_id = has_origin
        .then(|| state.authority.verify_access_token(&token).ok())
        .flatten()
        .map(|claims| claims.client_id);
    let response = match state.authority.userinfo_presented(&token, presented).await {
        Ok(info) => {
            let mut response = Json(info).into_response();
            no_store(&mut response);
            response
        }
        Err(error) => BearerError::from(error).into_response(),
    };
    let response = super::dpop::with_nonce(&state.authority, response);
    Ok(match client_id {
        Some(id) => super::cors::served_client(response, &id),
        None => response,
    })
}
