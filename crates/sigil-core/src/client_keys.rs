//! A client's public keys for `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9): a JWK Set
//! parsed once into ready verifiers ([`ClientKeySet`]), where keys published at a
//! `jwks_uri` come from ([`ClientKeySource`], implemented by the server, which fetches
//! them), and the parsed sets of inline `jwks` kept per client ([`InlineKeyCache`]).

use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsVerifier, ES256, PS256, RS256};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The signature algorithms a client assertion may use (RFC 8414 §2
/// `token_endpoint_auth_signing_alg_values_supported`). `none` and the HMAC algorithms
/// are never accepted: a client's keys are public.
pub const ASSERTION_SIGNING_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// Largest RSA modulus accepted (bits): verifying with a bigger key costs more CPU than
/// any client needs to make Sigil spend.
pub const MAX_RSA_BITS: usize = 8192;

/// Largest JWK Set document read from a `jwks_uri` (bytes).
pub const MAX_FETCHED_JWKS_BYTES: usize = 64 * 1024;

/// Most keys of one set that are kept (the rest are ignored).
const MAX_KEYS: usize = 20;

/// One of [`ASSERTION_SIGNING_ALGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertionAlg {
    Rs256,
    Ps256,
    Es256,
    EdDsa,
}

impl AssertionAlg {
    /// The `alg` header value, or `None` for anything Sigil does not accept.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithms a key of type `kty` can verify.
    fn for_key_type(kty: &str) -> &'static [AssertionAlg] {
        match kty {
            "RSA" => &[Self::Rs256, Self::Ps256],
            "EC" => &[Self::Es256],
            "OKP" => &[Self::EdDsa],
            _ => &[],
        }
    }
}

/// One usable public key: its `kid` (if it has one) and a verifier per algorithm it may be
/// used with.
struct ClientKey {
    kid: Option<String>,
    verifiers: Vec<(AssertionAlg, Box<dyn JwsVerifier>)>,
}

/// What checking a signature against a key set came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// A key of the set verified the signature.
    Verified,
    /// Keys that fit the header were tried; none verified the signature.
    BadSignature,
    /// No key fits the header: none has its `kid` (or, without a `kid`, none can verify
    /// its `alg`).
    NoKey,
}

/// A client's JWK Set, parsed once: the keys Sigil can verify assertions with. Keys of
/// other types, for encryption (`use: enc`, `key_ops` without `verify`), with an `alg`
/// outside [`ASSERTION_SIGNING_ALGS`], RSA keys under 2048 or over [`MAX_RSA_BITS`] bits
/// and private keys are left out.
pub struct ClientKeySet {
    keys: Vec<ClientKey>,
}

impl std::fmt::Debug for ClientKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeySet")
            .field(
                "kids",
                &self
                    .keys
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ClientKeySet {
    /// Parses a JWK Set document. Fails when it is not a JWK Set or holds no usable key;
    /// the message says which, and quotes nothing of the document.
    pub fn parse(document: &[u8]) -> Result<Self, &'static str> {
        let value: serde_json::Value = serde_json::from_slice(document)
            .map_err(|_| "the JWK Set is not a JSON object with a keys array")?;
        let keys = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("the JWK Set is not a JSON object with a keys array")?;
        let parsed: Vec<ClientKey> = keys.iter().filter_map(parse_key).take(MAX_KEYS).collect();
        if parsed.is_empty() {
            return Err("the JWK Set holds no key usable for RS256, PS256, ES256 or EdDSA signatures (RSA keys need 2048 to 8192 bits)");
        }
        Ok(Self { keys: parsed })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some key fits a header with this `alg` and `kid`.
    pub fn has_key_for(&self, alg: AssertionAlg, kid: Option<&str>) -> bool {
        self.candidates(alg, kid).next().is_some()
    }

    /// Checks `signature` over `message` with the keys that fit `alg` and `kid`: the key
    /// with that `kid` when one is given, else every key that can verify `alg`.
    /// CPU work (RSA, ECDSA, EdDSA): run it on a CPU pool.
    pub fn verify(
        &self,
        alg: AssertionAlg,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> KeyMatch {
        let mut tried = false;
        for verifier in self.candidates(alg, kid) {
            tried = true;
            if verifier.verify(message, signature).is_ok() {
                return KeyMatch::Verified;
            }
        }
        if tried {
            KeyMatch::BadSignature
        } else {
            KeyMatch::NoKey
        }
    }

    fn candidates<'a>(
        &'a self,
        alg: AssertionAlg,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a dyn JwsVerifier> + 'a {
        self.keys
            .iter()
            .filter(move |key| kid.is_none() || key.kid.as_deref() == kid)
            .flat_map(move |key| {
                key.verifiers
                    .iter()
                    .filter(move |(a, _)| *a == alg)
                    .map(|(_, v)| v.as_ref())
            })
    }
}

/// One JWK into a [`ClientKey`], or `None` when it is not a usable public signing key.
fn parse_key(value: &serde_json::Value) -> Option<ClientKey> {
    let map = value.as_object()?;
    let kty = map.get("kty")?.as_str()?;
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|private| map.contains_key(*private))
    {
        return None;
    }
    if map.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return None;
    }
    if kty == "RSA" {
        let bits = sigil_dpop::rsa_modulus_bits(map.get("n")?.as_str()?)?;
        if !(2048..=MAX_RSA_BITS).contains(&bits) {
            return None;
        }
    }
    let kid = match map.get("kid") {
        None => None,
        Some(kid) => Some(kid.as_str()?.to_string()),
    };
    let algs: Vec<AssertionAlg> = match map.get("alg") {
        None => AssertionAlg::for_key_type(kty).to_vec(),
        Some(name) => {
            let alg = AssertionAlg::parse(name.as_str()?)?;
            if !AssertionAlg::for_key_type(kty).contains(&alg) {
                return None;
            }
            vec![alg]
        }
    };
    let jwk = Jwk::from_map(map.clone()).ok()?;
    let mut verifiers: Vec<(AssertionAlg, Box<dyn JwsVerifier>)> = Vec::new();
    for alg in algs {
        let verifier: Option<Box<dyn JwsVerifier>> = match alg {
            AssertionAlg::Rs256 => RS256
                .verifier_from_jwk(&jwk)
                .ok()
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            AssertionAlg::Ps256 => PS256
                .verifier_from_jwk(&jwk)
                .ok()
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            AssertionAlg::Es256 => ES256
                .verifier_from_jwk(&jwk)
                .ok()
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            AssertionAlg::EdDsa => EdDSA
                .verifier_from_jwk(&jwk)
                .ok()
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
        };
        if let Some(verifier) = verifier {
            verifiers.push((alg, verifier));
        }
    }
    (!verifiers.is_empty()).then_some(ClientKey { kid, verifiers })
}

