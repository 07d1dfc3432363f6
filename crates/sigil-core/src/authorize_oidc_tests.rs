//! Core tests of the authorization endpoint's native-app and OpenID Connect rules: loopback
//! redirects on any port (RFC 8252 §7.3), `redirect_uri` required with `openid`,
//! `id_token_hint`, and `request` / `request_uri` refused (OIDC Core §3.1.2.1, §6).

use crate::audit::Caller;
use crate::authority::ClientCredentials;
use crate::authorize::{AuthorizeError, AuthorizeParams, Decision, SignedIn};
use crate::client::ClientRegistration;
use crate::error::ErrorCode;
use crate::grant::tests::{fixture, Fixture};
use crate::grant::TokenRequest;
use crate::keys::tests::test_pem;
use crate::keys::SigningKey;
use crate::secret::Secret;
use crate::store::{ClientStore, UserStore};
use crate::token::{sign_jwt, IdTokenClaims, ID_TOKEN_TYP};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const LOOPBACK: &str = "http://127.0.0.1:9999/callback";
const ISSUER: &str = "https://sigil.test";

/// A first-party native app with one registered loopback redirect.
async fn native_app(f: &Fixture) -> (String, Secret) {
    let (client, secret) = ClientRegistration {
        name: "native".into(),
        redirect_uris: vec![LOOPBACK.into()],
        is_first_party: true,
        ..Default::default()
    }
    .build(0)
    .expect("client");
    f.store.create_client(&client).await.expect("client");
    (client.id, secret.expect("secret"))
}

