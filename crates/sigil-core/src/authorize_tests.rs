//! Core tests of the authorization endpoint and the code grant.

use crate::audit::Caller;
use crate::authority::ClientCredentials;
use crate::authorize::{AuthorizeError, AuthorizeParams, Decision, SignedIn};
use crate::client::ClientRegistration;
use crate::error::ErrorCode;
use crate::factors::Authentication;
use crate::grant::tests::{fixture, Fixture};
use crate::grant::TokenRequest;
use crate::secret::Secret;
use crate::store::ClientStore;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
type Mutation = fn(&mut AuthorizeParams);

const CB: &str = "https://app.example.com/cb";

async fn web_client(f: &Fixture, first_party: bool) -> (String, Secret) {
    let (client, secret) = ClientRegistration {
        name: "web".into(),
        redirect_uris: vec![CB.into(), "https://app.example.com/other".into()],
        is_first_party: first_party,
        ..Default::default()
    }
    .build(0)
    .expect("client");
    f.store.create_client(&client).await.expect("client");
    (client.id, secret.expect("secret"))
}

fn params(client_id: &str) -> AuthorizeParams {
    AuthorizeParams {
        client_id: Some(client_id.into()),
        redirect_uri: Some(CB.into()),
        response_type: Some("code".into()),
        scope: Some("openid profile offline_access".into()),
        state: Some("st".into()),
        nonce: Some("n-0S6_WzA2Mj".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

fn redirect_code(result: Result<impl std::fmt::Debug, AuthorizeError>) -> ErrorCode {
    match result {
        Err(AuthorizeError::Redirect {
            error,
            state,
            redirect_uri,
        }) => {
            assert_eq!(redirect_uri, CB);
            assert_eq!(state.as_deref(), Some("st"));
            error.code
        }
        other => panic!("expected a redirect error, got {other:?}"),
    }
}

#[tokio::test]
async fn validation_order_and_rules() {
    let f = fixture().await;
    let (id, _) = web_client(&f, false).await;
    let a = &f.authority;
    // Fatal: unknown client, unregistered or missing-with-several redirect URIs.
    let mut p = params("nope");
    assert!(matches!(
        a.validate_authorization(p).await,
        Err(AuthorizeError::Fatal(_))
    ));
    p = params(&id);
    p.redirect_uri = Some("https://app.example.com/cb/".into());
    assert!(matches!(
        a.validate_authorization(p).await,
        Err(AuthorizeError::Fatal(_))
    ));
    p = params(&id);
    p.redirect_uri = None;
    assert!(matches!(
        a.validate_authorization(p).await,
        Err(AuthorizeError::Fatal(_))
    ));
    p = params(&id);
    p.repeated = vec!["redirect_uri".into()];
    assert!(matches!(
        a.validate_authorization(p).await,
        Err(AuthorizeError::Fatal(_))
    ));
    // Redirected errors.
    let cases: Vec<(Mutation, ErrorCode)> = vec![
        (|p| p.code_challenge = None, ErrorCode::InvalidRequest),
        (
            |p| p.code_challenge_method = Some("plain".into()),
            ErrorCode::InvalidRequest,
        ),
        (
            |p| p.code_challenge_method = None,
            ErrorCode::InvalidRequest,
        ),
        (
            |p| p.code_challenge = Some("short".into()),
            ErrorCode::InvalidRequest,
        ),
        (
            |p| p.response_type = Some("token".into()),
            ErrorCode::UnsupportedResponseType,
        ),
        (|p| p.response_type = None, ErrorCode::InvalidRequest),
        (
            |p| p.scope = Some("openid admin".into()),
            ErrorCode::InvalidScope,
        ),
        (|p| p.scope = None, ErrorCode::InvalidScope),
        (
            |p| p.prompt = Some("none login".into()),
            ErrorCode::InvalidRequest,
        ),
        (|p| p.max_age = Some("-1".into()), ErrorCode::InvalidRequest),
        (
            |p| p.response_mode = Some("fragment".into()),
            ErrorCode::InvalidRequest,
        ),
        (
            |p| p.repeated = vec!["scope".into()],
            ErrorCode::InvalidRequest,
        ),
    ];
    for (mutate, expected) in cases {
        let mut p = params(&id);
        mutate(&mut p);
        assert_eq!(redirect_code(a.validate_authorization(p).await), expected);
    }
    // A client without the code grant.
    let mut p = params(&f.app.0.id);
    p.redirect_uri = None;
    assert!(
        matches!(
            a.validate_authorization(p).await,
            Err(AuthorizeError::Fatal(_))
        ),
        "no redirect URI registered"
    );
}

#[tokio::test]
async fn login_consent_and_code_exchange() {
    let f = fixture().await;
    let (id, secret) = web_client(&f, false).await;
    let a = &f.authority;
    let (_, request) = a.validate_authorization(params(&id)).await.expect("valid");
    assert_eq!(
        a.decide(&request, None, false, false).await,
        Ok(Decision::Login)
    );
    let session = SignedIn {
        user_id: f.user.id.clone(),
        auth_time: 1_700_000_000,
        session_epoch: 0,
        session_id: None,
        methods: Vec::new(),
    };
    assert_eq!(
        a.decide(&request, Some(&session), true, false).await,
        Ok(Decision::Consent)
    );
    a.record_consent(&f.user.id, &request)
        .await
        .expect("consent");
    let Ok(Decision::Issue { user, auth }) = a.decide(&request, Some(&session), false, false).await
    else {
        panic!("consent remembered: issue");
    };
    // prompt=consent forces the page again; prompt=none without a session fails.
    let mut forced = request.clone();
    forced.prompt_consent = true;
    assert_eq!(
        a.decide(&forced, Some(&session), false, false).await,
        Ok(Decision::Consent)
    );
    let mut silent = request.clone();
    silent.prompt_none = true;
    assert_eq!(
        redirect_code(a.decide(&silent, None, false, false).await),
        ErrorCode::LoginRequired
    );

    let code = a.issue_code(&request, &user, &auth).await.expect("code");
    let creds = ClientCredentials {
        client_id: id.clone(),
        secret: Some(secret.clone()),
        assertion: None,
    };
    let exchange = |verifier: &str| TokenRequest::AuthorizationCode {
        code: code.clone(),
        redirect_uri: Some(CB.into()),
        code_verifier: Some(Secret::new(verifier)),
        resources: vec![],
    };
    // Wrong verifier: refused, and the code is not spent.
    let wrong = a
        .token(
            &creds,
            exchange("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx"),
            &Caller::anonymous(None),
        )
        .await;
    assert_eq!(
        wrong.expect_err("wrong verifier").code,
        ErrorCode::InvalidGrant
    );
    let tokens = a
        .token(&creds, exchange(VERIFIER), &Caller::anonymous(None))
        .await
        .expect("exchange");
    let id_token: crate::token::IdTokenClaims = crate::token::verify_jwt(
        &a.keys().current(),
        tokens.id_token.as_deref().expect("id token"),
        "JWT",
    )
    .expect("valid");
    assert_eq!(id_token.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    assert_eq!(id_token.auth_time, auth.auth_time);
    assert_eq!(id_token.acr.as_deref(), Some(crate::factors::ACR_1FA));
    assert_eq!(id_token.amr, Some(vec!["pwd".to_string()]));
    let refresh = tokens
        .refresh_token
        .clone()
        .expect("offline_access gives a refresh token");
    // Replay: refused, and what the first exchange issued is revoked.
    let replay = a
        .token(&creds, exchange(VERIFIER), &Caller::anonymous(None))
        .await;
    assert_eq!(replay.expect_err("replay").code, ErrorCode::InvalidGrant);
    let access = a
        .introspect(&creds, Secret::new(tokens.access_token.clone()), None)
        .await
        .expect("introspect");
    assert!(
        !access.active,
        "the first exchange's access token is revoked"
    );
    let refreshed = a
        .token(
            &creds,
            TokenRequest::RefreshToken {
                refresh_token: Secret::new(refresh),
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await;
    assert_eq!(
        refreshed.expect_err("revoked").code,
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn code_binding_and_expiry() {
    let f = fixture().await;
    let (id, secret) = web_client(&f, true).await;
    let a = &f.authority;
    let (_, request) = a.validate_authorization(params(&id)).await.expect("valid");
    let session = SignedIn {
        user_id: f.user.id.clone(),
        auth_time: 1_700_000_000,
        session_epoch: 0,
        session_id: None,
        methods: Vec::new(),
    };
    assert!(
        matches!(
            a.decide(&request, Some(&session), false, false).await,
            Ok(Decision::Issue { .. })
        ),
        "first party: no consent page"
    );
    let creds = ClientCredentials {
        client_id: id.clone(),
        secret: Some(secret),
        assertion: None,
    };
    let code = a
        .issue_code(
            &request,
            &f.user,
            &Authentication::password_at(1_700_000_000),
        )
        .await
        .expect("code");
    let with = |redirect: Option<&str>, verifier: Option<&str>| TokenRequest::AuthorizationCode {
        code: code.clone(),
        redirect_uri: redirect.map(str::to_string),
        code_verifier: verifier.map(Secret::new),
        resources: vec![],
    };
    for (redirect, verifier) in [
        (Some("https://app.example.com/other"), Some(VERIFIER)),
        (None, Some(VERIFIER)),
        (Some(CB), None),
    ] {
        let result = a
            .token(&creds, with(redirect, verifier), &Caller::anonymous(None))
            .await;
        assert_eq!(result.expect_err("bound").code, ErrorCode::InvalidGrant);
    }
    // Another client cannot redeem it.
    let other = ClientCredentials {
        client_id: f.app.0.id.clone(),
        secret: Some(f.app.1.clone()),
        assertion: None,
    };
    let result = a
        .token(
            &other,
            with(Some(CB), Some(VERIFIER)),
            &Caller::anonymous(None),
        )
        .await;
    assert_eq!(
        result.expect_err("client").code,
        ErrorCode::UnauthorizedClient
    );
    // Sixty seconds later it has expired.
    f.clock.advance(61);
    let result = a
        .token(
            &creds,
            with(Some(CB), Some(VERIFIER)),
            &Caller::anonymous(None),
        )
        .await;
    assert_eq!(result.expect_err("expired").code, ErrorCode::InvalidGrant);
}

/// A confirmed factor of `f.user`'s, straight into the store.
async fn give_factor(f: &Fixture, kind: crate::store::FactorKind) {
    use crate::store::{Factor, SecondFactorStore};
    f.store
        .create_factor(&Factor {
            id: crate::secret::random_token(16),
            user_id: f.user.id.clone(),
            kind,
            name: "mine".into(),
            data: String::new(),
            credential_id: (kind == crate::store::FactorKind::Passkey)
                .then(|| crate::secret::random_token(16)),
            last_step: None,
            created_at: 1,
            confirmed_at: Some(1),
            last_used_at: None,
        })
        .await
        .expect("factor");
}

#[tokio::test]
async fn step_up_asks_for_what_the_session_lacks() {
    use crate::factors::{Method, ACR_2FA, ACR_PHR};
    use crate::store::FactorKind;
    let f = fixture().await;
    let (id, _) = web_client(&f, true).await;
    let a = &f.authority;
    let mut password_only = SignedIn {
        user_id: f.user.id.clone(),
        auth_time: 1_700_000_000,
        session_epoch: 0,
        session_id: None,
        methods: Vec::new(),
    };
    let mut wants_2fa = params(&id);
    wants_2fa.acr_values = Some(format!("urn:example:gold {ACR_2FA}"));
    let (_, request) = a.validate_authorization(wants_2fa).await.expect("valid");
    // No factor yet: the user adds one first.
    assert_eq!(
        a.decide(&request, Some(&password_only), false, false).await,
        Ok(Decision::EnrollSecondFactor { passkey: false })
    );
    give_factor(&f, FactorKind::Totp).await;
    assert_eq!(
        a.decide(&request, Some(&password_only), false, false).await,
        Ok(Decision::SecondFactor {
            passkey_only: false
        })
    );
    // A user with a factor proves it even when the client asks for nothing.
    let (_, plain) = a.validate_authorization(params(&id)).await.expect("valid");
    assert_eq!(
        a.decide(&plain, Some(&password_only), false, false).await,
        Ok(Decision::SecondFactor {
            passkey_only: false
        })
    );
    // prompt=none cannot step up.
    let mut silent = request.clone();
    silent.prompt_none = true;
    assert!(matches!(
        a.decide(&silent, Some(&password_only), false, false).await,
        Err(AuthorizeError::Redirect { error, .. }) if error.code == ErrorCode::LoginRequired
    ));
    password_only.add_method(Method::Totp, 1_700_000_050);
    let Ok(Decision::Issue { auth, .. }) =
        a.decide(&request, Some(&password_only), false, false).await
    else {
        panic!("two factors: issue");
    };
    assert_eq!(auth.acr, ACR_2FA);
    assert_eq!(auth.amr, vec!["pwd", "otp", "mfa"]);
    assert_eq!(auth.auth_time, 1_700_000_050);
    // phr needs a passkey: none yet, so one is added; then it is used.
    let mut wants_phr = params(&id);
    wants_phr.acr_values = Some(ACR_PHR.into());
    let (_, phr) = a.validate_authorization(wants_phr).await.expect("valid");
    assert_eq!(
        a.decide(&phr, Some(&password_only), false, false).await,
        Ok(Decision::EnrollSecondFactor { passkey: true })
    );
    give_factor(&f, FactorKind::Passkey).await;
    assert_eq!(
        a.decide(&phr, Some(&password_only), false, false).await,
        Ok(Decision::SecondFactor { passkey_only: true })
    );
}

#[tokio::test]
async fn the_password_grant_refuses_an_account_with_a_second_factor() {
    let f = fixture().await;
    give_factor(&f, crate::store::FactorKind::Totp).await;
    let refused = f
        .authority
        .token(
            &f.creds(),
            TokenRequest::Password {
                username: "alice".into(),
                password: Secret::new("correct horse battery"),
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await
        .expect_err("refused");
    assert_eq!(refused.code, ErrorCode::InvalidGrant);
    assert!(
        refused.description.contains("authorization code flow"),
        "{}",
        refused.description
    );
}
