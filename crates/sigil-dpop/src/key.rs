//! The key in a proof's header: which algorithms go with which keys, the public JWK made
//! into an OpenSSL key and the signature checked with it, and its RFC 7638 thumbprint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};

/// A proof signing algorithm Sigil knows: asymmetric only (RFC 9449 §4.3 point 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Es256,
    Rs256,
    Ps256,
    EdDsa,
}

/// Every algorithm, in the order discovery lists them.
pub const ALGORITHMS: [Alg; 4] = [Alg::Es256, Alg::Rs256, Alg::Ps256, Alg::EdDsa];

/// Smallest and largest RSA modulus accepted in a proof (bits).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl Alg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// From its JOSE name (exact, as RFC 7515 says).
    pub fn parse(name: &str) -> Option<Self> {
        ALGORITHMS.into_iter().find(|alg| alg.name() == name)
    }

    /// The public key of a JWK for this algorithm, or why the key does not fit. `jkt` is
    /// the JWK's RFC 7638 thumbprint ([`thumbprint`]): a key made before for the same
    /// thumbprint is taken from [`KEYS`] (a client signs its proofs with one key, and making
    /// an OpenSSL key, an RSA key's Montgomery form above all, is a third of an RS256 check).
    /// What the JWK says of its use is checked on every proof, since it is not part of the
    /// thumbprint.
    pub(crate) fn public_key(
        self,
        jwk: &Map<String, Value>,
        jkt: &str,
    ) -> Result<Arc<PublicKey>, &'static str> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err("the jwk header holds a private key");
        }
        // RFC 7517 §4: what the key says of itself must allow this use.
        if jwk
            .get("alg")
            .is_some_and(|a| a.as_str() != Some(self.name()))
            || jwk.get("use").is_some_and(|u| u.as_str() != Some("sig"))
            || jwk.get("key_ops").is_some_and(|ops| {
                !ops.as_array()
                    .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
            })
        {
            return Err("the jwk header's alg, use or key_ops does not allow verifying this proof");
        }
        // A certificate chain Sigil would not check is not taken on trust either.
        if jwk.contains_key("x5c") {
            return Err("the jwk header carries an x5c certificate chain, which is not accepted");
        }
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let kty = text("kty").ok_or("the jwk header has no kty")?;
        let fits = match (self, kty) {
            (Alg::Es256, "EC") => text("crv") == Some("P-256"),
            (Alg::EdDsa, "OKP") => text("crv") == Some("Ed25519"),
            (Alg::Rs256 | Alg::Ps256, "RSA") => true,
            _ => false,
        };
        if !fits {
            return Err("the jwk header's key does not fit the alg");
        }
        if let Some(key) = KEYS.get(jkt) {
            return Ok(key);
        }
        let key = Arc::new(PublicKey::from_jwk(kty, jwk)?);
        KEYS.insert(jkt, key.clone());
        Ok(key)
    }
}

/// The keys of recent proofs by thumbprint, in bounded memory: at most [`KEY_CACHE_SHARDS`]
/// times [`KEYS_PER_SHARD`] keys; a full shard is emptied (a flood of proofs with new keys
/// costs what it would without the cache, and the clients' keys come back on their next
/// proof). A thumbprint is the SHA-256 of every member that makes the key, so two keys
/// cannot share an entry.
static KEYS: LazyLock<KeyCache> = LazyLock::new(KeyCache::default);

const KEY_CACHE_SHARDS: usize = 8;
const KEYS_PER_SHARD: usize = 256;

/// Thumbprint → key.
type KeyShard = HashMap<String, Arc<PublicKey>>;

#[derive(Default)]
struct KeyCache {
    shards: [Mutex<KeyShard>; KEY_CACHE_SHARDS],
}