fn params(client_id: &str, redirect_uri: Option<&str>) -> AuthorizeParams {
    AuthorizeParams {
        client_id: Some(client_id.into()),
        redirect_uri: redirect_uri.map(str::to_string),
        response_type: Some("code".into()),
        scope: Some("openid profile".into()),
        state: Some("st".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

fn session(user_id: &str) -> SignedIn {
    SignedIn {
        user_id: user_id.into(),
        auth_time: 1_700_000_000,
        session_epoch: 0,
        session_id: None,
        methods: Vec::new(),
    }
}

/// The error code of a redirect error, checking it goes to `redirect_uri` with the state.
fn redirect_code(
    result: Result<impl std::fmt::Debug, AuthorizeError>,
    redirect_uri: &str,
) -> ErrorCode {
    match result {
        Err(AuthorizeError::Redirect {
            error,
            state,
            redirect_uri: to,
        }) => {
            assert_eq!(to, redirect_uri);
            assert_eq!(state.as_deref(), Some("st"));
            error.code
        }
        other => panic!("expected a redirect error, got {other:?}"),
    }
}

/// ID-token claims as Sigil issues them, for `sub` and `aud`, already expired.
fn hint_claims(sub: &str, aud: &str) -> IdTokenClaims {
    IdTokenClaims {
        iss: ISSUER.into(),
        sub: sub.into(),
        aud: aud.into(),
        exp: 1_600_000_100,
        iat: 1_600_000_000,
        auth_time: 1_600_000_000,
        acr: None,
        amr: None,
        nonce: None,
        at_hash: None,
        azp: Some(aud.into()),
        name: None,
        preferred_username: None,
        email: None,
        email_verified: None,
        sid: None,
    }
}

#[tokio::test]
async fn loopback_redirects_match_any_port_and_the_code_is_bound_to_the_port_used() {
    let f = fixture().await;
    let (id, secret) = native_app(&f).await;
    let a = &f.authority;
    let requested = "http://127.0.0.1:51004/callback";
    let (_, request) = a
        .validate_authorization(params(&id, Some(requested)))
        .await
        .expect("any port of a registered loopback redirect");
    assert_eq!(request.redirect_uri, requested, "redirected where asked");
    for other in [
        "http://127.0.0.1:51004/callback/",
        "http://127.0.0.1:51004/other",
        "http://127.0.0.1:51004/callback?x=1",
        "https://127.0.0.1:51004/callback",
        "http://[::1]:51004/callback",
        "http://localhost:51004/callback",
    ] {
        assert!(
            matches!(
                a.validate_authorization(params(&id, Some(other))).await,
                Err(AuthorizeError::Fatal(_))
            ),
            "{other} is not registered"
        );
    }
    // Errors after the redirect check go to the URI as requested, port included.
    let mut bad = params(&id, Some(requested));
    bad.code_challenge = None;
    assert_eq!(
        redirect_code(a.validate_authorization(bad).await, requested),
        ErrorCode::InvalidRequest
    );

    let Ok(Decision::Issue { user, auth }) = a
        .decide(&request, Some(&session(&f.user.id)), false, false)
        .await
    else {
        panic!("first party and signed in: issue");
    };
    let code = a.issue_code(&request, &user, &auth).await.expect("code");
    let creds = ClientCredentials {
        client_id: id,
        secret: Some(secret),
        assertion: None,
    };
    let exchange = |redirect_uri: &str| TokenRequest::AuthorizationCode {
        code: code.clone(),
        redirect_uri: Some(redirect_uri.into()),
        code_verifier: Some(Secret::new(VERIFIER)),
        resources: vec![],
    };
    // RFC 6749 §4.1.3: the token request repeats the URI used, not the registered one.
    for wrong in [LOOPBACK, "http://127.0.0.1:51005/callback"] {
        let refused = a
            .token(&creds, exchange(wrong), &Caller::anonymous(None))
            .await;
        assert_eq!(
            refused.expect_err("another port").code,
            ErrorCode::InvalidGrant,
            "{wrong}"
        );
    }
    a.token(&creds, exchange(requested), &Caller::anonymous(None))
        .await
        .expect("the URI of the authorization request");
}

#[tokio::test]
async fn openid_requests_need_a_redirect_uri_even_with_one_registered() {
    let f = fixture().await;
    let (id, _) = native_app(&f).await;
    let a = &f.authority;
    assert!(
        matches!(
            a.validate_authorization(params(&id, None)).await,
            Err(AuthorizeError::Fatal(text)) if text.contains("redirect_uri")
        ),
        "an OpenID Connect request without redirect_uri is an error page"
    );
    // A plain OAuth request may still leave it out when only one is registered.
    let mut oauth = params(&id, None);
    oauth.scope = Some("profile".into());
    let (_, request) = a.validate_authorization(oauth).await.expect("plain OAuth");
    assert_eq!(request.redirect_uri, LOOPBACK);
    assert!(!request.redirect_uri_given);
}

#[tokio::test]
async fn request_objects_are_refused_with_their_own_errors() {
    let f = fixture().await;
    let (id, _) = native_app(&f).await;
    let a = &f.authority;
    let mut p = params(&id, Some(LOOPBACK));
    p.request = Some("eyJhbGciOiJub25lIn0.e30.".into());
    assert_eq!(
        redirect_code(a.validate_authorization(p).await, LOOPBACK),
        ErrorCode::RequestNotSupported
    );
    let mut p = params(&id, Some(LOOPBACK));
    // (A `urn:ietf:params:oauth:request_uri:` value names a pushed request: par_tests.rs.)
    p.request_uri = Some("https://client.example.com/request.jwt".into());
    assert_eq!(
        redirect_code(a.validate_authorization(p).await, LOOPBACK),
        ErrorCode::RequestUriNotSupported
    );
    assert_eq!(
        ErrorCode::RequestNotSupported.as_str(),
        "request_not_supported"
    );
    assert_eq!(
        ErrorCode::RequestUriNotSupported.as_str(),
        "request_uri_not_supported"
    );
}

#[tokio::test]
async fn id_token_hint_for_another_user_needs_a_login() {
    let f = fixture().await;
    let (id, _) = native_app(&f).await;
    let a = &f.authority;
    let mut bob = f.user.clone();
    bob.id = "user-2".into();
    bob.username = "bob".into();
    bob.email = Some("bob@example.com".into());
    f.store.create_user(&bob).await.expect("bob");
    let hint_for = |claims: IdTokenClaims| {
        let keys = a.keys().current();
        let key = keys.signing_key(a.now()).expect("signing key");
        sign_jwt(key, ID_TOKEN_TYP, &claims).expect("sign")
    };
    let request_with = |hint: String, prompt: Option<&str>| {
        let mut p = params(&id, Some(LOOPBACK));
        p.id_token_hint = Some(hint);
        p.prompt = prompt.map(str::to_string);
        p
    };
    let alice = session(&f.user.id);

    // A hint for the signed-in user (expired, which is fine): a code, even with prompt=none.
    let (_, own) = a
        .validate_authorization(request_with(
            hint_for(hint_claims(&f.user.id, &id)),
            Some("none"),
        ))
        .await
        .expect("valid hint");
    assert_eq!(own.hint_subject.as_deref(), Some(f.user.id.as_str()));
    assert!(matches!(
        a.decide(&own, Some(&alice), false, false).await,
        Ok(Decision::Issue { user, .. }) if user.id == f.user.id
    ));

    // A hint for bob while alice is signed in: login_required with prompt=none ...
    let bob_hint = hint_for(hint_claims(&bob.id, &id));
    let (_, silent) = a
        .validate_authorization(request_with(bob_hint.clone(), Some("none")))
        .await
        .expect("valid hint");
    assert_eq!(
        redirect_code(
            a.decide(&silent, Some(&alice), false, false).await,
            LOOPBACK
        ),
        ErrorCode::LoginRequired
    );
    // ... the login page otherwise, and whoever signs in there stands.
    let (_, interactive) = a
        .validate_authorization(request_with(bob_hint, None))
        .await
        .expect("valid hint");
    assert_eq!(
        a.decide(&interactive, Some(&alice), false, false).await,
        Ok(Decision::Login)
    );
    let bob_session = session(&bob.id);
    assert!(matches!(
        a.decide(&interactive, Some(&bob_session), true, false).await,
        Ok(Decision::Issue { user, .. }) if user.id == bob.id
    ));

    // Invalid hints: invalid_request, redirected.
    let other_key = SigningKey::from_pem(&test_pem(1), 0, 0).expect("key");
    let mut other_issuer = hint_claims(&f.user.id, &id);
    other_issuer.iss = "https://elsewhere.test".into();
    let access_token = f.password("openid").await.expect("token").access_token;
    for (what, hint) in [
        ("garbage", "not.a.jwt".to_string()),
        (
            "another key",
            sign_jwt(&other_key, ID_TOKEN_TYP, &hint_claims(&f.user.id, &id)).expect("sign"),
        ),
        ("another issuer", hint_for(other_issuer)),
        (
            "another client",
            hint_for(hint_claims(&f.user.id, &f.app.0.id)),
        ),
        ("an access token", access_token),
    ] {
        assert_eq!(
            redirect_code(
                a.validate_authorization(request_with(hint, Some("none")))
                    .await,
                LOOPBACK
            ),
            ErrorCode::InvalidRequest,
            "{what}"
        );
    }
}
