//! Core tests of `private_key_jwt`: the claim rules one by one, and client authentication
//! on the in-memory store with a fixed clock (inline keys, a `jwks_uri` key source that
//! counts its calls, replays, the wrong kind of client).

use crate::audit::Caller;
use crate::authority::ClientCredentials;
use crate::client::{AuthMethod, ClientRegistration};
use crate::client_assertion::{
    ClientAssertion, ClientAuthEndpoint, ASSERTION_LEEWAY, MAX_ASSERTION_LIFETIME,
};
use crate::client_keys::{ClientKeySet, ClientKeySource, KeySourceError};
use crate::clock::Clock;
use crate::error::ErrorCode;
use crate::grant::tests::{fixture, Fixture};
use crate::grant::TokenRequest;
use crate::secret::Secret;
use crate::store::ClientStore;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::alg::ec::EcKeyPair;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::KeyPair as _;
use josekit::jws::{JwsSigner as _, ES256, HS256, PS256, RS256};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const ISSUER: &str = "https://sigil.test";

/// Two RSA keys, made once for every test of this file.
fn rsa_keys() -> &'static [RsaKeyPair; 2] {
    static KEYS: OnceLock<[RsaKeyPair; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            RS256.generate_key_pair(2048).expect("rsa"),
            RS256.generate_key_pair(2048).expect("rsa"),
        ]
    })
}

fn ec_key() -> &'static EcKeyPair {
    static KEY: OnceLock<EcKeyPair> = OnceLock::new();
    KEY.get_or_init(|| ES256.generate_key_pair().expect("ec"))
}

fn public_jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let mut jwk = key.to_jwk_public_key();
    jwk.set_key_id(kid);
    let mut value = serde_json::to_value(jwk.as_ref()).expect("json");
    // Without the alg josekit writes, the key serves RS256 and PS256 alike.
    value.as_object_mut().expect("object").remove("alg");
    value
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A compact JWS of `claims` under `header`, signed by `sign`.
fn jws(header: Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(&header), b64(claims));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn rs256(key: &RsaKeyPair, kid: &str, claims: &Value) -> String {
    let signer = RS256
        .signer_from_der(key.to_der_private_key())
        .expect("signer");
    jws(
        json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
        claims,
        |m| signer.sign(m).expect("sign"),
    )
}

/// Good claims for `client_id` at `now`.
fn claims(client_id: &str, now: i64) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "jti": crate::secret::random_token(12),
    })
}

fn parse(token: &str) -> Result<ClientAssertion, crate::OAuthError> {
    ClientAssertion::parse(token, ClientAuthEndpoint::Token)
}

/// The description of the refusal of `claims` (parsed and checked at `now`).
fn refusal(claims: &Value, now: i64) -> String {
    let token = rs256(&rsa_keys()[0], "k1", claims);
    let error = parse(&token)
        .and_then(|a| a.check_claims(ISSUER, now))
        .expect_err("refused");
    assert_eq!(error.code, ErrorCode::InvalidClient, "{error}");
    assert!(
        !error.description.contains(&token),
        "the token is not echoed"
    );
    error.description
}

#[test]
fn good_claims_pass_and_give_the_jti_until_exp_and_leeway() {
    let now = 1_700_000_000;
    let claims = claims("c1", now);
    let assertion = parse(&rs256(&rsa_keys()[0], "k1", &claims)).expect("parse");
    assert_eq!(assertion.client_id(), "c1");
    let checked = assertion.check_claims(ISSUER, now).expect("good");
    assert_eq!(checked.jti, claims["jti"].as_str().expect("jti"));
    assert_eq!(checked.replayable_until, now + 60 + ASSERTION_LEEWAY);
    let debug = format!("{assertion:?}");
    assert!(
        !debug.contains(claims["jti"].as_str().expect("jti")),
        "{debug}"
    );
}

#[test]
fn iss_must_equal_sub() {
    let now = 1_700_000_000;
    let mut other = claims("c1", now);
    other["iss"] = "someone-else".into();
    assert!(refusal(&other, now).contains("iss and sub"));
    let mut missing = claims("c1", now);
    missing.as_object_mut().expect("object").remove("iss");
    assert!(refusal(&missing, now).contains("iss and sub"));
}

