//! Signing keys and their life cycle (RFC 7517 JWKS, RFC 7638 thumbprints).
//!
//! Every key has an activation time. At any moment the signing key is the key activated
//! most recently; a key activated in the future is *next* (published, not yet signing); a
//! key whose successor has activated is *retired* (still published, so that tokens it
//! signed keep validating) and may be pruned once no token signed by it can still be valid.
//! The life cycle is a pure function of the keys and the time, so replicas that read the
//! same key directory agree without talking to each other.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::KeyPair as _;
use josekit::jws::alg::rsassa::{RsassaJwsSigner, RsassaJwsVerifier};
use josekit::jws::{JwsSigner as _, JwsVerifier as _, RS256};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};

/// The RSA modulus size of generated keys.
pub const KEY_BITS: u32 = 2048;
/// The smallest RSA modulus accepted from a key file (RFC 7518 §3.3: 2048 bits or larger).
pub const MIN_KEY_BITS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid RSA private key: {0}")]
    InvalidKey(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A parsed RSA signing key with its metadata. Parsing happens once, when the key is loaded.
pub struct SigningKey {
    kid: String,
    created_at: i64,
    activates_at: i64,
    signer: RsassaJwsSigner,
    verifier: RsassaJwsVerifier,
    public_jwk: serde_json::Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// A freshly generated private key in PKCS#8 PEM form. Its `Debug` hides the key.
pub struct GeneratedKey {
    pub kid: String,
    pub private_pem: Vec<u8>,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeneratedKey({})", self.kid)
    }
}

/// Generates a new RSA-2048 key (OpenSSL, through josekit).
pub fn generate_key() -> Result<GeneratedKey, KeyError> {
    let pair = RS256
        .generate_key_pair(KEY_BITS)
        .map_err(|e| KeyError::InvalidKey(e.to_string()))?;
    let private_pem = pair.to_pem_private_key();
    let kid = thumbprint_of_pem(&private_pem)?;
    Ok(GeneratedKey { kid, private_pem })
}

/// Refuses anything but an RSA private key of at least [`MIN_KEY_BITS`], naming its size.
fn check_key_size(pem: &[u8]) -> Result<(), KeyError> {
    let key = openssl::pkey::PKey::private_key_from_pem(pem)
        .map_err(|e| KeyError::InvalidKey(format!("not a PEM private key: {e}")))?;
    if key.id() != openssl::pkey::Id::RSA {
        return Err(KeyError::InvalidKey("not an RSA key".into()));
    }
    let bits = key.bits();
    if bits < MIN_KEY_BITS {
        return Err(KeyError::InvalidKey(format!(
            "an RSA key of {bits} bits is too small: at least {MIN_KEY_BITS} are required"
        )));
    }
    Ok(())
}

/// The RFC 7638 thumbprint of the public part of a private key PEM.
pub fn thumbprint_of_pem(pem: &[u8]) -> Result<String, KeyError> {
    let (n, e) = public_components(pem)?;
    Ok(thumbprint(&n, &e))
}

fn public_components(pem: &[u8]) -> Result<(String, String), KeyError> {
    let pair = RS256
        .key_pair_from_pem(pem)
        .map_err(|e| KeyError::InvalidKey(e.to_string()))?;
    let jwk = pair.to_jwk_public_key();
    let get = |name: &str| {
        jwk.parameter(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| KeyError::InvalidKey(format!("public key has no {name}")))
    };
    Ok((get("n")?, get("e")?))
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no white space.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

impl SigningKey {
    /// Parses a private key PEM (PKCS#8 or PKCS#1, at least 2048 bits).
    pub fn from_pem(pem: &[u8], created_at: i64, activates_at: i64) -> Result<Self, KeyError> {
        check_key_size(pem)?;
        let (n, e) = public_components(pem)?;
        let kid = thumbprint(&n, &e);
        let mut signer = RS256
            .signer_from_pem(pem)
            .map_err(|e| KeyError::InvalidKey(e.to_string()))?;
        signer.set_key_id(kid.clone());
        let pair = RS256
            .key_pair_from_pem(pem)
            .map_err(|e| KeyError::InvalidKey(e.to_string()))?;
        let verifier = RS256
            .verifier_from_jwk(&pair.to_jwk_public_key())
            .map_err(|e| KeyError::InvalidKey(e.to_string()))?;
        let public_jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": n,
            "e": e,
        });
        Ok(Self {
            kid,
            created_at,
            activates_at,
            signer,
            verifier,
            public_jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
    pub fn activates_at(&self) -> i64 {
        self.activates_at
    }
    /// The public JWK: `kty`, `use`, `alg`, `kid`, `n`, `e`, nothing private.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.public_jwk
    }
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`. CPU-heavy: call on a blocking pool.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.signer
            .sign(message)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(message, signature).is_ok()
    }
}

/// How long a token signed by a key can outlive the key's signing period: the longest of
/// the access-token and ID-token lifetimes and any client's access-token override. A retired
/// key must stay published at least this long.
pub fn longest_token_ttl(access_token_ttl: i64, id_token_ttl: i64, client_max: Option<i64>) -> i64 {
    access_token_ttl
        .max(id_token_ttl)
        .max(client_max.unwrap_or(0))
}

/// Where a key stands in its life cycle at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, will sign from `activates_at`.
    Next,
    /// The signing key.
    Active,
    /// Superseded at `retired_at`; published until its tokens have expired.
    Retired { retired_at: i64 },
}

impl KeyState {
    pub fn name(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired { .. } => "retired",
        }
    }
}

/// All published keys, ordered by activation time, with the JWKS document prebuilt.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    jwks_json: String,
    jwks_etag: String,
}

impl KeySet {
    pub fn new(mut keys: Vec<SigningKey>) -> Self {
        keys.sort_by(|a, b| {
            (a.activates_at, a.created_at, &a.kid).cmp(&(b.activates_at, b.created_at, &b.kid))
        });
        keys.dedup_by(|a, b| a.kid == b.kid);
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>()
        });
        let jwks_json = jwks.to_string();
        let jwks_etag = format!(
            "\"{}\"",
            &URL_SAFE_NO_PAD.encode(Sha256::digest(jwks_json.as_bytes()))[..22]
        );
        Self {
            keys: keys.into_iter().map(Arc::new).collect(),
            jwks_json,
            jwks_etag,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }
    /// `{"keys":[…]}` with every published key.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }
    /// A strong ETag for [`Self::jwks_json`].
    pub fn jwks_etag(&self) -> &str {
        &self.jwks_etag
    }
    pub fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The key that signs at `now`: the most recently activated one (or, if every key is
    /// still in the future, the earliest).
    pub fn signing_key(&self, now: i64) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.activates_at <= now)
            .or_else(|| self.keys.first())
    }

    /// Each key with its state at `now`.
    pub fn states(&self, now: i64) -> Vec<(Arc<SigningKey>, KeyState)> {
        let active = self.signing_key(now).map(|k| k.kid.clone());
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let state = if Some(&key.kid) == active.as_ref() {
                    KeyState::Active
                } else if key.activates_at > now {
                    KeyState::Next
                } else {
                    let retired_at = self.keys.get(i + 1).map(|k| k.activates_at).unwrap_or(now);
                    KeyState::Retired { retired_at }
                };
                (key.clone(), state)
            })
            .collect()
    }

    /// Retired keys that no still-valid token can have been signed with: retired more than
    /// `max_token_ttl` seconds (plus a minute of clock skew) before `now`.
    pub fn prunable(&self, now: i64, max_token_ttl: i64) -> Vec<String> {
        self.states(now)
            .into_iter()
            .filter_map(|(key, state)| match state {
                KeyState::Retired { retired_at } if retired_at + max_token_ttl + 60 <= now => {
                    Some(key.kid.clone())
                }
                _ => None,
            })
            .collect()
    }
}

/// The current key set, swapped whole when the key directory changes.
#[derive(Debug, Default)]
pub struct KeyRing(RwLock<Arc<KeySet>>);

impl KeyRing {
    pub fn new(set: KeySet) -> Self {
        Self(RwLock::new(Arc::new(set)))
    }
    pub fn current(&self) -> Arc<KeySet> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
    pub fn replace(&self, set: KeySet) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// Key generation is slow; tests share a few keys.
    pub(crate) fn test_pem(index: usize) -> Vec<u8> {
        static KEYS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        KEYS.get_or_init(|| {
            (0..3)
                .map(|_| generate_key().expect("keygen").private_pem)
                .collect()
        })[index]
            .clone()
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 example key.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn signs_and_verifies_and_publishes_only_public_members() {
        let pem = test_pem(0);
        let key = SigningKey::from_pem(&pem, 0, 0).expect("parse");
        assert_eq!(key.kid(), thumbprint_of_pem(&pem).expect("kid"));
        let sig = key.sign(b"hello").expect("sign");
        assert!(key.verify(b"hello", &sig));
        assert!(!key.verify(b"hellp", &sig));
        let jwk = key.public_jwk().as_object().expect("object");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(!jwk.contains_key(private));
        }
    }

    #[test]
    fn rejects_garbage_and_small_keys() {
        assert!(SigningKey::from_pem(b"not a key", 0, 0).is_err());
        // A real 1024-bit RSA key, in both PEM forms a key file may use.
        let small = openssl::rsa::Rsa::generate(1024).expect("keygen");
        let pkcs1 = small.private_key_to_pem().expect("pkcs1");
        let pkcs8 = openssl::pkey::PKey::from_rsa(small)
            .and_then(|key| key.private_key_to_pem_pkcs8())
            .expect("pkcs8");
        for pem in [pkcs1, pkcs8] {
            let Err(error) = SigningKey::from_pem(&pem, 0, 0) else {
                panic!("a 1024-bit key is refused");
            };
            let error = error.to_string();
            assert!(
                error.contains("1024 bits is too small: at least 2048"),
                "{error}"
            );
        }
        // A key of another type is refused as such.
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("curve"),
        )
        .and_then(openssl::pkey::PKey::from_ec_key)
        .and_then(|key| key.private_key_to_pem_pkcs8())
        .expect("ec key");
        let Err(error) = SigningKey::from_pem(&ec, 0, 0) else {
            panic!("an EC key is refused");
        };
        let error = error.to_string();
        assert!(error.contains("not an RSA key"), "{error}");
        // The smallest accepted size still loads.
        assert!(SigningKey::from_pem(&test_pem(0), 0, 0).is_ok());
    }

    #[test]
    fn life_cycle() {
        let a = SigningKey::from_pem(&test_pem(0), 0, 0).expect("a");
        let b = SigningKey::from_pem(&test_pem(1), 100, 1000).expect("b");
        let (kid_a, kid_b) = (a.kid().to_string(), b.kid().to_string());
        let set = KeySet::new(vec![b, a]);
        assert_eq!(set.signing_key(500).map(|k| k.kid()), Some(kid_a.as_str()));
        let states = set.states(500);
        assert_eq!(states[0].1, KeyState::Active);
        assert_eq!(states[1].1, KeyState::Next);
        assert_eq!(set.signing_key(1000).map(|k| k.kid()), Some(kid_b.as_str()));
        assert_eq!(
            set.states(1500)[0].1,
            KeyState::Retired { retired_at: 1000 }
        );
        assert!(set.prunable(1500, 600).is_empty());
        assert_eq!(set.prunable(1000 + 600 + 60, 600), vec![kid_a]);
        assert!(set.jwks_json().contains(&kid_b));
    }
}
