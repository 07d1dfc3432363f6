//! `private_key_jwt` client authentication: a JWT the client signs with its own private key
//! (RFC 7523 §2.2 and §3, RFC 7521 §4.2, OpenID Connect Core §9).
//!
//! The server takes `client_assertion` out of the request and parses it here
//! ([`ClientAssertion::parse`]: shape, header, the client it names, nothing verified yet).
//! [`Authority::authenticate_client`] then checks, in this order, so that junk costs the
//! least: the claims ([`ClientAssertion::check_claims`]: `iss` = `sub`, `aud`, `exp`,
//! `iat`, `nbf`, `jti`), the client and its method, its keys (inline `jwks`, parsed once,
//! or the `jwks_uri` set from the [`ClientKeySource`]), the signature (on the signing
//! pool), and last the `jti`, recorded until the assertion expires so that a replay is
//! refused on every replica. Every refusal is `invalid_client` (RFC 7521 §4.2) with a
//! description that says what was wrong and quotes nothing of the assertion.

use crate::authority::Authority;
use crate::client::{AuthMethod, Client};
use crate::client_keys::{AssertionAlg, ClientKeySet, KeyMatch, ASSERTION_SIGNING_ALGS};
use crate::error::OAuthError;
use crate::secret::hash_for_storage;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use std::sync::Arc;

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest client assertion read (bytes).
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// Clock difference tolerated between the client and Sigil (seconds), for `exp`, `iat`
/// and `nbf`.
pub const ASSERTION_LEEWAY: i64 = 30;

/// Longest lifetime of an assertion (seconds): `exp` at most this long after `iat`
/// (after now when there is no `iat`). A client makes a new one per request.
pub const MAX_ASSERTION_LIFETIME: i64 = 300;

/// Longest `jti` accepted (characters).
pub const MAX_JTI_LEN: usize = 256;

/// The endpoints at which a client authenticates. An assertion's `aud` may name the
/// issuer, the token endpoint, or the endpoint it is sent to (RFC 7523 §3 point 3; the
/// issuer is what draft-ietf-oauth-rfc7523bis recommends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthEndpoint {
    Token,
    Revocation,
    Introspection,
    PushedAuthorization,
}

impl ClientAuthEndpoint {
    /// The endpoint's path under the issuer.
    pub fn path(self) -> &'static str {
        match self {
            Self::Token => "/token",
            Self::Revocation => "/revoke",
            Self::Introspection => "/introspect",
            Self::PushedAuthorization => "/par",
        }
    }
}

/// A client assertion taken out of a request: decoded, not yet verified. It is a
/// credential (a bearer of the client's identity until it expires): its `Debug` shows
/// only the client and the endpoint.
#[derive(Clone)]
pub struct ClientAssertion {
    /// `BASE64URL(header) . BASE64URL(payload)`, what the signature covers.
    signing_input: String,
    signature: Vec<u8>,
    alg: AssertionAlg,
    kid: Option<String>,
    subject: String,
    claims: Map<String, Value>,
    endpoint: ClientAuthEndpoint,
}

impl std::fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("sub", &self.subject)
            .field("alg", &self.alg)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What [`ClientAssertion::check_claims`] found: the `jti` and until when it must be
/// remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedClaims {
    pub jti: String,
    /// `exp` plus the leeway: until then the assertion could be accepted.
    pub replayable_until: i64,
}

fn refused(why: impl std::fmt::Display) -> OAuthError {
    OAuthError::invalid_client(format!("client assertion: {why}"))
}

