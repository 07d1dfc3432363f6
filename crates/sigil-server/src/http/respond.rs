//! The responses that are neither errors nor a plain 200: redirects (302, 303), 201 for a
//! record made (a page, or the JSON of a registered client or a pushed authorization request), 204 for a CORS preflight or a deleted registration, 304 for a cached document, and the readiness answer (200 or 503). With
//! `error/`, the only place that chooses a status code.

use super::pages::{self, Page};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `303 See Other` to a page of Sigil or a client, with the page headers.
pub fn see_other(location: &str) -> Response {
    redirect(StatusCode::SEE_OTHER, location)
}

/// `302 Found`: the authorization response to a client's redirect URI (RFC 6749 §4.1.2).
pub fn found(location: &str) -> Response {
    redirect(StatusCode::FOUND, location)
}

/// `201 Created`: a page showing what a POST made.
pub fn created(page: Page) -> Response {
    (StatusCode::CREATED, page).into_response()
}

/// `201 Created` with a JSON body: a client registered (RFC 7591 §3.2.1), an authorization
/// request pushed (RFC 9126 §2.2).
pub fn created_json(body: axum::Json<serde_json::Value>) -> Response {
    (StatusCode::CREATED, body).into_response()
}

/// `204 No Content`: a CORS preflight's answer (its headers say what is allowed).
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `304 Not Modified`: the cached copy the client named by `If-None-Match` is current.
pub fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

/// The answer of `/readyz`: 200 when ready, else 503 (the body says what is missing).
pub fn readiness(is_ready: bool, body: impl IntoResponse) -> Response {
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    pages::set_page_headers(&mut response, &[]);
    response
}
