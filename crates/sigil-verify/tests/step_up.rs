//! RFC 9470 step-up: `acr` and `auth_time` requirements, their refusals and challenge, and
//! the layer that enforces them.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sigil_verify::axum_support::{www_authenticate, Authenticated, VerifyLayer};
use sigil_verify::step_up::{ACR_1FA, ACR_2FA, ACR_PHR};
use sigil_verify::{
    AuthenticationRequirement, Claims, Clock, ErrorKind, ManualClock, Verifier, VerifierConfig,
};
use std::sync::Arc;
use std::time::Duration;
use support::{claims, jwks, now, TestKey, AUDIENCE, ISSUER};
use tower::ServiceExt;

fn verifier(key: &TestKey, clock: Arc<ManualClock>) -> Verifier {
    Verifier::builder(VerifierConfig::new(ISSUER, AUDIENCE))
        .clock(clock)
        .static_jwks(&jwks(&[key]))
        .expect("verifier")
}

/// A user's token: `claims(scope)` with `acr`, `amr` and `auth_time`.
fn user_claims(scope: &str, acr: &str, auth_time: i64) -> Value {
    let mut c = claims(scope);
    c["acr"] = json!(acr);
    c["amr"] = json!(["pwd", "otp", "mfa"]);
    c["auth_time"] = json!(auth_time);
    c
}

async fn verified(verifier: &Verifier, key: &TestKey, claims: &Value) -> Claims {
    verifier.verify(&key.token(claims)).await.expect("valid")
}

fn second_factor() -> AuthenticationRequirement {
    AuthenticationRequirement::new().with_acr_values([ACR_2FA, ACR_PHR])
}

#[tokio::test]
async fn acr_must_be_one_of_the_accepted_values() {
    let key = TestKey::generate("k1");
    let v = verifier(&key, Arc::new(ManualClock::new()));
    let requirement = second_factor();
    for acr in [ACR_2FA, ACR_PHR] {
        let claims = verified(&v, &key, &user_claims("todos:write", acr, now())).await;
        assert_eq!(claims.acr.as_deref(), Some(acr));
        assert_eq!(
            claims.amr.as_deref(),
            Some(&["pwd".to_string(), "otp".to_string(), "mfa".to_string()][..])
        );
        v.require_authentication(&claims, &requirement)
            .expect("a second factor is enough");
    }
    for acr in [ACR_1FA, "urn:other:gold", ""] {
        let claims = verified(&v, &key, &user_claims("todos:write", acr, now())).await;
        let error = v
            .require_authentication(&claims, &requirement)
            .expect_err("not an accepted acr");
        assert_eq!(error.kind(), ErrorKind::InsufficientUserAuthentication);
        assert_eq!(error.required_authentication(), Some(&requirement));
        assert_eq!(error.to_string(), "a stronger authentication is required");
    }
    // An empty requirement asks nothing, not even an acr.
    let client = verified(&v, &key, &claims("todos:write")).await;
    v.require_authentication(&client, &AuthenticationRequirement::new())
        .expect("no requirement");
}

#[tokio::test]
async fn tokens_without_acr_or_auth_time_fail_what_they_lack() {
    let key = TestKey::generate("k1");
    let v = verifier(&key, Arc::new(ManualClock::new()));
    // A client-credentials token: no acr, amr or auth_time, and still a valid token.
    let client = verified(&v, &key, &claims("todos:write")).await;
    assert_eq!((client.acr.as_deref(), client.auth_time), (None, None));
    assert_eq!(client.amr, None);
    let error = v
        .require_authentication(&client, &second_factor())
        .expect_err("no acr");
    assert_eq!(error.kind(), ErrorKind::InsufficientUserAuthentication);
    assert_eq!(
        error.to_string(),
        "the token does not say how the user authenticated"
    );
    let recent = AuthenticationRequirement::new().with_max_age(Duration::from_secs(300));
    let error = v
        .require_authentication(&client, &recent)
        .expect_err("no auth_time");
    assert_eq!(error.kind(), ErrorKind::InsufficientUserAuthentication);
    assert_eq!(
        error.to_string(),
        "the token does not say when the user authenticated"
    );
    // An acr alone does not meet a max_age.
    let mut c = claims("todos:write");
    c["acr"] = json!(ACR_2FA);
    let no_time = verified(&v, &key, &c).await;
    v.require_authentication(&no_time, &second_factor())
        .expect("acr is enough for an acr requirement");
    assert!(v.require_authentication(&no_time, &recent).is_err());
}

#[tokio::test]
async fn max_age_follows_the_verifier_clock() {
    let key = TestKey::generate("k1");
    let clock = Arc::new(ManualClock::new());
    let v = verifier(&key, clock.clone());
    let requirement = second_factor().with_max_age(Duration::from_secs(300));
    let signed_in = clock.unix_time() - 100;
    let claims = verified(&v, &key, &user_claims("todos:write", ACR_2FA, signed_in)).await;
    v.require_authentication(&claims, &requirement)
        .expect("100 s ago");
    clock.advance(Duration::from_secs(200));
    v.require_authentication(&claims, &requirement)
        .expect("exactly 300 s ago is still within max_age");
    clock.advance(Duration::from_secs(1));
    let error = v
        .require_authentication(&claims, &requirement)
        .expect_err("301 s ago: the leeway does not lengthen max_age");
    assert_eq!(error.kind(), ErrorKind::InsufficientUserAuthentication);
    assert_eq!(
        error.to_string(),
        "a more recent authentication is required"
    );
    assert_eq!(error.required_authentication(), Some(&requirement));

    // The same through Claims, with the time given.
    assert!(claims
        .require_authentication(&requirement, signed_in + 300)
        .is_ok());
    assert!(claims
        .require_authentication(&requirement, signed_in + 301)
        .is_err());
}