/// Why the keys at a client's `jwks_uri` could not be had. The text is safe to return to
/// the client: it names what failed, never the document's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySourceError(pub String);

impl std::fmt::Display for KeySourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the keys a client publishes at its `jwks_uri` come from. The server implements
/// it over HTTP (caching, refetch limits, address rules); core only asks.
#[async_trait::async_trait]
pub trait ClientKeySource: Send + Sync {
    /// The key set at `jwks_uri`. `refresh` is set when the set in hand has no key for an
    /// assertion's header (a `kid` it does not know): the source fetches again if it may
    /// (at most every 30 seconds per URL), else returns what it has.
    async fn keys_at(
        &self,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<Arc<ClientKeySet>, KeySourceError>;
}

/// Most clients whose inline key sets are kept parsed.
const INLINE_CACHE_MAX: usize = 10_000;

/// Parsed inline `jwks` by client id, each with the SHA-256 of the text it was parsed
/// from: a client whose keys changed (the text differs) is parsed again, any other is
/// served from memory. At capacity it starts over empty.
#[derive(Default)]
pub(crate) struct InlineKeyCache {
    entries: Mutex<HashMap<String, ParsedInline>>,
}

/// The SHA-256 of an inline set's text, and the set parsed from it.
type ParsedInline = ([u8; 32], Arc<ClientKeySet>);

impl InlineKeyCache {
    /// The parsed set of `jwks` (the client's inline JWK Set text).
    pub(crate) fn get(
        &self,
        client_id: &str,
        jwks: &str,
    ) -> Result<Arc<ClientKeySet>, &'static str> {
        let digest: [u8; 32] = Sha256::digest(jwks.as_bytes()).into();
        if let Ok(entries) = self.entries.lock() {
            if let Some((seen, set)) = entries.get(client_id) {
                if *seen == digest {
                    return Ok(set.clone());
                }
            }
        }
        let set = Arc::new(ClientKeySet::parse(jwks.as_bytes())?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= INLINE_CACHE_MAX {
                entries.clear();
            }
            entries.insert(client_id.to_string(), (digest, set.clone()));
        }
        Ok(set)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ed::EdCurve;

    fn public_set(keys: &[serde_json::Value]) -> String {
        serde_json::json!({ "keys": keys }).to_string()
    }

