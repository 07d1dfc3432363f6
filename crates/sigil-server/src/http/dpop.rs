//! The `DPoP` request header (RFC 9449 §4.1) and the `DPoP-Nonce` response header (§8):
//! what the token, pushed authorization and userinfo endpoints share.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use sigil_core::authority::Authority;
use sigil_core::{ErrorCode, OAuthError};

pub const DPOP: HeaderName = HeaderName::from_static("dpop");
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The request's proof: none, or exactly one `DPoP` header of visible ASCII (§4.3 point 1).
pub fn proof(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut values = headers.get_all(DPOP).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "send one DPoP header, not several",
        ));
    }
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(Some)
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "the DPoP header is empty or not ASCII",
            )
        })
}

/// Adds the current `DPoP-Nonce` when the server requires nonces, to every answer of an
/// endpoint that takes proofs, so that a client always has a fresh one (§8.2).
pub fn with_nonce(authority: &Authority, mut response: Response) -> Response {
    if let Some(nonce) = authority.dpop_nonce() {
        if let Ok(value) = HeaderValue::from_str(&nonce) {
            response.headers_mut().insert(DPOP_NONCE, value);
        }
    }
    response
}
