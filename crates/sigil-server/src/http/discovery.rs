//! Discovery documents and the JWKS, served from memory with `ETag` and `Cache-Control`.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/jwks.json", get(jwks))
}

async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let discovery = &state.discovery;
    cached_json(&headers, &discovery.body, &discovery.etag, 3600)
}

async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
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
        StatusCode::NOT_MODIFIED.into_response()
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
