//! The claims of a verified access token.

use serde::Deserialize;

/// RFC 9068 claims of a verified Sigil access token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user (or, for client_credentials, the client) the token speaks for.
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// When the user last authenticated (seconds since the epoch); absent for client
    /// credentials. See [`Claims::require_authentication`].
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// How strongly the user authenticated (`urn:sigil:acr:1fa`, `urn:sigil:acr:2fa`,
    /// `phr`); absent for client credentials and older tokens.
    #[serde(default)]
    pub acr: Option<String>,
    /// RFC 8176 authentication methods (`pwd`, `otp`, `hwk`, `swk`, `mfa`, `fed`).
    #[serde(default)]
    pub amr: Option<Vec<String>>,
}

impl Claims {
    /// True when `scope` is one of the token's scopes.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }

    /// Fails with [`crate::ErrorKind::InsufficientScope`] unless every scope is present.
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), crate::VerifyError> {
        match scopes.iter().find(|s| !self.has_scope(s)) {
            None => Ok(()),
            Some(_) => Err(crate::VerifyError::insufficient_scope(&scopes.join(" "))),
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
