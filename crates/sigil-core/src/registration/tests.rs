//! Dynamic registration against the memory store with a fixed clock.

use super::*;
use crate::grant::tests::{fixture_with, Fixture};
use crate::store::{ClientStore, ThirdPartyStore};
use serde_json::json;

fn caller(address: &str) -> Caller {
    Caller::anonymous(Some(address.into()))
}

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

fn native() -> Map<String, Value> {
    body(json!({
        "client_name": "Agent",
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "software_id": "agent-cli",
        "unknown_field": {"nested": true},
    }))
}

async fn service(
    mode: RegistrationMode,
    adjust: impl FnOnce(&mut RegistrationConfig),
) -> (Fixture, Registrations) {
    let f = fixture_with(|_| {}).await;
    let mut config = RegistrationConfig {
        mode,
        ..RegistrationConfig::default()
    };
    adjust(&mut config);
    let service = Registrations::for_authority(&f.authority, config);
    (f, service)
}

#[tokio::test]
async fn closed_by_default() {
    let (_f, service) = service(RegistrationMode::Closed, |_| {}).await;
    let error = service
        .register(&caller("192.0.2.1"), None, &native())
        .await
        .expect_err("closed");
    assert_eq!(error.code, ErrorCode::AccessDenied);
}

#[tokio::test]
async fn open_registration_reads_back_updates_and_deletes() {
    let (f, service) = service(RegistrationMode::Open, |_| {}).await;
    let made = service
        .register(&caller("192.0.2.1"), None, &native())
        .await
        .expect("registered");
    let r = &made.response;
    assert_eq!(r["client_name"], "Agent");
    assert_eq!(r["token_endpoint_auth_method"], "none");
    assert_eq!(
        r["application_type"], "native",
        "loopback redirects read as native"
    );
    assert_eq!(r["software_id"], "agent-cli");
    assert!(
        r.get("unknown_field").is_none(),
        "unknown metadata is ignored"
    );
    assert!(
        r.get("client_secret").is_none(),
        "a public client has no secret"
    );
    assert_eq!(
        r["registration_client_uri"],
        format!("https://sigil.test/register/{}", made.client.id)
    );
    let token = Secret::new(r["registration_access_token"].as_str().expect("token"));
    let stored = f
        .store
        .find_client(&made.client.id)
        .await
        .expect("find")
        .expect("there");
    assert!(stored.is_self_registered());
    assert!(!stored.is_first_party);
    assert_eq!(stored.registered_from.as_deref(), Some("192.0.2.1"));
    assert_ne!(
        stored
            .registration
            .as_ref()
            .map(|r| r.access_token_hash.as_str()),
        Some(token.expose()),
        "only the hash is stored"
    );

    // RFC 7592 read: a new access token each time; the old one stops working.
    let read = service.read(&made.client.id, &token).await.expect("read");
    assert_eq!(read.response["client_id"], made.client.id.as_str());
    let token2 = Secret::new(
        read.response["registration_access_token"]
            .as_str()
            .expect("token"),
    );
    assert_eq!(
        service
            .read(&made.client.id, &token)
            .await
            .expect_err("old")
            .code,
        ErrorCode::InvalidToken
    );

    // Update: the body's client_id must match; the auth method cannot change.
    let mut changed = native();
    changed.insert("client_name".into(), "Agent 2".into());
    let wrong = service
        .update(&caller("192.0.2.1"), &made.client.id, &token2, &changed)
        .await
        .expect_err("no client_id");
    assert_eq!(wrong.code, ErrorCode::InvalidRequest);
    changed.insert("client_id".into(), made.client.id.clone().into());
    let updated = service
        .update(&caller("192.0.2.1"), &made.client.id, &token2, &changed)
        .await
        .expect("updated");
    assert_eq!(updated.client.name, "Agent 2");
    assert_eq!(updated.client.created_at, made.client.created_at);
    let token3 = Secret::new(
        updated.response["registration_access_token"]
            .as_str()
            .expect("token"),
    );
    let mut switch = changed.clone();
    switch.insert(
        "token_endpoint_auth_method".into(),
        "client_secret_basic".into(),
    );
    assert_eq!(
        service
            .update(&caller("192.0.2.1"), &made.client.id, &token3, &switch)
            .await
            .expect_err("switch")
            .code,
        ErrorCode::InvalidClientMetadata
    );

    // Delete: gone, and its token with it.
    service
        .delete(&caller("192.0.2.1"), &made.client.id, &token3)
        .await
        .expect("deleted");
    assert!(f
        .store
        .find_client(&made.client.id)
        .await
        .expect("find")
        .is_none());
    assert_eq!(
        service
            .read(&made.client.id, &token3)
            .await
            .expect_err("gone")
            .code,
        ErrorCode::InvalidToken
    );
}