impl ClientAssertion {
    /// Decodes `token`, sent to `endpoint`: a compact JWS of three parts, a header with an
    /// accepted `alg` (not `none`, not HMAC), an optional string `kid`, a `typ` of `JWT`
    /// or `client-authentication+jwt` if any, no `crit`; a JSON object payload with a
    /// `sub`. The signature and the other claims are checked later.
    pub fn parse(token: &str, endpoint: ClientAuthEndpoint) -> Result<Self, OAuthError> {
        if token.len() > MAX_ASSERTION_LEN {
            return Err(refused(format_args!(
                "longer than {} KiB",
                MAX_ASSERTION_LEN / 1024
            )));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused(
                "not a signed JWT (a JWS in compact serialization: three parts joined by dots)",
            ));
        };
        let header = decode_object(header_b64).ok_or_else(|| refused("malformed header"))?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| refused("the header has no alg"))?;
        let alg = AssertionAlg::parse(alg_name).ok_or_else(|| {
            if alg_name.eq_ignore_ascii_case("none") {
                refused("unsigned assertions (alg none) are not accepted")
            } else if alg_name.starts_with("HS") {
                refused("assertions signed with a shared secret (HMAC) are not accepted: sign with the private key of a public key the client registered")
            } else {
                refused(format_args!(
                    "the alg must be one of {}",
                    ASSERTION_SIGNING_ALGS.join(", ")
                ))
            }
        })?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(refused("the header's kid is not a string")),
        };
        match header.get("typ") {
            None => {}
            Some(Value::String(typ)) if is_accepted_typ(typ) => {}
            Some(_) => {
                return Err(refused(
                    "the header's typ must be JWT or client-authentication+jwt (another type of JWT is not a client assertion)",
                ))
            }
        }
        if header.contains_key("crit") {
            return Err(refused(
                "the header lists critical extensions (crit), which Sigil does not support",
            ));
        }
        let claims = decode_object(payload_b64)
            .ok_or_else(|| refused("the payload is not a JSON object"))?;
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(refused("no sub: it must be the client_id")),
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| refused("malformed signature"))?;
        Ok(Self {
            signing_input: format!("{header_b64}.{payload_b64}"),
            signature,
            alg,
            kid,
            subject,
            claims,
            endpoint,
        })
    }

    /// The client it names: its `sub` (RFC 7523 §3 point 2.B).
    pub fn client_id(&self) -> &str {
        &self.subject
    }

    pub fn endpoint(&self) -> ClientAuthEndpoint {
        self.endpoint
    }

    /// RFC 7523 §3, OIDC Core §9: `iss` and `sub` are the client id; `aud` names this
    /// server (its issuer identifier, its token endpoint, or the endpoint called); `exp`
    /// is there, not past (with [`ASSERTION_LEEWAY`]) and at most
    /// [`MAX_ASSERTION_LIFETIME`] after `iat` (or now); `iat` and `nbf`, if present, not
    /// in the future; `jti` is there. Numeric dates may be fractional (RFC 7519 §2).
    pub fn check_claims(&self, issuer: &str, now: i64) -> Result<CheckedClaims, OAuthError> {
        match self.claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.subject => {}
            _ => {
                return Err(refused(
                    "iss and sub must both be the client_id (they differ, or iss is missing)",
                ))
            }
        }
        let base = issuer.trim_end_matches('/');
        let accepted = [
            issuer.to_string(),
            format!("{base}{}", ClientAuthEndpoint::Token.path()),
            format!("{base}{}", self.endpoint.path()),
        ];
        let names_us = match self.claims.get("aud") {
            Some(Value::String(aud)) => accepted.contains(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| accepted.iter().any(|a| a == aud)),
            _ => false,
        };
        if !names_us {
            return Err(refused(format_args!(
                "aud must name this server: its issuer identifier {issuer} (recommended) or the URL of the endpoint"
            )));
        }
        let exp = self.numeric_date("exp")?.ok_or_else(|| refused("no exp"))?;
        if now > exp + ASSERTION_LEEWAY {
            return Err(refused("expired (exp is past)"));
        }
        let iat = self.numeric_date("iat")?;
        if iat.is_some_and(|iat| iat > now + ASSERTION_LEEWAY) {
            return Err(refused("issued in the future (iat)"));
        }
        if self
            .numeric_date("nbf")?
            .is_some_and(|nbf| nbf > now + ASSERTION_LEEWAY)
        {
            return Err(refused("not valid yet (nbf)"));
        }
        if exp - iat.unwrap_or(now) > MAX_ASSERTION_LIFETIME {
            return Err(refused(format_args!(
                "exp is too far ahead: an assertion may live at most {MAX_ASSERTION_LIFETIME} seconds"
            )));
        }
        let jti = match self.claims.get("jti") {
            Some(Value::String(jti)) if !jti.is_empty() && jti.chars().count() <= MAX_JTI_LEN => {
                jti.clone()
            }
            Some(Value::String(jti)) if !jti.is_empty() => {
                return Err(refused(format_args!(
                    "the jti may be at most {MAX_JTI_LEN} characters"
                )))
            }
            _ => return Err(refused("no jti: every assertion needs a unique jti")),
        };
        Ok(CheckedClaims {
            jti,
            replayable_until: exp + ASSERTION_LEEWAY,
        })
    }

    /// A NumericDate claim in whole seconds (fractions dropped), `None` when absent.
    fn numeric_date(&self, name: &str) -> Result<Option<i64>, OAuthError> {
        match self.claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && f.abs() < 1e15)
                        .map(|f| f.floor() as i64)
                })
                .map(Some)
                .ok_or_else(|| refused(format_args!("{name} is not a usable time"))),
            Some(_) => Err(refused(format_args!(
                "{name} must be a number of seconds since 1970"
            ))),
        }
    }
}

