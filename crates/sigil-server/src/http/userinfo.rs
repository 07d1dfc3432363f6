//! `GET, POST /userinfo` (OIDC Core §5.3) with the bearer token in the Authorization
//! header or, for POST, in the form body (RFC 6750 §2.1, §2.2). Never in the query.

use super::error::{no_store, BearerError};
use super::form::OAuthForm;
use crate::state::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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
    responses(
        (status = 200, description = "`sub`, plus `name`/`preferred_username` with `profile` and `email`/`email_verified` with `email`", body = Object),
        (status = 401, description = "No or an invalid token: `WWW-Authenticate: Bearer error=\"invalid_token\"`"),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`"),
    )
)]
pub(crate) async fn userinfo(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, BearerError> {
    let has_origin = request.headers().contains_key(header::ORIGIN);
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| {
            let value = value
                .to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
            match value.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Ok(token.trim().to_string())
                }
                _ => Err(OAuthError::invalid_request(
                    "the Authorization header must be Bearer",
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
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("send the token in one place only").into())
        }
        (Some(token), None) | (None, Some(token)) => token,
        (None, None) => return Err(BearerError::Missing),
    };
    // The token's client, for CORS: only its registered origins may read the answer. Only
    // a request from a browser page (with `Origin`) needs it.
    let client_id = has_origin
        .then(|| state.authority.verify_access_token(&token).ok())
        .flatten()
        .map(|claims| claims.client_id);
    let response = match state.authority.userinfo(&token).await {
        Ok(info) => {
            let mut response = Json(info).into_response();
            no_store(&mut response);
            response
        }
        Err(error) => BearerError::from(error).into_response(),
    };
    Ok(match client_id {
        Some(id) => super::cors::served_client(response, &id),
        None => response,
    })
}