#[tokio::test]
async fn an_unknown_client_and_a_wrong_token_look_the_same() {
    let (f, service) = service(RegistrationMode::Open, |_| {}).await;
    let made = service
        .register(&caller("192.0.2.1"), None, &native())
        .await
        .expect("registered");
    let wrong = service
        .read(&made.client.id, &Secret::generate())
        .await
        .expect_err("wrong");
    let unknown = service
        .read("AAAAAAAAAAAAAAAAAAAAAA", &Secret::generate())
        .await
        .expect_err("unknown");
    assert_eq!(wrong, unknown);
    // An administrator's client has no registration access token at all.
    let admin_client = f.app.0.id.clone();
    assert_eq!(
        service
            .read(&admin_client, &Secret::new(""))
            .await
            .expect_err("no token")
            .code,
        ErrorCode::InvalidToken
    );
}

#[tokio::test]
async fn metadata_rules() {
    let (_f, service) = service(RegistrationMode::Open, |c| c.per_address_per_hour = 100).await;
    let refused = |value: Value| {
        let service = &service;
        async move {
            service
                .register(&caller("192.0.2.9"), None, &body(value))
                .await
                .expect_err("refused")
                .code
        }
    };
    // A web app may not use loopback or private-use redirects; localhost never.
    assert_eq!(
        refused(json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "web", "token_endpoint_auth_method": "none"})).await,
        ErrorCode::InvalidRedirectUri
    );
    assert_eq!(
        refused(json!({"redirect_uris": ["http://localhost:8000/cb"], "token_endpoint_auth_method": "none"})).await,
        ErrorCode::InvalidRedirectUri
    );
    assert_eq!(
        refused(json!({"redirect_uris": ["https://app.example.com/cb#x"]})).await,
        ErrorCode::InvalidRedirectUri
    );
    assert_eq!(
        refused(json!({})).await,
        ErrorCode::InvalidRedirectUri,
        "code flow needs a redirect"
    );
    assert_eq!(
        refused(
            json!({"redirect_uris": ["https://app.example.com/cb"], "grant_types": ["password"]})
        )
        .await,
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        refused(json!({"redirect_uris": ["https://app.example.com/cb"], "grant_types": ["implicit"], "response_types": ["token"]})).await,
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        refused(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "tls_client_auth"})).await,
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        refused(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB", "d": "secret"}]}})).await,
        ErrorCode::InvalidClientMetadata,
        "a private key in jwks"
    );
    assert_eq!(
        refused(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]})).await,
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        refused(json!({"redirect_uris": ["https://app.example.com/cb"], "client_uri": "javascript:alert(1)"})).await,
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        refused(json!({"redirect_uris": "https://app.example.com/cb"})).await,
        ErrorCode::InvalidClientMetadata,
        "redirect_uris must be an array"
    );
    assert_eq!(
        refused(
            json!({"redirect_uris": ["https://app.example.com/cb"], "scope": "admin superuser"})
        )
        .await,
        ErrorCode::InvalidClientMetadata,
        "nothing asked for is available"
    );
    // A confidential web client gets a secret; scopes beyond the allowed are dropped; no
    // back-channel logout URI is taken from a registrant.
    let made = service
        .register(
            &caller("192.0.2.9"),
            None,
            &body(json!({
                "redirect_uris": ["https://app.example.com/cb"],
                "scope": "openid profile admin",
                "backchannel_logout_uri": "https://169.254.169.254/latest",
            })),
        )
        .await
        .expect("registered");
    assert_eq!(
        made.response["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert!(made.response["client_secret"]
        .as_str()
        .is_some_and(|s| s.len() >= 40));
    assert_eq!(made.response["client_secret_expires_at"], 0);
    assert_eq!(made.response["scope"], "openid profile");
    assert_eq!(made.client.backchannel_logout_uri, None);
    assert_eq!(made.response["application_type"], "web");
    assert_eq!(made.response["dpop_bound_access_tokens"], false);
    assert!(!made.client.dpop_bound_access_tokens);
    // RFC 9449 §5.2: a client may ask that all its tokens be DPoP-bound.
    let bound = service
        .register(
            &caller("192.0.2.9"),
            None,
            &body(json!({
                "redirect_uris": ["https://app.example.com/cb"],
                "token_endpoint_auth_method": "none",
                "dpop_bound_access_tokens": true,
            })),
        )
        .await
        .expect("registered");
    assert!(bound.client.dpop_bound_access_tokens);
    assert_eq!(bound.response["dpop_bound_access_tokens"], true);
    assert_eq!(
        refused(json!({"redirect_uris": ["https://app.example.com/cb"], "dpop_bound_access_tokens": "yes"})).await,
        ErrorCode::InvalidClientMetadata
    );
}

