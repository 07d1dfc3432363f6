//! RFC 6749 §5.2 JSON errors of the OAuth endpoints (token, revoke, introspect) and RFC 6750
//! §3 `WWW-Authenticate: Bearer` challenges of protected resources (userinfo).

use super::{log_cause, no_store, ErrorBody};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sigil_core::{Cause, ErrorCode, OAuthError};

/// An error of an OAuth endpoint (token, revoke, introspect), rendered as RFC 6749 §5.2 JSON.
#[derive(Debug)]
pub struct OAuthResponseError(pub OAuthError);

impl From<OAuthError> for OAuthResponseError {
    fn from(err: OAuthError) -> Self {
        Self(err)
    }
}

/// The status of an error: 429 for too many failed sign-ins, else by its code.
fn status_of(error: &OAuthError) -> StatusCode {
    if matches!(
        error.cause,
        Cause::TooManyFailedSignIns | Cause::RateLimited
    ) {
        return StatusCode::TOO_MANY_REQUESTS;
    }
    match error.code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope | ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for OAuthResponseError {
    fn into_response(self) -> Response {
        let error = self.0;
        log_cause(&error);
        let body = ErrorBody::new(error.code.as_str(), &error.description);
        let mut response = (status_of(&error), Json(body)).into_response();
        no_store(&mut response);
        let headers = response.headers_mut();
        if error.code == ErrorCode::InvalidClient {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sigil\""),
            );
        }
        if let Some(seconds) = error.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if error.code == ErrorCode::TemporarilyUnavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// An error of a bearer-protected resource (userinfo), rendered per RFC 6750 §3.
#[derive(Debug)]
pub enum BearerError {
    /// No token at all: a bare challenge, no error code (§3.1).
    Missing,
    Oauth(OAuthError),
}

impl From<OAuthError> for BearerError {
    fn from(err: OAuthError) -> Self {
        Self::Oauth(err)
    }
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let err = match self {
            BearerError::Missing => {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sigil\""),
                );
                no_store(&mut response);
                return response;
            }
            BearerError::Oauth(err) => err,
        };
        match err.code {
            ErrorCode::InvalidToken | ErrorCode::InvalidRequest | ErrorCode::InsufficientScope => {
                log_cause(&err);
                let body = ErrorBody::new(err.code.as_str(), &err.description);
                let mut challenge = format!(
                    "Bearer realm=\"sigil\", error=\"{}\", error_description=\"{}\"",
                    body.error, body.error_description
                );
                if err.code == ErrorCode::InsufficientScope {
                    challenge.push_str(", scope=\"openid\"");
                }
                let mut response = (status_of(&err), Json(body)).into_response();
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                no_store(&mut response);
                response
            }
            _ => OAuthResponseError(err).into_response(),
        }
    }
}
