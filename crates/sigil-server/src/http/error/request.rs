//! JSON errors for requests that reach no endpoint or break a limit before one: the 404
//! fallback, oversized headers and targets, form bodies that cannot be read, timeouts.

use super::{ErrorBody, OAuthResponseError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sigil_core::OAuthError;

/// The status of a request that ran out of time (`--request-timeout`): 503, no body.
pub const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// A request refused before any endpoint: RFC-shaped JSON, no `Cache-Control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// No route matches (404, `not_found`).
    NotFound,
    /// The headers are larger than any real client sends (RFC 6585 §5: 431).
    HeadersTooLarge,
    /// The request target is too long (RFC 9110 §15.5.15: 414).
    TargetTooLong,
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            RequestError::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorBody::new("not_found", "no such endpoint"),
            ),
            RequestError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorBody::new("invalid_request", "request headers too large"),
            ),
            RequestError::TargetTooLong => (
                StatusCode::URI_TOO_LONG,
                ErrorBody::new("invalid_request", "request target too long"),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// Why a form body of an OAuth endpoint was refused: `invalid_request`, as every OAuth
/// error (no-store), with 413 for a body over the limit.
#[derive(Debug)]
pub enum FormRejection {
    /// The content type is not `application/x-www-form-urlencoded`.
    NotAForm,
    /// The body is larger than the limit (64 KiB).
    TooLarge,
    /// The body could not be read; the text says why.
    Unreadable(String),
}

impl IntoResponse for FormRejection {
    fn into_response(self) -> Response {
        let description = match self {
            FormRejection::NotAForm => {
                "the body must be application/x-www-form-urlencoded".to_string()
            }
            FormRejection::TooLarge => {
                let mut response = OAuthResponseError(OAuthError::invalid_request(
                    "the request body is larger than 64 KiB",
                ))
                .into_response();
                *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                return response;
            }
            FormRejection::Unreadable(why) => format!("cannot read the request body: {why}"),
        };
        OAuthResponseError(OAuthError::invalid_request(description)).into_response()
    }
}
