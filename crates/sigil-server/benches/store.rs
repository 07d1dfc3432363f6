//! Refresh-token rotation in each store: the atomic compare-and-set on the used token plus
//! the insert of its successor, one transaction. SQLite in a temporary file always;
//! PostgreSQL when `SIGIL_TEST_DATABASE_URL` is set (a database is created and dropped).
//! Run with `cargo bench -p sigil-server --bench store`.

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_core::client::ClientRegistration;
use sigil_core::secret::{random_token, Secret};
use sigil_core::store::{RefreshFamily, RefreshTokenRecord, Store};
use sigil_core::user::User;
use sigil_server::store::{Database, DatabaseOptions};
use std::sync::Arc;

const NOW: i64 = 1_900_000_000;

fn token(family: &str, parent: Option<&str>) -> RefreshTokenRecord {
    RefreshTokenRecord {
        id: random_token(16),
        family_id: family.into(),
        token_hash: Secret::generate().storage_hash(),
        parent_id: parent.map(str::to_string),
        created_at: NOW,
        expires_at: NOW + 86_400,
        used_at: None,
        sealed_successor: None,
    }
}

async fn family(store: &Arc<dyn Store>) -> RefreshTokenRecord {
    let (client, _) = ClientRegistration {
        name: "bench".into(),
        ..Default::default()
    }
    .build(NOW)
    .expect("client");
    store.create_client(&client).await.expect("client");
    let user = User {
        id: random_token(16),
        username: random_token(8),
        email: None,
        email_verified: false,
        name: None,
        password_hash: "x".into(),
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
    store.create_user(&user).await.expect("user");
    let family = RefreshFamily {
        id: random_token(16),
        client_id: client.id,
        user_id: user.id,
        scope: "openid offline_access".into(),
        auth_time: NOW,
        acr: "urn:sigil:acr:2fa".into(),
        amr: "pwd otp mfa".into(),
        sid: None,
        resources: vec![],
        dpop_jkt: None,
        created_at: NOW,
        expires_at: NOW + 90 * 86_400,
        revoked_at: None,
    };
    let first = token(&family.id, None);
    store
        .create_refresh_family(&family, &first)
        .await
        .expect("family");
    first
}

fn bench_store(c: &mut Criterion, name: &str, url: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime
        .block_on(Database::open(url, &DatabaseOptions::default()))
        .expect("database");
    let store = database.store();
    let mut current = runtime.block_on(family(&store));
    c.bench_function(&format!("rotate refresh token ({name})"), |b| {
        b.iter(|| {
            let next = token(&current.family_id, Some(&current.id));
            let rotated = runtime
                .block_on(store.rotate_refresh_token(&current.id, &next, NOW + 1, None))
                .expect("rotate");
            assert!(rotated);
            current = next;
        })
    });
    runtime.block_on(database.close());
}

fn rotation(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    bench_store(c, "sqlite", &sqlite);
    match std::env::var("SIGIL_TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            let name = format!("sigil_bench_{}", std::process::id());
            let admin = runtime
                .block_on(sqlx::PgPool::connect(&server))
                .expect("postgres");
            runtime
                .block_on(sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin))
                .expect("create database");
            let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
            bench_store(c, "postgres", &format!("{base}/{name}"));
            runtime
                .block_on(
                    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin),
                )
                .expect("drop database");
        }
        _ => eprintln!("NOTICE: PostgreSQL rotation skipped: set SIGIL_TEST_DATABASE_URL"),
    }
}

criterion_group!(benches, rotation);
criterion_main!(benches);