#[tokio::test]
async fn rate_limit_and_caps() {
    let (f, service) = service(RegistrationMode::Open, |c| {
        c.per_address_per_hour = 3;
        c.max_per_address = 5;
        c.max_clients = 7;
    })
    .await;
    for _ in 0..3 {
        service
            .register(&caller("192.0.2.1"), None, &native())
            .await
            .expect("within the rate");
    }
    let limited = service
        .register(&caller("192.0.2.1"), None, &native())
        .await
        .expect_err("rate");
    assert_eq!(limited.cause, crate::error::Cause::RateLimited);
    assert!(limited.retry_after.is_some_and(|s| s > 0 && s <= 3600));
    // The window moves on with time.
    f.clock.advance(3601);
    for _ in 0..2 {
        service
            .register(&caller("192.0.2.1"), None, &native())
            .await
            .expect("a new window");
    }
    // Five clients from this address: the per-address cap.
    let capped = service
        .register(&caller("192.0.2.1"), None, &native())
        .await
        .expect_err("cap");
    assert_eq!(capped.cause, crate::error::Cause::RateLimited);
    // Another address: two more, then the total cap.
    for _ in 0..2 {
        service
            .register(&caller("192.0.2.2"), None, &native())
            .await
            .expect("other address");
    }
    let full = service
        .register(&caller("192.0.2.3"), None, &native())
        .await
        .expect_err("total cap");
    assert_eq!(full.cause, crate::error::Cause::RateLimited);
    assert_eq!(
        f.store
            .count_self_registered_clients(None)
            .await
            .expect("count"),
        7
    );
}

#[tokio::test]
async fn initial_access_tokens() {
    let (f, service) = service(RegistrationMode::Token, |_| {}).await;
    assert_eq!(
        service
            .register(&caller("192.0.2.1"), None, &native())
            .await
            .expect_err("no token")
            .code,
        ErrorCode::InvalidToken
    );
    let (record, token) = service
        .create_initial_token(&Caller::cli(), 2, 3600)
        .await
        .expect("token");
    assert_ne!(record.token_hash, token.expose());
    for _ in 0..2 {
        let made = service
            .register(&caller("192.0.2.1"), Some(&token), &native())
            .await
            .expect("registered");
        assert_eq!(
            made.client.registration.and_then(|r| r.initial_token_id),
            Some(record.id.clone())
        );
    }
    assert_eq!(
        service
            .register(&caller("192.0.2.1"), Some(&token), &native())
            .await
            .expect_err("used up")
            .code,
        ErrorCode::InvalidToken
    );
    let (_, expiring) = service
        .create_initial_token(&Caller::cli(), 5, 60)
        .await
        .expect("token");
    f.clock.advance(61);
    assert_eq!(
        service
            .register(&caller("192.0.2.1"), Some(&expiring), &native())
            .await
            .expect_err("expired")
            .code,
        ErrorCode::InvalidToken
    );
}

#[tokio::test]
async fn unused_clients_are_removed_and_used_ones_stay() {
    let (f, service) = service(RegistrationMode::Open, |c| c.unused_ttl = 86_400).await;
    let unused = service
        .register(
            &caller("192.0.2.1"),
            None,
            &body(json!({
                "redirect_uris": ["https://app.example.com/cb"],
                "grant_types": ["client_credentials"],
            })),
        )
        .await
        .expect("registered");
    let used = service
        .register(
            &caller("192.0.2.1"),
            None,
            &body(json!({
                "redirect_uris": ["https://app.example.com/cb"],
                "grant_types": ["client_credentials"],
            })),
        )
        .await
        .expect("registered");
    let secret = Secret::new(used.response["client_secret"].as_str().expect("secret"));
    f.authority
        .token(
            &crate::authority::ClientCredentials {
                client_id: used.client.id.clone(),
                secret: Some(secret),
                assertion: None,
            },
            crate::grant::TokenRequest::ClientCredentials {
                scope: None,
                resources: vec![],
            },
            &caller("192.0.2.1"),
        )
        .await
        .expect("a token");
    assert_eq!(
        service.delete_unused().await.expect("clean"),
        0,
        "too early"
    );
    f.clock.advance(86_401);
    assert_eq!(service.delete_unused().await.expect("clean"), 1);
    assert!(f
        .store
        .find_client(&unused.client.id)
        .await
        .expect("find")
        .is_none());
    assert!(f
        .store
        .find_client(&used.client.id)
        .await
        .expect("find")
        .is_some());
    assert!(
        f.store
            .find_client(&f.app.0.id)
            .await
            .expect("find")
            .is_some(),
        "an administrator's client stays"
    );
}
