//! Protocol errors: the RFC 6749 §5.2 error codes (and their RFC 6750 / 7009 / 8707 kin).

use std::fmt;

/// An error code from the OAuth 2.0 family of RFCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749 §5.2: missing, repeated or malformed parameter.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant (credentials, refresh token, code) is invalid.
    InvalidGrant,
    /// RFC 6749 §5.2: the client may not use this grant type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the grant type is not supported.
    UnsupportedGrantType,
    /// RFC 6749 §5.2: the requested scope is invalid or exceeds what was granted.
    InvalidScope,
    /// RFC 8707 §2: the requested resource is invalid or not allowed.
    InvalidTarget,
    /// RFC 7009 §2.2.1: revocation of this token type is not supported.
    UnsupportedTokenType,
    /// RFC 6750 §3.1: the access token is expired, revoked or malformed.
    InvalidToken,
    /// RFC 6750 §3.1: the token lacks a required scope.
    InsufficientScope,
    /// RFC 6749 §4.1.2.1: the resource owner or server denied the request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: the response type is not supported.
    UnsupportedResponseType,
    /// OIDC Core §3.1.2.6: `prompt=none` but the user is not signed in.
    LoginRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` but consent is needed.
    ConsentRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` but the user must interact (choose a new password).
    InteractionRequired,
    /// OIDC Core §3.1.2.6 and §6: the `request` parameter (request objects) is not supported.
    RequestNotSupported,
    /// OIDC Core §3.1.2.6 and §6: the `request_uri` parameter is not supported.
    RequestUriNotSupported,
    /// RFC 7591 §3.2.2: a redirect URI of a registration is invalid.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: a metadata field of a registration is invalid.
    InvalidClientMetadata,
    /// RFC 9126 §2.2, OIDC Core §3.1.2.6: the `request_uri` is unknown, used or expired.
    InvalidRequestUri,
    /// RFC 9449 §5, §7.1: the DPoP proof is missing, malformed, replayed or does not match.
    InvalidDpopProof,
    /// RFC 9449 §8, §9: the DPoP proof must carry the nonce the server gave.
    UseDpopNonce,
    /// RFC 6749 §4.1.2.1: the server is temporarily overloaded or its database is down.
    TemporarilyUnavailable,
    /// RFC 6749 §4.1.2.1: an unexpected condition (details are logged, never returned).
    ServerError,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
        }
    }
}

/// What happened, beyond what the wire code says. The server reads it to pick a status
/// and to log; none of it is ever sent (the description is what the client reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The request itself: the code and description say what is wrong with it.
    #[default]
    Request,
    /// Refused because of too many failed sign-ins for the account, the device or the
    /// address (RFC 6749 has no code of its own: the code is `temporarily_unavailable`).
    TooManyFailedSignIns,
    /// A per-address rate limit or cap (dynamic registration, say): the answer is 429.
    RateLimited,
    /// A CPU pool's queue is full.
    Overloaded,
    /// The database cannot be reached; the text is the store's, for the log.
    StoreUnavailable(Box<str>),
    /// An unexpected failure (a bug, corrupted data, no signing key); the text is for the
    /// log.
    Internal(Box<str>),
}

/// A protocol error with a human-readable description safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    /// Seconds after which a retry may succeed (`Retry-After`), for throttling and overload.
    pub retry_after: Option<u64>,
    /// What happened; internal causes are kept here, never in the description.
    pub cause: Cause,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
            cause: Cause::Request,
        }
    }
    /// Refused because of too many failed sign-ins; retry after `seconds`.
    pub fn throttled(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds.max(1)),
            cause: Cause::TooManyFailedSignIns,
            ..Self::new(
                ErrorCode::TemporarilyUnavailable,
                format!(
                    "too many failed sign-in attempts; try again in {} seconds",
                    seconds.max(1)
                ),
            )
        }
    }
    /// Refused by a rate limit or cap; `retry_after` seconds when a wait will help.
    pub fn rate_limited(retry_after: Option<u64>, description: impl Into<String>) -> Self {
        Self {
            retry_after: retry_after.map(|s| s.max(1)),
            cause: Cause::RateLimited,
            ..Self::new(ErrorCode::TemporarilyUnavailable, description)
        }
    }
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, description)
    }
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }
    /// An internal failure: the cause is kept for the log ([`Cause::Internal`]), and only a
    /// generic text is returned.
    pub fn server_error(cause: &dyn fmt::Display) -> Self {
        Self {
            cause: Cause::Internal(cause.to_string().into()),
            ..Self::new(ErrorCode::ServerError, "internal server error")
        }
    }
    pub fn temporarily_unavailable(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, description)
    }
    /// The database cannot be reached: `temporarily_unavailable`, the store's text kept for
    /// the log ([`Cause::StoreUnavailable`]).
    pub fn store_unavailable(cause: impl Into<String>) -> Self {
        Self {
            cause: Cause::StoreUnavailable(cause.into().into()),
            ..Self::temporarily_unavailable("the database is unavailable, try again later")
        }
    }
    /// A CPU pool is full: `temporarily_unavailable` ([`Cause::Overloaded`]).
    pub fn overloaded() -> Self {
        Self {
            cause: Cause::Overloaded,
            ..Self::temporarily_unavailable("the server is busy, try again later")
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}
