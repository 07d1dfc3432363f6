//! Core flows against the in-memory store with a fixed clock.

use crate::audit::Caller;
use crate::authority::{Authority, AuthorityConfig, ClientCredentials};
use crate::client::{Client, ClientRegistration};
use crate::clock::FixedClock;
use crate::cpu::CpuPool;
use crate::error::{Cause, ErrorCode};
use crate::grant::{TokenRequest, TokenResponse};
use crate::keys::tests::test_pem;
use crate::keys::{KeyRing, KeySet, SigningKey};
use crate::password::{Argon2Params, PasswordHasher};
use crate::revocation::TokenTypeHint;
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::memory::MemoryStore;
use crate::store::{AuditStore, ClientStore, RefreshTokenStore, UserStore};
use crate::token::verify_access_token;
use crate::user::User;
use std::sync::Arc;

const ISSUER: &str = "https://sigil.test";
const T0: i64 = 1_700_000_000;

pub(crate) struct Fixture {
    pub(crate) authority: Authority,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) app: (Client, Secret),
    pub(crate) user: User,
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

pub(crate) async fn fixture_with(adjust: impl FnOnce(&mut AuthorityConfig)) -> Fixture {
    let clock = Arc::new(FixedClock::new(T0));
    let store = Arc::new(MemoryStore::new());
    let keys = KeySet::new(vec![
        SigningKey::from_pem(&test_pem(0), T0, T0).expect("key")
    ]);
    let hasher = PasswordHasher::new(Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("hasher");
    let user = User {
        id: "user-1".into(),
        username: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        name: Some("Alice".into()),
        password_hash: hasher.hash("correct horse battery").expect("hash"),
        is_admin: false,
        is_disabled: false,
        must_change_password: false,
        requires_second_factor: false,
        session_epoch: 0,
        origin: crate::user::AccountOrigin::Admin,
        version: 0,
        created_at: T0,
        updated_at: T0,
    };
    store.create_user(&user).await.expect("user");
    let (client, secret) = ClientRegistration {
        name: "app".into(),
        grant_types: Some(vec![
            "password".into(),
            "refresh_token".into(),
            "client_credentials".into(),
        ]),
        audiences: vec![
            "https://api.example.com".into(),
            "https://other.example.com".into(),
        ],
        ..Default::default()
    }
    .build(T0)
    .expect("client");
    store.create_client(&client).await.expect("client");
    let mut config = AuthorityConfig::new(ISSUER);
    config.client_cache_ttl = 0;
    adjust(&mut config);
    let authority = Authority::new(
        config,
        store.clone(),
        Arc::new(KeyRing::new(keys)),
        clock.clone(),
        Arc::new(hasher),
        CpuPool::new("sigil-hash", 2, 16),
        CpuPool::new("sigil-sign", 2, 64),
    );
    Fixture {
        authority,
        clock,
        store,
        app: (client, secret.expect("secret")),
        user,
    }
}

impl Fixture {
    pub(crate) fn creds(&self) -> ClientCredentials {
        ClientCredentials {
            client_id: self.app.0.id.clone(),
            secret: Some(self.app.1.clone()),
            assertion: None,
        }
    }
    pub(crate) async fn password(&self, scope: &str) -> Result<TokenResponse, crate::OAuthError> {
        self.authority
            .token(
                &self.creds(),
                TokenRequest::Password {
                    username: "alice".into(),
                    password: Secret::new("correct horse battery"),
                    scope: Some(ScopeSet::parse(scope).expect("scope")),
                    resources: vec![],
                },
                &Caller::anonymous(None),
            )
            .await
    }
    async fn refresh(
        &self,
        token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, crate::OAuthError> {
        self.authority
            .token(
                &self.creds(),
                TokenRequest::RefreshToken {
                    refresh_token: Secret::new(token),
                    scope: scope.map(|s| ScopeSet::parse(s).expect("scope")),
                    resources: vec![],
                },
                &Caller::anonymous(None),
            )
            .await
    }
    fn claims(&self, token: &str) -> crate::token::AccessTokenClaims {
        verify_access_token(
            &self.authority.keys().current(),
            token,
            ISSUER,
            self.clock.now_for_test(),
        )
        .expect("valid access token")
    }
}

trait NowForTest {
    fn now_for_test(&self) -> i64;
}
impl NowForTest for FixedClock {
    fn now_for_test(&self) -> i64 {
        crate::clock::Clock::now(self)
    }
}

fn code(result: Result<TokenResponse, crate::OAuthError>) -> ErrorCode {
    result.expect_err("expected an error").code
}

fn cause(result: Result<TokenResponse, crate::OAuthError>) -> Cause {
    result.expect_err("expected an error").cause
}

#[tokio::test]
async fn client_credentials_issues_a_stateless_rfc9068_token() {
    let f = fixture().await;
    let response = f
        .authority
        .token(
            &f.creds(),
            TokenRequest::ClientCredentials {
                scope: None,
                resources: vec!["https://other.example.com".into()],
            },
            &Caller::anonymous(None),
        )
        .await
        .expect("token");
    assert!(response.refresh_token.is_none());
    assert!(response.id_token.is_none());
    assert_eq!(response.expires_in, 600);
    let claims = f.claims(&response.access_token);
    assert_eq!(claims.sub, f.app.0.id);
    assert_eq!(claims.client_id, f.app.0.id);
    assert_eq!(claims.aud, vec!["https://other.example.com".to_string()]);
    assert_eq!(claims.exp, T0 + 600);
    // The client has only user scopes (the defaults): none of them is for client_credentials.
    assert_eq!(claims.scope, "");
    assert_eq!(response.scope, "");
    let json = serde_json::to_value(&response).expect("json");
    assert!(json.get("scope").is_none(), "no scope granted, none named");

    // Default audience: the first registered one.
    let response = f
        .authority
        .token(
            &f.creds(),
            TokenRequest::ClientCredentials {
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await
        .expect("token");
    assert_eq!(
        f.claims(&response.access_token).aud,
        vec!["https://api.example.com".to_string()]
    );
}

/// A confidential client registered with `scopes` and its secret, for client_credentials.
async fn service_client(f: &Fixture, scopes: &[&str], audiences: &[&str]) -> ClientCredentials {
    let (client, secret) = ClientRegistration {
        name: "service".into(),
        scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        audiences: audiences.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
    .build(T0)
    .expect("client");
    f.store.create_client(&client).await.expect("client");
    ClientCredentials {
        client_id: client.id,
        secret,
        assertion: None,
    }
}

#[tokio::test]
async fn client_credentials_never_grants_user_scopes() {
    let f = fixture().await;
    let creds = service_client(
        &f,
        &[
            "openid",
            "profile",
            "email",
            "offline_access",
            "address",
            "phone",
            "todos:read",
            "todos:write",
        ],
        &[],
    )
    .await;
    let grant = |scope: Option<&str>| TokenRequest::ClientCredentials {
        scope: scope.map(|s| ScopeSet::parse(s).expect("scope")),
        resources: vec![],
    };
    // Omitted: the client's scopes without the user scopes.
    let response = f
        .authority
        .token(&creds, grant(None), &Caller::anonymous(None))
        .await
        .expect("token");
    assert_eq!(response.scope, "todos:read todos:write");
    assert_eq!(
        f.claims(&response.access_token).scope,
        "todos:read todos:write"
    );
    assert!(response.id_token.is_none() && response.refresh_token.is_none());
    // Asked for: invalid_scope, even though the client is registered with them.
    for scope in [
        "openid",
        "offline_access",
        "profile",
        "email",
        "address",
        "phone",
        "todos:read email",
    ] {
        let result = f
            .authority
            .token(&creds, grant(Some(scope)), &Caller::anonymous(None))
            .await;
        let error = result.expect_err("a user scope");
        assert_eq!(error.code, ErrorCode::InvalidScope, "{scope}");
        assert!(error.description.contains("client_credentials"), "{scope}");
    }
    let response = f
        .authority
        .token(&creds, grant(Some("todos:read")), &Caller::anonymous(None))
        .await
        .expect("token");
    assert_eq!(response.scope, "todos:read");
    // The password grant of a client still gets user scopes.
    assert_eq!(
        f.password("openid profile").await.expect("token").scope,
        "openid profile"
    );
}

#[tokio::test]
async fn client_authentication_failures() {
    let f = fixture().await;
    let request = || TokenRequest::ClientCredentials {
        scope: None,
        resources: vec![],
    };
    let wrong = ClientCredentials {
        client_id: f.app.0.id.clone(),
        secret: Some(Secret::new("wrong")),
        assertion: None,
    };
    assert_eq!(
        code(
            f.authority
                .token(&wrong, request(), &Caller::anonymous(None))
                .await
        ),
        ErrorCode::InvalidClient
    );
    let missing = ClientCredentials {
        client_id: f.app.0.id.clone(),
        secret: None,
        assertion: None,
    };
    assert_eq!(
        code(
            f.authority
                .token(&missing, request(), &Caller::anonymous(None))
                .await
        ),
        ErrorCode::InvalidClient
    );
    let unknown = ClientCredentials {
        client_id: "nope".into(),
        secret: Some(f.app.1.clone()),
        assertion: None,
    };
    assert_eq!(
        code(
            f.authority
                .token(&unknown, request(), &Caller::anonymous(None))
                .await
        ),
        ErrorCode::InvalidClient
    );
}

#[tokio::test]
async fn scope_and_resource_rules() {
    let f = fixture().await;
    let result = f
        .authority
        .token(
            &f.creds(),
            TokenRequest::ClientCredentials {
                scope: Some(ScopeSet::parse("openid admin").expect("scope")),
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await;
    assert_eq!(code(result), ErrorCode::InvalidScope);
    for resource in [
        "https://evil.example.com",
        "not a uri",
        "https://api.example.com#x",
    ] {
        let result = f
            .authority
            .token(
                &f.creds(),
                TokenRequest::ClientCredentials {
                    scope: None,
                    resources: vec![resource.into()],
                },
                &Caller::anonymous(None),
            )
            .await;
        assert_eq!(code(result), ErrorCode::InvalidTarget, "{resource}");
    }
}

#[tokio::test]
async fn password_grant_issues_access_refresh_and_id_tokens() {
    let f = fixture().await;
    let response = f
        .password("openid profile email offline_access")
        .await
        .expect("token");
    let claims = f.claims(&response.access_token);
    assert_eq!(claims.sub, f.user.id);
    assert_eq!(claims.auth_time, Some(T0));
    assert!(claims.fid.is_some());
    assert!(response.refresh_token.is_some());
    let id_token = response.id_token.expect("id token");
    let id: crate::token::IdTokenClaims =
        crate::token::verify_jwt(&f.authority.keys().current(), &id_token, "JWT")
            .expect("id token");
    assert_eq!(id.aud, f.app.0.id);
    assert_eq!(id.preferred_username.as_deref(), Some("alice"));
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(
        id.at_hash,
        Some(crate::token::at_hash(&response.access_token))
    );

    // Without offline_access: no refresh token; without openid: no ID token.
    let response = f.password("profile").await.expect("token");
    assert!(response.refresh_token.is_none());
    assert!(response.id_token.is_none());
}

#[tokio::test]
async fn password_grant_rejections() {
    let f = fixture().await;
    let wrong_password = f
        .authority
        .token(
            &f.creds(),
            TokenRequest::Password {
                username: "alice".into(),
                password: Secret::new("wrong"),
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await;
    let unknown_user = f
        .authority
        .token(
            &f.creds(),
            TokenRequest::Password {
                username: "mallory".into(),
                password: Secret::new("correct horse battery"),
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await;
    let (a, b) = (
        wrong_password.expect_err("err"),
        unknown_user.expect_err("err"),
    );
    assert_eq!(a, b, "unknown user and wrong password must look the same");
    assert_eq!(a.code, ErrorCode::InvalidGrant);

    // A client without the password grant enabled.
    let (plain, secret) = ClientRegistration {
        name: "svc".into(),
        ..Default::default()
    }
    .build(T0)
    .expect("client");
    f.store.create_client(&plain).await.expect("client");
    let result = f
        .authority
        .token(
            &ClientCredentials {
                client_id: plain.id.clone(),
                secret,
                assertion: None,
            },
            TokenRequest::Password {
                username: "alice".into(),
                password: Secret::new("correct horse battery"),
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await;
    assert_eq!(code(result), ErrorCode::UnauthorizedClient);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let f = fixture().await;
    let first = f
        .password("openid offline_access profile")
        .await
        .expect("token");
    let r1 = first.refresh_token.clone().expect("refresh");
    f.clock.advance(60);
    let second = f.refresh(&r1, None).await.expect("rotation");
    let r2 = second.refresh_token.clone().expect("refresh");
    assert_ne!(r1, r2);
    assert!(
        second.id_token.is_some(),
        "a refresh returns a fresh ID token"
    );
    assert_eq!(f.claims(&second.access_token).auth_time, Some(T0));

    // Reusing r1 fails and revokes the family: r2 dies too.
    assert_eq!(code(f.refresh(&r1, None).await), ErrorCode::InvalidGrant);
    assert_eq!(code(f.refresh(&r2, None).await), ErrorCode::InvalidGrant);
    // And introspection reports the access tokens of the family inactive.
    let live = f
        .authority
        .introspect(&f.creds(), Secret::new(second.access_token.clone()), None)
        .await
        .expect("introspect");
    assert!(!live.active);

    // The audit log has the sign-in and the reuse, naming the user and never the token.
    let entries = f
        .store
        .list_audit(&crate::audit::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    let actions: Vec<&str> = entries.iter().map(|e| e.record.action.as_str()).collect();
    assert!(actions.contains(&"sign_in.success"));
    let reuse: Vec<_> = entries
        .iter()
        .filter(|e| e.record.action == "refresh_token.reuse_detected")
        .collect();
    assert_eq!(reuse.len(), 1, "one reuse, recorded once: {actions:?}");
    assert_eq!(
        reuse[0].record.target.as_deref(),
        Some(f.user.username.as_str())
    );
    for entry in &entries {
        let text = format!("{entry:?}");
        assert!(!text.contains(&r1) && !text.contains(&r2));
    }
}

#[tokio::test]
async fn refresh_narrows_never_widens() {
    let f = fixture().await;
    let first = f
        .password("openid offline_access profile")
        .await
        .expect("token");
    let r1 = first.refresh_token.expect("refresh");
    assert_eq!(
        code(f.refresh(&r1, Some("openid email")).await),
        ErrorCode::InvalidScope
    );
    let narrowed = f.refresh(&r1, Some("profile")).await.expect("narrow");
    assert_eq!(narrowed.scope, "profile");
    // The new refresh token keeps the original grant (RFC 6749 §6).
    let again = f
        .refresh(&narrowed.refresh_token.expect("refresh"), None)
        .await
        .expect("refresh");
    assert_eq!(again.scope, "offline_access openid profile");
}

#[tokio::test]
async fn refresh_expiry_and_foreign_clients() {
    let f = fixture().await;
    let first = f.password("offline_access").await.expect("token");
    let r1 = first.refresh_token.expect("refresh");
    // Another client cannot use it.
    let (other, secret) = ClientRegistration {
        name: "other".into(),
        grant_types: Some(vec!["refresh_token".into(), "client_credentials".into()]),
        ..Default::default()
    }
    .build(T0)
    .expect("client");
    f.store.create_client(&other).await.expect("client");
    let result = f
        .authority
        .token(
            &ClientCredentials {
                client_id: other.id.clone(),
                secret,
                assertion: None,
            },
            TokenRequest::RefreshToken {
                refresh_token: Secret::new(r1.clone()),
                scope: None,
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await;
    assert_eq!(code(result), ErrorCode::InvalidGrant);
    // Idle expiry: 30 days.
    f.clock.advance(30 * 86_400);
    assert_eq!(code(f.refresh(&r1, None).await), ErrorCode::InvalidGrant);
    assert_eq!(
        code(f.refresh("garbage", None).await),
        ErrorCode::InvalidGrant
    );
}

/// Refreshes with one token from `n` tasks at once.
async fn refresh_at_once(
    f: &Arc<Fixture>,
    token: &str,
    n: usize,
) -> Vec<Result<TokenResponse, crate::OAuthError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (f, token) = (f.clone(), token.to_string());
            tokio::spawn(async move { f.refresh(&token, None).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("join"));
    }
    results
}

#[tokio::test]
async fn concurrent_refreshes_give_exactly_one_success() {
    let f = Arc::new(fixture().await);
    let first = f.password("offline_access").await.expect("token");
    let r1 = first.refresh_token.expect("refresh");
    let winners: Vec<String> = refresh_at_once(&f, &r1, 16)
        .await
        .into_iter()
        .filter_map(|r| r.ok().and_then(|r| r.refresh_token))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one success");
    // The losers' reuse revoked the family, the winner's successor with it.
    assert_eq!(
        code(f.refresh(&winners[0], None).await),
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn refresh_grace_replays_the_same_successor_then_revokes() {
    let f = Arc::new(fixture_with(|config| config.refresh_reuse_grace = 10).await);
    let first = f.password("offline_access").await.expect("token");
    let r1 = first.refresh_token.expect("refresh");
    let responses: Vec<TokenResponse> = refresh_at_once(&f, &r1, 16)
        .await
        .into_iter()
        .map(|r| r.expect("every concurrent refresh answered"))
        .collect();
    let r2 = responses[0].refresh_token.clone().expect("successor");
    for response in &responses {
        assert_eq!(
            response.refresh_token.as_deref(),
            Some(r2.as_str()),
            "one successor"
        );
        assert_eq!(
            response.access_token, responses[0].access_token,
            "one access token"
        );
    }
    // Only hashes and the sealed response are stored, never a token in clear.
    let (used, _) = f
        .store
        .find_refresh_token(&Secret::new(r1.clone()).storage_hash())
        .await
        .expect("find")
        .expect("present");
    let sealed = used.sealed_successor.expect("sealed");
    assert!(!sealed.contains(&r2) && !sealed.contains(&responses[0].access_token));
    // A replay later inside the window: the same tokens, with less time left.
    f.clock.advance(10);
    let again = f.refresh(&r1, None).await.expect("inside the window");
    assert_eq!(again.refresh_token.as_deref(), Some(r2.as_str()));
    assert_eq!(again.expires_in, responses[0].expires_in - 10);
    // The successor works once; then a replay outside the window is theft.
    let r3 = f
        .refresh(&r2, None)
        .await
        .expect("successor works")
        .refresh_token
        .expect("r3");
    f.clock.advance(1);
    assert_eq!(code(f.refresh(&r1, None).await), ErrorCode::InvalidGrant);
    assert_eq!(
        code(f.refresh(&r3, None).await),
        ErrorCode::InvalidGrant,
        "family revoked"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account_and_per_address() {
    use std::sync::atomic::Ordering;
    let f = fixture().await;
    let attempt = |username: &'static str, password: &'static str, address: &'static str| {
        let authority = &f.authority;
        let creds = f.creds();
        let caller = Caller::anonymous(Some(address.to_string()));
        async move {
            authority
                .token(
                    &creds,
                    TokenRequest::Password {
                        username: username.into(),
                        password: Secret::new(password),
                        scope: None,
                        resources: vec![],
                    },
                    &caller,
                )
                .await
        }
    };
    let verifications = || {
        f.authority
            .events()
            .password_verifications
            .load(Ordering::Relaxed)
    };
    // A known name with a wrong password and an unknown name: the same answers, the same
    // argon2 work, the same throttling.
    for name in ["alice", "nobody"] {
        let before = verifications();
        for _ in 0..5 {
            assert_eq!(
                code(attempt(name, "wrong", "192.0.2.1").await),
                ErrorCode::InvalidGrant
            );
        }
        assert_eq!(
            verifications() - before,
            5,
            "one argon2 verification per attempt"
        );
        let refused = attempt(name, "correct horse battery", "192.0.2.1")
            .await
            .expect_err("throttled");
        // A 1 s delay, counted from the end of the failure's whole second.
        assert_eq!(
            (refused.cause, refused.retry_after),
            (Cause::TooManyFailedSignIns, Some(2))
        );
        assert_eq!(
            verifications() - before,
            5,
            "a throttled attempt costs no argon2 work"
        );
        f.clock.advance(1);
        assert_eq!(
            cause(attempt(name, "wrong", "192.0.2.1").await),
            Cause::TooManyFailedSignIns
        );
        f.clock.advance(1);
        assert_eq!(
            code(attempt(name, "wrong", "192.0.2.1").await),
            ErrorCode::InvalidGrant
        );
        let refused = attempt(name, "wrong", "192.0.2.1")
            .await
            .expect_err("throttled");
        assert_eq!(refused.retry_after, Some(3), "the wait doubles");
    }
    // After the wait the right password works and clears the account's count.
    f.clock.advance(3);
    attempt("alice", "correct horse battery", "192.0.2.1")
        .await
        .expect("signed in after the wait");
    assert_eq!(
        code(attempt("alice", "wrong", "192.0.2.1").await),
        ErrorCode::InvalidGrant
    );
    // One address guessing at many names: 20 free failures in all (13 so far), then waits.
    for name in ["u0", "u1", "u2", "u3", "u4", "u5", "u6"] {
        assert_eq!(
            code(attempt(name, "wrong", "192.0.2.1").await),
            ErrorCode::InvalidGrant
        );
    }
    assert_eq!(
        attempt("u7", "wrong", "192.0.2.1")
            .await
            .expect_err("address throttled")
            .cause,
        Cause::TooManyFailedSignIns
    );
    // Another address is not affected, nor is alice from there.
    attempt("alice", "correct horse battery", "198.51.100.1")
        .await
        .expect("another address");
}

#[tokio::test]
async fn revocation_of_access_and_refresh_tokens() {
    let f = fixture().await;
    let response = f.password("openid offline_access").await.expect("token");
    let access = response.access_token.clone();
    let refresh = response.refresh_token.clone().expect("refresh");

    // Access token: deny-listed; introspection says inactive; userinfo refuses.
    assert!(
        f.authority
            .introspect(&f.creds(), Secret::new(access.clone()), None)
            .await
            .expect("i")
            .active
    );
    f.authority
        .revoke(
            &f.creds(),
            Secret::new(access.clone()),
            Some(TokenTypeHint::AccessToken),
            &Caller::anonymous(None),
        )
        .await
        .expect("revoke");
    assert!(
        !f.authority
            .introspect(&f.creds(), Secret::new(access.clone()), None)
            .await
            .expect("i")
            .active
    );
    assert_eq!(
        f.authority
            .userinfo(&access)
            .await
            .expect_err("revoked")
            .code,
        ErrorCode::InvalidToken
    );

    // Refresh token: the family goes.
    f.authority
        .revoke(
            &f.creds(),
            Secret::new(refresh.clone()),
            None,
            &Caller::anonymous(None),
        )
        .await
        .expect("revoke");
    assert_eq!(
        code(f.refresh(&refresh, None).await),
        ErrorCode::InvalidGrant
    );

    // Unknown tokens are fine (RFC 7009 §2.2).
    f.authority
        .revoke(
            &f.creds(),
            Secret::new("whatever"),
            None,
            &Caller::anonymous(None),
        )
        .await
        .expect("unknown token is not an error");

    // Two revocations recorded (access token, refresh family); the unknown token is not.
    let revoked = f
        .store
        .list_audit(&crate::audit::AuditFilter {
            action_prefix: Some("token.revoked".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(revoked.len(), 2);
    assert!(revoked
        .iter()
        .all(|e| e.record.target.as_deref() == Some(f.app.0.id.as_str())));
}

#[tokio::test]
async fn introspection_reports_details_and_disabled_users() {
    let f = fixture().await;
    let response = f
        .password("openid offline_access profile")
        .await
        .expect("token");
    let access = f
        .authority
        .introspect(&f.creds(), Secret::new(response.access_token.clone()), None)
        .await
        .expect("introspect");
    assert!(access.active);
    assert_eq!(access.username.as_deref(), Some("alice"));
    assert_eq!(access.sub.as_deref(), Some(f.user.id.as_str()));
    let refresh = f
        .authority
        .introspect(
            &f.creds(),
            Secret::new(response.refresh_token.clone().expect("r")),
            None,
        )
        .await
        .expect("introspect");
    assert!(refresh.active);
    assert_eq!(refresh.token_type.as_deref(), Some("refresh_token"));

    // Disable the user: everything goes inactive at once.
    let mut disabled = f.user.clone();
    disabled.is_disabled = true;
    f.store.update_user(&disabled).await.expect("update");
    let access = f
        .authority
        .introspect(&f.creds(), Secret::new(response.access_token), None)
        .await
        .expect("introspect");
    assert!(!access.active);
    let refresh = f
        .authority
        .introspect(
            &f.creds(),
            Secret::new(response.refresh_token.expect("r")),
            None,
        )
        .await
        .expect("introspect");
    assert!(!refresh.active);
}

#[tokio::test]
async fn introspection_only_for_the_tokens_client_and_audiences() {
    let f = fixture().await;
    let response = f.password("openid offline_access").await.expect("token");
    let access = response.access_token.clone();
    assert_eq!(
        f.claims(&access).aud,
        vec!["https://api.example.com".to_string()]
    );
    let resource_server = service_client(&f, &[], &["https://api.example.com"]).await;
    let other_api = service_client(&f, &[], &["https://other-api.example.com"]).await;
    let no_audience = service_client(&f, &[], &[]).await;
    let introspect = |creds: ClientCredentials, token: String| {
        let authority = &f.authority;
        async move {
            authority
                .introspect(&creds, Secret::new(token), None)
                .await
                .expect("introspect")
        }
    };
    // RFC 7662 §2.2: the token's own client and the resource server it is meant for.
    let own = introspect(f.creds(), access.clone()).await;
    assert!(own.active);
    let answer = introspect(resource_server.clone(), access.clone()).await;
    assert!(answer.active);
    assert_eq!(answer.username.as_deref(), Some("alice"));
    // RFC 7662 §4: anyone else learns nothing.
    for creds in [other_api.clone(), no_audience.clone()] {
        let answer = introspect(creds, access.clone()).await;
        assert_eq!(answer, crate::introspection::Introspection::inactive());
    }
    // A token for another audience of the same client is not the resource server's.
    let elsewhere = f
        .authority
        .token(
            &f.creds(),
            TokenRequest::Password {
                username: "alice".into(),
                password: Secret::new("correct horse battery"),
                scope: None,
                resources: vec!["https://other.example.com".into()],
            },
            &Caller::anonymous(None),
        )
        .await
        .expect("token");
    assert!(
        !introspect(resource_server.clone(), elsewhere.access_token)
            .await
            .active
    );
    // Refresh tokens only to their own client, resource server or not.
    let refresh = response.refresh_token.expect("refresh token");
    assert!(!introspect(resource_server, refresh.clone()).await.active);
    assert!(introspect(f.creds(), refresh).await.active);
}

#[tokio::test]
async fn userinfo_by_scope() {
    let f = fixture().await;
    let response = f.password("openid profile").await.expect("token");
    let info = f
        .authority
        .userinfo(&response.access_token)
        .await
        .expect("userinfo");
    assert_eq!(info.sub, f.user.id);
    assert_eq!(info.preferred_username.as_deref(), Some("alice"));
    assert_eq!(info.email, None, "no email scope, no email");
    let no_openid = f.password("profile").await.expect("token");
    assert_eq!(
        f.authority
            .userinfo(&no_openid.access_token)
            .await
            .expect_err("scope")
            .code,
        ErrorCode::InsufficientScope
    );
    f.clock.advance(601);
    assert_eq!(
        f.authority
            .userinfo(&response.access_token)
            .await
            .expect_err("expired")
            .code,
        ErrorCode::InvalidToken
    );
}

/// RFC 8707 with several resources and the registry: `aud` is exactly the resources, a
/// refresh may only narrow them, and a registered resource's scopes bound what a token for
/// it carries.
#[tokio::test]
async fn resources_narrow_and_follow_the_registry() {
    use crate::store::ThirdPartyStore;
    let f = fixture().await;
    let api = "https://api.example.com".to_string();
    let other = "https://other.example.com".to_string();
    let password = |scope: &str, resources: Vec<String>| {
        let f = &f;
        let scope = scope.to_string();
        async move {
            f.authority
                .token(
                    &f.creds(),
                    TokenRequest::Password {
                        username: "alice".into(),
                        password: Secret::new("correct horse battery"),
                        scope: Some(ScopeSet::parse(&scope).expect("scope")),
                        resources,
                    },
                    &Caller::anonymous(None),
                )
                .await
        }
    };
    let refresh = |token: String, resources: Vec<String>| {
        let f = &f;
        async move {
            f.authority
                .token(
                    &f.creds(),
                    TokenRequest::RefreshToken {
                        refresh_token: Secret::new(token),
                        scope: None,
                        resources,
                    },
                    &Caller::anonymous(None),
                )
                .await
        }
    };
    let both = password(
        "openid offline_access",
        vec![api.clone(), other.clone(), api.clone()],
    )
    .await
    .expect("tokens");
    assert_eq!(
        f.claims(&both.access_token).aud,
        vec![api.clone(), other.clone()]
    );
    let rt = both.refresh_token.clone().expect("refresh token");
    let narrowed = refresh(rt, vec![other.clone()]).await.expect("narrowed");
    assert_eq!(f.claims(&narrowed.access_token).aud, vec![other.clone()]);
    let rt = narrowed.refresh_token.clone().expect("refresh token");
    // The family keeps both: a later refresh without resources gets both again.
    let again = refresh(rt, vec![]).await.expect("both again");
    assert_eq!(
        f.claims(&again.access_token).aud,
        vec![api.clone(), other.clone()]
    );
    let rt = again.refresh_token.clone().expect("refresh token");
    assert_eq!(
        code(refresh(rt.clone(), vec!["https://third.example.com".into()]).await),
        ErrorCode::InvalidTarget,
        "a refresh cannot widen the resources"
    );
    // A refused refresh changed nothing: the token still works.
    assert!(refresh(rt, vec![api.clone()]).await.is_ok());

    // The registry: a registered resource accepts only its scopes (OpenID Connect's always).
    f.store
        .put_resource(
            &crate::resource::new_resource(&api, "API", &["todo:read".into()], true, T0)
                .expect("resource"),
        )
        .await
        .expect("put");
    let mut client = f.app.0.clone();
    client
        .scopes
        .extend(["todo:read".to_string(), "mail:send".to_string()]);
    f.store.update_client(&client).await.expect("update");
    assert!(password("openid todo:read", vec![api.clone()])
        .await
        .is_ok());
    assert_eq!(
        code(password("openid mail:send", vec![api.clone()]).await),
        ErrorCode::InvalidScope,
        "the resource does not accept mail:send"
    );
    // With an unregistered audience beside it, that one takes any scope.
    assert!(
        password("openid mail:send", vec![api.clone(), other.clone()])
            .await
            .is_ok()
    );
    // A token for the registered resource alone drops the scopes it does not accept.
    let wide = password(
        "openid offline_access todo:read mail:send",
        vec![api.clone(), other.clone()],
    )
    .await
    .expect("tokens");
    let only_api = refresh(wide.refresh_token.expect("rt"), vec![api.clone()])
        .await
        .expect("narrowed");
    assert_eq!(only_api.scope, "offline_access openid todo:read");
    // An administrator's client may not use an open resource it does not list: open
    // resources are for self-registered clients.
    f.store
        .put_resource(
            &crate::resource::new_resource("https://open.example.com", "Open", &[], true, T0)
                .expect("resource"),
        )
        .await
        .expect("put");
    assert_eq!(
        code(password("openid", vec!["https://open.example.com".into()]).await),
        ErrorCode::InvalidTarget
    );
}
