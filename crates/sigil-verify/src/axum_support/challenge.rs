//! The responses of refusals: status, JSON body, and the `WWW-Authenticate` challenges of
//! RFC 6750 §3 (`Bearer`), RFC 9449 §7.1 and §7.2 (`DPoP`, beside `Bearer` or alone), RFC
//! 9470 §3 (step-up) and RFC 9728 §5.1 (`resource_metadata`), and `DPoP-Nonce` (RFC 9449 §9).

use crate::dpop::Scheme;
use crate::{ErrorKind, VerifyError};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The response header that hands a client the nonce for its next proof (RFC 9449 §8.1, §9).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// RFC 6750 §3: 401 with a Bearer challenge, 403 `insufficient_scope` with the scope, 400
/// `invalid_request`, 503 when the issuer's keys cannot be had (or the DPoP replay cache is
/// full), RFC 9470 §3: 401 `insufficient_user_authentication` with the `acr_values` and
/// `max_age` to ask Sigil for, and RFC 9449: 401 `invalid_dpop_proof` or `use_dpop_nonce`
/// (with `DPoP-Nonce`). The body (except for a missing token) is `{"error": …,
/// "error_description": …}`.
impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let (status, codes) = status_and_codes(self.kind());
        let mut response = match codes {
            Some((_, body_code)) => (
                status,
                axum::Json(serde_json::json!({
                    "error": body_code,
                    "error_description": quoted_string_safe(&self.to_string()),
                })),
            )
                .into_response(),
            None => status.into_response(),
        };
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, www_authenticate(&self));
        if let Some(nonce) = self
            .dpop_nonce()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            response.headers_mut().insert(DPOP_NONCE, nonce);
        }
        // For the layers above: they may add `resource_metadata` to the challenge.
        response.extensions_mut().insert(self);
        response
    }
}

/// The `WWW-Authenticate` value for `error`, as [`VerifyError`]'s response carries it.
///
/// The `Bearer` challenge: `Bearer` alone for a missing token (RFC 6750 §3.1), else `Bearer
/// error="…", error_description="…"`; then `scope="…"` when the error names scopes (always
/// for `insufficient_scope`, see [`VerifyError::with_scope`]), for
/// `insufficient_user_authentication` (RFC 9470 §3) `acr_values="…"` (space-separated) and
/// `max_age="N"` (seconds, quoted as in RFC 9470 §3), each only when the requirement has it,
/// and last `resource_metadata="…"` (RFC 9728 §5.1) when set with
/// [`VerifyError::with_resource_metadata`].
///
/// When the error carries a [`VerifyError::dpop_challenge`] (a verifier that accepts DPoP),
/// a `DPoP` challenge follows in the same header value (RFC 9110 §11.6.1 allows a list):
/// `DPoP algs="ES256 RS256 PS256 EdDSA"` (the accepted algorithms), then the same
/// attributes. Per RFC 9449 §7.2, the error code and description go in the challenge of the
/// scheme the request used (both when that is unclear, neither for a missing token), and a
/// route that demands DPoP offers only the `DPoP` challenge:
///
/// ```text
/// Bearer scope="todos:read", DPoP algs="ES256 RS256 PS256 EdDSA", scope="todos:read"
/// DPoP algs="ES256", error="invalid_dpop_proof", error_description="…"
/// ```
///
/// For resource servers that build their own responses.
pub fn www_authenticate(error: &VerifyError) -> HeaderValue {
    HeaderValue::from_str(&challenge(error)).unwrap_or(HeaderValue::from_static("Bearer"))
}

