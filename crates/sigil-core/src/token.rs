//! JWTs Sigil issues: RFC 9068 access tokens and OpenID Connect ID tokens, RS256 only.

use crate::keys::{KeyError, KeySet, SigningKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// `typ` header of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";
/// Tokens longer than this are rejected before any parsing or cryptography.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// RFC 9068 §2.2 claims of a Sigil access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The user's id, or the client's id for `client_credentials`.
    pub sub: String,
    #[serde(with = "audience")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the user signed in: the authentication level (one of
    /// [`crate::factors::ACR_VALUES_SUPPORTED`]) and RFC 8176 method values. Absent in
    /// client tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The refresh-token family this token was issued with, so that introspection can
    /// report it inactive once the family is revoked. Not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid: Option<String>,
    /// The user's session epoch when the token was issued ([`crate::user::User::session_epoch`]):
    /// a password change or reset, disabling, or signing out everywhere moves the epoch on,
    /// and introspection and userinfo then refuse every token issued before. Absent in
    /// client tokens (and in tokens issued before this claim existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sep: Option<i64>,
    /// RFC 9449 §6.1: the DPoP key the token is bound to (`cnf.jkt`); absent in a bearer
    /// token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::dpop::Confirmation>,
}

impl AccessTokenClaims {
    /// True when the token was issued to a user (not to a client acting for itself).
    pub fn is_for_user(&self) -> bool {
        self.sub != self.client_id
    }
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// OpenID Connect Core §2 ID token claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    /// OIDC Core §2 `acr` and `amr` (RFC 8176).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Back-Channel Logout 1.0 §2.1: the browser session the user signed in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Why a presented token was not accepted. The text is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is too long")]
    TooLong,
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("the token has the wrong type")]
    WrongType,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token has expired")]
    Expired,
}

/// Signs `claims` as a compact JWS with header `{"alg":"RS256","typ":typ,"kid":…}`.
/// CPU-heavy (one RSA private-key operation): call it on a blocking pool.
pub fn sign_jwt(key: &SigningKey, typ: &str, claims: &impl Serialize) -> Result<String, KeyError> {
    let header = serde_json::json!({ "alg": "RS256", "typ": typ, "kid": key.kid() });
    let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Signing(e.to_string()))?;
    let mut token = String::with_capacity(600);
    token.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// Signs an access token and, when `id` is given, the ID token issued with it, whose