impl KeyCache {
    fn shard(&self, jkt: &str) -> MutexGuard<'_, KeyShard> {
        // The thumbprint is a hash already: its last character spreads the keys.
        let index = usize::from(jkt.as_bytes().last().copied().unwrap_or(0)) % KEY_CACHE_SHARDS;
        // A poisoned shard is still a consistent map (each update is one insert or clear).
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, jkt: &str) -> Option<Arc<PublicKey>> {
        self.shard(jkt).get(jkt).cloned()
    }

    fn insert(&self, jkt: &str, key: Arc<PublicKey>) {
        let mut shard = self.shard(jkt);
        if shard.len() >= KEYS_PER_SHARD {
            shard.clear();
        }
        shard.insert(jkt.to_string(), key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().map_or(0, |s| s.len()))
            .sum()
    }
}

/// The P-256 group, made once: OpenSSL takes about 10 µs to build it, which was a sixth of
/// an ES256 proof check when it was built for each proof.
fn p256_group() -> Option<&'static EcGroup> {
    static GROUP: OnceLock<Option<EcGroup>> = OnceLock::new();
    GROUP
        .get_or_init(|| EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).ok())
        .as_ref()
}

/// A proof's public key, ready to check its signature.
pub(crate) enum PublicKey {
    /// P-256; JWS signatures are `r || s`, 32 bytes each (RFC 7518 §3.4).
    Ec(EcKey<Public>),
    /// For RSASSA-PKCS1-v1_5 (RS256) or RSASSA-PSS (PS256), both with SHA-256 (RFC 7518
    /// §3.3, §3.5).
    Rsa(PKey<Public>),
    /// Ed25519 (RFC 8037).
    Ed25519(PKey<Public>),
}

impl PublicKey {
    /// The key of a JWK whose `kty` (and `crv`) fit the algorithm, or why it is no key:
    /// built with OpenSSL straight from the JWK's members (no DER round trip).
    fn from_jwk(kty: &str, jwk: &Map<String, Value>) -> Result<Self, &'static str> {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| text(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        let bad = "the jwk header is not a valid public key";
        match kty {
            "EC" => {
                let (Some(x), Some(y)) = (bytes("x"), bytes("y")) else {
                    return Err(bad);
                };
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad);
                }
                let key = (|| -> Option<EcKey<Public>> {
                    let group = p256_group()?;
                    let mut context = BigNumContext::new().ok()?;
                    let mut point = EcPoint::new(group).ok()?;
                    let x = BigNum::from_slice(&x).ok()?;
                    let y = BigNum::from_slice(&y).ok()?;
                    // Fails for a point that is not on the curve.
                    point
                        .set_affine_coordinates_gfp(group, &x, &y, &mut context)
                        .ok()?;
                    EcKey::from_public_key(group, &point).ok()
                })()
                .ok_or(bad)?;
                Ok(PublicKey::Ec(key))
            }
            "OKP" => {
                let x = bytes("x").filter(|x| x.len() == 32).ok_or(bad)?;
                let key = PKey::public_key_from_raw_bytes(&x, Id::ED25519).map_err(|_| bad)?;
                Ok(PublicKey::Ed25519(key))
            }
            "RSA" => {
                let n = text("n").ok_or(bad)?;
                let bits = rsa_modulus_bits(n).ok_or("the jwk header is not a valid RSA key")?;
                if !RSA_BITS.contains(&bits) {
                    return Err("the jwk header's RSA key must have 2048 to 4096 bits");
                }
                let (Some(n), Some(e)) = (bytes("n"), bytes("e")) else {
                    return Err(bad);
                };
                // An exponent of more than 32 bits, even, or 1 is no RSA public key.
                if e.is_empty() || e.len() > 4 || e.last().is_some_and(|b| b % 2 == 0) || e == [1] {
                    return Err(bad);
                }
                let rsa = Rsa::from_public_components(
                    BigNum::from_slice(&n).map_err(|_| bad)?,
                    BigNum::from_slice(&e).map_err(|_| bad)?,
                )
                .map_err(|_| bad)?;
                Ok(PublicKey::Rsa(PKey::from_rsa(rsa).map_err(|_| bad)?))
            }
            _ => Err("the jwk header's key does not fit the alg"),
        }
    }

    /// Whether `signature` is this key's over `message` with `alg` (one that fits the key,
    /// as [`Alg::public_key`] made sure).
    pub(crate) fn verifies(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        (|| -> Option<bool> {
            match self {
                PublicKey::Ec(key) => {
                    if signature.len() != 64 {
                        return Some(false);
                    }
                    let r = BigNum::from_slice(&signature[..32]).ok()?;
                    let s = BigNum::from_slice(&signature[32..]).ok()?;
                    let signature = EcdsaSig::from_private_components(r, s).ok()?;
                    let digest = Sha256::digest(message);
                    signature.verify(&digest, key).ok()
                }
                PublicKey::Rsa(key) => {
                    let mut verifier = Verifier::new(MessageDigest::sha256(), key).ok()?;
                    if alg == Alg::Ps256 {
                        verifier.set_rsa_padding(Padding::PKCS1_PSS).ok()?;
                        verifier.set_rsa_mgf1_md(MessageDigest::sha256()).ok()?;
                        verifier
                            .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                            .ok()?;
                    }
                    verifier.verify_oneshot(signature, message).ok()
                }
                PublicKey::Ed25519(key) => {
                    let mut verifier = Verifier::new_without_digest(key).ok()?;
                    verifier.verify_oneshot(signature, message).ok()
                }
            }
        })()
        .unwrap_or(false)
    }
}