/// The status, and the error codes of the challenge and of the body (`None`: no error
/// code, for a request that carried no token).
pub(crate) fn status_and_codes(
    kind: ErrorKind,
) -> (StatusCode, Option<(&'static str, &'static str)>) {
    match kind {
        ErrorKind::MissingToken => (StatusCode::UNAUTHORIZED, None),
        ErrorKind::BadRequest => (
            StatusCode::BAD_REQUEST,
            Some(("invalid_request", "invalid_request")),
        ),
        ErrorKind::InsufficientScope => (
            StatusCode::FORBIDDEN,
            Some(("insufficient_scope", "insufficient_scope")),
        ),
        ErrorKind::InsufficientUserAuthentication => (
            StatusCode::UNAUTHORIZED,
            Some((
                "insufficient_user_authentication",
                "insufficient_user_authentication",
            )),
        ),
        ErrorKind::KeysUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(("invalid_token", "temporarily_unavailable")),
        ),
        ErrorKind::InvalidDpopProof => (
            StatusCode::UNAUTHORIZED,
            Some(("invalid_dpop_proof", "invalid_dpop_proof")),
        ),
        ErrorKind::UseDpopNonce => (
            StatusCode::UNAUTHORIZED,
            Some(("use_dpop_nonce", "use_dpop_nonce")),
        ),
        ErrorKind::ReplayCacheFull => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(("invalid_dpop_proof", "temporarily_unavailable")),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            Some(("invalid_token", "invalid_token")),
        ),
    }
}

fn challenge(error: &VerifyError) -> String {
    let Some(dpop) = error.dpop_challenge() else {
        return scheme_challenge("Bearer", None, error, true);
    };
    let dpop_only_error = matches!(
        error.kind(),
        ErrorKind::InvalidDpopProof | ErrorKind::UseDpopNonce | ErrorKind::ReplayCacheFull
    );
    let (bearer_has_error, dpop_has_error) = match dpop.used {
        _ if dpop_only_error || !dpop.bearer_allowed => (false, true),
        Some(Scheme::Bearer) => (true, false),
        Some(Scheme::Dpop) => (false, true),
        None => (true, true),
    };
    let algs = format!("algs=\"{}\"", quoted_string_safe(&dpop.algs));
    let dpop_challenge = scheme_challenge("DPoP", Some(algs), error, dpop_has_error);
    if dpop.bearer_allowed {
        format!(
            "{}, {dpop_challenge}",
            scheme_challenge("Bearer", None, error, bearer_has_error)
        )
    } else {
        dpop_challenge
    }
}

/// One challenge: `scheme`, `first` (the `algs` of `DPoP`), the error code and description
/// when `with_error`, and the attributes every challenge carries.
fn scheme_challenge(
    scheme: &str,
    first: Option<String>,
    error: &VerifyError,
    with_error: bool,
) -> String {
    let mut attributes: Vec<String> = first.into_iter().collect();
    if with_error {
        if let Some((code, _)) = status_and_codes(error.kind()).1 {
            attributes.push(format!("error=\"{code}\""));
            attributes.push(format!(
                "error_description=\"{}\"",
                quoted_string_safe(&error.to_string())
            ));
        }
    }
    if let Some(scope) = error.required_scope() {
        attributes.push(format!("scope=\"{}\"", quoted_string_safe(scope)));
    }
    if let Some(requirement) = error.required_authentication() {
        if !requirement.acr_values().is_empty() {
            let values = requirement.acr_values().join(" ");
            attributes.push(format!("acr_values=\"{}\"", quoted_string_safe(&values)));
        }
        if let Some(max_age) = requirement.max_age() {
            attributes.push(format!("max_age=\"{}\"", max_age.as_secs()));
        }
    }
    if let Some(url) = error.resource_metadata() {
        attributes.push(format!("resource_metadata=\"{}\"", quoted_string_safe(url)));
    }
    if attributes.is_empty() {
        scheme.to_string()
    } else {
        format!("{scheme} {}", attributes.join(", "))
    }
}

/// `text` with quotes, backslashes and anything but printable ASCII replaced by `'`, so
/// that it can sit in a quoted-string of a header.
pub(crate) fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || !(' '..='~').contains(&c) {
                '\''
            } else {
                c
            }
        })
        .collect()
}
