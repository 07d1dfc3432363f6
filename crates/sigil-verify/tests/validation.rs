//! Every validation rule, with tokens made by the test.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use sigil_verify::{ErrorKind, Verifier, VerifierConfig};
use std::time::Duration;
use support::{claims, jwks, now, TestKey, AUDIENCE, ISSUER};

fn verifier(key: &TestKey) -> Verifier {
    Verifier::with_static_jwks(VerifierConfig::new(ISSUER, AUDIENCE), &jwks(&[key]))
        .expect("verifier")
}

async fn kind(verifier: &Verifier, token: &str) -> ErrorKind {
    verifier
        .verify(token)
        .await
        .expect_err("must be refused")
        .kind()
}

#[tokio::test]
async fn a_good_token_passes_and_yields_its_claims() {
    let key = TestKey::generate("k1");
    let v = verifier(&key);
    let claims = v
        .verify(&key.token(&claims("todos:read todos:write")))
        .await
        .expect("valid");
    assert_eq!(claims.sub, "user-1");
    assert!(claims.has_scope("todos:write"));
    assert!(!claims.has_scope("todos"));
    assert_eq!(
        claims
            .require_scopes(&["admin"])
            .expect_err("missing")
            .kind(),
        ErrorKind::InsufficientScope
    );
    // aud as an array containing ours.
    let mut c = claims_value();
    c["aud"] = json!(["https://other", AUDIENCE]);
    assert!(v.verify(&key.token(&c)).await.is_ok());
}

fn claims_value() -> serde_json::Value {
    claims("todos:read")
}

#[tokio::test]
async fn time_rules_with_leeway() {
    let key = TestKey::generate("k1");
    let v = verifier(&key);
    let mut c = claims_value();
    c["exp"] = json!(now() - 60);
    assert_eq!(kind(&v, &key.token(&c)).await, ErrorKind::Expired);
    c["exp"] = json!(now() - 10); // within the default 30 s leeway
    assert!(v.verify(&key.token(&c)).await.is_ok());
    let mut c = claims_value();
    c["nbf"] = json!(now() + 120);
    assert_eq!(kind(&v, &key.token(&c)).await, ErrorKind::NotYetValid);
    let mut c = claims_value();
    c.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        kind(&v, &key.token(&c)).await,
        ErrorKind::Malformed,
        "exp is required"
    );
    // The leeway is capped at five minutes.
    let capped = VerifierConfig::new(ISSUER, AUDIENCE).with_leeway(Duration::from_secs(3600));
    assert_eq!(capped.leeway, Duration::from_secs(300));
}

#[tokio::test]
async fn issuer_audience_and_type() {
    let key = TestKey::generate("k1");
    let v = verifier(&key);
    let mut c = claims_value();
    c["iss"] = json!("https://evil.test");
    assert_eq!(kind(&v, &key.token(&c)).await, ErrorKind::Issuer);
    let mut c = claims_value();
    c["aud"] = json!("https://other.test");
    assert_eq!(kind(&v, &key.token(&c)).await, ErrorKind::Audience);
    let id_token = key.sign(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}),
        &claims_value(),
    );
    assert_eq!(kind(&v, &id_token).await, ErrorKind::Type);
    let no_typ = key.sign(&json!({"alg": "RS256", "kid": "k1"}), &claims_value());
    assert_eq!(kind(&v, &no_typ).await, ErrorKind::Type);
}

#[tokio::test]
async fn algorithm_attacks_are_refused_before_any_crypto() {
    let key = TestKey::generate("k1");
    let v = verifier(&key);
    let payload = URL_SAFE_NO_PAD.encode(claims_value().to_string());
    let header = |alg: &str| {
        URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "at+jwt", "kid": "k1"}).to_string())
    };
    // alg none, with and without a signature part.
    assert_eq!(
        kind(&v, &format!("{}.{payload}.", header("none"))).await,
        ErrorKind::Algorithm
    );
    assert_eq!(
        kind(&v, &format!("{}.{payload}", header("none"))).await,
        ErrorKind::Malformed
    );
    // HS256 keyed with the public key: the classic key-confusion attack.
    use josekit::jws::{JwsSigner, HS256};
    let signer = HS256.signer_from_bytes(&key.public_pem).expect("hmac");
    let input = format!("{}.{payload}", header("HS256"));
    let mac = signer.sign(input.as_bytes()).expect("mac");
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
    assert_eq!(kind(&v, &forged).await, ErrorKind::Algorithm);
    // RS384 is not on the default allow-list.
    assert_eq!(
        kind(&v, &format!("{}.{payload}.AAAA", header("RS384"))).await,
        ErrorKind::Algorithm
    );
}

#[tokio::test]
async fn tampering_unknown_keys_and_garbage() {
    let key = TestKey::generate("k1");
    let other = TestKey::generate("k2");
    let v = verifier(&key);
    let token = key.token(&claims_value());
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = claims_value();
    evil["scope"] = json!("todos:read todos:write admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(evil.to_string()),
        parts[2]
    );
    assert_eq!(kind(&v, &tampered).await, ErrorKind::Signature);
    // Signed by a key the issuer does not publish.
    assert_eq!(
        kind(&v, &other.token(&claims_value())).await,
        ErrorKind::UnknownKey
    );
    // Signed by another key but claiming our kid.
    let liar = other.sign(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}),
        &claims_value(),
    );
    assert_eq!(kind(&v, &liar).await, ErrorKind::Signature);
    assert_eq!(kind(&v, "not a token").await, ErrorKind::Malformed);
    assert_eq!(kind(&v, "a.b.c").await, ErrorKind::Malformed);
    assert_eq!(kind(&v, &"a".repeat(9000)).await, ErrorKind::TooLong);
}
