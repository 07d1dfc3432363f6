//! Core tests of pushed authorization requests (RFC 9126): the push, the single-use
//! `request_uri` at the authorization endpoint, expiry on a fixed clock, the per-client cap
//! and the PAR requirement.

use crate::authority::{AuthorityConfig, ClientCredentials};
use crate::authorize::{AuthorizeError, AuthorizeParams};
use crate::client::{Client, ClientRegistration};
use crate::error::{Cause, ErrorCode, OAuthError};
use crate::grant::tests::{fixture_with, Fixture};
use crate::par::{PushCounter, PushedAuthorization, PUSHED_REQUEST_TTL, REQUEST_URI_PREFIX};
use crate::secret::{hash_for_storage, Secret};
use crate::store::{ClientStore, ThirdPartyStore};

const CB: &str = "https://app.example.com/cb";
const OTHER_CB: &str = "https://app.example.com/other";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const API: &str = "https://api.example.com";

async fn add_client(f: &Fixture, public: bool, adjust: impl FnOnce(&mut Client)) -> Client {
    let (mut client, _) = ClientRegistration {
        name: "web".into(),
        is_public: public,
        redirect_uris: vec![CB.into(), OTHER_CB.into()],
        audiences: vec![API.into()],
        ..Default::default()
    }
    .build(0)
    .expect("client");
    adjust(&mut client);
    f.store.create_client(&client).await.expect("client");
    client
}

/// A confidential client and its credentials.
async fn confidential(f: &Fixture) -> (Client, ClientCredentials) {
    let (client, secret) = ClientRegistration {
        name: "confidential".into(),
        redirect_uris: vec![CB.into()],
        ..Default::default()
    }
    .build(0)
    .expect("client");
    f.store.create_client(&client).await.expect("client");
    let credentials = ClientCredentials {
        client_id: client.id.clone(),
        secret,
        assertion: None,
    };
    (client, credentials)
}

fn public_credentials(client: &Client) -> ClientCredentials {
    ClientCredentials {
        client_id: client.id.clone(),
        secret: None,
        assertion: None,
    }
}

