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

/// The bare DPoP challenge (RFC 9449 §7.1): the scheme and the proof algorithms accepted.
fn dpop_challenge() -> String {
    format!("DPoP algs=\"{}\"", sigil_core::dpop::SIGNING_ALGS.join(" "))
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let err = match self {
            BearerError::Missing => {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sigil\""),
                );
                if let Ok(value) = HeaderValue::from_str(&dpop_challenge()) {
                    headers.append(header::WWW_AUTHENTICATE, value);
                }
                no_store(&mut response);
                return response;
            }
            BearerError::Oauth(err) => err,
        };
        let dpop_error = matches!(
            err.code,
            ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce
        );
        match err.code {
            ErrorCode::InvalidToken
            | ErrorCode::InvalidRequest
            | ErrorCode::InsufficientScope
            | ErrorCode::InvalidDpopProof
            | ErrorCode::UseDpopNonce => {
                log_cause(&err);
                let body = ErrorBody::new(err.code.as_str(), &err.description);
                let error = format!(
                    "error=\"{}\", error_description=\"{}\"",
                    body.error, body.error_description
                );
                // The error goes in the DPoP challenge for a proof's fault (RFC 9449 §7.1,
                // §9), else in the Bearer one; the other scheme is offered bare.
                let (mut bearer, dpop) = if dpop_error {
                    (
                        "Bearer realm=\"sigil\"".to_string(),
                        format!("{}, {error}", dpop_challenge()),
                    )
                } else {
                    (format!("Bearer realm=\"sigil\", {error}"), dpop_challenge())
                };
                if err.code == ErrorCode::InsufficientScope {
                    bearer.push_str(", scope=\"openid\"");
                }
                let status = if dpop_error {
                    StatusCode::UNAUTHORIZED
                } else {
                    status_of(&err)
                };
                let mut response = (status, Json(body)).into_response();
                let headers = response.headers_mut();
                for challenge in [bearer, dpop] {
                    if let Ok(value) = HeaderValue::from_str(&challenge) {
                        headers.append(header::WWW_AUTHENTICATE, value);
                    }
                }
                no_store(&mut response);
                response
            }
            _ => OAuthResponseError(err).into_response(),
        }
    }
}
