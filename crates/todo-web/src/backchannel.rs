//! The receiving side of OpenID Connect Back-Channel Logout 1.0: validating a logout token
//! (§2.6) against the issuer's published keys, and refusing replays. The JWT work (RS256
//! signature, `iss`, `aud`, `exp`) is jsonwebtoken's; the logout-specific rules are here.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The event a logout token must carry (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Least time between two JWKS fetches caused by unknown key ids, so that forged tokens
/// cannot make us hammer the issuer.
const JWKS_REFETCH_GAP: Duration = Duration::from_secs(10);
/// Clock skew allowed on `exp` and `iat`, in seconds.
const LEEWAY: u64 = 60;
/// Most `jti`s remembered; beyond that, tokens are refused until old ones expire.
const MAX_REMEMBERED_JTIS: usize = 100_000;

/// What a valid logout token names: the Sigil session (`sid`), the user (`sub`), or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutTarget {
    pub session_id: Option<String>,
    pub subject: Option<String>,
}

/// Why a logout token was refused; the text goes into the 400 answer's
/// `error_description`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutTokenError {
    #[error("the logout token is not a valid JWT: {0}")]
    Malformed(String),
    #[error("the logout token's typ must be logout+jwt")]
    WrongType,
    #[error("the logout token must be signed with RS256")]
    WrongAlgorithm,
    #[error("the logout token is signed with an unknown key")]
    UnknownKey,
    #[error("the issuer's keys cannot be fetched: {0}")]
    KeysUnavailable(String),
    #[error("the logout token's signature is invalid")]
    BadSignature,
    #[error("the logout token is not from this issuer")]
    WrongIssuer,
    #[error("the logout token is not meant for this client")]
    WrongAudience,
    #[error("the logout token has expired")]
    Expired,
    #[error("the logout token lacks {0}")]
    Missing(&'static str),
    #[error("the logout token's events must hold the back-channel logout event as an object")]
    WrongEvents,
    #[error("a logout token must not carry a nonce")]
    HasNonce,
    #[error("the logout token has been used already")]
    Replayed,
}

/// Validates logout tokens from one issuer for one client.
#[derive(Clone)]
pub struct LogoutTokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    client_id: String,
    jwks_uri: url::Url,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Keys>,
    /// `jti` → until when (Unix seconds) it is remembered.
    seen_jtis: Mutex<HashMap<String, i64>>,
}

struct Keys {
    set: JwkSet,
    /// Whether the set was fetched at all (the first token fetches it).
    is_loaded: bool,
    /// When an unknown `kid` last made us refetch it.
    refetched_at: Option<Instant>,
}

#[derive(Deserialize)]
struct Claims {
    iat: Option<i64>,
    exp: Option<i64>,
    jti: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    events: Option<serde_json::Value>,
    nonce: Option<serde_json::Value>,
}

