//! The admin console's path parameters and the links built from them. Every id in a path is
//! checked against the shape Sigil generates before a handler sees it (a bad one gets the
//! 404 page), and every id put back into a path is percent-encoded as one segment, so a
//! decoded `/`, `..`, `?` or `#` can never turn a form or a link into another action.

use crate::http::error::PageError;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sigil_core::admin::AdminError;
use sigil_core::federation::validate_provider_id;
use sigil_core::secret::is_random_token;
use std::fmt;

/// The path parameters of an admin route, each of a checked type ([`UserId`], [`ClientId`],
/// [`SessionId`], [`ProviderId`]).
/// Anything that does not parse, decode or pass the check is answered with the 404 page.
pub struct AdminPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AdminPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(_) => Err(PageError::Admin(AdminError::NotFound)),
        }
    }
}

/// Bytes in the ids Sigil gives users and clients (`random_token(16)`, 22 characters).
const GENERATED_ID_BYTES: usize = 16;

macro_rules! generated_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = &'static str;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                if is_random_token(&value, GENERATED_ID_BYTES) {
                    Ok(Self(value))
                } else {
                    Err("not an id Sigil generated")
                }
            }
        }

        /// Written as a path segment (a checked id needs no escaping, but says so anyway).
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&segment(&self.0))
            }
        }
    };
}

generated_id!(
    /// A user id from a path: 16 random bytes, base64url.
    UserId
);
generated_id!(
    /// A client id from a path: 16 random bytes, base64url.
    ClientId
);
generated_id!(
    /// A browser session's record id from a path: 16 random bytes, base64url.
    SessionId
);

/// A provider id from a path: the id an admin chose, so checked against the rule core
/// enforces when a provider is added ([`validate_provider_id`]), not the generated shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ProviderId(String);

impl ProviderId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderId {
    type Error = &'static str;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        validate_provider_id(&value)?;
        Ok(Self(value))
    }
}

/// Written as a path segment (a checked id has only unreserved characters).
impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&segment(&self.0))
    }
}

/// `value` percent-encoded as one path segment (RFC 3986 §3.3): everything but the
/// unreserved characters is encoded, so `/`, `?`, `#`, `%` and `.` stay inside the segment.
pub fn segment(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Askama filters for the admin templates: `{{ user.id|segment }}` in a link or action.
pub mod filters {
    /// See [`super::segment`].
    pub fn segment<T: std::fmt::Display>(
        value: T,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::segment(&value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_their_structure_characters_inside() {
        assert_eq!(segment("AZaz09-_~"), "AZaz09-_~");
        assert_eq!(segment("../a/b?c#d%"), "%2E%2E%2Fa%2Fb%3Fc%23d%25");
        assert_eq!(segment("\"'<é"), "%22%27%3C%C3%A9");
    }

    #[test]
    fn only_generated_ids_pass() {
        let id = sigil_core::secret::random_token(16);
        assert_eq!(UserId::try_from(id.clone()).map(|u| u.to_string()), Ok(id));
        for bad in ["", "..", "../../x", "a?b", "AAAAAAAAAAAAAAAAAAAA%2F"] {
            assert!(ClientId::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_valid_provider_ids_pass() {
        assert_eq!(
            ProviderId::try_from("corp-sso".to_string()).map(|p| p.to_string()),
            Ok("corp-sso".to_string())
        );
        for bad in [
            "",
            "..",
            "-x",
            "Corp",
            "a/b",
            "a%2Fb",
            "a?b",
            "a.b",
            &"x".repeat(33),
        ] {
            assert!(ProviderId::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
