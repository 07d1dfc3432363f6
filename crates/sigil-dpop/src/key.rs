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

    /// The public key of a JWK for this algorithm, or why the key does not fit. Built with
    /// OpenSSL straight from the JWK's members (no DER round trip): it is done for every
    /// proof, since each proof brings its key.
    pub(crate) fn public_key(self, jwk: &Map<String, Value>) -> Result<PublicKey, &'static str> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err("the jwk header holds a private key");
        }
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| text(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
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
        let kty = text("kty").ok_or("the jwk header has no kty")?;
        let bad = "the jwk header is not a valid public key";
        match (self, kty) {
            (Alg::Es256, "EC") if text("crv") == Some("P-256") => {
                let (Some(x), Some(y)) = (bytes("x"), bytes("y")) else {
                    return Err(bad);
                };
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad);
                }
                let key = (|| -> Option<EcKey<Public>> {
                    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).ok()?;
                    let mut context = BigNumContext::new().ok()?;
                    let mut point = EcPoint::new(&group).ok()?;
                    let x = BigNum::from_slice(&x).ok()?;
                    let y = BigNum::from_slice(&y).ok()?;
                    // Fails for a point that is not on the curve.
                    point
                        .set_affine_coordinates_gfp(&group, &x, &y, &mut context)
                        .ok()?;
                    EcKey::from_public_key(&group, &point).ok()
                })()
                .ok_or(bad)?;
                Ok(PublicKey::Ec(key))
            }
            (Alg::EdDsa, "OKP") if text("crv") == Some("Ed25519") => {
                let x = bytes("x").filter(|x| x.len() == 32).ok_or(bad)?;
                let key = PKey::public_key_from_raw_bytes(&x, Id::ED25519).map_err(|_| bad)?;
                Ok(PublicKey::Ed25519(key))
            }
            (Alg::Rs256 | Alg::Ps256, "RSA") => {
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
                let key = PKey::from_rsa(rsa).map_err(|_| bad)?;
                Ok(PublicKey::Rsa {
                    key,
                    pss: self == Alg::Ps256,
                })
            }
            _ => Err("the jwk header's key does not fit the alg"),
        }
    }
}

/// A proof's public key, ready to check its signature.
pub(crate) enum PublicKey {
    /// P-256; JWS signatures are `r || s`, 32 bytes each (RFC 7518 §3.4).
    Ec(EcKey<Public>),
    /// RSASSA-PKCS1-v1_5 or (with `pss`) RSASSA-PSS, both with SHA-256 (RFC 7518 §3.3, §3.5).
    Rsa { key: PKey<Public>, pss: bool },
    /// Ed25519 (RFC 8037).
    Ed25519(PKey<Public>),
}

impl PublicKey {
    /// Whether `signature` is this key's over `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
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
                PublicKey::Rsa { key, pss } => {
                    let mut verifier = Verifier::new(MessageDigest::sha256(), key).ok()?;
                    if *pss {
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