#[test]
fn aud_must_name_this_server() {
    let now = 1_700_000_000;
    for good in [
        json!(ISSUER),
        json!(format!("{ISSUER}/token")),
        json!(["https://elsewhere.example", ISSUER]),
    ] {
        let mut c = claims("c1", now);
        c["aud"] = good.clone();
        let token = rs256(&rsa_keys()[0], "k1", &c);
        assert!(
            parse(&token)
                .expect("parse")
                .check_claims(ISSUER, now)
                .is_ok(),
            "{good}"
        );
    }
    for bad in [
        json!("https://elsewhere.example"),
        json!(format!("{ISSUER}/")),
        json!(format!("{ISSUER}/introspect")),
        json!([]),
        json!(42),
    ] {
        let mut c = claims("c1", now);
        c["aud"] = bad.clone();
        assert!(refusal(&c, now).contains("aud must name"), "{bad}");
    }
    let mut missing = claims("c1", now);
    missing.as_object_mut().expect("object").remove("aud");
    assert!(refusal(&missing, now).contains("aud must name"));
    // The endpoint called counts, and only it: /introspect at the introspection endpoint.
    let mut at_introspection = claims("c1", now);
    at_introspection["aud"] = json!(format!("{ISSUER}/introspect"));
    let token = rs256(&rsa_keys()[0], "k1", &at_introspection);
    let assertion =
        ClientAssertion::parse(&token, ClientAuthEndpoint::Introspection).expect("parse");
    assert!(assertion.check_claims(ISSUER, now).is_ok());
    let mut at_par = claims("c1", now);
    at_par["aud"] = json!(format!("{ISSUER}/par"));
    let token = rs256(&rsa_keys()[0], "k1", &at_par);
    let assertion =
        ClientAssertion::parse(&token, ClientAuthEndpoint::PushedAuthorization).expect("parse");
    assert!(assertion.check_claims(ISSUER, now).is_ok());
}

#[test]
fn times_are_checked_with_a_small_leeway() {
    let now = 1_700_000_000;
    let at = |exp: i64, iat: Option<i64>, nbf: Option<i64>| {
        let mut c = claims("c1", now);
        c["exp"] = exp.into();
        match iat {
            Some(iat) => c["iat"] = iat.into(),
            None => {
                c.as_object_mut().expect("object").remove("iat");
            }
        }
        if let Some(nbf) = nbf {
            c["nbf"] = nbf.into();
        }
        c
    };
    let passes = |c: &Value| {
        parse(&rs256(&rsa_keys()[0], "k1", c))
            .expect("parse")
            .check_claims(ISSUER, now)
            .is_ok()
    };
    // Just expired, within the leeway; a lifetime of exactly the maximum; no iat.
    assert!(passes(&at(now - ASSERTION_LEEWAY, Some(now - 60), None)));
    assert!(passes(&at(now + MAX_ASSERTION_LIFETIME, Some(now), None)));
    assert!(passes(&at(now + MAX_ASSERTION_LIFETIME, None, None)));
    assert!(passes(&at(
        now + 60,
        Some(now + ASSERTION_LEEWAY),
        Some(now + 10)
    )));
    // Fractional NumericDates (RFC 7519 §2).
    let mut fractional = claims("c1", now);
    fractional["exp"] = json!(now as f64 + 59.5);
    fractional["iat"] = json!(now as f64 - 0.25);
    assert!(passes(&fractional));

    assert!(
        refusal(&at(now - ASSERTION_LEEWAY - 1, Some(now - 90), None), now).contains("expired")
    );
    assert!(
        refusal(&at(now + MAX_ASSERTION_LIFETIME + 1, Some(now), None), now)
            .contains("too far ahead")
    );
    assert!(
        refusal(&at(now + MAX_ASSERTION_LIFETIME + 1, None, None), now).contains("too far ahead")
    );
    assert!(
        refusal(&at(now + 3600, Some(now + 3600 - 60), None), now).contains("issued in the future")
    );
    // Issued long ago with a long lifetime: still live, but too long-lived.
    assert!(refusal(&at(now + 10, Some(now - 1000), None), now).contains("too far ahead"));
    assert!(refusal(
        &at(now + 60, Some(now), Some(now + ASSERTION_LEEWAY + 1)),
        now
    )
    .contains("not valid yet"));
    let mut no_exp = claims("c1", now);
    no_exp.as_object_mut().expect("object").remove("exp");
    assert!(refusal(&no_exp, now).contains("no exp"));
    let mut text_exp = claims("c1", now);
    text_exp["exp"] = json!("soon");
    assert!(refusal(&text_exp, now).contains("exp must be a number"));
}

#[test]
fn jti_is_required_and_bounded() {
    let now = 1_700_000_000;
    let mut missing = claims("c1", now);
    missing.as_object_mut().expect("object").remove("jti");
    assert!(refusal(&missing, now).contains("no jti"));
    let mut empty = claims("c1", now);
    empty["jti"] = "".into();
    assert!(refusal(&empty, now).contains("no jti"));
    let mut number = claims("c1", now);
    number["jti"] = 7.into();
    assert!(refusal(&number, now).contains("no jti"));
    let mut long = claims("c1", now);
    long["jti"] = "x".repeat(300).into();
    assert!(refusal(&long, now).contains("at most"));
}

