//! Test keys and tokens: the tests sign their own tokens (test-only private-key use).
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::KeyPair;
use josekit::jws::{JwsSigner, RS256};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://sigil.test";
pub const AUDIENCE: &str = "https://api.test";

pub struct TestKey {
    pub kid: String,
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub jwk: Value,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        let pair = RS256.generate_key_pair(2048).expect("keygen");
        let mut jwk: Value =
            serde_json::from_str(&pair.to_jwk_public_key().to_string()).expect("jwk");
        jwk["kid"] = kid.into();
        jwk["alg"] = "RS256".into();
        jwk["use"] = "sig".into();
        Self {
            kid: kid.into(),
            private_pem: pair.to_pem_private_key(),
            public_pem: pair.to_pem_public_key(),
            jwk,
        }
    }

    /// Signs `claims` with a header of our choosing.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let signer = RS256.signer_from_pem(&self.private_pem).expect("signer");
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = signer.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A token signed by this key but naming another `kid`.
    pub fn sign_with_kid(&self, kid: &str, issuer: &str) -> String {
        let mut c = claims("todos:read");
        c["iss"] = issuer.into();
        self.sign(&json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}), &c)
    }

    pub fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": self.kid}),
            claims,
        )
    }
}

pub fn jwks(keys: &[&TestKey]) -> Vec<u8> {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
        .to_string()
        .into_bytes()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

pub fn claims(scope: &str) -> Value {
    json!({
        "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": now() + 600, "iat": now(),
        "jti": "j1", "client_id": "c1", "scope": scope,
    })
}
