//! Every error response of the HTTP surface, and the only place besides `respond.rs` that
//! chooses a status code: RFC 6749 §5.2 JSON errors and RFC 6750 §3 bearer challenges
//! (`oauth`), the JSON answers to requests no endpoint takes (`request`), and the error
//! pages of the browser flow (`page`). Internal causes are logged here, once, as the error
//! becomes a response; the body says only what the client may know.

mod oauth;
mod page;
mod request;

pub use oauth::{BearerError, OAuthResponseError};
pub use page::{FederationFailure, PageError};
pub use request::{FormRejection, RequestError, TIMEOUT_STATUS};

use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde::Serialize;
use sigil_core::{Cause, OAuthError};
use utoipa::ToSchema;

/// An RFC 6749 §5.2 error: the body of every JSON error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`, `unsupported_token_type`,
    /// `temporarily_unavailable`, `server_error`; `invalid_token` and `insufficient_scope`
    /// (userinfo); `not_found` for a path Sigil does not serve.
    pub error: &'static str,
    /// What was wrong, in words for a developer (never an internal cause).
    pub error_description: String,
}

impl ErrorBody {
    /// A body with `description` sanitized for the wire ([`sanitize_description`]).
    pub fn new(error: &'static str, description: &str) -> Self {
        Self {
            error,
            error_description: sanitize_description(description),
        }
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

/// Headers every token-bearing or error response of the OAuth endpoints carries.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Logs what the client is not told: an internal failure's cause as an error, the
/// database's unavailability as a warning. Called where an error becomes a response (or
/// is dropped), so each is logged once.
pub fn log_cause(error: &OAuthError) {
    match &error.cause {
        Cause::Internal(cause) => tracing::error!(error = %cause, "internal error"),
        Cause::StoreUnavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
        _ => {}
    }
}

/// Whether a response refused the request for load or throttling (for the metrics): 429,
/// or 503 with `Retry-After`.
pub fn is_throttled(response: &Response) -> bool {
    let status = response.status();
    status == axum::http::StatusCode::TOO_MANY_REQUESTS
        || (status == axum::http::StatusCode::SERVICE_UNAVAILABLE
            && response.headers().contains_key(header::RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_sanitized() {
        assert_eq!(sanitize_description("a \"b\" \\ é\n"), "a 'b' ' ??");
    }
}