#[test]
fn the_header_and_shape_are_checked_at_parse() {
    let c = claims("c1", 1_700_000_000);
    let refused = |token: &str| {
        let error = parse(token).expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidClient);
        error.description
    };
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&c));
    assert!(refused(&unsigned).contains("alg none"));
    let hmac = HS256
        .signer_from_bytes(b"a shared secret of 32 bytes long")
        .expect("hmac");
    let hs256 = jws(json!({"alg": "HS256"}), &c, |m| hmac.sign(m).expect("sign"));
    assert!(refused(&hs256).contains("shared secret"));
    let rs512 = jws(json!({"alg": "RS512"}), &c, |_| vec![1, 2, 3]);
    assert!(refused(&rs512).contains("must be one of RS256, PS256, ES256, EdDSA"));
    let access_token_type = jws(json!({"alg": "RS256", "typ": "at+jwt"}), &c, |_| vec![1]);
    assert!(refused(&access_token_type).contains("typ"));
    let critical = jws(json!({"alg": "RS256", "crit": ["x"], "x": 1}), &c, |_| {
        vec![1]
    });
    assert!(refused(&critical).contains("crit"));
    let numeric_kid = jws(json!({"alg": "RS256", "kid": 1}), &c, |_| vec![1]);
    assert!(refused(&numeric_kid).contains("kid"));
    let mut no_sub = c.clone();
    no_sub.as_object_mut().expect("object").remove("sub");
    assert!(refused(&rs256(&rsa_keys()[0], "k1", &no_sub)).contains("no sub"));
    assert!(refused("a.b").contains("three parts"));
    assert!(refused("a.b.c.d.e").contains("three parts"));
    assert!(refused("!!.e30.AA").contains("header"));
    assert!(refused(&format!("{}.!!.AA", b64(&json!({"alg": "RS256"})))).contains("payload"));
    assert!(refused(&"a".repeat(9000)).contains("longer than 8 KiB"));
    for typ in [
        "JWT",
        "jwt",
        "client-authentication+jwt",
        "application/client-authentication+jwt",
    ] {
        let token = jws(json!({"alg": "RS256", "typ": typ}), &c, |_| vec![1]);
        assert!(parse(&token).is_ok(), "{typ}");
    }
}

/// A `jwks_uri` key source that serves a set it can be told to change, and counts calls.
struct FakeSource {
    served: Mutex<Arc<ClientKeySet>>,
    next: Mutex<Option<Arc<ClientKeySet>>>,
    plain_calls: AtomicUsize,
    refresh_calls: AtomicUsize,
}

