//! The verified-token cache: a hit needs the exact token, a current key and valid times.

use super::*;
use josekit::jws::{JwsSigner, RS256};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://sigil.test";
const AUDIENCE: &str = "https://api.test";

struct Key {
    jwks: Vec<u8>,
    private_pem: Vec<u8>,
}

fn key() -> Key {
    let pair = RS256.generate_key_pair(2048).expect("keygen");
    let mut jwk: serde_json::Value =
        serde_json::from_str(&pair.to_jwk_public_key().to_string()).expect("jwk");
    jwk["kid"] = "k1".into();
    jwk["alg"] = "RS256".into();
    Key {
        jwks: json!({ "keys": [jwk] }).to_string().into_bytes(),
        private_pem: pair.to_pem_private_key(),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn token(key: &Key, exp: i64, sub: &str) -> String {
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"});
    let claims = json!({"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": exp, "iat": now(),
        "jti": sub, "client_id": "c1", "scope": "todos:read"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signer = RS256.signer_from_pem(&key.private_pem).expect("signer");
    let signature = signer.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn verifier(key: &Key, capacity: usize, leeway: u64) -> Verifier {
    let mut config =
        VerifierConfig::new(ISSUER, AUDIENCE).with_leeway(std::time::Duration::from_secs(leeway));
    config.verified_cache_capacity = capacity;
    Verifier::with_static_jwks(config, &key.jwks).expect("verifier")
}

fn cached(verifier: &Verifier) -> usize {
    verifier.inner.verified.read().map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn a_hit_needs_the_exact_token_and_a_current_key() {
    let key = key();
    let verifier = verifier(&key, 10, 30);
    let good = token(&key, now() + 600, "alice");
    let first = verifier.verify(&good).await.expect("valid");
    assert_eq!(cached(&verifier), 1);
    let again = verifier.verify(&good).await.expect("served from the cache");
    assert_eq!((again.sub, again.scope), (first.sub, first.scope));
    // A token differing in one byte is verified in full, and fails.
    let mut tampered = good.clone().into_bytes();
    let at = tampered.len() - 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("utf-8");
    assert!(verifier.verify(&tampered).await.is_err());
    // Once the key leaves the key set, the remembered verification no longer counts.
    verifier.store(KeyCache {
        keys: Arc::new(HashMap::new()),
        expires_at: Instant::now() + std::time::Duration::from_secs(60),
    });
    let error = verifier.verify(&good).await.expect_err("key gone");
    assert!(
        matches!(
            error.kind(),
            ErrorKind::UnknownKey | ErrorKind::KeysUnavailable
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn times_are_checked_on_every_hit() {
    let key = key();
    let clock = Arc::new(crate::ManualClock::new());
    let config = VerifierConfig::new(ISSUER, AUDIENCE).with_leeway(std::time::Duration::ZERO);
    let verifier = Verifier::builder(config)
        .clock(clock.clone())
        .static_jwks(&key.jwks)
        .expect("verifier");
    let short = token(&key, now() + 1, "bob");
    verifier.verify(&short).await.expect("valid now");
    clock.advance(std::time::Duration::from_millis(2100));
    let error = verifier.verify(&short).await.expect_err("expired");
    assert_eq!(error.kind(), ErrorKind::Expired);
}

#[tokio::test]
async fn the_cache_is_bounded_and_can_be_turned_off() {
    let key = key();
    let bounded = verifier(&key, 2, 30);
    for sub in ["a", "b", "c", "d", "e"] {
        bounded
            .verify(&token(&key, now() + 600, sub))
            .await
            .expect("valid");
        assert!(cached(&bounded) <= 2);
    }
    let off = verifier(&key, 0, 30);
    let t = token(&key, now() + 600, "f");
    off.verify(&t).await.expect("valid");
    off.verify(&t).await.expect("valid again");
    assert_eq!(cached(&off), 0);
}
