//! Discovery documents and the JWKS, served from memory with `ETag` and `Cache-Control`.

use super::respond;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/jwks.json", get(jwks))
}

/// OIDC Discovery 1.0 / RFC 8414 metadata (also at `/.well-known/oauth-authorization-server`).
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "oidc",
    responses((status = 200, description = "Server metadata, with `ETag` and `Cache-Control`", body = Object), (status = 304, description = "Not modified (`If-None-Match`)"))
)]
pub(crate) async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let discovery = &state.discovery;
    cached_json(&headers, &discovery.body, &discovery.etag, 3600)
}

/// The public signing keys (RFC 7517).
#[utoipa::path(
    get,
    path = "/jwks.json",
    tag = "oidc",
    responses((status = 200, description = "`{\"keys\": [...]}`: RSA public keys with `kid`, `Cache-Control: public, max-age`", body = Object), (status = 304, description = "Not modified (`If-None-Match`)"))
)]
pub(crate) async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let keys = state.authority.keys().current();
    cached_json(
        &headers,
        keys.jwks_json(),
        keys.jwks_etag(),
        state.jwks_max_age,
    )
}

fn cached_json(request: &HeaderMap, body: &str, etag: &str, max_age: u64) -> Response {
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        respond::not_modified()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
