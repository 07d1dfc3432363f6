//! Making DPoP proofs (RFC 9449 §4.2): what a client does. Sigil's own server never signs
//! proofs; its tests, todo-web-style Rust clients and the benchmarks do.

use crate::key::Alg;
use crate::proof::access_token_hash;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{EdDSA, JwsSigner, ES256, PS256, RS256};
use serde_json::{json, Map, Value};

/// A client's DPoP key pair, and the proofs made with it.
pub struct ProofSigner {
    alg: Alg,
    signer: Box<dyn JwsSigner>,
    public: Map<String, Value>,
    jkt: String,
}

impl std::fmt::Debug for ProofSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofSigner")
            .field("alg", &self.alg)
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl ProofSigner {
    /// A new key pair for `alg` (RSA keys have 2048 bits).
    pub fn generate(alg: Alg) -> Result<Self, String> {
        let fail = |e: josekit::JoseError| format!("DPoP key: {e}");
        let (signer, public): (Box<dyn JwsSigner>, josekit::jwk::Jwk) = match alg {
            Alg::Es256 => {
                let pair = ES256.generate_key_pair().map_err(fail)?;
                (
                    Box::new(
                        ES256
                            .signer_from_jwk(&pair.to_jwk_key_pair())
                            .map_err(fail)?,
                    ),
                    pair.to_jwk_public_key(),
                )
            }
            Alg::Rs256 => {
                let pair = RS256.generate_key_pair(2048).map_err(fail)?;
                (
                    Box::new(
                        RS256
                            .signer_from_jwk(&pair.to_jwk_key_pair())
                            .map_err(fail)?,
                    ),
                    pair.to_jwk_public_key(),
                )
            }
            Alg::Ps256 => {
                let pair = PS256.generate_key_pair(2048).map_err(fail)?;
                (
                    Box::new(
                        PS256
                            .signer_from_jwk(&pair.to_jwk_key_pair())
                            .map_err(fail)?,
                    ),
                    pair.to_jwk_public_key(),
                )
            }
            Alg::EdDsa => {
                let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(fail)?;
                (
                    Box::new(
                        EdDSA
                            .signer_from_jwk(&pair.to_jwk_key_pair())
                            .map_err(fail)?,
                    ),
                    pair.to_jwk_public_key(),
                )
            }
        };
        let mut public: Map<String, Value> = public.as_ref().clone();
        public.remove("alg");
        public.remove("use");
        public.remove("key_ops");
        let jkt = crate::key::thumbprint(&public).ok_or("DPoP key: no thumbprint")?;
        Ok(Self {
            alg,
            signer,
            public,
            jkt,
        })
    }

    /// The RFC 7638 thumbprint of the public key: the `jkt` tokens are bound to.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.public
    }

    /// A proof for one request: `method` and `url` of the request, `iat` now, a fresh
    /// `jti`, `ath` when an access token goes with it, and the server's `nonce` if it gave
    /// one.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: i64,
    ) -> Result<String, String> {
        let mut claims = json!({
            "jti": crate::signer::random_jti(),
            "htm": method,
            "htu": url,
            "iat": now,
        });
        if let Some(token) = access_token {
            claims["ath"] = Value::String(access_token_hash(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::String(nonce.to_string());
        }
        self.sign(&claims)
    }

    /// Signs any claims as a proof with this key's header (for tests that need a proof
    /// that breaks one rule).
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"typ": crate::PROOF_TYP, "alg": self.alg.name(), "jwk": self.public});
        self.sign_with_header(&header, claims)
    }

    /// Signs with any header (for tests of the header's rules).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, String> {
        let encode = |v: &Value| {
            serde_json::to_vec(v)
                .map(|b| URL_SAFE_NO_PAD.encode(b))
                .map_err(|e| e.to_string())
        };
        let input = format!("{}.{}", encode(header)?, encode(claims)?);
        let signature = self
            .signer
            .sign(input.as_bytes())
            .map_err(|e| format!("DPoP proof: {e}"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// 16 random bytes, base64url.
fn random_jti() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
