//! Entry point of the token-endpoint cargo-fuzz target in `fuzz/` and of its regression
//! test. Not a supported API: hidden from the docs, and free to change.

use crate::http::client_auth::client_credentials;
use crate::http::form::OAuthForm;
use crate::http::token::parse_token_request;
use axum::http::{header, HeaderMap, HeaderValue};

/// Runs what the token endpoint does with a request before any storage: the bytes up to
/// the first NUL are the `Authorization` header, the rest is the form body. Panics if a
/// form with a repeated `grant_type` is accepted.
pub fn token_request(data: &[u8]) {
    let (authorization, body) = match data.iter().position(|b| *b == 0) {
        Some(at) => (Some(&data[..at]), &data[at + 1..]),
        None => (None, data),
    };
    let mut headers = HeaderMap::new();
    if let Some(value) = authorization.and_then(|v| HeaderValue::from_bytes(v).ok()) {
        headers.insert(header::AUTHORIZATION, value);
    }
    let form = OAuthForm::parse(body);
    let _ = client_credentials(
        &headers,
        &form,
        sigil_core::client_assertion::ClientAuthEndpoint::Token,
    );
    let parsed = parse_token_request(&form);
    if form.single("grant_type").is_err() {
        assert!(parsed.is_err(), "a repeated grant_type was accepted");
    }
}
