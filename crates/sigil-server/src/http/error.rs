//! HTTP error responses: RFC 6749 §5.2 JSON for the OAuth endpoints, RFC 6750 §3
//! `WWW-Authenticate: Bearer` challenges for protected resources.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sigil_core::{ErrorCode, OAuthError};

/// An error of an OAuth endpoint (token, revoke, introspect), rendered as RFC 6749 §5.2 JSON.
#[derive(Debug)]
pub struct OAuthResponseError(pub OAuthError);

impl From<OAuthError> for OAuthResponseError {
    fn from(err: OAuthError) -> Self {
        Self(err)
    }
}

/// RFC 6749 §5.2: `error_description` may hold only %x20-21 / %x23-5B / %x5D-7E.
pub fn sanitize_description(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect()
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope | ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Throttled => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Headers every token-bearing or error response of the OAuth endpoints carries.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthResponseError {
    fn into_response(self) -> Response {
        let OAuthError {
            code,
            description,
            retry_after,
        } = self.0;
        let status = status_of(code);
        let body = serde_json::json!({
            "error": code.as_str(),
            "error_description": sanitize_description(&description),
        });
        let mut response = (status, axum::Json(body)).into_response();
        no_store(&mut response);
        let headers = response.headers_mut();
        if code == ErrorCode::InvalidClient {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sigil\""),
            );
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if code == ErrorCode::TemporarilyUnavailable {
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
                let description = sanitize_description(&err.description);
                let mut challenge = format!(
                    "Bearer realm=\"sigil\", error=\"{}\", error_description=\"{}\"",
                    err.code.as_str(),
                    description
                );
                if err.code == ErrorCode::InsufficientScope {
                    challenge.push_str(", scope=\"openid\"");
                }
                let body = serde_json::json!({ "error": err.code.as_str(), "error_description": description });
                let mut response = (status_of(err.code), axum::Json(body)).into_response();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_sanitized() {
        assert_eq!(sanitize_description("a \"b\" \\ é\n"), "a 'b' ' ??");
    }
}