    #[test]
    fn parses_rsa_ec_and_okp_keys_and_verifies_with_each() {
        let rsa = RS256.generate_key_pair(2048).expect("rsa");
        let ec = ES256.generate_key_pair().expect("ec");
        let ed = EdDSA.generate_key_pair(EdCurve::Ed25519).expect("ed");
        let mut rsa_jwk = rsa.to_jwk_public_key();
        rsa_jwk.set_key_id("r");
        // josekit writes the alg it made the key for; without one, RS256 and PS256 both fit.
        let mut rsa_value = serde_json::to_value(rsa_jwk.as_ref()).expect("json");
        rsa_value.as_object_mut().expect("object").remove("alg");
        let mut ec_jwk = ec.to_jwk_public_key();
        ec_jwk.set_key_id("e");
        let mut ed_jwk = ed.to_jwk_public_key();
        ed_jwk.set_key_id("o");
        let text = public_set(&[
            rsa_value,
            serde_json::to_value(ec_jwk.as_ref()).expect("json"),
            serde_json::to_value(ed_jwk.as_ref()).expect("json"),
        ]);
        let set = ClientKeySet::parse(text.as_bytes()).expect("parse");
        assert_eq!(set.len(), 3);
        let message = b"header.payload";
        let rs = RS256
            .signer_from_der(rsa.to_der_private_key())
            .expect("signer")
            .sign(message)
            .expect("sign");
        let ps = PS256
            .signer_from_der(rsa.to_der_private_key())
            .expect("signer")
            .sign(message)
            .expect("sign");
        let es = ES256
            .signer_from_der(ec.to_der_private_key())
            .expect("signer")
            .sign(message)
            .expect("sign");
        let eddsa = EdDSA
            .signer_from_der(ed.to_der_private_key())
            .expect("signer")
            .sign(message)
            .expect("sign");
        for (alg, kid, signature) in [
            (AssertionAlg::Rs256, Some("r"), &rs),
            (AssertionAlg::Ps256, Some("r"), &ps),
            (AssertionAlg::Es256, Some("e"), &es),
            (AssertionAlg::EdDsa, Some("o"), &eddsa),
            (AssertionAlg::Rs256, None, &rs),
            (AssertionAlg::Es256, None, &es),
        ] {
            assert_eq!(
                set.verify(alg, kid, message, signature),
                KeyMatch::Verified,
                "{alg:?} {kid:?}"
            );
        }
        assert_eq!(
            set.verify(AssertionAlg::Rs256, Some("r"), b"other", &rs),
            KeyMatch::BadSignature
        );
        assert_eq!(
            set.verify(AssertionAlg::Rs256, Some("nope"), message, &rs),
            KeyMatch::NoKey
        );
        // The kid names an EC key: an RS256 signature has no key to be checked with.
        assert_eq!(
            set.verify(AssertionAlg::Rs256, Some("e"), message, &rs),
            KeyMatch::NoKey
        );
        assert!(set.has_key_for(AssertionAlg::Es256, None));
        assert!(!set.has_key_for(AssertionAlg::EdDsa, Some("r")));
    }

    #[test]
    fn leaves_out_keys_it_must_not_use() {
        let small = RS256.generate_key_pair(1024);
        // josekit itself may refuse to make a small key; if it does, use a made-up one.
        let small_n = match small {
            Ok(pair) => pair.to_jwk_public_key().parameter("n").cloned(),
            Err(_) => None,
        }
        .unwrap_or_else(|| serde_json::json!("AQAB".repeat(40)));
        let rsa = RS256.generate_key_pair(2048).expect("rsa");
        let mut public = serde_json::to_value(rsa.to_jwk_public_key().as_ref()).expect("json");
        public.as_object_mut().expect("object").remove("alg");
        let private = serde_json::to_value(rsa.to_jwk_private_key().as_ref()).expect("json");
        let mut encryption = public.clone();
        encryption["use"] = "enc".into();
        let mut hmac_alg = public.clone();
        hmac_alg["alg"] = "HS256".into();
        let mut ec_alg_on_rsa = public.clone();
        ec_alg_on_rsa["alg"] = "ES256".into();
        let unusable = public_set(&[
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
            serde_json::json!({"kty": "RSA", "n": small_n, "e": "AQAB"}),
            private,
            encryption,
            hmac_alg,
            ec_alg_on_rsa,
        ]);
        assert!(ClientKeySet::parse(unusable.as_bytes()).is_err());
        assert!(ClientKeySet::parse(b"not json").is_err());
        assert!(ClientKeySet::parse(b"{}").is_err());
        let mut only_rs256 = public.clone();
        only_rs256["alg"] = "RS256".into();
        let set = ClientKeySet::parse(public_set(&[only_rs256]).as_bytes()).expect("parse");
        assert!(set.has_key_for(AssertionAlg::Rs256, None));
        assert!(!set.has_key_for(AssertionAlg::Ps256, None));
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let mut n = vec![0u8, 0x80];
        n.extend(std::iter::repeat_n(0xff, 255));
        assert_eq!(
            sigil_dpop::rsa_modulus_bits(&URL_SAFE_NO_PAD.encode(&n)),
            Some(2048)
        );
        assert_eq!(
            sigil_dpop::rsa_modulus_bits(&URL_SAFE_NO_PAD.encode([0x01])),
            Some(1)
        );
        assert_eq!(sigil_dpop::rsa_modulus_bits("!!"), None);
    }

    #[test]
    fn inline_sets_are_parsed_once_per_text() {
        let rsa = RS256.generate_key_pair(2048).expect("rsa");
        let public = serde_json::to_value(rsa.to_jwk_public_key().as_ref()).expect("json");
        let text = public_set(std::slice::from_ref(&public));
        let cache = InlineKeyCache::default();
        let first = cache.get("c1", &text).expect("parse");
        let again = cache.get("c1", &text).expect("cached");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same text is not parsed again"
        );
        let mut other = public;
        other["kid"] = "k2".into();
        let changed = cache.get("c1", &public_set(&[other])).expect("parse");
        assert!(!Arc::ptr_eq(&first, &changed), "new keys are parsed");
        assert_eq!(cache.len(), 1);
    }
}
