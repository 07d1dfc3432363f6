//! The token issuance path through `Authority::token`, in memory: client authentication,
//! the grant's rules, the claims, the trip to the signing pool and back, the response; for
//! the refresh grant also the rotation in the (in-memory) store. What the HTTP layer and a
//! database add is measured by the load suite (`tests/load/run.sh`), not here.
//! Run with `cargo bench -p sigil-core --features test-util --bench issuance`.

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_core::audit::Caller;
use sigil_core::authority::{Authority, AuthorityConfig, ClientCredentials};
use sigil_core::client::ClientRegistration;
use sigil_core::clock::FixedClock;
use sigil_core::cpu::CpuPool;
use sigil_core::grant::TokenRequest;
use sigil_core::keys::{generate_key, KeyRing, KeySet, SigningKey};
use sigil_core::password::{Argon2Params, PasswordHasher};
use sigil_core::scope::ScopeSet;
use sigil_core::secret::Secret;
use sigil_core::store::memory::MemoryStore;
use sigil_core::store::{ClientStore, UserStore};
use sigil_core::user::User;
use std::sync::Arc;

const NOW: i64 = 1_900_000_000;
const PASSWORD: &str = "correct horse battery staple";

struct Bench {
    runtime: tokio::runtime::Runtime,
    authority: Authority,
    credentials: ClientCredentials,
}

fn setup() -> Bench {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let generated = generate_key().expect("key");
    let key = SigningKey::from_pem(&generated.private_pem, NOW, NOW).expect("parse");
    // Cheap argon2: the password grant only opens the refresh families here.
    let hasher = PasswordHasher::new(Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("hasher");
    let store = Arc::new(MemoryStore::new());
    let (client, secret) = ClientRegistration {
        name: "bench".into(),
        grant_types: Some(vec![
            "password".into(),
            "refresh_token".into(),
            "client_credentials".into(),
        ]),
        scopes: Some(vec![
            "openid".into(),
            "profile".into(),
            "offline_access".into(),
            "reports:read".into(),
        ]),
        audiences: vec!["https://api.example.com".into()],
        ..Default::default()
    }
    .build(NOW)
    .expect("client");
    let user = User {
        id: "8m2b7Yq3TgWc1yQ0xk9a1w".into(),
        username: "alice".into(),
        email: None,
        email_verified: false,
        name: Some("Alice".into()),
        password_hash: hasher.hash(PASSWORD).expect("hash"),
        is_admin: false,
        is_disabled: false,
        must_change_password: false,
        requires_second_factor: false,
        session_epoch: 0,
        origin: sigil_core::user::AccountOrigin::Admin,
        version: 0,
        created_at: NOW,
        updated_at: NOW,
    };
    runtime.block_on(async {
        store.create_client(&client).await.expect("client");
        store.create_user(&user).await.expect("user");
    });
    let authority = Authority::new(
        AuthorityConfig::new("http://127.0.0.1:8080"),
        store,
        Arc::new(KeyRing::new(KeySet::new(vec![key]))),
        Arc::new(FixedClock::new(NOW)),
        Arc::new(hasher),
        CpuPool::new("sigil-hash", 1, 16),
        CpuPool::new("sigil-sign", 2, 64),
    );
    Bench {
        runtime,
        authority,
        credentials: ClientCredentials {
            client_id: client.id,
            secret,
            assertion: None,
        },
    }
}

impl Bench {
    fn token(&self, request: TokenRequest) -> sigil_core::grant::TokenResponse {
        self.runtime
            .block_on(
                self.authority
                    .token(&self.credentials, request, &Caller::anonymous(None)),
            )
            .expect("token")
    }

    /// The first refresh token of a new family, by the password grant.
    fn refresh_token(&self, scope: &str) -> String {
        self.token(TokenRequest::Password {
            username: "alice".into(),
            password: Secret::new(PASSWORD),
            scope: Some(ScopeSet::parse(scope).expect("scope")),
            resources: vec![],
        })
        .refresh_token
        .expect("a refresh token")
    }

    /// Rotates the refresh token of a family, again and again.
    fn bench_refresh(&self, c: &mut Criterion, name: &str, scope: &str) {
        let mut current = self.refresh_token(scope);
        c.bench_function(name, |b| {
            b.iter(|| {
                let response = self.token(TokenRequest::RefreshToken {
                    refresh_token: Secret::new(current.clone()),
                    scope: None,
                    resources: vec![],
                });
                current = response.refresh_token.expect("a successor");
            })
        });
    }
}

fn issuance(c: &mut Criterion) {
    let bench = setup();
    c.bench_function("issue: client_credentials", |b| {
        b.iter(|| {
            bench.token(TokenRequest::ClientCredentials {
                scope: None,
                resources: vec![],
            })
        })
    });
    bench.bench_refresh(c, "issue: refresh (access token)", "offline_access");
    bench.bench_refresh(
        c,
        "issue: refresh (access + ID token)",
        "openid profile offline_access",
    );
}

criterion_group!(benches, issuance);
criterion_main!(benches);
