//! One conformance suite for every store: SQLite and PostgreSQL must give each method of
//! `Store` the same meaning, including under concurrent refresh-token rotation.

mod common;

use common::{cheap_hasher, TestDb};
use sigil_core::client::ClientRegistration;
use sigil_core::secret::{random_token, Secret};
use sigil_core::store::{AuthorizationCode, RefreshFamily, RefreshTokenRecord, Store, StoreError};
use sigil_core::user::User;
use sigil_server::store::{Database, DatabaseOptions};
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;

fn user(username: &str) -> User {
    User {
        id: random_token(16),
        username: username.into(),
        email: Some(format!("{username}@example.com")),
        email_verified: false,
        name: None,
        password_hash: cheap_hasher().hash("pw").expect("hash"),
        is_admin: false,
        is_disabled: false,
        must_change_password: true,
        sessions_valid_after: 0,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn token(family: &str, parent: Option<&str>) -> (RefreshTokenRecord, Secret) {
    let secret = Secret::generate();
    (
        RefreshTokenRecord {
            id: random_token(16),
            family_id: family.into(),
            token_hash: secret.storage_hash(),
            parent_id: parent.map(str::to_string),
            created_at: NOW,
            expires_at: NOW + 100,
            used_at: None,
        },
        secret,
    )
}

async fn conformance(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");

    // Users.
    assert_eq!(store.count_users().await.expect("count"), 0);
    let alice = user("alice");
    store.create_user(&alice).await.expect("create");
    assert!(matches!(
        store.create_user(&user("alice")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_user(&alice.id).await.expect("find"),
        Some(alice.clone())
    );
    assert_eq!(
        store.find_user_by_username("alice").await.expect("find"),
        Some(alice.clone())
    );
    assert_eq!(
        store.find_user_by_username("ALICE").await.expect("find"),
        None,
        "user names are exact"
    );
    assert_eq!(store.find_user("nope").await.expect("find"), None);
    let mut changed = alice.clone();
    changed.is_disabled = true;
    changed.name = Some("Alice".into());
    changed.updated_at = NOW + 5;
    assert!(store.update_user(&changed).await.expect("update"));
    assert_eq!(
        store.find_user(&alice.id).await.expect("find"),
        Some(changed.clone())
    );
    let mut ghost = user("ghost");
    ghost.id = "missing".into();
    assert!(!store.update_user(&ghost).await.expect("update"));
    let bob = user("bob");
    store.create_user(&bob).await.expect("create");
    let mut clash = bob.clone();
    clash.username = "alice".into();
    assert!(matches!(
        store.update_user(&clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count_users().await.expect("count"), 2);

    // Clients.
    let (client, _) = ClientRegistration {
        name: "app".into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        audiences: vec!["https://api.example.com".into()],
        access_token_ttl: Some(300),
        ..Default::default()
    }
    .build(NOW)
    .expect("client");
    let (public, _) = ClientRegistration {
        name: "spa".into(),
        is_public: true,
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        ..Default::default()
    }
    .build(NOW)
    .expect("client");
    assert_eq!(
        store.max_client_access_token_ttl().await.expect("max"),
        None
    );
    store.create_client(&client).await.expect("create");
    store.create_client(&public).await.expect("create");
    assert!(matches!(
        store.create_client(&client).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_client(&client.id).await.expect("find"),
        Some(client.clone())
    );
    assert_eq!(
        store.find_client(&public.id).await.expect("find"),
        Some(public.clone())
    );
    assert_eq!(store.find_client("nope").await.expect("find"), None);
    assert_eq!(
        store.max_client_access_token_ttl().await.expect("max"),
        Some(300)
    );

    // Refresh families and rotation.
    let family = RefreshFamily {
        id: random_token(16),
        client_id: client.id.clone(),
        user_id: bob.id.clone(),
        scope: "openid offline_access".into(),
        auth_time: NOW - 10,
        created_at: NOW,
        expires_at: NOW + 1000,
        revoked_at: None,
    };
    let (first, first_secret) = token(&family.id, None);
    store
        .create_refresh_family(&family, &first)
        .await
        .expect("family");
    assert_eq!(
        store.find_refresh_family(&family.id).await.expect("find"),
        Some(family.clone())
    );
    let (found, found_family) = store
        .find_refresh_token(&first_secret.storage_hash())
        .await
        .expect("find")
        .expect("present");
    assert_eq!((found, found_family), (first.clone(), family.clone()));
    assert_eq!(store.find_refresh_token("nope").await.expect("find"), None);

    let (second, second_secret) = token(&family.id, Some(&first.id));
    assert!(store
        .rotate_refresh_token(&first.id, &second, NOW + 1)
        .await
        .expect("rotate"));
    let (third, third_secret) = token(&family.id, Some(&first.id));
    assert!(
        !store
            .rotate_refresh_token(&first.id, &third, NOW + 2)
            .await
            .expect("rotate"),
        "used once only"
    );
    assert_eq!(
        store
            .find_refresh_token(&third_secret.storage_hash())
            .await
            .expect("find"),
        None,
        "nothing written"
    );
    let (used, _) = store
        .find_refresh_token(&first_secret.storage_hash())
        .await
        .expect("find")
        .expect("present");
    assert_eq!(used.used_at, Some(NOW + 1));
    let (succ, _) = store
        .find_refresh_token(&second_secret.storage_hash())
        .await
        .expect("find")
        .expect("present");
    assert_eq!(succ.parent_id.as_deref(), Some(first.id.as_str()));

    // Revocation is idempotent and blocks rotation.
    store
        .revoke_refresh_family(&family.id, NOW + 3)
        .await
        .expect("revoke");
    store
        .revoke_refresh_family(&family.id, NOW + 4)
        .await
        .expect("revoke again");
    assert_eq!(
        store
            .find_refresh_family(&family.id)
            .await
            .expect("find")
            .and_then(|f| f.revoked_at),
        Some(NOW + 3)
    );
    let (fourth, _) = token(&family.id, Some(&second.id));
    assert!(!store
        .rotate_refresh_token(&second.id, &fourth, NOW + 5)
        .await
        .expect("rotate"));

    // Access-token deny list.
    assert!(!store.is_access_token_revoked("jti-1").await.expect("check"));
    store
        .revoke_access_token("jti-1", NOW + 50)
        .await
        .expect("deny");
    store
        .revoke_access_token("jti-1", NOW + 50)
        .await
        .expect("deny twice");
    assert!(store.is_access_token_revoked("jti-1").await.expect("check"));

    // Housekeeping removes only what has expired.
    let live = RefreshFamily {
        id: random_token(16),
        expires_at: NOW + 10_000,
        revoked_at: None,
        ..family.clone()
    };
    let (live_token, live_secret) = token(&live.id, None);
    store
        .create_refresh_family(&live, &live_token)
        .await
        .expect("family");
    let deleted = store.delete_expired(NOW + 1000).await.expect("delete");
    assert_eq!(
        deleted,
        1 + 2 + 1,
        "one family, its two tokens, one deny-list entry"
    );
    assert_eq!(
        store.find_refresh_family(&family.id).await.expect("find"),
        None
    );
    assert!(!store.is_access_token_revoked("jti-1").await.expect("check"));
    assert!(store
        .find_refresh_token(&live_secret.storage_hash())
        .await
        .expect("find")
        .is_some());

    // Authorization codes: stored by hash, consumed once, recording what was issued.
    let code = AuthorizationCode {
        code_hash: Secret::generate().storage_hash(),
        client_id: client.id.clone(),
        user_id: bob.id.clone(),
        redirect_uri: "https://app.example.com/cb".into(),
        redirect_uri_given: true,
        scope: "openid".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n".into()),
        auth_time: NOW - 5,
        created_at: NOW,
        expires_at: NOW + 60,
        used_at: None,
        family_id: None,
        access_token_jti: None,
        access_token_exp: None,
    };
    store.create_authorization_code(&code).await.expect("code");
    assert!(matches!(
        store.create_authorization_code(&code).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .find_authorization_code(&code.code_hash)
            .await
            .expect("find"),
        Some(code.clone())
    );
    assert!(store
        .consume_authorization_code(&code.code_hash, NOW + 1, Some("fam"), "jti-9", NOW + 600)
        .await
        .expect("consume"));
    assert!(
        !store
            .consume_authorization_code(&code.code_hash, NOW + 2, None, "jti-x", NOW)
            .await
            .expect("consume"),
        "single use"
    );
    let used = store
        .find_authorization_code(&code.code_hash)
        .await
        .expect("find")
        .expect("present");
    assert_eq!(
        (
            used.used_at,
            used.family_id.as_deref(),
            used.access_token_jti.as_deref(),
            used.access_token_exp
        ),
        (Some(NOW + 1), Some("fam"), Some("jti-9"), Some(NOW + 600))
    );

    // Consents: one record per user and client, replaced on save.
    assert_eq!(
        store.find_consent(&bob.id, &client.id).await.expect("find"),
        None
    );
    store
        .save_consent(&bob.id, &client.id, "openid", NOW)
        .await
        .expect("save");
    store
        .save_consent(&bob.id, &client.id, "email openid", NOW + 1)
        .await
        .expect("save again");
    assert_eq!(
        store
            .find_consent(&bob.id, &client.id)
            .await
            .expect("find")
            .as_deref(),
        Some("email openid")
    );
    assert_eq!(
        store
            .find_consent(&alice.id, &client.id)
            .await
            .expect("find"),
        None
    );

    // Codes go a day after they expired.
    assert!(
        store
            .delete_expired(NOW + 60 + 86_400)
            .await
            .expect("delete")
            >= 1
    );
    assert_eq!(
        store
            .find_authorization_code(&code.code_hash)
            .await
            .expect("find"),
        None
    );

    concurrent_rotation(store.clone(), &client.id, &bob.id).await;
}

/// Many concurrent rotations of one token: exactly one wins, whatever the database.
async fn concurrent_rotation(store: Arc<dyn Store>, client_id: &str, user_id: &str) {
    for round in 0..3 {
        let family = RefreshFamily {
            id: random_token(16),
            client_id: client_id.into(),
            user_id: user_id.into(),
            scope: "offline_access".into(),
            auth_time: NOW,
            created_at: NOW,
            expires_at: NOW + 1000,
            revoked_at: None,
        };
        let (first, _) = token(&family.id, None);
        store
            .create_refresh_family(&family, &first)
            .await
            .expect("family");
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let store = store.clone();
            let first_id = first.id.clone();
            let family_id = family.id.clone();
            tasks.push(tokio::spawn(async move {
                let (next, _) = token(&family_id, Some(&first_id));
                store.rotate_refresh_token(&first_id, &next, NOW + 1).await
            }));
        }
        let mut wins = 0;
        for task in tasks {
            if task.await.expect("join").expect("rotation must not error") {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one rotation wins");
    }
}

async fn open(db: &TestDb) -> Database {
    Database::open(db.url(), &DatabaseOptions::default())
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms() {
    let db = TestDb::sqlite();
    let database = open(&db).await;
    assert_eq!(
        database.migrate().await.expect("migrate again"),
        Vec::<i64>::new(),
        "migrations are idempotent"
    );
    conformance(database.store()).await;
    database.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let Some(db) = TestDb::postgres("postgres_store_conforms").await else {
        return;
    };
    let database = open(&db).await;
    assert_eq!(
        database.migrate().await.expect("migrate again"),
        Vec::<i64>::new(),
        "migrations are idempotent"
    );
    conformance(database.store()).await;
    database.close().await;
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_not_a_panic() {
    let options = DatabaseOptions {
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_millis(500),
    };
    // Port 9 (discard) on loopback: nothing listens there.
    let result = Database::connect("postgres://postgres@127.0.0.1:9/none", &options).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    let result = Database::connect("mysql://x", &options).await;
    assert!(matches!(result, Err(StoreError::Other(_))));
}