#[async_trait::async_trait]
impl ClientKeySource for FakeSource {
    async fn keys_at(
        &self,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<Arc<ClientKeySet>, KeySourceError> {
        if jwks_uri != "https://client.example/jwks.json" {
            return Err(KeySourceError("unreachable".into()));
        }
        let counter = if refresh {
            &self.refresh_calls
        } else {
            &self.plain_calls
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let mut served = self.served.lock().expect("lock");
        if refresh {
            if let Some(next) = self.next.lock().expect("lock").take() {
                *served = next;
            }
        }
        Ok(served.clone())
    }
}

async fn key_client(f: &Fixture, jwks: Option<String>, jwks_uri: Option<&str>) -> String {
    let (client, secret) = ClientRegistration {
        name: "keyed".into(),
        grant_types: Some(vec!["client_credentials".into()]),
        audiences: vec!["https://api.example.com".into()],
        token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
        jwks,
        jwks_uri: jwks_uri.map(str::to_string),
        ..Default::default()
    }
    .build(0)
    .expect("client");
    assert!(secret.is_none(), "a key client has no secret");
    f.store.create_client(&client).await.expect("client");
    client.id
}

async fn token_with(
    f: &Fixture,
    credentials: ClientCredentials,
) -> Result<crate::grant::TokenResponse, crate::OAuthError> {
    f.authority
        .token(
            &credentials,
            TokenRequest::ClientCredentials {
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await
}

fn assertion_credentials(token: &str) -> ClientCredentials {
    ClientCredentials::with_assertion(parse(token).expect("parse"))
}

#[tokio::test]
async fn inline_keys_authenticate_once_per_jti() {
    let f = fixture().await;
    let [key, other] = rsa_keys();
    let ec = ec_key();
    let mut ec_jwk = ec.to_jwk_public_key();
    ec_jwk.set_key_id("e1");
    let id = key_client(
        &f,
        Some(jwks(&[
            public_jwk(key, "k1"),
            serde_json::to_value(ec_jwk.as_ref()).expect("json"),
        ])),
        None,
    )
    .await;
    let now = f.clock.now();
    let good = rs256(key, "k1", &claims(&id, now));
    let response = token_with(&f, assertion_credentials(&good))
        .await
        .expect("token issued");
    assert!(!response.access_token.is_empty());
    // The same assertion again: a replay.
    let replay = token_with(&f, assertion_credentials(&good))
        .await
        .expect_err("replay");
    assert_eq!(replay.code, ErrorCode::InvalidClient);
    assert!(replay.description.contains("used before"), "{replay}");
    // Once its exp and the leeway have passed it is refused as expired, not as a replay.
    f.clock.advance(60 + ASSERTION_LEEWAY + 1);
    let expired = token_with(&f, assertion_credentials(&good))
        .await
        .expect_err("expired");
    assert!(expired.description.contains("expired"), "{expired}");
    let now = f.clock.now();

    // PS256 with the same RSA key, ES256 with the EC key, no kid at all.
    let ps_signer = PS256
        .signer_from_der(key.to_der_private_key())
        .expect("signer");
    let ps = jws(
        json!({"alg": "PS256", "kid": "k1"}),
        &claims(&id, now),
        |m| ps_signer.sign(m).expect("sign"),
    );
    token_with(&f, assertion_credentials(&ps))
        .await
        .expect("PS256");
    let es_signer = ES256
        .signer_from_der(ec.to_der_private_key())
        .expect("signer");
    let es = jws(json!({"alg": "ES256"}), &claims(&id, now), |m| {
        es_signer.sign(m).expect("sign")
    });
    token_with(&f, assertion_credentials(&es))
        .await
        .expect("ES256 without kid");

    // A key not in the set, under a kid of the set or a kid of its own.
    let impostor = rs256(other, "k1", &claims(&id, now));
    let error = token_with(&f, assertion_credentials(&impostor))
        .await
        .expect_err("bad signature");
    assert!(
        error.description.contains("signature does not verify"),
        "{error}"
    );
    let unknown_kid = rs256(other, "k9", &claims(&id, now));
    let error = token_with(&f, assertion_credentials(&unknown_kid))
        .await
        .expect_err("unknown key");
    assert!(error.description.contains("has not registered"), "{error}");
    // A refused signature does not use up the jti: the same claims, properly signed, pass.
    let c = claims(&id, now);
    assert!(
        token_with(&f, assertion_credentials(&rs256(other, "k1", &c)))
            .await
            .is_err()
    );
    token_with(&f, assertion_credentials(&rs256(key, "k1", &c)))
        .await
        .expect("the jti was not recorded by the failure");
    assert_eq!(f.authority.inline_keys.len(), 1, "parsed once, kept");
}

#[tokio::test]
async fn only_private_key_jwt_clients_use_assertions_and_they_use_nothing_else() {
    let f = fixture().await;
    let key = &rsa_keys()[0];
    let id = key_client(&f, Some(jwks(&[public_jwk(key, "k1")])), None).await;
    let now = f.clock.now();
    // A secret sent by a key client.
    let error = token_with(
        &f,
        ClientCredentials::with_secret(&id, Some(Secret::new("guess"))),
    )
    .await
    .expect_err("no secret");
    assert_eq!(error.code, ErrorCode::InvalidClient);
    assert!(error.description.contains("private_key_jwt"), "{error}");
    // Its id alone.
    assert!(token_with(&f, ClientCredentials::with_secret(&id, None))
        .await
        .is_err());
    // A secret client (the fixture's) sending an assertion, even one signed by a key.
    let secret_client = f.app.0.id.clone();
    let error = token_with(
        &f,
        assertion_credentials(&rs256(key, "k1", &claims(&secret_client, now))),
    )
    .await
    .expect_err("not a key client");
    assert_eq!(error.code, ErrorCode::InvalidClient);
    assert!(error.description.contains("client_secret_basic"), "{error}");
    // An unknown client.
    let error = token_with(
        &f,
        assertion_credentials(&rs256(key, "k1", &claims("nobody", now))),
    )
    .await
    .expect_err("unknown");
    assert_eq!(error.description, "client authentication failed");
    // Both an assertion and a secret.
    let mut both = assertion_credentials(&rs256(key, "k1", &claims(&id, now)));
    both.secret = Some(Secret::new("x"));
    let error = token_with(&f, both).await.expect_err("two methods");
    assert_eq!(error.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn jwks_uri_keys_come_from_the_source_and_an_unknown_kid_asks_once_more() {
    let mut f = fixture().await;
    let [first, second] = rsa_keys();
    let set = |keys: &[Value]| Arc::new(ClientKeySet::parse(jwks(keys).as_bytes()).expect("set"));
    let source = Arc::new(FakeSource {
        served: Mutex::new(set(&[public_jwk(first, "k1")])),
        next: Mutex::new(Some(set(&[
            public_jwk(first, "k1"),
            public_jwk(second, "k2"),
        ]))),
        plain_calls: AtomicUsize::new(0),
        refresh_calls: AtomicUsize::new(0),
    });
    let id = key_client(&f, None, Some("https://client.example/jwks.json")).await;
    let now = f.clock.now();
    // Without a source, a jwks_uri client cannot authenticate.
    let error = token_with(
        &f,
        assertion_credentials(&rs256(first, "k1", &claims(&id, now))),
    )
    .await
    .expect_err("no source");
    assert!(error.description.contains("jwks_uri"), "{error}");
    f.authority.set_client_key_source(source.clone());

    token_with(
        &f,
        assertion_credentials(&rs256(first, "k1", &claims(&id, now))),
    )
    .await
    .expect("known kid");
    assert_eq!(source.plain_calls.load(Ordering::SeqCst), 1);
    assert_eq!(source.refresh_calls.load(Ordering::SeqCst), 0);
    // k2 is not in the set in hand: one refresh, which brings it.
    token_with(
        &f,
        assertion_credentials(&rs256(second, "k2", &claims(&id, now))),
    )
    .await
    .expect("rotated-in key");
    assert_eq!(source.refresh_calls.load(Ordering::SeqCst), 1);
    // k3 is nowhere: one refresh asked for (the source decides whether to fetch), refused.
    let error = token_with(
        &f,
        assertion_credentials(&rs256(second, "k3", &claims(&id, now))),
    )
    .await
    .expect_err("unknown kid");
    assert!(error.description.contains("has not registered"), "{error}");
    assert_eq!(source.refresh_calls.load(Ordering::SeqCst), 2);
    // A bad signature under a known kid asks for nothing more.
    let error = token_with(
        &f,
        assertion_credentials(&rs256(second, "k1", &claims(&id, now))),
    )
    .await
    .expect_err("bad signature");
    assert!(error.description.contains("does not verify"), "{error}");
    assert_eq!(source.refresh_calls.load(Ordering::SeqCst), 2);

    // An unreachable jwks_uri: invalid_client saying so.
    let unreachable = key_client(&f, None, Some("https://down.example/jwks.json")).await;
    let error = token_with(
        &f,
        assertion_credentials(&rs256(first, "k1", &claims(&unreachable, now))),
    )
    .await
    .expect_err("unreachable");
    assert_eq!(error.code, ErrorCode::InvalidClient);
    assert!(error.description.contains("unreachable"), "{error}");
}

#[tokio::test]
async fn revocation_and_introspection_accept_assertions() {
    let f = fixture().await;
    let key = &rsa_keys()[0];
    let id = key_client(&f, Some(jwks(&[public_jwk(key, "k1")])), None).await;
    // The client may introspect tokens issued for its audience.
    let mut client = f
        .store
        .find_client(&id)
        .await
        .expect("find")
        .expect("client");
    client.audiences = vec!["https://api.example.com".into()];
    f.store.update_client(&client).await.expect("update");
    let now = f.clock.now();
    let issued = token_with(
        &f,
        assertion_credentials(&rs256(key, "k1", &claims(&id, now))),
    )
    .await
    .expect("token");
    let mut at_introspection = claims(&id, now);
    at_introspection["aud"] = json!(format!("{ISSUER}/introspect"));
    let credentials = ClientCredentials::with_assertion(
        ClientAssertion::parse(
            &rs256(key, "k1", &at_introspection),
            ClientAuthEndpoint::Introspection,
        )
        .expect("parse"),
    );
    let answer = f
        .authority
        .introspect(&credentials, Secret::new(issued.access_token.clone()), None)
        .await
        .expect("introspect");
    assert!(answer.active);
    let credentials = ClientCredentials::with_assertion(
        ClientAssertion::parse(
            &rs256(key, "k1", &claims(&id, now)),
            ClientAuthEndpoint::Revocation,
        )
        .expect("parse"),
    );
    f.authority
        .revoke(
            &credentials,
            Secret::new(issued.access_token),
            None,
            &Caller::anonymous(None),
        )
        .await
        .expect("revoke");
}