#[tokio::test]
async fn an_auth_time_in_the_future_is_forgiven_only_within_the_leeway() {
    let key = TestKey::generate("k1");
    let clock = Arc::new(ManualClock::new());
    let v = verifier(&key, clock.clone()); // default leeway 30 s
    let requirement = AuthenticationRequirement::new().with_max_age(Duration::from_secs(60));
    let now = clock.unix_time();
    let skewed = verified(&v, &key, &user_claims("todos:write", ACR_2FA, now + 20)).await;
    v.require_authentication(&skewed, &requirement)
        .expect("20 s ahead: clock skew");
    // Claims alone has no leeway.
    assert!(skewed.require_authentication(&requirement, now).is_err());
    assert!(skewed
        .require_authentication(&requirement, now + 20)
        .is_ok());
    let ahead = verified(&v, &key, &user_claims("todos:write", ACR_2FA, now + 120)).await;
    let error = v
        .require_authentication(&ahead, &requirement)
        .expect_err("two minutes ahead");
    assert_eq!(error.to_string(), "the token's auth_time is in the future");
}

#[tokio::test]
async fn the_challenge_names_what_the_client_must_ask_for() {
    let key = TestKey::generate("k1");
    let v = verifier(&key, Arc::new(ManualClock::new()));
    let one_factor = verified(&v, &key, &user_claims("todos:write", ACR_1FA, now())).await;
    let challenge = |requirement: &AuthenticationRequirement| {
        let error = v
            .require_authentication(&one_factor, requirement)
            .expect_err("refused");
        www_authenticate(&error)
            .to_str()
            .expect("ascii")
            .to_string()
    };
    assert_eq!(
        challenge(&second_factor().with_max_age(Duration::from_secs(300))),
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"a stronger authentication is required\", \
         acr_values=\"urn:sigil:acr:2fa phr\", max_age=\"300\""
    );
    assert_eq!(
        challenge(&second_factor()),
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"a stronger authentication is required\", \
         acr_values=\"urn:sigil:acr:2fa phr\""
    );
    let old = verified(&v, &key, &user_claims("todos:write", ACR_2FA, now() - 600)).await;
    let error = v
        .require_authentication(
            &old,
            &AuthenticationRequirement::new().with_max_age(Duration::from_secs(5)),
        )
        .expect_err("too old");
    assert_eq!(
        www_authenticate(&error),
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"a more recent authentication is required\", max_age=\"5\""
    );
    // The other kinds' challenges come from the same function.
    let scope = one_factor.require_scopes(&["admin"]).expect_err("no scope");
    assert_eq!(
        www_authenticate(&scope),
        "Bearer error=\"insufficient_scope\", \
         error_description=\"the token lacks the admin scope\", scope=\"admin\""
    );
    let garbage = v.verify("not a token").await.expect_err("garbage");
    assert_eq!(
        www_authenticate(&garbage),
        "Bearer error=\"invalid_token\", error_description=\"the token is malformed\""
    );
}

async fn whoami(Authenticated(claims): Authenticated) -> String {
    claims.sub
}

async fn call(app: &Router, token: Option<&str>) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder().uri("/erase");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("call");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii").to_string());
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        challenge,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_layer_answers_rfc9470() {
    let key = TestKey::generate("k1");
    let clock = Arc::new(ManualClock::new());
    let v = verifier(&key, clock.clone());
    let layer = VerifyLayer::new(v.clone())
        .require_scopes(["todos:write"])
        .require_authentication(second_factor().with_max_age(Duration::from_secs(300)));
    let app = Router::new()
        .route("/erase", get(whoami))
        .route_layer(layer)
        .with_state(v);
    let now = clock.unix_time();

    let fresh = key.token(&user_claims("todos:write", ACR_2FA, now - 10));
    let (status, _, _) = call(&app, Some(&fresh)).await;
    assert_eq!(status, StatusCode::OK);

    let weak = key.token(&user_claims("todos:write", ACR_1FA, now - 10));
    let (status, challenge, body) = call(&app, Some(&weak)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"a stronger authentication is required\", \
             acr_values=\"urn:sigil:acr:2fa phr\", max_age=\"300\""
        )
    );
    assert_eq!(
        body,
        json!({
            "error": "insufficient_user_authentication",
            "error_description": "a stronger authentication is required",
        })
    );

    // The fresh token grows old on the verifier's clock (its remembered claims too).
    clock.advance(Duration::from_secs(291));
    let (status, challenge, _) = call(&app, Some(&fresh)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.expect("challenge").ends_with(", max_age=\"300\""));

    // Scopes are checked first: step-up cannot mend a missing scope.
    let reader = key.token(&user_claims("todos:read", ACR_1FA, clock.unix_time()));
    let (status, challenge, _) = call(&app, Some(&reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge
        .expect("challenge")
        .contains("error=\"insufficient_scope\""));
    let (status, challenge, _) = call(&app, None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"))
    );
    // A client-credentials token has no user to step up.
    let client = key.token(&claims("todos:write"));
    let (status, challenge, _) = call(&app, Some(&client)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge
        .expect("challenge")
        .starts_with("Bearer error=\"insufficient_user_authentication\""));
}