/// `at_hash` is taken from the access token just signed (OIDC Core §3.1.3.6). Two RSA
/// private-key operations in one call, so that a token response is one job for the
/// signing pool.
pub fn sign_access_and_id_token(
    key: &SigningKey,
    access: &AccessTokenClaims,
    id: Option<IdTokenClaims>,
) -> Result<(String, Option<String>), KeyError> {
    let access_token = sign_jwt(key, ACCESS_TOKEN_TYP, access)?;
    let id_token = match id {
        Some(mut claims) => {
            claims.at_hash = Some(at_hash(&access_token));
            Some(sign_jwt(key, ID_TOKEN_TYP, &claims)?)
        }
        None => None,
    };
    Ok((access_token, id_token))
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Verifies a Sigil access token: size, shape, `alg` RS256 only, `typ` at+jwt, a known
/// `kid`, the signature, `iss` and `exp`. Scope and revocation are the caller's business.
pub fn verify_access_token(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    now: i64,
) -> Result<AccessTokenClaims, TokenError> {
    verify_access_token_and_kid(keys, token, issuer, now).map(|(claims, _)| claims)
}

/// [`verify_access_token`], also returning the id of the key that signed the token.
fn verify_access_token_and_kid(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    now: i64,
) -> Result<(AccessTokenClaims, String), TokenError> {
    let (claims, kid): (AccessTokenClaims, String) =
        verify_jwt_and_kid(keys, token, ACCESS_TOKEN_TYP)?;
    check_issuer_and_time(&claims, issuer, now)?;
    Ok((claims, kid))
}

fn check_issuer_and_time(
    claims: &AccessTokenClaims,
    issuer: &str,
    now: i64,
) -> Result<(), TokenError> {
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// Access tokens whose signature has been checked, by SHA-256 of the whole token, with
/// their claims and the id of the key that signed them. The same token tends to come back
/// (a resource server introspects the token of each request it serves, a client calls
/// userinfo again), and a token seen before skips the base64, JSON and RSA work. What can
/// change since is checked again on every use: the key must still be in the key set (a
/// removed key takes its tokens with it), and the issuer and expiry are compared anew.
/// Only tokens that passed every check are kept, so bad input cannot fill it; at capacity
/// it starts over empty. Revocation is not its business: callers ask the store as before.
#[derive(Debug)]
pub struct VerifiedTokens {
    capacity: usize,
    entries: std::sync::Mutex<VerifiedMap>,
}

type VerifiedMap = std::collections::HashMap<[u8; 32], std::sync::Arc<(String, AccessTokenClaims)>>;

impl VerifiedTokens {
    /// Keeps at most `capacity` tokens; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: std::sync::Mutex::new(VerifiedMap::new()),
        }
    }

    /// The same checks and answers as [`verify_access_token`].
    pub fn verify(
        &self,
        keys: &KeySet,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<AccessTokenClaims, TokenError> {
        if self.capacity == 0 || token.len() > MAX_TOKEN_LEN {
            return verify_access_token(keys, token, issuer, now);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let seen = self
            .entries
            .lock()
            .ok()
            .and_then(|entries| entries.get(&digest).cloned());
        if let Some(seen) = seen {
            let (kid, claims) = &*seen;
            if keys.find(kid).is_some() && check_issuer_and_time(claims, issuer, now).is_ok() {
                return Ok(claims.clone());
            }
        }
        match verify_access_token_and_kid(keys, token, issuer, now) {
            Ok((claims, kid)) => {
                if let Ok(mut entries) = self.entries.lock() {
                    if entries.len() >= self.capacity {
                        entries.clear();
                    }
                    entries.insert(digest, std::sync::Arc::new((kid, claims.clone())));
                }
                Ok(claims)
            }
            Err(error) => {
                if let Ok(mut entries) = self.entries.lock() {
                    entries.remove(&digest);
                }
                Err(error)
            }
        }
    }

    /// Tokens kept now.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Verifies the signature and header of a Sigil JWT and returns its claims, without
/// checking time or issuer.
pub fn verify_jwt<C: for<'de> Deserialize<'de>>(
    keys: &KeySet,
    token: &str,
    expected_typ: &str,
) -> Result<C, TokenError> {
    verify_jwt_and_kid(keys, token, expected_typ).map(|(claims, _)| claims)
}

/// [`verify_jwt`], also returning the id of the key that signed the token.
fn verify_jwt_and_kid<C: for<'de> Deserialize<'de>>(
    keys: &KeySet,
    token: &str,
    expected_typ: &str,
) -> Result<(C, String), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
    if header.alg != "RS256" {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(expected_typ)
            || t.eq_ignore_ascii_case(&format!("application/{expected_typ}"))
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = keys.find(&kid).ok_or(TokenError::UnknownKey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::Malformed)?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    if !key.verify(&token.as_bytes()[..signed_len], &signature) {
        return Err(TokenError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    Ok((claims, kid))
}

/// OIDC Core §3.1.3.6 `at_hash`: the left half of SHA-256 of the access token, base64url.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// `aud` is a string when there is one audience and an array otherwise (RFC 7519 §4.1.3).
mod audience {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::test_pem;

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://issuer".into(),
            sub: "u1".into(),
            aud: vec!["api".into()],
            exp: 2000,
            iat: 1000,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "a b".into(),
            auth_time: None,
            acr: None,
            amr: None,
            fid: None,
            sep: None,
            cnf: None,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_token_verified_before_is_checked_again_for_key_issuer_and_time() {
        let key = |n| SigningKey::from_pem(&test_pem(n), 0, 0).expect("key");
        let set = KeySet::new(vec![key(0)]);
        let signer = set.signing_key(0).expect("key").clone();
        let token = sign_jwt(&signer, ACCESS_TOKEN_TYP, &claims()).expect("sign");
        let cache = VerifiedTokens::new(2);
        assert_eq!(
            cache.verify(&set, &token, "https://issuer", 1500),
            Ok(claims())
        );
        assert_eq!(cache.len(), 1, "a verified token is kept");
        // Seen before: the same answers as a first verification.
        assert_eq!(
            cache.verify(&set, &token, "https://issuer", 1600),
            Ok(claims())
        );
        assert_eq!(
            cache.verify(&set, &token, "https://other", 1600),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            cache.verify(&set, &token, "https://issuer", 2000),
            Err(TokenError::Expired)
        );
        assert_eq!(cache.len(), 0, "a token that failed is forgotten");
        assert_eq!(
            cache.verify(&set, &token, "https://issuer", 1700),
            Ok(claims())
        );
        // Its key is no longer published: the token dies with it, cached or not.
        let without = KeySet::new(vec![key(1)]);
        assert_eq!(
            cache.verify(&without, &token, "https://issuer", 1700),
            Err(TokenError::UnknownKey)
        );
        // A tampered token is a different token, checked in full.
        assert_eq!(
            cache.verify(&set, &token, "https://issuer", 1700),
            Ok(claims())
        );
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert_eq!(
            cache.verify(&set, &tampered, "https://issuer", 1700),
            Err(TokenError::BadSignature)
        );
        // Signed by another key under the same kid: refused.
        let impostor = KeySet::new(vec![key(1)]);
        let forged_header = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"alg": "RS256", "typ": ACCESS_TOKEN_TYP, "kid": signer.kid()})
                .to_string(),
        );
        let forged_body = sign_jwt(
            impostor.signing_key(0).expect("key"),
            ACCESS_TOKEN_TYP,
            &claims(),
        )
        .expect("sign");
        let mut parts = forged_body.split('.');
        let (_, payload, _) = (parts.next(), parts.next().unwrap_or(""), ());
        let message = format!("{forged_header}.{payload}");
        let signature = impostor
            .signing_key(0)
            .expect("key")
            .sign(message.as_bytes())
            .expect("sign");
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature));
        assert_eq!(
            cache.verify(&set, &forged, "https://issuer", 1700),
            Err(TokenError::BadSignature)
        );
        // Bounded: at capacity it starts over.
        let mut second = claims();
        second.jti = "j2".into();
        let mut third = claims();
        third.jti = "j3".into();
        for c in [&second, &third] {
            let t = sign_jwt(&signer, ACCESS_TOKEN_TYP, c).expect("sign");
            assert_eq!(
                cache.verify(&set, &t, "https://issuer", 1700),
                Ok(c.clone())
            );
            assert!(cache.len() <= 2);
        }
        // Capacity 0 keeps nothing and still verifies.
        let none = VerifiedTokens::new(0);
        assert_eq!(
            none.verify(&set, &token, "https://issuer", 1500),
            Ok(claims())
        );
        assert!(none.is_empty());
    }

    #[test]
    fn round_trip_and_checks() {
        let key = SigningKey::from_pem(&test_pem(0), 0, 0).expect("key");
        let other = SigningKey::from_pem(&test_pem(1), 0, 0).expect("key");
        let set = KeySet::new(vec![key]);
        let signer = set.signing_key(0).expect("key").clone();
        let token = sign_jwt(&signer, ACCESS_TOKEN_TYP, &claims()).expect("sign");
        assert_eq!(
            verify_access_token(&set, &token, "https://issuer", 1500),
            Ok(claims())
        );
        assert_eq!(
            verify_access_token(&set, &token, "https://other", 1500),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            verify_access_token(&set, &token, "https://issuer", 2000),
            Err(TokenError::Expired)
        );
        // Signed by a key that is not in the set.
        let foreign = sign_jwt(&other, ACCESS_TOKEN_TYP, &claims()).expect("sign");
        assert_eq!(
            verify_access_token(&set, &foreign, "https://issuer", 1500),
            Err(TokenError::UnknownKey)
        );
        // An ID token is not an access token.
        let id = sign_jwt(&signer, ID_TOKEN_TYP, &claims()).expect("sign");
        assert_eq!(
            verify_access_token(&set, &id, "https://issuer", 1500),
            Err(TokenError::WrongType)
        );
        // Tampered payload.
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = claims();
        evil.scope = "admin".into();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).expect("json")),
            parts[2]
        );
        assert_eq!(
            verify_access_token(&set, &tampered, "https://issuer", 1500),
            Err(TokenError::BadSignature)
        );
        // alg none.
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg":"none","typ":"at+jwt","kid":signer.kid()})),
            parts[1]
        );
        assert_eq!(
            verify_access_token(&set, &none, "https://issuer", 1500),
            Err(TokenError::AlgorithmNotAllowed)
        );
        assert_eq!(
            verify_access_token(&set, "a.b", "https://issuer", 1500),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify_access_token(&set, &"a".repeat(MAX_TOKEN_LEN + 1), "https://issuer", 1500),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn at_hash_matches_oidc_example_shape() {
        assert_eq!(at_hash("x").len(), 22);
    }

    #[test]
    fn single_audience_is_a_string() {
        let json = serde_json::to_value(claims()).expect("json");
        assert_eq!(json["aud"], "api");
        let mut two = claims();
        two.aud.push("b".into());
        assert_eq!(serde_json::to_value(two).expect("json")["aud"][1], "b");
    }
}
