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
    /// The key the token is bound to (RFC 7800 `cnf`; RFC 9449 §6.1 `jkt`), for a DPoP-bound
    /// token; `None` for a bearer token. See [`Claims::confirmation_key`].
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

/// A token's confirmation claim (RFC 7800 §3.1). Sigil binds tokens with DPoP only, so the
/// one member read is `jkt` (RFC 9449 §6.1); any other member makes the token bound to
/// something this verifier cannot check, and [`crate::Verifier::verify_request`] refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "serde_json::Map<String, serde_json::Value>")]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the DPoP public key, base64url (`None` when
    /// absent or not a string).
    pub jkt: Option<String>,
    /// True when `cnf` has members other than a string `jkt` (an mTLS certificate's
    /// `x5t#S256`, …): the token is bound to something this verifier cannot check.
    pub has_other_members: bool,
}

impl From<serde_json::Map<String, serde_json::Value>> for Confirmation {
    fn from(mut members: serde_json::Map<String, serde_json::Value>) -> Self {
        let jkt = match members.remove("jkt") {
            Some(serde_json::Value::String(jkt)) => Some(jkt),
            Some(other) => {
                members.insert("jkt".to_string(), other);
                None
            }
            None => None,
        };
        Self {
            jkt,
            has_other_members: !members.is_empty(),
        }
    }
}

impl Claims {
    /// The RFC 7638 thumbprint of the key the token is bound to (`cnf.jkt`, RFC 9449 §6.1):
    /// `Some` for a DPoP-bound token, which must come with `Authorization: DPoP` and a proof
    /// signed by that key; `None` for a bearer token.
    pub fn confirmation_key(&self) -> Option<&str> {
        self.cnf.as_ref()?.jkt.as_deref()
    }

    /// True when the token has a `cnf` claim at all: it is bound to some key, DPoP or not.
    pub fn is_sender_constrained(&self) -> bool {
        self.cnf.is_some()
    }
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