fn params() -> AuthorizeParams {
    AuthorizeParams {
        redirect_uri: Some(CB.into()),
        response_type: Some("code".into()),
        scope: Some("openid profile".into()),
        state: Some("st".into()),
        nonce: Some("n-0S6_WzA2Mj".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

/// The front-channel request that brings a `request_uri` back.
fn by_reference(client_id: &str, request_uri: &str) -> AuthorizeParams {
    AuthorizeParams {
        client_id: Some(client_id.into()),
        request_uri: Some(request_uri.into()),
        ..Default::default()
    }
}

async fn push(
    f: &Fixture,
    credentials: &ClientCredentials,
    params: AuthorizeParams,
) -> Result<PushedAuthorization, OAuthError> {
    f.authority
        .push_authorization_request(credentials, params)
        .await
}

fn refused_code(result: Result<PushedAuthorization, OAuthError>) -> ErrorCode {
    match result {
        Err(error) => error.code,
        Ok(pushed) => panic!("expected a refusal, got {pushed:?}"),
    }
}

fn page_text<T: std::fmt::Debug>(result: Result<T, AuthorizeError>) -> String {
    match result {
        Err(AuthorizeError::Fatal(text)) => text,
        other => panic!("expected an error page, got {other:?}"),
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

#[tokio::test]
async fn a_pushed_request_is_taken_once_at_the_authorization_endpoint() {
    let f = fixture().await;
    let client = add_client(&f, true, |_| {}).await;
    let pushed = push(
        &f,
        &public_credentials(&client),
        AuthorizeParams {
            client_id: Some(client.id.clone()),
            resources: vec![API.into()],
            ..params()
        },
    )
    .await
    .expect("pushed");
    assert_eq!(pushed.expires_in, PUSHED_REQUEST_TTL);
    let reference = pushed
        .request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .expect("the URN form");
    assert_eq!(reference.len(), 43, "256 random bits, base64url");

    let (_, request) = f
        .authority
        .validate_authorization(by_reference(&client.id, &pushed.request_uri))
        .await
        .expect("the pushed request");
    assert_eq!(request.client_id, client.id);
    assert_eq!(request.redirect_uri, CB);
    assert!(request.redirect_uri_given);
    assert_eq!(request.scope, "openid profile");
    assert_eq!(request.state.as_deref(), Some("st"));
    assert_eq!(request.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    assert_eq!(request.code_challenge, CHALLENGE);
    assert_eq!(request.resources, vec![API.to_string()]);

    let again = f
        .authority
        .validate_authorization(by_reference(&client.id, &pushed.request_uri))
        .await;
    assert!(
        page_text(again).contains("invalid_request_uri"),
        "single use"
    );
}

#[tokio::test]
async fn only_the_validated_parameters_are_kept() {
    let f = fixture().await;
    let (client, credentials) = confidential(&f).await;
    let pushed = push(
        &f,
        &credentials,
        AuthorizeParams {
            login_hint: Some("alice".into()),
            ..params()
        },
    )
    .await
    .expect("pushed");
    let reference = pushed
        .request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .expect("urn");
    assert!(
        f.store
            .take_pushed_request(reference, &client.id, 0)
            .await
            .expect("store")
            .is_none(),
        "kept under the hash of the reference, not the reference"
    );
    let kept = f
        .store
        .take_pushed_request(&hash_for_storage(reference), &client.id, f.authority.now())
        .await
        .expect("store")
        .expect("kept");
    assert_eq!(kept.expires_at, f.authority.now() + PUSHED_REQUEST_TTL);
    let parameters: serde_json::Value = serde_json::from_str(&kept.parameters).expect("json");
    let mut names: Vec<&str> = parameters
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "code_challenge",
            "code_challenge_method",
            "login_hint",
            "nonce",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    assert!(parameters
        .as_object()
        .expect("object")
        .values()
        .all(|v| v.is_string()));
}

#[tokio::test]
async fn other_parameters_beside_the_request_uri_are_ignored() {
    let f = fixture().await;
    let client = add_client(&f, true, |_| {}).await;
    let pushed = push(&f, &public_credentials(&client), params())
        .await
        .expect("pushed");
    let (_, request) = f
        .authority
        .validate_authorization(AuthorizeParams {
            redirect_uri: Some(OTHER_CB.into()),
            scope: Some("openid".into()),
            state: Some("changed".into()),
            code_challenge: Some("x".into()),
            repeated: vec!["state".into()],
            ..by_reference(&client.id, &pushed.request_uri)
        })
        .await
        .expect("the pushed request, whatever else the query says");
    assert_eq!(request.redirect_uri, CB);
    assert_eq!(request.scope, "openid profile");
    assert_eq!(request.state.as_deref(), Some("st"));
    assert_eq!(request.code_challenge, CHALLENGE);
}

#[tokio::test]
async fn an_expired_request_uri_is_refused() {
    let f = fixture().await;
    let client = add_client(&f, true, |_| {}).await;
    let credentials = public_credentials(&client);
    let in_time = push(&f, &credentials, params()).await.expect("pushed");
    let late = push(&f, &credentials, params()).await.expect("pushed");
    f.clock.advance(PUSHED_REQUEST_TTL - 1);
    f.authority
        .validate_authorization(by_reference(&client.id, &in_time.request_uri))
        .await
        .expect("still in time");
    f.clock.advance(1);
    let result = f
        .authority
        .validate_authorization(by_reference(&client.id, &late.request_uri))
        .await;
    assert!(page_text(result).contains("invalid_request_uri"));
}

#[tokio::test]
async fn a_request_uri_is_bound_to_the_client_that_pushed_it() {
    let f = fixture().await;
    let owner = add_client(&f, true, |_| {}).await;
    let other = add_client(&f, true, |_| {}).await;
    let pushed = push(&f, &public_credentials(&owner), params())
        .await
        .expect("pushed");
    let result = f
        .authority
        .validate_authorization(by_reference(&other.id, &pushed.request_uri))
        .await;
    assert!(page_text(result).contains("invalid_request_uri"));
    // Another client's attempt does not use it up.
    f.authority
        .validate_authorization(by_reference(&owner.id, &pushed.request_uri))
        .await
        .expect("still the owner's");
}

#[tokio::test]
async fn unknown_malformed_and_foreign_request_uris() {
    let f = fixture().await;
    let client = add_client(&f, true, |_| {}).await;
    for unknown in [
        format!("{REQUEST_URI_PREFIX}{}", Secret::generate().expose()),
        format!("{REQUEST_URI_PREFIX}short"),
        REQUEST_URI_PREFIX.to_string(),
    ] {
        let result = f
            .authority
            .validate_authorization(by_reference(&client.id, &unknown))
            .await;
        assert!(
            page_text(result).contains("invalid_request_uri"),
            "{unknown}"
        );
    }
    // Without its client_id, or with an unknown one, there is nothing to check it against.
    let pushed = push(&f, &public_credentials(&client), params())
        .await
        .expect("pushed");
    let missing = AuthorizeParams {
        client_id: None,
        ..by_reference(&client.id, &pushed.request_uri)
    };
    let result = f.authority.validate_authorization(missing).await;
    assert!(page_text(result).contains("client_id"));
    let result = f
        .authority
        .validate_authorization(by_reference("nobody", &pushed.request_uri))
        .await;
    assert_eq!(page_text(result), "unknown client");
    let repeated = AuthorizeParams {
        repeated: vec!["request_uri".into()],
        ..by_reference(&client.id, &pushed.request_uri)
    };
    let result = f.authority.validate_authorization(repeated).await;
    assert!(page_text(result).contains("repeated"));
    // A request_uri of another form is a request object by reference: not supported.
    let result = f
        .authority
        .validate_authorization(AuthorizeParams {
            client_id: Some(client.id.clone()),
            request_uri: Some("https://app.example.com/request.jwt".into()),
            ..params()
        })
        .await;
    match result {
        Err(AuthorizeError::Redirect { error, .. }) => {
            assert_eq!(error.code, ErrorCode::RequestUriNotSupported)
        }
        other => panic!("expected request_uri_not_supported, got {other:?}"),
    }
}

#[tokio::test]
async fn the_push_authenticates_the_client_as_the_token_endpoint_does() {
    let f = fixture().await;
    let (_, credentials) = confidential(&f).await;
    push(&f, &credentials, params())
        .await
        .expect("with its secret");
    let wrong = ClientCredentials {
        secret: Some(Secret::new("wrong")),
        ..credentials.clone()
    };
    assert_eq!(
        refused_code(push(&f, &wrong, params()).await),
        ErrorCode::InvalidClient
    );
    let without = ClientCredentials {
        secret: None,
        ..credentials.clone()
    };
    assert_eq!(
        refused_code(push(&f, &without, params()).await),
        ErrorCode::InvalidClient,
        "a confidential client must authenticate"
    );
    let unknown = ClientCredentials {
        client_id: "nobody".into(),
        secret: None,
        assertion: None,
    };
    assert_eq!(
        refused_code(push(&f, &unknown, params()).await),
        ErrorCode::InvalidClient
    );
    let public = add_client(&f, true, |_| {}).await;
    let mismatch = AuthorizeParams {
        client_id: Some(public.id.clone()),
        ..params()
    };
    assert_eq!(
        refused_code(push(&f, &credentials, mismatch).await),
        ErrorCode::InvalidRequest,
        "the body's client_id is the authenticated client's"
    );
}

#[tokio::test]
async fn an_invalid_push_is_refused_with_its_error_code() {
    let f = fixture().await;
    let client = add_client(&f, true, |_| {}).await;
    let credentials = public_credentials(&client);
    let cases: Vec<(AuthorizeParams, ErrorCode)> = vec![
        (
            AuthorizeParams {
                redirect_uri: Some("https://evil.example.com/cb".into()),
                ..params()
            },
            ErrorCode::InvalidRequest,
        ),
        (
            AuthorizeParams {
                code_challenge: None,
                ..params()
            },
            ErrorCode::InvalidRequest,
        ),
        (
            AuthorizeParams {
                code_challenge_method: Some("plain".into()),
                ..params()
            },
            ErrorCode::InvalidRequest,
        ),
        (
            AuthorizeParams {
                scope: Some("openid admin".into()),
                ..params()
            },
            ErrorCode::InvalidScope,
        ),
        (
            AuthorizeParams {
                response_type: Some("token".into()),
                ..params()
            },
            ErrorCode::UnsupportedResponseType,
        ),
        (
            AuthorizeParams {
                request_uri: Some(format!(
                    "{REQUEST_URI_PREFIX}{}",
                    Secret::generate().expose()
                )),
                ..params()
            },
            ErrorCode::InvalidRequest,
        ),
        (
            AuthorizeParams {
                request: Some("eyJhbGciOiJub25lIn0.e30.".into()),
                ..params()
            },
            ErrorCode::RequestNotSupported,
        ),
        (
            AuthorizeParams {
                resources: vec!["https://elsewhere.example.com".into()],
                ..params()
            },
            ErrorCode::InvalidTarget,
        ),
        (
            AuthorizeParams {
                repeated: vec!["scope".into()],
                ..params()
            },
            ErrorCode::InvalidRequest,
        ),
    ];
    for (params, expected) in cases {
        let described = format!("{params:?}");
        assert_eq!(
            refused_code(push(&f, &credentials, params).await),
            expected,
            "{described}"
        );
    }
}

#[tokio::test]
async fn the_pushed_parameters_are_checked_again_against_the_client_as_it_is_now() {
    let f = fixture().await;
    let client = add_client(&f, true, |_| {}).await;
    let pushed = push(&f, &public_credentials(&client), params())
        .await
        .expect("pushed");
    let mut changed = client.clone();
    changed.redirect_uris = vec![OTHER_CB.into()];
    f.store.update_client(&changed).await.expect("update");
    let result = f
        .authority
        .validate_authorization(by_reference(&client.id, &pushed.request_uri))
        .await;
    assert!(page_text(result).contains("redirect_uri"));
}

#[tokio::test]
async fn a_client_that_must_push_is_refused_a_plain_request() {
    let f = fixture().await;
    let client = add_client(&f, true, |c| c.require_pushed_authorization_requests = true).await;
    let plain = f
        .authority
        .validate_authorization(AuthorizeParams {
            client_id: Some(client.id.clone()),
            ..params()
        })
        .await;
    match plain {
        Err(AuthorizeError::Redirect { error, .. }) => {
            assert_eq!(error.code, ErrorCode::InvalidRequest);
            assert!(
                error.description.contains("RFC 9126"),
                "{}",
                error.description
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let pushed = push(&f, &public_credentials(&client), params())
        .await
        .expect("pushed");
    f.authority
        .validate_authorization(by_reference(&client.id, &pushed.request_uri))
        .await
        .expect("pushed, it goes through");
}

#[tokio::test]
async fn the_server_can_require_every_client_to_push() {
    let f = fixture_with(|config: &mut AuthorityConfig| {
        config.require_pushed_authorization_requests = true;
    })
    .await;
    let client = add_client(&f, true, |_| {}).await;
    let plain = f
        .authority
        .validate_authorization(AuthorizeParams {
            client_id: Some(client.id.clone()),
            ..params()
        })
        .await;
    assert!(
        matches!(plain, Err(AuthorizeError::Redirect { ref error, .. }) if error.code == ErrorCode::InvalidRequest),
        "{plain:?}"
    );
    let pushed = push(&f, &public_credentials(&client), params())
        .await
        .expect("pushed");
    f.authority
        .validate_authorization(by_reference(&client.id, &pushed.request_uri))
        .await
        .expect("pushed, it goes through");
}

#[tokio::test]
async fn each_client_may_push_only_so_many_requests_a_minute() {
    let f = fixture_with(|config: &mut AuthorityConfig| {
        config.pushed_requests_max_per_client = 2;
    })
    .await;
    let client = add_client(&f, true, |_| {}).await;
    let other = add_client(&f, true, |_| {}).await;
    let credentials = public_credentials(&client);
    push(&f, &credentials, params()).await.expect("first");
    push(&f, &credentials, params()).await.expect("second");
    match push(&f, &credentials, params()).await {
        Err(error) => {
            assert_eq!(error.cause, Cause::RateLimited);
            assert!(error.retry_after.is_some_and(|s| (1..=60).contains(&s)));
        }
        Ok(_) => panic!("the third push within a minute is refused"),
    }
    push(&f, &public_credentials(&other), params())
        .await
        .expect("another client has a count of its own");
    // Invalid pushes are not counted: nothing was kept for them.
    f.clock.advance(2 * PUSHED_REQUEST_TTL);
    let invalid = AuthorizeParams {
        code_challenge: None,
        ..params()
    };
    for _ in 0..3 {
        assert_eq!(
            refused_code(push(&f, &credentials, invalid.clone()).await),
            ErrorCode::InvalidRequest
        );
    }
    push(&f, &credentials, params()).await.expect("room again");
}

#[test]
fn the_push_count_slides_over_the_last_minute() {
    let counter = PushCounter::default();
    let start = 1_700_000_040 - 1_700_000_040 % PUSHED_REQUEST_TTL;
    for _ in 0..10 {
        counter.take("c", start + 50, 10).expect("room");
    }
    assert!(counter.take("c", start + 59, 10).is_err(), "full");
    // Half-way through the next window, about half of the previous one still counts.
    for _ in 0..5 {
        counter
            .take("c", start + PUSHED_REQUEST_TTL + 30, 10)
            .expect("room");
    }
    assert!(counter
        .take("c", start + PUSHED_REQUEST_TTL + 30, 10)
        .is_err());
    // Two windows on, nothing of it counts.
    for _ in 0..10 {
        counter
            .take("c", start + 3 * PUSHED_REQUEST_TTL, 10)
            .expect("room");
    }
}
