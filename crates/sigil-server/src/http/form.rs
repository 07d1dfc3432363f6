//! `application/x-www-form-urlencoded` bodies for the OAuth endpoints, parsed so that a
//! malformed body, a wrong content type or a repeated parameter gets an RFC 6749 error
//! instead of the framework's default text.

use super::error::OAuthResponseError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::IntoResponse;
use sigil_core::OAuthError;
use std::collections::HashMap;

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

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = axum::response::Response;

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
            return Err(OAuthResponseError(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ))
            .into_response());
        }
        let too_large = || {
            let mut response = OAuthResponseError(OAuthError::invalid_request(
                "the request body is larger than 64 KiB",
            ))
            .into_response();
            *response.status_mut() = axum::http::StatusCode::PAYLOAD_TOO_LARGE;
            response
        };
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                OAuthResponseError(OAuthError::invalid_request(format!(
                    "cannot read the request body: {rejection}"
                )))
                .into_response()
            }
        })?;
        if body.len() > MAX_FORM_BYTES {
            return Err(too_large());
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
