//! Client credentials from a request (RFC 6749 §2.3.1): HTTP Basic (`client_secret_basic`)
//! or body parameters (`client_secret_post`), a signed client assertion
//! (`private_key_jwt`: `client_assertion_type` and `client_assertion`, RFC 7523 §2.2), or a
//! bare `client_id` for public clients. Using two methods at once is an error.

use super::form::OAuthForm;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sigil_core::authority::ClientCredentials;
use sigil_core::client_assertion::{ClientAssertion, ClientAuthEndpoint, CLIENT_ASSERTION_TYPE};
use sigil_core::secret::Secret;
use sigil_core::OAuthError;

/// Takes the client's credentials out of the headers and form of a request to `endpoint`
/// (the endpoint a client assertion's `aud` may name).
pub fn client_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
    endpoint: ClientAuthEndpoint,
) -> Result<ClientCredentials, OAuthError> {
    let form_id = form.single("client_id")?;
    let form_secret = form.single("client_secret")?;
    if let Some(assertion) = client_assertion(form, endpoint)? {
        if headers.contains_key(header::AUTHORIZATION) || form_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method: a client assertion, or a secret",
            ));
        }
        // RFC 7521 §4.2: a client_id sent beside the assertion names the same client.
        if form_id.is_some_and(|id| id != assertion.client_id()) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the client assertion's sub",
            ));
        }
        return Ok(ClientCredentials::with_assertion(assertion));
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
        let (scheme, encoded) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_client(
                "client authentication must use HTTP Basic or the request body",
            ));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        let id = form_decode(id)?;
        let secret = form_decode(secret)?;
        if form_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method",
            ));
        }
        if form_id.is_some_and(|f| f != id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the Authorization header",
            ));
        }
        return Ok(ClientCredentials::with_secret(
            id,
            Some(Secret::new(secret)),
        ));
    }
    match form_id {
        Some(id) => Ok(ClientCredentials::with_secret(
            id,
            form_secret.map(Secret::new),
        )),
        None => Err(OAuthError::invalid_client(
            "client authentication is required",
        )),
    }
}

/// `client_assertion_type` and `client_assertion` (RFC 7521 §4.2), both or neither.
fn client_assertion(
    form: &OAuthForm,
    endpoint: ClientAuthEndpoint,
) -> Result<Option<ClientAssertion>, OAuthError> {
    let assertion_type = form.single("client_assertion_type")?;
    let assertion = form.single("client_assertion")?;
    match (assertion_type, assertion) {
        (None, None) => Ok(None),
        (Some(CLIENT_ASSERTION_TYPE), Some(assertion)) => {
            ClientAssertion::parse(assertion, endpoint).map(Some)
        }
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(format!(
            "unsupported client_assertion_type: the one supported is {CLIENT_ASSERTION_TYPE}"
        ))),
        (Some(_), None) => Err(OAuthError::invalid_request(
            "client_assertion_type without a client_assertion",
        )),
        (None, Some(_)) => Err(OAuthError::invalid_request(format!(
            "client_assertion without client_assertion_type ({CLIENT_ASSERTION_TYPE})"
        ))),
    }
}

fn form_decode(value: &str) -> Result<String, OAuthError> {
    let joined: String = form_urlencoded::parse(format!("x={value}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default();
    if joined.is_empty() {
        return Err(OAuthError::invalid_client("malformed Basic credentials"));
    }
    Ok(joined)
}