impl LogoutTokenVerifier {
    /// `jwks_uri` comes from the issuer's discovery document; keys are fetched on first use.
    pub fn new(issuer: &str, client_id: &str, jwks_uri: url::Url, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: issuer.to_string(),
                client_id: client_id.to_string(),
                jwks_uri,
                http,
                keys: tokio::sync::Mutex::new(Keys {
                    set: JwkSet { keys: Vec::new() },
                    is_loaded: false,
                    refetched_at: None,
                }),
                seen_jtis: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Validates a logout token per Back-Channel Logout 1.0 §2.6 and remembers its `jti`.
    pub async fn verify(&self, token: &str) -> Result<LogoutTarget, LogoutTokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| LogoutTokenError::Malformed(e.to_string()))?;
        // §2.6 step 3 and §2.4: explicit typing, alg RS256 (what Sigil signs with; never
        // `none` or an HMAC keyed with a public key).
        let is_logout_type = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case("logout+jwt")
                || typ.eq_ignore_ascii_case("application/logout+jwt")
        });
        if !is_logout_type {
            return Err(LogoutTokenError::WrongType);
        }
        if header.alg != Algorithm::RS256 {
            return Err(LogoutTokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(LogoutTokenError::Missing("a kid"))?;
        let key = self.key(&kid).await?;

        // §2.6 steps 3-4: signature, iss, aud (a string or an array holding our id), exp.
        // `exp` is required (§2.4): without it a token's `jti` could not be remembered for
        // as long as the token is good, and an old token would replay forever.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.client_id]);
        validation.set_required_spec_claims(&["iss", "aud", "exp"]);
        validation.validate_exp = true;
        validation.leeway = LEEWAY;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(map_jwt_error)?
            .claims;

        // §2.6 steps 4-7: iat, jti, events, sub or sid, no nonce.
        let now = unix_now();
        let iat = claims.iat.ok_or(LogoutTokenError::Missing("iat"))?;
        if iat > now + LEEWAY as i64 {
            return Err(LogoutTokenError::Malformed("iat is in the future".into()));
        }
        let jti = claims.jti.ok_or(LogoutTokenError::Missing("jti"))?;
        let has_logout_event = claims
            .events
            .as_ref()
            .and_then(|events| events.as_object())
            .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
            .is_some_and(serde_json::Value::is_object);
        if !has_logout_event {
            return Err(LogoutTokenError::WrongEvents);
        }
        if claims.sub.is_none() && claims.sid.is_none() {
            return Err(LogoutTokenError::Missing("sub and sid (one is needed)"));
        }
        if claims.nonce.is_some() {
            return Err(LogoutTokenError::HasNonce);
        }
        // §2.6 step 8 (optional, done): a `jti` is used once; remembered until expiry.
        let exp = claims.exp.ok_or(LogoutTokenError::Missing("exp"))?;
        let remember_until = exp.saturating_add(LEEWAY as i64);
        self.remember(jti, remember_until, now)?;
        Ok(LogoutTarget {
            session_id: claims.sid,
            subject: claims.sub,
        })
    }

    /// The RSA key with this `kid`, refetching the JWKS once when it is unknown (a key
    /// rotation at Sigil), at most once per `JWKS_REFETCH_GAP`.
    async fn key(&self, kid: &str) -> Result<DecodingKey, LogoutTokenError> {
        let mut keys = self.inner.keys.lock().await;
        if let Some(jwk) = keys.set.find(kid) {
            return decoding_key(jwk);
        }
        if keys.is_loaded {
            let may_refetch = keys
                .refetched_at
                .is_none_or(|at| at.elapsed() >= JWKS_REFETCH_GAP);
            if !may_refetch {
                return Err(LogoutTokenError::UnknownKey);
            }
            keys.refetched_at = Some(Instant::now());
        }
        keys.set = self.fetch_jwks().await?;
        keys.is_loaded = true;
        match keys.set.find(kid) {
            Some(jwk) => decoding_key(jwk),
            None => Err(LogoutTokenError::UnknownKey),
        }
    }

    async fn fetch_jwks(&self) -> Result<JwkSet, LogoutTokenError> {
        let unavailable = |e: reqwest::Error| LogoutTokenError::KeysUnavailable(e.to_string());
        self.inner
            .http
            .get(self.inner.jwks_uri.clone())
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json::<JwkSet>()
            .await
            .map_err(unavailable)
    }

    fn remember(&self, jti: String, until: i64, now: i64) -> Result<(), LogoutTokenError> {
        let mut seen = self
            .inner
            .seen_jtis
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|_, expires| *expires > now);
        if seen.contains_key(&jti) {
            return Err(LogoutTokenError::Replayed);
        }
        if seen.len() >= MAX_REMEMBERED_JTIS {
            return Err(LogoutTokenError::Malformed(
                "too many logout tokens at once; try again later".into(),
            ));
        }
        seen.insert(jti, until);
        Ok(())
    }
}

/// Only RSA signing keys are used (a key marked for another algorithm or for encryption is
/// not).
fn decoding_key(jwk: &Jwk) -> Result<DecodingKey, LogoutTokenError> {
    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm, PublicKeyUse};
    let is_rsa = matches!(jwk.algorithm, AlgorithmParameters::RSA(_));
    let is_rs256 = jwk
        .common
        .key_algorithm
        .is_none_or(|alg| alg == KeyAlgorithm::RS256);
    let is_for_signing = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|usage| *usage == PublicKeyUse::Signature);
    if !(is_rsa && is_rs256 && is_for_signing) {
        return Err(LogoutTokenError::UnknownKey);
    }
    DecodingKey::from_jwk(jwk).map_err(|_| LogoutTokenError::UnknownKey)
}

fn map_jwt_error(error: jsonwebtoken::errors::Error) -> LogoutTokenError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => LogoutTokenError::BadSignature,
        ErrorKind::InvalidIssuer => LogoutTokenError::WrongIssuer,
        ErrorKind::InvalidAudience => LogoutTokenError::WrongAudience,
        ErrorKind::ExpiredSignature => LogoutTokenError::Expired,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => LogoutTokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => LogoutTokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
            LogoutTokenError::Missing("exp")
        }
        ErrorKind::InvalidAlgorithm => LogoutTokenError::WrongAlgorithm,
        _ => LogoutTokenError::Malformed(error.to_string()),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
