//! `application/x-www-form-urlencoded` bodies for the OAuth endpoints, parsed so that a
//! malformed body, a wrong content type or a repeated parameter gets an RFC 6749 error
//! instead of the framework's default text.

use super::error::FormRejection;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use sigil_core::OAuthError;
use std::collections::HashMap;
use utoipa::ToSchema;

/// Largest accepted form body.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The parameters of a form body. Empty values count as absent (RFC 6749 §3.1).
#[derive(Debug, Default)]
pub struct OAuthForm {
    params: HashMap<String, Vec<String>>,
}

impl OAuthForm {
    pub fn parse(body: &[u8]) -> Self {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            params
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        Self { params }
    }

    /// A parameter that may appear at most once (RFC 6749 §3.1).
    pub fn single(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        match self.params.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one.as_str())),
            Some(_) => Err(OAuthError::invalid_request(format!(
                "the {name} parameter is repeated"
            ))),
        }
    }

    /// A parameter that must appear exactly once.
    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.single(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is missing")))
    }

    /// A parameter that may repeat (RFC 8707 `resource`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.params.get(name).cloned().unwrap_or_default()
    }
}

/// The form parameters of the token, revocation and introspection endpoints, for the
/// OpenAPI document ([`OAuthForm`] reads them). Which are required depends on
/// `grant_type` (token) or the endpoint; see docs/api.md.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `authorization_code`, `refresh_token`, `password` or `client_credentials` (token).
    grant_type: Option<String>,
    /// Authorization code grant.
    code: Option<String>,
    /// Authorization code grant: required when the authorization request had one.
    redirect_uri: Option<String>,
    /// Authorization code grant: the PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    /// Refresh token grant.
    refresh_token: Option<String>,
    /// Password grant (enabled per client).
    username: Option<String>,
    /// Password grant.
    password: Option<String>,
    /// Space-separated scopes.
    scope: Option<String>,
    /// RFC 8707 resource indicator; may repeat.
    resource: Option<String>,
    /// Revocation and introspection: the token.
    token: Option<String>,
    /// Revocation and introspection: `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    /// `client_secret_post`, or a public client's id.
    client_id: Option<String>,
    /// `client_secret_post`.
    client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    client_assertion_type: Option<String>,
    /// `private_key_jwt`: a JWT signed with the client's key (RFC 7523 §2.2, §3).
    client_assertion: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = FormRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(FormRejection::NotAForm);
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    FormRejection::TooLarge
                }
                other => FormRejection::Unreadable(other.to_string()),
            })?;
        if body.len() > MAX_FORM_BYTES {
            return Err(FormRejection::TooLarge);
        }
        Ok(Self::parse(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_empty_parameters() {
        let form = OAuthForm::parse(b"a=1&a=2&b=&c=x%20y&r=1&r=2");
        assert!(form.single("a").is_err());
        assert_eq!(form.single("b").ok().flatten(), None);
        assert_eq!(form.single("c").ok().flatten(), Some("x y"));
        assert_eq!(form.all("r"), vec!["1".to_string(), "2".to_string()]);
        assert!(form.required("zzz").is_err());
    }
}
