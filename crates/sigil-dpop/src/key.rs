//! The key in a proof's header: which algorithms go with which keys, turning the public JWK
//! into a verifier, and its RFC 7638 thumbprint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsVerifier, ES256, PS256, RS256};
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

    /// A verifier for this algorithm from a public JWK, or why the key does not fit.
    pub(crate) fn verifier(
        self,
        jwk: &Map<String, Value>,
    ) -> Result<Box<dyn JwsVerifier>, &'static str> {
        self.check_key(jwk)?;
        self.build_verifier(jwk)
    }

    /// Whether a JWK is a public key of this algorithm's type (no private members, the
    /// right `kty` and curve, an RSA modulus of 2048 to 4096 bits): cheap, done for every
    /// proof, whether its key is cached or not.
    pub(crate) fn check_key(self, jwk: &Map<String, Value>) -> Result<(), &'static str> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err("the jwk header holds a private key");
        }
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let kty = text("kty").ok_or("the jwk header has no kty")?;
        match (self, kty) {
            (Alg::Es256, "EC") if text("crv") == Some("P-256") => {}
            (Alg::EdDsa, "OKP") if text("crv") == Some("Ed25519") => {}
            (Alg::Rs256 | Alg::Ps256, "RSA") => {
                let bits = text("n")
                    .and_then(rsa_modulus_bits)
                    .ok_or("the jwk header is not a valid RSA key")?;
                if !RSA_BITS.contains(&bits) {
                    return Err("the jwk header's RSA key must have 2048 to 4096 bits");
                }
            }
            _ => return Err("the jwk header's key does not fit the alg"),
        }
        Ok(())
    }

    /// The josekit verifier of a JWK that passed [`Alg::check_key`]: the costly part (the key
    /// is decoded and its point validated by OpenSSL), which [`crate::KeyCache`] saves.
    pub(crate) fn build_verifier(
        self,
        jwk: &Map<String, Value>,
    ) -> Result<Box<dyn JwsVerifier>, &'static str> {
        let key = Jwk::from_map(jwk.clone()).map_err(|_| "the jwk header is not a valid JWK")?;
        let bad = |_| "the jwk header is not a valid public key";
        Ok(match self {
            Alg::Es256 => Box::new(ES256.verifier_from_jwk(&key).map_err(bad)?),
            Alg::Rs256 => Box::new(RS256.verifier_from_jwk(&key).map_err(bad)?),
            Alg::Ps256 => Box::new(PS256.verifier_from_jwk(&key).map_err(bad)?),
            Alg::EdDsa => Box::new(EdDSA.verifier_from_jwk(&key).map_err(bad)?),
        })
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
fn rsa_modulus_bits(n: &str) -> Option<usize> {
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