/// The RFC 7638 thumbprint of a public JWK: the SHA-256 of its required members, in
/// lexicographic order and without white space, base64url-encoded. This is the `jkt` a
/// token is bound to (RFC 9449 §6.1). `None` for a key type other than RSA, EC and OKP or a
/// key missing a required member.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for member in members {
        let value = jwk.get(*member)?.as_str()?;
        canonical.insert((*member).to_string(), Value::String(value.to_string()));
    }
    // serde_json's map keeps keys sorted, and its compact form has no white space.
    let text = serde_json::to_string(&Value::Object(canonical)).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes())))
}

/// The size in bits of an RSA modulus given as base64url (leading zero bytes not counted).
pub fn rsa_modulus_bits(n: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(n).ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    let significant = &bytes[first..];
    Some(significant.len() * 8 - significant[0].leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_thumbprint_of_rfc_7638s_example_key() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let Value::Object(map) = jwk else {
            unreachable!()
        };
        assert_eq!(
            thumbprint(&map).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn a_proofs_key_is_made_once_and_the_cache_stays_bounded() {
        let Value::Object(jwk) = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }) else {
            unreachable!()
        };
        let jkt = thumbprint(&jwk).expect("thumbprint");
        let first = Alg::Es256.public_key(&jwk, &jkt).expect("key");
        let again = Alg::Es256.public_key(&jwk, &jkt).expect("key");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second proof's key came from the cache"
        );
        // What the JWK says of its use is not in the thumbprint: checked on every proof.
        let mut encrypting = jwk.clone();
        encrypting.insert("use".into(), json!("enc"));
        assert!(Alg::Es256.public_key(&encrypting, &jkt).is_err());
        assert!(
            Alg::Rs256.public_key(&jwk, &jkt).is_err(),
            "an EC key for RS256"
        );
        // A key that is no key is never remembered.
        let Value::Object(off_curve) =
            json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["x"]})
        else {
            unreachable!()
        };
        let off_jkt = thumbprint(&off_curve).expect("thumbprint");
        assert!(Alg::Es256.public_key(&off_curve, &off_jkt).is_err());
        assert!(KEYS.get(&off_jkt).is_none());
        // A flood of new keys: the cache never holds more than its bound.
        for n in 0..(KEY_CACHE_SHARDS * KEYS_PER_SHARD * 2) {
            KEYS.insert(&format!("flood{n}"), first.clone());
            assert!(KEYS.len() <= KEY_CACHE_SHARDS * KEYS_PER_SHARD);
        }
    }

    #[test]
    fn a_key_type_without_thumbprint_rules_has_none() {
        let Value::Object(map) = json!({"kty": "oct", "k": "c2VjcmV0"}) else {
            unreachable!()
        };
        assert_eq!(thumbprint(&map), None);
        let Value::Object(map) = json!({"kty": "EC", "crv": "P-256", "x": "AA"}) else {
            unreachable!()
        };
        assert_eq!(thumbprint(&map), None, "y is missing");
    }
}
