use super::*;
use crate::{ProofSigner, ALGORITHMS};
use serde_json::json;

const URL: &str = "https://sigil.example.com/token";
const NOW: i64 = 1_800_000_000;

fn expected() -> Expected<'static> {
    Expected {
        method: "POST",
        url: URL,
        access_token: None,
        now: NOW,
    }
}

fn es256() -> ProofSigner {
    ProofSigner::generate(Alg::Es256).expect("key")
}

#[test]
fn a_proof_of_every_algorithm_passes_and_names_its_key() {
    for alg in ALGORITHMS {
        let signer = ProofSigner::generate(alg).expect("key");
        let proof = signer.proof("POST", URL, None, None, NOW).expect("proof");
        let checked = check(&proof, &expected(), &Rules::default())
            .unwrap_or_else(|e| panic!("{}: {e}", alg.name()));
        assert_eq!(checked.jkt, signer.jkt());
        assert_eq!(checked.iat, NOW);
        assert_eq!(checked.nonce, None);
        assert_eq!(checked.replay_until(), NOW + 301);
    }
}

#[test]
fn htu_is_compared_normalised_and_without_query_or_fragment() {
    let signer = es256();
    for htu in [
        "https://SIGIL.example.com/token",
        "HTTPS://sigil.example.com:443/token",
        "https://sigil.example.com/a/../token",
        "https://sigil.example.com/token?x=1#y",
    ] {
        let proof = signer.proof("POST", htu, None, None, NOW).expect("proof");
        assert!(
            check(&proof, &expected(), &Rules::default()).is_ok(),
            "{htu}"
        );
    }
    for htu in [
        "http://sigil.example.com/token",
        "https://sigil.example.com:8443/token",
        "https://sigil.example.com/token/",
        "https://other.example.com/token",
        "/token",
    ] {
        let proof = signer.proof("POST", htu, None, None, NOW).expect("proof");
        assert_eq!(
            check(&proof, &expected(), &Rules::default()),
            Err(ProofError::Url),
            "{htu}"
        );
    }
}

#[test]
fn the_method_must_match_exactly() {
    let signer = es256();
    for htm in ["GET", "post", ""] {
        let proof = signer.proof(htm, URL, None, None, NOW).expect("proof");
        assert_eq!(
            check(&proof, &expected(), &Rules::default()),
            Err(ProofError::Method),
            "{htm}"
        );
    }
}

#[test]
fn iat_must_be_within_the_window() {
    let signer = es256();
    let rules = Rules::default();
    for (iat, ok) in [
        (NOW - 300, true),
        (NOW - 301, false),
        (NOW + 30, true),
        (NOW + 31, false),
    ] {
        let proof = signer.proof("POST", URL, None, None, iat).expect("proof");
        assert_eq!(check(&proof, &expected(), &rules).is_ok(), ok, "iat {iat}");
    }
    let proof = signer
        .sign(&json!({"jti": "a", "htm": "POST", "htu": URL, "iat": "now"}))
        .expect("proof");
    assert!(matches!(
        check(&proof, &expected(), &rules),
        Err(ProofError::Malformed(_))
    ));
}

#[test]
fn ath_is_required_with_an_access_token_and_must_be_its_hash() {
    let signer = es256();
    let with_token = Expected {
        access_token: Some("token-one"),
        ..expected()
    };
    let right = signer
        .proof("POST", URL, Some("token-one"), None, NOW)
        .expect("proof");
    assert!(check(&right, &with_token, &Rules::default()).is_ok());
    let wrong = signer
        .proof("POST", URL, Some("token-two"), None, NOW)
        .expect("proof");
    assert_eq!(
        check(&wrong, &with_token, &Rules::default()),
        Err(ProofError::AccessTokenHash)
    );
    let none = signer.proof("POST", URL, None, None, NOW).expect("proof");
    assert_eq!(
        check(&none, &with_token, &Rules::default()),
        Err(ProofError::AccessTokenHash)
    );
}

