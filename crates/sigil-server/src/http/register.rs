//! Dynamic client registration: `POST /register` (RFC 7591 §3) and the client
//! configuration endpoint `GET, PUT, DELETE /register/{client_id}` (RFC 7592 §2), over
//! core's `Registrations` (which holds the rules, limits and what an attacker would try).
//!
//! Here: JSON bodies only (`application/json`, at most the server's body limit, one JSON
//! object); bearer tokens from `Authorization: Bearer` only (never the query); a path
//! parameter that is not the shape of a generated client id answers exactly as an unknown
//! client does (401 `invalid_token`), so the endpoint tells nothing about which ids exist.
//! Every answer is `Cache-Control: no-store` (it may carry credentials) and readable from
//! any origin (`Access-Control-Allow-Origin: *`, never with credentials): a browser-based
//! registrant holds no cookie here, and what it may do is bounded by the same limits as
//! any other registrant.

use super::error::{no_store, BearerError, OAuthResponseError};
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value};
use sigil_core::registration::Registered;
use sigil_core::secret::{is_random_token, Secret};
use sigil_core::{ErrorCode, OAuthError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register).options(preflight))
        .route(
            "/register/{client_id}",
            axum::routing::get(read)
                .put(update)
                .delete(delete)
                .options(preflight),
        )
        .layer(middleware::from_fn(public_cors))
}

/// CORS for any origin, without credentials (see the module comment).
async fn public_cors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("www-authenticate, retry-after"),
    );
    response
}

async fn preflight() -> Response {
    let mut response = super::respond::no_content();
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE"),
    );
    out.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// The bearer token of the request, if it has one; a malformed `Authorization` is an error.
fn bearer(headers: &HeaderMap) -> Result<Option<Secret>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_token("the Authorization header must be Bearer <token>");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    // RFC 6750 §2.1 b64token.
    let shaped = !token.is_empty()
        && token.len() <= 512
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if !scheme.eq_ignore_ascii_case("bearer") || !shaped {
        return Err(malformed());
    }
    Ok(Some(Secret::new(token)))
}

/// A JSON object body (RFC 7591 §3.1: `application/json`).
fn json_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, OAuthError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(OAuthError::invalid_request(
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the body must be one JSON object of client metadata",
        )),
    }
}

fn answer(registered: Registered, created: bool) -> Response {
    let body = Json(Value::Object(registered.response));
    let mut response = if created {
        super::respond::created_json(body)
    } else {
        body.into_response()
    };
    no_store(&mut response);
    response
}

/// An error: a bearer challenge for token failures (RFC 6750 §3), JSON otherwise.
fn refused(error: OAuthError) -> Response {
    if error.code == ErrorCode::InvalidToken {
        BearerError::Oauth(error).into_response()
    } else {
        OAuthResponseError(error).into_response()
    }
}

async fn register(
    State(state): State<AppState>,
    peer: PeerAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let token = bearer(&headers)?;
        let body = json_object(&headers, &body)?;
        state
            .registrations
            .register(&peer.anonymous(), token.as_ref(), &body)
            .await
    }
    .await;
    match result {
        Ok(registered) => {
            tracing::info!(client = %registered.client.id, "client registered itself");
            answer(registered, true)
        }
        Err(error) => {
            tracing::info!(error = error.code.as_str(), "registration refused");
            refused(error)
        }
    }
}

/// The client id of the path and the request's registration access token; an id that is
/// not the shape of a generated one is refused as an unknown client is.
fn management(client_id: &str, headers: &HeaderMap) -> Result<Secret, OAuthError> {
    let token = bearer(headers)?.ok_or_else(|| {
        OAuthError::invalid_token(
            "the registration access token is required (Authorization: Bearer)",
        )
    })?;
    if !is_random_token(client_id, 16) {
        return Err(OAuthError::invalid_token(
            "the registration access token is invalid, or the client is gone",
        ));
    }
    Ok(token)
}

async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let token = management(&client_id, &headers)?;
        state.registrations.read(&client_id, &token).await
    }
    .await;
    match result {
        Ok(registered) => answer(registered, false),
        Err(error) => refused(error),
    }
}

async fn update(
    State(state): State<AppState>,
    peer: PeerAddress,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let token = management(&client_id, &headers)?;
        let body = json_object(&headers, &body)?;
        state
            .registrations
            .update(&peer.anonymous(), &client_id, &token, &body)
            .await
    }
    .await;
    match result {
        Ok(registered) => answer(registered, false),
        Err(error) => refused(error),
    }
}

async fn delete(
    State(state): State<AppState>,
    peer: PeerAddress,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let token = management(&client_id, &headers)?;
        state
            .registrations
            .delete(&peer.anonymous(), &client_id, &token)
            .await
    }
    .await;
    match result {
        Ok(()) => {
            tracing::info!(client = %client_id, "client deleted its registration");
            let mut response = super::respond::no_content();
            no_store(&mut response);
            response
        }
        Err(error) => refused(error),
    }
}