/// `JWT`, `client-authentication+jwt`, either with `application/` (RFC 7515 §4.1.9), in
/// any case.
fn is_accepted_typ(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    let typ = typ.strip_prefix("application/").unwrap_or(&typ);
    typ == "jwt" || typ == "client-authentication+jwt"
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

impl Authority {
    /// Authenticates the client an assertion names (see the module's documentation for
    /// the order of the checks).
    pub(crate) async fn authenticate_with_assertion(
        &self,
        assertion: &ClientAssertion,
    ) -> Result<Arc<Client>, OAuthError> {
        let now = self.now();
        let checked = assertion.check_claims(&self.config.issuer, now)?;
        let Some(client) = self.find_client(assertion.client_id()).await? else {
            return Err(OAuthError::invalid_client("client authentication failed"));
        };
        if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
            return Err(OAuthError::invalid_client(format!(
                "this client does not authenticate with a client assertion: it is registered for {}",
                client.token_endpoint_auth_method.as_str()
            )));
        }
        let keys = self.assertion_keys(&client, assertion).await?;
        let alg = assertion.alg;
        let kid = assertion.kid.clone();
        let message = assertion.signing_input.clone();
        let signature = assertion.signature.clone();
        let outcome = self
            .signing_pool
            .run(move || keys.verify(alg, kid.as_deref(), message.as_bytes(), &signature))
            .await?;
        match outcome {
            KeyMatch::Verified => {}
            KeyMatch::BadSignature => return Err(refused("the signature does not verify")),
            KeyMatch::NoKey => {
                return Err(refused(
                    "signed with a key the client has not registered (no key with its kid, or none for its alg)",
                ))
            }
        }
        let first_use = self
            .store
            .record_client_assertion(
                &client.id,
                &hash_for_storage(&checked.jti),
                checked.replayable_until,
                now,
            )
            .await?;
        if !first_use {
            return Err(refused(
                "this assertion was used before (its jti was seen): make a new one per request",
            ));
        }
        Ok(client)
    }

    /// The keys to check `assertion` with: the client's inline set (parsed once), or the
    /// set at its `jwks_uri`, fetched again once when it has no key for the header.
    async fn assertion_keys(
        &self,
        client: &Client,
        assertion: &ClientAssertion,
    ) -> Result<Arc<ClientKeySet>, OAuthError> {
        if let Some(jwks) = &client.jwks {
            return self
                .inline_keys
                .get(&client.id, jwks)
                .map_err(|why| refused(format_args!("the client's registered keys: {why}")));
        }
        let Some(uri) = &client.jwks_uri else {
            return Err(refused("the client has registered no keys"));
        };
        let Some(source) = &self.client_key_source else {
            return Err(refused(
                "this server does not fetch keys from a jwks_uri; register the keys inline",
            ));
        };
        let unavailable =
            |e: crate::client_keys::KeySourceError| refused(format_args!("its jwks_uri: {e}"));
        let keys = source.keys_at(uri, false).await.map_err(unavailable)?;
        if keys.has_key_for(assertion.alg, assertion.kid.as_deref()) {
            return Ok(keys);
        }
        source.keys_at(uri, true).await.map_err(unavailable)
    }
}