#[test]
fn the_header_rules() {
    let signer = es256();
    let claims = json!({"jti": "a", "htm": "POST", "htu": URL, "iat": NOW});
    let jwk = Value::Object(signer.public_jwk().clone());
    let refused = |header: Value| {
        check(
            &signer.sign_with_header(&header, &claims).expect("proof"),
            &expected(),
            &Rules::default(),
        )
    };
    assert!(matches!(
        refused(json!({"typ": "JWT", "alg": "ES256", "jwk": jwk})),
        Err(ProofError::Malformed(_))
    ));
    for typ in ["application/JWT", "application/", "applicationdpop+jwt"] {
        assert!(
            matches!(
                refused(json!({"typ": typ, "alg": "ES256", "jwk": jwk})),
                Err(ProofError::Malformed(_))
            ),
            "{typ}"
        );
    }
    // RFC 7515 §4.1.9: the media type may be written in full, in any case.
    for typ in ["application/dpop+jwt", "Application/DPoP+JWT", "DPOP+JWT"] {
        assert!(
            refused(json!({"typ": typ, "alg": "ES256", "jwk": jwk})).is_ok(),
            "{typ}"
        );
    }
    assert!(matches!(
        refused(json!({"alg": "ES256", "jwk": jwk})),
        Err(ProofError::Malformed(_))
    ));
    assert_eq!(
        refused(json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk})),
        Err(ProofError::Algorithm)
    );
    assert_eq!(
        refused(json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk})),
        Err(ProofError::Algorithm)
    );
    assert_eq!(
        refused(json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk})),
        Err(ProofError::Key("the jwk header's key does not fit the alg"))
    );
    assert!(matches!(
        refused(json!({"typ": "dpop+jwt", "alg": "ES256"})),
        Err(ProofError::Malformed(_))
    ));
    assert!(matches!(
        refused(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk, "crit": ["exp"]})),
        Err(ProofError::Malformed(_))
    ));
    let mut private = signer.public_jwk().clone();
    private.insert("d".into(), json!("AAAA"));
    assert_eq!(
        refused(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private})),
        Err(ProofError::Key("the jwk header holds a private key"))
    );
    // What the key says of itself must allow verifying with this alg.
    for (member, value) in [
        ("alg", json!("HS256")),
        ("alg", json!("RS256")),
        ("use", json!("enc")),
        ("key_ops", json!(["encrypt"])),
        ("key_ops", json!("verify")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut jwk = signer.public_jwk().clone();
        jwk.insert(member.into(), value.clone());
        assert!(
            matches!(
                refused(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk})),
                Err(ProofError::Key(_))
            ),
            "{member}: {value}"
        );
    }
    let mut consistent = signer.public_jwk().clone();
    consistent.insert("alg".into(), json!("ES256"));
    consistent.insert("use".into(), json!("sig"));
    consistent.insert("key_ops".into(), json!(["verify"]));
    assert!(refused(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": consistent})).is_ok());
    // Another key in the header than the one that signed.
    let other = Value::Object(es256().public_jwk().clone());
    assert_eq!(
        refused(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": other})),
        Err(ProofError::Signature)
    );
    // An algorithm the caller does not allow.
    let only_rsa = Rules {
        algorithms: vec![Alg::Rs256],
        ..Rules::default()
    };
    let proof = signer.proof("POST", URL, None, None, NOW).expect("proof");
    assert_eq!(
        check(&proof, &expected(), &only_rsa),
        Err(ProofError::Algorithm)
    );
}

#[test]
fn malformed_proofs_are_refused_before_any_cryptography() {
    let signer = es256();
    let proof = signer.proof("POST", URL, None, None, NOW).expect("proof");
    let mut tampered = proof.clone();
    tampered.push('A');
    for bad in [
        String::new(),
        "a.b".into(),
        "a.b.c.d".into(),
        "!!.b.c".into(),
        "x".repeat(MAX_PROOF_LEN + 1),
    ] {
        assert!(
            matches!(
                check(&bad, &expected(), &Rules::default()),
                Err(ProofError::Malformed(_))
            ),
            "{bad:.20}"
        );
    }
    assert!(check(&tampered, &expected(), &Rules::default()).is_err());
    for claims in [
        json!({"htm": "POST", "htu": URL, "iat": NOW}),
        json!({"jti": "", "htm": "POST", "htu": URL, "iat": NOW}),
        json!({"jti": "a".repeat(257), "htm": "POST", "htu": URL, "iat": NOW}),
        json!({"jti": "a", "htu": URL, "iat": NOW}),
        json!({"jti": "a", "htm": "POST", "iat": NOW}),
        json!({"jti": "a", "htm": "POST", "htu": URL}),
        json!({"jti": "a", "htm": "POST", "htu": URL, "iat": NOW, "nonce": 5}),
    ] {
        let proof = signer.sign(&claims).expect("proof");
        assert!(
            matches!(
                check(&proof, &expected(), &Rules::default()),
                Err(ProofError::Malformed(_))
            ),
            "{claims}"
        );
    }
}

#[test]
fn the_replay_key_depends_on_the_key_and_the_jti() {
    let (one, two) = (es256(), es256());
    let claims = json!({"jti": "same", "htm": "POST", "htu": URL, "iat": NOW, "nonce": "n-1"});
    let a = check(
        &one.sign(&claims).expect("proof"),
        &expected(),
        &Rules::default(),
    )
    .expect("a");
    let b = check(
        &two.sign(&claims).expect("proof"),
        &expected(),
        &Rules::default(),
    )
    .expect("b");
    let a_again = check(
        &one.sign(&claims).expect("proof"),
        &expected(),
        &Rules::default(),
    )
    .expect("a again");
    assert_ne!(a.replay_key(), b.replay_key());
    assert_eq!(a.replay_key(), a_again.replay_key());
    assert_eq!(a.replay_digest(), a_again.replay_digest());
    assert_eq!(
        a.replay_key(),
        URL_SAFE_NO_PAD.encode(a.replay_digest()),
        "the key is the digest, encoded"
    );
    assert_eq!(a.nonce.as_deref(), Some("n-1"));
}

#[test]
fn ath_is_rfc_9449s_example() {
    // RFC 9449 §7.1: the access token of the example and its ath.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn a_changed_signature_or_payload_fails_for_every_algorithm() {
    for alg in ALGORITHMS {
        let signer = ProofSigner::generate(alg).expect("key");
        let proof = signer.proof("POST", URL, None, None, NOW).expect("proof");
        let (input, signature) = proof.rsplit_once('.').expect("three parts");
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("b64");
        bytes[0] ^= 1;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            check(&flipped, &expected(), &Rules::default()),
            Err(ProofError::Signature),
            "{alg:?}"
        );
        let other = signer
            .proof("POST", URL, None, None, NOW + 1)
            .expect("proof");
        let (other_input, _) = other.rsplit_once('.').expect("three parts");
        let spliced = format!("{other_input}.{signature}");
        assert_eq!(
            check(&spliced, &expected(), &Rules::default()),
            Err(ProofError::Signature),
            "{alg:?}: another payload under this signature"
        );
    }
}

#[test]
fn keys_that_are_not_keys_are_refused() {
    let signer = es256();
    let claims = json!({"jti": "a", "htm": "POST", "htu": URL, "iat": NOW});
    let refused = |jwk: Value, alg: &str| {
        let proof = signer
            .sign_with_header(&json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk}), &claims)
            .expect("proof");
        check(&proof, &expected(), &Rules::default())
    };
    // A point that is not on P-256.
    let mut off_curve = signer.public_jwk().clone();
    off_curve.insert("y".into(), json!(URL_SAFE_NO_PAD.encode([7u8; 32])));
    assert!(matches!(
        refused(Value::Object(off_curve), "ES256"),
        Err(ProofError::Key(_))
    ));
    // Coordinates of the wrong length, an RSA key too small, an even exponent, Ed448.
    let mut short = signer.public_jwk().clone();
    short.insert("x".into(), json!("AAAA"));
    assert!(matches!(
        refused(Value::Object(short), "ES256"),
        Err(ProofError::Key(_))
    ));
    let small = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xc3u8; 128]), "e": "AQAB"});
    assert!(matches!(refused(small, "RS256"), Err(ProofError::Key(_))));
    let even = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xc3u8; 256]), "e": "AQAC"});
    assert!(matches!(refused(even, "RS256"), Err(ProofError::Key(_))));
    let ed448 = json!({"kty": "OKP", "crv": "Ed448", "x": URL_SAFE_NO_PAD.encode([1u8; 57])});
    assert!(matches!(refused(ed448, "EdDSA"), Err(ProofError::Key(_))));
}
