//! One conformance suite for every store: the memory store, SQLite and PostgreSQL must give
//! each method of `Store` the same meaning, including under concurrent refresh-token
//! rotation.

mod common;

use common::{cheap_hasher, TestDb};
use sigil_core::audit::{verify_chain, AuditFilter, AuditRecord};
use sigil_core::client::ClientRegistration;
use sigil_core::secret::{random_token, Secret};
use sigil_core::store::memory::MemoryStore;
use sigil_core::store::{
    AccountLink, AuthorizationCode, BrowserSession, Factor, FactorKind, LinkPurpose, OutboxMessage,
    PushedRequest, QueuedLogouts, RefreshFamily, RefreshTokenRecord, RegistrationToken, Resource,
    Store, StoreError,
};
use sigil_core::throttle::ThrottlePolicy;
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
        requires_second_factor: false,
        session_epoch: 0,
        origin: sigil_core::user::AccountOrigin::Admin,
        version: 0,
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
            sealed_successor: None,
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
        store.find_user_by_username(" ALICE").await.expect("find"),
        Some(alice.clone()),
        "user names match by their key: trimmed, without regard to case"
    );
    assert_eq!(store.find_user("nope").await.expect("find"), None);
    let mut changed = alice.clone();
    changed.is_disabled = true;
    changed.name = Some("Alice".into());
    changed.updated_at = NOW + 5;
    assert!(store.update_user(&changed).await.expect("update"));
    changed.version += 1;
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
    // A rehash replaces the hash only while it is still the one that was verified.
    let stale = changed.password_hash.clone();
    assert!(store
        .replace_password_hash(&alice.id, &stale, "rehashed", NOW + 6)
        .await
        .expect("replace"));
    assert!(!store
        .replace_password_hash(&alice.id, &stale, "older", NOW + 7)
        .await
        .expect("replace"));
    let rehashed = store.find_user(&alice.id).await.expect("find");
    assert_eq!(
        rehashed.map(|u| (u.password_hash, u.updated_at)),
        Some(("rehashed".to_string(), NOW + 6))
    );

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
        allowed_origins: vec![
            "http://127.0.0.1:5173".into(),
            "https://spa.example.com".into(),
        ],
        backchannel_logout_uri: Some("https://spa.example.com/bcl".into()),
        backchannel_logout_session_required: true,
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
    assert_eq!(
        store.find_client(&public.id).await.expect("find"),
        Some(public.clone()),
        "origins and the back-channel logout settings round-trip"
    );
    let mut origins = store.list_client_origins().await.expect("origins");
    origins.sort();
    assert_eq!(
        origins,
        ["http://127.0.0.1:5173", "https://spa.example.com"]
    );

    // Refresh families and rotation.
    let family = RefreshFamily {
        id: random_token(16),
        client_id: client.id.clone(),
        user_id: bob.id.clone(),
        scope: "openid offline_access".into(),
        auth_time: NOW - 10,
        acr: "urn:sigil:acr:2fa".into(),
        amr: "pwd otp mfa".into(),
        sid: Some("sid-1".into()),
        resources: vec!["https://api.example.com/mcp".into()],
        dpop_jkt: Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".into()),
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
    let (found, found_family, found_user) = store
        .find_refresh_token_and_user(&first_secret.storage_hash())
        .await
        .expect("find with user")
        .expect("present");
    assert_eq!(
        (found, found_family, found_user),
        (first.clone(), family.clone(), Some(bob.clone())),
        "the token, its family and the family's user in one read"
    );
    assert_eq!(
        store
            .find_refresh_token_and_user("nope")
            .await
            .expect("find with user"),
        None
    );

    let (second, second_secret) = token(&family.id, Some(&first.id));
    assert!(store
        .rotate_refresh_token(&first.id, &second, NOW + 1, Some("sealed-response"))
        .await
        .expect("rotate"));
    let (third, third_secret) = token(&family.id, Some(&first.id));
    assert!(
        !store
            .rotate_refresh_token(&first.id, &third, NOW + 2, Some("other"))
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
    assert_eq!(
        used.sealed_successor.as_deref(),
        Some("sealed-response"),
        "the winner's seal is kept, the loser's is not written"
    );
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
        .rotate_refresh_token(&second.id, &fourth, NOW + 5, None)
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
        acr: "urn:sigil:acr:2fa".into(),
        amr: "pwd otp mfa".into(),
        sid: Some("sid-2".into()),
        resources: vec![
            "https://api.example.com".into(),
            "urn:example:second".into(),
        ],
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
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
    concurrent_rotations_of_many_tokens(store.clone(), &client.id, &bob.id).await;
    administration(store.clone()).await;
    audit_chain(store.clone()).await;
}

fn registration(name: &str) -> ClientRegistration {
    ClientRegistration {
        name: name.into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        ..Default::default()
    }
}

/// What the admin console needs: search, update and delete (with cascade), consents and
/// live families per user.
async fn administration(store: Arc<dyn Store>) {
    let (mut web, _) = registration("Zeta Web_Shop").build(NOW).expect("client");
    let (other, _) = registration("alpha 100%").build(NOW).expect("client");
    store.create_client(&web).await.expect("create");
    store.create_client(&other).await.expect("create");
    let names = |list: Vec<sigil_core::client::Client>| -> Vec<String> {
        list.into_iter().map(|c| c.name).collect()
    };
    let found = store.list_clients(Some("web_s"), 10).await.expect("list");
    assert_eq!(names(found), vec!["Zeta Web_Shop"], "case-insensitive");
    // LIKE wildcards in the search are literal characters.
    let found = store.list_clients(Some("100%"), 10).await.expect("list");
    assert_eq!(names(found), vec!["alpha 100%"]);
    assert!(store
        .list_clients(Some("a_p"), 10)
        .await
        .expect("list")
        .is_empty());
    let all = store.list_clients(None, 100).await.expect("list");
    let alpha = all.iter().position(|c| c.name == "alpha 100%");
    let zeta = all.iter().position(|c| c.name == "Zeta Web_Shop");
    assert!(alpha < zeta, "ordered by name, case-insensitively");
    assert_eq!(store.list_clients(None, 1).await.expect("list").len(), 1);

    web.name = "Renamed".into();
    web.redirect_uris.push("https://app.example.com/cb2".into());
    web.updated_at = NOW + 3;
    assert!(store.update_client(&web).await.expect("update"));
    assert_eq!(
        store.find_client(&web.id).await.expect("find"),
        Some(web.clone())
    );

    let mut carol = user("carol");
    carol.name = Some("Carol Danvers".into());
    store.create_user(&carol).await.expect("user");
    let found = store.list_users(Some("DANVERS"), 10).await.expect("list");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, carol.id);
    let found = store
        .list_users(Some("carol@example"), 10)
        .await
        .expect("list");
    assert_eq!(found.len(), 1, "email is searched");

    store
        .save_consent(&carol.id, &web.id, "openid profile", NOW)
        .await
        .expect("consent");
    store
        .save_consent(&carol.id, &other.id, "openid", NOW + 1)
        .await
        .expect("consent");
    let consents = store.list_consents(&carol.id).await.expect("consents");
    assert_eq!(consents.len(), 2);
    assert!(consents
        .iter()
        .any(|c| c.client_id == web.id && c.scope == "openid profile" && c.granted_at == NOW));
    let mut families = Vec::new();
    for (client_id, expires_at) in [
        (&web.id, NOW + 500),
        (&web.id, NOW + 500),
        (&other.id, NOW + 500),
        (&other.id, NOW - 1),
    ] {
        let family = RefreshFamily {
            id: random_token(16),
            client_id: client_id.clone(),
            user_id: carol.id.clone(),
            scope: "openid offline_access".into(),
            auth_time: NOW,
            acr: "urn:sigil:acr:2fa".into(),
            amr: "pwd otp mfa".into(),
            sid: None,
            resources: vec![],
            dpop_jkt: None,
            created_at: NOW,
            expires_at,
            revoked_at: None,
        };
        let (first, _) = token(&family.id, None);
        store
            .create_refresh_family(&family, &first)
            .await
            .expect("family");
        families.push((family, first));
    }
    let live = store
        .list_live_refresh_families(&carol.id, NOW)
        .await
        .expect("live");
    assert_eq!(live.len(), 3, "the expired family is not live");
    assert_eq!(
        store
            .revoke_user_refresh_families(&carol.id, Some(&web.id), NOW + 2)
            .await
            .expect("revoke"),
        2
    );
    let live = store
        .list_live_refresh_families(&carol.id, NOW)
        .await
        .expect("live");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].client_id, other.id);
    assert!(store
        .delete_consent(&carol.id, &web.id)
        .await
        .expect("delete"));
    assert!(!store
        .delete_consent(&carol.id, &web.id)
        .await
        .expect("delete"));

    // Deleting a client takes its families, tokens and consents with it.
    let (_, other_token) = &families[2];
    assert!(store.delete_client(&other.id).await.expect("delete"));
    assert!(!store.delete_client(&other.id).await.expect("delete"));
    assert_eq!(store.find_client(&other.id).await.expect("find"), None);
    assert_eq!(
        store
            .find_refresh_token(&other_token.token_hash)
            .await
            .expect("find"),
        None
    );
    assert!(store
        .list_consents(&carol.id)
        .await
        .expect("consents")
        .is_empty());
    assert_eq!(
        store
            .revoke_user_refresh_families(&carol.id, None, NOW + 3)
            .await
            .expect("revoke"),
        0,
        "nothing live is left"
    );
}

fn record(n: usize, action: &str, actor: &str) -> AuditRecord {
    AuditRecord {
        at: NOW + n as i64,
        actor: actor.into(),
        actor_id: None,
        action: action.into(),
        target: Some(format!("t{}", n % 3)),
        detail: format!("entry {n} with 'quotes' and 100% _wild_ chars"),
        address: n.is_multiple_of(2).then(|| "127.0.0.1".to_string()),
    }
}

/// The audit log: appends from many tasks at once form one gap-free chain; filters and
/// paging work; the chain verifies in batches.
async fn audit_chain(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for n in 0..40usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let action = if n.is_multiple_of(4) {
                "sign_in.failure"
            } else {
                "client.updated"
            };
            store.append_audit(record(n, action, "admin")).await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("append");
    }
    let mut seqs: Vec<i64> = Vec::new();
    let mut state = None;
    let mut after = 0;
    loop {
        let batch = store.audit_entries_after(after, 7).await.expect("batch");
        if batch.is_empty() {
            break;
        }
        verify_chain(&mut state, &batch).expect("an intact chain");
        seqs.extend(batch.iter().map(|e| e.seq));
        after = batch.last().map(|e| e.seq).unwrap_or(after);
    }
    assert_eq!(
        seqs,
        (1..=40).collect::<Vec<i64>>(),
        "no gaps, no duplicates"
    );

    let failures = store
        .list_audit(&AuditFilter {
            action_prefix: Some("sign_in.".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(failures.len(), 10);
    assert!(
        failures.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    let page = store
        .list_audit(&AuditFilter {
            before_seq: Some(11),
            limit: 4,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 9, 8, 7]
    );
    let by_target = store
        .list_audit(&AuditFilter {
            target: Some("t1".into()),
            actor: Some("admin".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(!by_target.is_empty());
    assert!(by_target
        .iter()
        .all(|e| e.record.target.as_deref() == Some("t1")));
    assert!(store
        .list_audit(&AuditFilter {
            actor: Some("nobody-like-this".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .is_empty());
    // The wildcard in a prefix is literal.
    assert!(store
        .list_audit(&AuditFilter {
            action_prefix: Some("%".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .is_empty());
}

/// What the console's sessions page and a client's "Usage" panel read: every user's live
/// sessions a page at a time by the cursor (last_seen_at, id), newest first; a client's
/// live refresh families and consents, counted.
async fn console_sessions_and_usage(store: Arc<dyn Store>) {
    let erin = user("erin");
    let finn = user("finn");
    store.create_user(&erin).await.expect("create");
    store.create_user(&finn).await.expect("create");
    // Ids that sort alike under any collation (lower-case letters and digits).
    let session = |id: &str, user: &User, seen: i64, ended: Option<i64>| BrowserSession {
        id: id.into(),
        user_id: user.id.clone(),
        created_at: NOW - 1000,
        last_seen_at: seen,
        address: Some("192.0.2.1".into()),
        user_agent: Some("Firefox".into()),
        ended_at: ended,
    };
    for s in [
        session("pa1", &erin, NOW + 50, None),
        session("pa2", &finn, NOW + 50, None),
        session("pa3", &erin, NOW + 40, None),
        session("pa4", &finn, NOW + 60, Some(NOW + 61)),
        session("pa5", &finn, NOW - 5000, None),
        session("pa6", &finn, NOW + 30, None),
    ] {
        store.create_browser_session(&s).await.expect("session");
    }
    let ids = |list: Vec<BrowserSession>| -> Vec<String> {
        list.into_iter()
            .map(|s| s.id)
            .filter(|id| id.starts_with("pa"))
            .collect()
    };
    let all = store
        .list_live_browser_sessions(NOW - 100, None, 10)
        .await
        .expect("list");
    assert_eq!(
        ids(all),
        ["pa2", "pa1", "pa3", "pa6"],
        "not ended, seen since, the most recent first, ties by id descending"
    );
    let first = store
        .list_live_browser_sessions(NOW - 100, None, 2)
        .await
        .expect("list");
    assert_eq!(ids(first.clone()), ["pa2", "pa1"]);
    let last = first.last().expect("two");
    let second = store
        .list_live_browser_sessions(NOW - 100, Some((last.last_seen_at, &last.id)), 2)
        .await
        .expect("list");
    assert_eq!(ids(second), ["pa3", "pa6"], "strictly after the cursor");
    let tie = store
        .list_live_browser_sessions(NOW - 100, Some((NOW + 50, "pa2")), 10)
        .await
        .expect("list");
    assert_eq!(ids(tie), ["pa1", "pa3", "pa6"], "a tie goes on by id");
    let none = store
        .list_live_browser_sessions(NOW - 100, Some((NOW + 30, "pa6")), 10)
        .await
        .expect("list");
    assert_eq!(ids(none), Vec::<String>::new());

    // A client's live refresh families (every user's) and its consents.
    let (app, _) = registration("usage app").build(NOW).expect("client");
    let (other, _) = registration("other app").build(NOW).expect("client");
    store.create_client(&app).await.expect("create");
    store.create_client(&other).await.expect("create");
    assert_eq!(
        store
            .count_live_refresh_families(&app.id, NOW)
            .await
            .expect("count"),
        0
    );
    assert_eq!(store.count_consents(&app.id).await.expect("count"), 0);
    new_family(&*store, &app.id, &erin.id).await;
    new_family(&*store, &app.id, &erin.id).await;
    new_family(&*store, &app.id, &finn.id).await;
    new_family(&*store, &other.id, &finn.id).await;
    store
        .revoke_user_refresh_families(&finn.id, Some(&app.id), NOW + 1)
        .await
        .expect("revoke");
    assert_eq!(
        store
            .count_live_refresh_families(&app.id, NOW + 2)
            .await
            .expect("count"),
        2,
        "revoked families do not count"
    );
    assert_eq!(
        store
            .count_live_refresh_families(&app.id, NOW + 1000)
            .await
            .expect("count"),
        0,
        "expired families do not count"
    );
    for (who, client) in [(&erin, &app), (&finn, &app), (&finn, &other)] {
        store
            .save_consent(&who.id, &client.id, "openid", NOW)
            .await
            .expect("consent");
    }
    store
        .save_consent(&erin.id, &app.id, "openid profile", NOW + 1)
        .await
        .expect("consent again");
    assert_eq!(store.count_consents(&app.id).await.expect("count"), 2);
    assert_eq!(store.count_consents(&other.id).await.expect("count"), 1);
    assert_eq!(store.count_consents("nope").await.expect("count"), 0);
}

/// A new refresh-token family of `user_id` at `client_id`; returns its first token.
async fn new_family(store: &dyn Store, client_id: &str, user_id: &str) -> RefreshTokenRecord {
    let family = RefreshFamily {
        id: random_token(16),
        client_id: client_id.into(),
        user_id: user_id.into(),
        scope: "offline_access".into(),
        auth_time: NOW,
        acr: "urn:sigil:acr:2fa".into(),
        amr: "pwd otp mfa".into(),
        sid: None,
        resources: vec![],
        dpop_jkt: None,
        created_at: NOW,
        expires_at: NOW + 1000,
        revoked_at: None,
    };
    let (first, _) = token(&family.id, None);
    store
        .create_refresh_family(&family, &first)
        .await
        .expect("family");
    first
}

/// Many concurrent rotations of one token: exactly one wins, whatever the database.
async fn concurrent_rotation(store: Arc<dyn Store>, client_id: &str, user_id: &str) {
    for round in 0..3 {
        let first = new_family(store.as_ref(), client_id, user_id).await;
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let store = store.clone();
            let first_id = first.id.clone();
            let family_id = first.family_id.clone();
            tasks.push(tokio::spawn(async move {
                let (next, _) = token(&family_id, Some(&first_id));
                store
                    .rotate_refresh_token(&first_id, &next, NOW + 1, None)
                    .await
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

/// Many rotations of many tokens at once (on SQLite they share group commits): every token
/// is rotated exactly once, by exactly one of the two calls racing for it, and every
/// winner's successor is stored while no loser's is.
async fn concurrent_rotations_of_many_tokens(
    store: Arc<dyn Store>,
    client_id: &str,
    user_id: &str,
) {
    // 40 unused tokens, each the first of its family and the target of two racing rotations.
    let mut targets = Vec::new();
    for _ in 0..40 {
        targets.push(new_family(store.as_ref(), client_id, user_id).await);
    }
    let mut tasks = Vec::new();
    for target in &targets {
        for _ in 0..2 {
            let store = store.clone();
            let (successor, secret) = token(&target.family_id, Some(&target.id));
            let target_id = target.id.clone();
            tasks.push(tokio::spawn(async move {
                let won = store
                    .rotate_refresh_token(&target_id, &successor, NOW + 1, None)
                    .await
                    .expect("rotation must not error");
                (target_id, won, secret)
            }));
        }
    }
    let mut winners = std::collections::HashMap::new();
    for task in tasks {
        let (target_id, won, secret) = task.await.expect("join");
        let stored = store
            .find_refresh_token(&secret.storage_hash())
            .await
            .expect("find");
        assert_eq!(
            stored.is_some(),
            won,
            "a successor is stored if and only if it won"
        );
        if won {
            *winners.entry(target_id).or_insert(0) += 1;
        }
    }
    assert_eq!(winners.len(), targets.len(), "every token was rotated");
    assert!(
        winners.values().all(|&n| n == 1),
        "by exactly one call each"
    );
}

/// Sign-in attempts: the reservation checks and counts in one step, so that concurrent
/// attempts cost what the same attempts one after another cost; the window; release;
/// clearing.
async fn sign_in_failures(store: Arc<dyn Store>) {
    let policy = ThrottlePolicy::default();
    let free = policy.account_free_failures;
    let subject = "account:mallory".to_string();
    let other = "address:192.0.2.7".to_string();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let subject = subject.clone();
            tokio::spawn(async move {
                store
                    .reserve_sign_in_attempt(&subject, free, &policy, NOW)
                    .await
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if task.await.expect("join").expect("reserve").is_none() {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, free,
        "exactly the free attempts, as if one after another"
    );
    let counts = store
        .find_sign_in_failures(&[subject.clone(), other.clone()])
        .await
        .expect("find");
    assert_eq!(counts.len(), 1, "absent subjects are not listed");
    assert_eq!(counts[0].failures, free, "refused attempts are not counted");
    assert_eq!(counts[0].first_failure_at, NOW);
    // The store's wait is the policy's, second for second, as the count grows.
    let mut at = NOW;
    for failures in free..free + 12 {
        let delay = policy.delay(failures, free);
        let refused = store
            .reserve_sign_in_attempt(&subject, free, &policy, at + delay)
            .await
            .expect("reserve");
        assert_eq!(
            refused.map(|c| (c.failures, policy.wait(&[c], at + delay))),
            Some((failures, 1)),
            "after {failures} failures, still waiting at the last second of the delay"
        );
        at += delay + 1;
        let counted = store
            .reserve_sign_in_attempt(&subject, free, &policy, at)
            .await
            .expect("reserve");
        assert_eq!(
            counted, None,
            "after {failures} failures, the wait is over at {at}"
        );
    }
    store
        .release_sign_in_attempt(&subject)
        .await
        .expect("release");
    let counts = store
        .find_sign_in_failures(std::slice::from_ref(&subject))
        .await
        .expect("find");
    assert_eq!(
        counts[0].failures,
        free + 11,
        "a released place is given back"
    );
    // A last failure older than the window starts the count again.
    let later = at + policy.window + 1;
    assert_eq!(
        store
            .reserve_sign_in_attempt(&subject, free, &policy, later)
            .await
            .expect("reserve"),
        None
    );
    let counts = store
        .find_sign_in_failures(std::slice::from_ref(&subject))
        .await
        .expect("find");
    assert_eq!((counts[0].failures, counts[0].first_failure_at), (1, later));
    store
        .reserve_sign_in_attempt(&other, policy.address_free_failures, &policy, NOW)
        .await
        .expect("reserve");
    store.clear_sign_in_failures(&subject).await.expect("clear");
    let counts = store
        .find_sign_in_failures(&[subject.clone(), other.clone()])
        .await
        .expect("find");
    assert_eq!(
        counts
            .iter()
            .map(|c| c.subject.as_str())
            .collect::<Vec<_>>(),
        [other.as_str()]
    );
    assert_eq!(store.find_sign_in_failures(&[]).await.expect("find"), []);
}

/// Case-insensitive unique names and addresses, account links, the mail outbox and
/// browser sessions: the roles added for accounts people run themselves.
async fn self_service(store: Arc<dyn Store>) {
    // Names and addresses collide on their keys, and the conflict names which.
    let mut carol = user("Zelda");
    carol.email = Some("Zelda@Example.com".into());
    store.create_user(&carol).await.expect("carol");
    let mut twin = user("zELDA");
    twin.email = Some("other@example.com".into());
    match store.create_user(&twin).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("username_key"), "{message}")
        }
        other => panic!("a second Zelda: {other:?}"),
    }
    let mut same_mail = user("zelda2");
    same_mail.email = Some("zelda@example.COM".into());
    match store.create_user(&same_mail).await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("email_key"), "{message}"),
        other => panic!("a second address: {other:?}"),
    }
    let found = store.find_user_by_username("ZELDA").await.expect("find");
    assert_eq!(found.map(|u| u.id), Some(carol.id.clone()));
    let found = store
        .find_user_by_email(" zelda@EXAMPLE.com ")
        .await
        .expect("find");
    assert_eq!(found.map(|u| u.id), Some(carol.id.clone()));
    assert_eq!(
        store
            .find_user_by_email("nobody@example.com")
            .await
            .expect("find"),
        None
    );
    // An update that takes another's address is a conflict; changing one's own works.
    let mut dave = user("yves");
    store.create_user(&dave).await.expect("dave");
    dave.email = Some("ZELDA@example.com".into());
    assert!(matches!(
        store.update_user(&dave).await,
        Err(StoreError::Conflict(_))
    ));
    dave.email = Some("yves.new@example.com".into());
    assert!(store.update_user(&dave).await.expect("update"));
    assert_eq!(
        store
            .find_user_by_email("YVES.new@example.com")
            .await
            .expect("find")
            .map(|u| u.id),
        Some(dave.id.clone())
    );
    // An update applies only to the version it read: of two changes from one read (a
    // profile edit racing a disable), the second is refused instead of undoing the first.
    let read_once = store
        .find_user(&dave.id)
        .await
        .expect("find")
        .expect("yves");
    let mut disable = read_once.clone();
    disable.is_disabled = true;
    assert!(sigil_core::store::save_user(&*store, &mut disable)
        .await
        .expect("disable"));
    assert_eq!(disable.version, read_once.version + 1);
    let mut rename = read_once.clone();
    rename.name = Some("Yves".into());
    assert!(
        !store.update_user(&rename).await.expect("stale"),
        "a stale write is refused"
    );
    let now_stored = store
        .find_user(&dave.id)
        .await
        .expect("find")
        .expect("yves");
    assert!(
        now_stored.is_disabled && now_stored.name.is_none(),
        "the disable stands"
    );
    assert_eq!(now_stored.version, disable.version);
    let racers: Vec<_> = (0..6)
        .map(|n| {
            let store = store.clone();
            let mut copy = now_stored.clone();
            tokio::spawn(async move {
                copy.name = Some(format!("racer {n}"));
                store.update_user(&copy).await.expect("update")
            })
        })
        .collect();
    let mut applied = 0;
    for racer in racers {
        applied += usize::from(racer.await.expect("join"));
    }
    assert_eq!(
        applied, 1,
        "of concurrent updates from one read, exactly one applies"
    );

    // Concurrent creations with one key: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut racer = user(if n % 2 == 0 { "racer" } else { "RACER" });
                racer.email = Some(format!("racer{n}@example.com"));
                store.create_user(&racer).await.is_ok()
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.expect("join"));
    }
    assert_eq!(won, 1, "exactly one racer makes the account");

    // Account links: single-use, by purpose, before expiry; voided by user and purpose.
    let token = Secret::generate();
    let link = AccountLink {
        token_hash: token.storage_hash(),
        purpose: LinkPurpose::ResetPassword,
        user_id: Some(carol.id.clone()),
        email: carol.email.clone(),
        session_epoch: 3,
        created_at: NOW,
        expires_at: NOW + 1800,
        used_at: None,
    };
    store.create_account_link(&link).await.expect("link");
    assert_eq!(
        store
            .find_account_link(&link.token_hash)
            .await
            .expect("find"),
        Some(link.clone())
    );
    assert_eq!(
        store
            .consume_account_link(&link.token_hash, LinkPurpose::VerifyEmail, NOW + 1)
            .await
            .expect("wrong purpose"),
        None
    );
    assert_eq!(
        store
            .consume_account_link(&link.token_hash, LinkPurpose::ResetPassword, NOW + 1800)
            .await
            .expect("expired"),
        None
    );
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let hash = link.token_hash.clone();
            tokio::spawn(async move {
                store
                    .consume_account_link(&hash, LinkPurpose::ResetPassword, NOW + 5)
                    .await
                    .expect("consume")
            })
        })
        .collect();
    let mut used = Vec::new();
    for racer in racers {
        used.extend(racer.await.expect("join"));
    }
    assert_eq!(used.len(), 1, "a link is used once, however many race");
    assert_eq!(used[0].used_at, Some(NOW + 5));
    let second = AccountLink {
        token_hash: Secret::generate().storage_hash(),
        purpose: LinkPurpose::VerifyEmail,
        ..link.clone()
    };
    let third = AccountLink {
        token_hash: Secret::generate().storage_hash(),
        ..second.clone()
    };
    store.create_account_link(&second).await.expect("second");
    store.create_account_link(&third).await.expect("third");
    assert_eq!(
        store
            .void_account_links(&carol.id, LinkPurpose::VerifyEmail, NOW + 6)
            .await
            .expect("void"),
        2
    );
    assert_eq!(
        store
            .consume_account_link(&third.token_hash, LinkPurpose::VerifyEmail, NOW + 7)
            .await
            .expect("voided"),
        None
    );

    // The outbox: a message is claimed by one worker at a time, and due by its time.
    let message = |id: &str, due: i64| OutboxMessage {
        id: id.into(),
        recipient: "zelda@example.com".into(),
        kind: "verify_email".into(),
        sealed: "sealed-bytes".into(),
        created_at: NOW,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        sent_at: None,
        given_up_at: None,
    };
    store.enqueue_mail(&message("m1", NOW)).await.expect("m1");
    store
        .enqueue_mail(&message("m2", NOW + 100))
        .await
        .expect("m2");
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_mail(NOW, NOW + 60).await.expect("claim") })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("join"));
    }
    assert_eq!(claimed.len(), 1, "one holder at a time");
    assert_eq!(claimed[0].id, "m1");
    assert_eq!(
        store.claim_mail(NOW + 10, NOW + 70).await.expect("claim"),
        None,
        "m1 held, m2 not due"
    );
    store
        .mark_mail_failed("m1", "connection refused", Some(NOW + 30), NOW + 1)
        .await
        .expect("failed");
    let counts = store.outbox_counts().await.expect("counts");
    assert_eq!(
        (
            counts.pending,
            counts.retrying,
            counts.sent,
            counts.given_up
        ),
        (2, 1, 0, 0)
    );
    assert_eq!(counts.oldest_pending_at, Some(NOW));
    assert_eq!(
        store.claim_mail(NOW + 29, NOW + 90).await.expect("claim"),
        None
    );
    let again = store
        .claim_mail(NOW + 30, NOW + 90)
        .await
        .expect("claim")
        .expect("due again");
    assert_eq!((again.id.as_str(), again.attempts), ("m1", 1));
    assert_eq!(again.last_error.as_deref(), Some("connection refused"));
    store.mark_mail_sent("m1", NOW + 31).await.expect("sent");
    let m2 = store
        .claim_mail(NOW + 100, NOW + 160)
        .await
        .expect("claim")
        .expect("m2");
    store
        .mark_mail_failed(&m2.id, "refused", None, NOW + 101)
        .await
        .expect("give up");
    let counts = store.outbox_counts().await.expect("counts");
    assert_eq!((counts.pending, counts.sent, counts.given_up), (0, 1, 1));
    let listed = store
        .list_outbox(Some("zelda@example.com"), 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|m| m.sealed.is_empty()),
        "content cleared once done"
    );
    assert_eq!(
        store
            .claim_mail(NOW + 1000, NOW + 1060)
            .await
            .expect("claim"),
        None
    );

    // Browser sessions: listed while live, ended one or all but one.
    let session = |id: &str, seen: i64| BrowserSession {
        id: id.into(),
        user_id: carol.id.clone(),
        created_at: NOW,
        last_seen_at: seen,
        address: Some("127.0.0.1".into()),
        user_agent: Some("Firefox".into()),
        ended_at: None,
    };
    for (id, seen) in [("s1", NOW), ("s2", NOW + 5), ("s3", NOW - 500)] {
        store
            .create_browser_session(&session(id, seen))
            .await
            .expect("session");
    }
    let live = store
        .list_browser_sessions(&carol.id, NOW - 100)
        .await
        .expect("list");
    assert_eq!(
        live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s2", "s1"]
    );
    store
        .touch_browser_session("s1", Some("10.0.0.1"), NOW + 9)
        .await
        .expect("touch");
    let s1 = store
        .find_browser_session("s1")
        .await
        .expect("find")
        .expect("s1");
    assert_eq!(
        (s1.last_seen_at, s1.address.as_deref()),
        (NOW + 9, Some("10.0.0.1"))
    );
    assert_eq!(
        store
            .end_browser_sessions(&carol.id, Some("s2"), None, NOW + 10)
            .await
            .expect("end"),
        1
    );
    assert_eq!(
        store
            .end_browser_sessions(&dave.id, None, None, NOW + 10)
            .await
            .expect("another user's"),
        0
    );
    assert_eq!(
        store
            .end_browser_sessions(&carol.id, None, Some("s1"), NOW + 11)
            .await
            .expect("others"),
        1,
        "s3 (s2 was ended already)"
    );
    let live = store
        .list_browser_sessions(&carol.id, 0)
        .await
        .expect("list");
    assert_eq!(
        live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s1"]
    );
    let s2 = store
        .find_browser_session("s2")
        .await
        .expect("find")
        .expect("s2");
    assert_eq!(s2.ended_at, Some(NOW + 10));

    // Housekeeping: links a day after expiry, sent mail after a week, ended sessions a day on.
    assert!(
        store
            .delete_expired(NOW + 30 * 86_400)
            .await
            .expect("delete")
            > 0
    );
    assert_eq!(
        store
            .find_account_link(&link.token_hash)
            .await
            .expect("find"),
        None
    );
    assert!(store.list_outbox(None, 10).await.expect("list").is_empty());
    assert_eq!(store.find_browser_session("s2").await.expect("find"), None);
}

/// Second factors: enrolment, a TOTP step and a recovery code accepted once even when
/// tried at once, passkey credential ids unique, a reset that takes everything.
async fn second_factors(store: Arc<dyn Store>) {
    let mut owner = user("factor-owner");
    owner.requires_second_factor = true;
    store.create_user(&owner).await.expect("user");
    let found = store
        .find_user(&owner.id)
        .await
        .expect("find")
        .expect("user");
    assert!(found.requires_second_factor, "the requirement is stored");
    let totp = Factor {
        id: random_token(16),
        user_id: owner.id.clone(),
        kind: FactorKind::Totp,
        name: String::new(),
        data: "sealed".into(),
        credential_id: None,
        last_step: None,
        created_at: NOW,
        confirmed_at: None,
        last_used_at: None,
    };
    store.create_factor(&totp).await.expect("create");
    assert!(
        !store.use_totp_step(&totp.id, 10, NOW).await.expect("use"),
        "unconfirmed"
    );
    assert!(store
        .confirm_factor(&owner.id, &totp.id, "Phone", Some(10), NOW)
        .await
        .expect("confirm"));
    assert!(!store
        .confirm_factor(&owner.id, &totp.id, "Phone", Some(10), NOW)
        .await
        .expect("twice"));
    assert!(!store
        .use_totp_step(&totp.id, 10, NOW)
        .await
        .expect("the confirming step"));
    assert!(!store
        .use_totp_step(&totp.id, 9, NOW)
        .await
        .expect("an older step"));
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let id = totp.id.clone();
            tokio::spawn(async move { store.use_totp_step(&id, 11, NOW + 30).await })
        })
        .collect();
    let mut accepted = 0;
    for attempt in tries {
        if attempt.await.expect("join").expect("use") {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "one step, once, however many try it at once");
    let listed = store.list_factors(&owner.id).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "Phone");
    assert_eq!(listed[0].last_step, Some(11));
    assert_eq!(listed[0].last_used_at, Some(NOW + 30));

    let passkey = Factor {
        id: random_token(16),
        kind: FactorKind::Passkey,
        name: "Key".into(),
        data: "{}".into(),
        credential_id: Some("cred-1".into()),
        created_at: NOW + 1,
        confirmed_at: Some(NOW),
        ..totp.clone()
    };
    store.create_factor(&passkey).await.expect("passkey");
    let twin = Factor {
        id: random_token(16),
        ..passkey.clone()
    };
    assert!(matches!(
        store.create_factor(&twin).await,
        Err(StoreError::Conflict(_))
    ));
    let by_credential = store
        .find_factor_by_credential("cred-1")
        .await
        .expect("find");
    assert_eq!(by_credential.map(|f| f.id), Some(passkey.id.clone()));
    assert!(store
        .record_factor_use(&passkey.id, Some("{\"n\":2}"), NOW + 5)
        .await
        .expect("use"));
    assert!(store
        .rename_factor(&owner.id, &passkey.id, "YubiKey")
        .await
        .expect("rename"));
    assert!(!store
        .rename_factor("someone-else", &passkey.id, "Mine")
        .await
        .expect("not theirs"));
    let listed = store.list_factors(&owner.id).await.expect("list");
    assert_eq!(listed[1].data, "{\"n\":2}");
    assert_eq!(listed[1].name, "YubiKey");

    let hashes: Vec<String> = (0..10).map(|n| format!("hash-{n}")).collect();
    store
        .replace_recovery_codes(&owner.id, &hashes, NOW)
        .await
        .expect("codes");
    assert_eq!(
        store.count_recovery_codes(&owner.id).await.expect("count"),
        10
    );
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let id = owner.id.clone();
            tokio::spawn(async move { store.use_recovery_code(&id, "hash-3", NOW).await })
        })
        .collect();
    let mut accepted = 0;
    for attempt in tries {
        if attempt.await.expect("join").expect("use") {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "a recovery code works once");
    assert!(!store
        .use_recovery_code("someone-else", "hash-4", NOW)
        .await
        .expect("not theirs"));
    assert_eq!(
        store.count_recovery_codes(&owner.id).await.expect("count"),
        9
    );
    store
        .replace_recovery_codes(&owner.id, &hashes[..2], NOW)
        .await
        .expect("replace");
    assert_eq!(
        store.count_recovery_codes(&owner.id).await.expect("count"),
        2
    );
    assert!(!store
        .use_recovery_code(&owner.id, "hash-5", NOW)
        .await
        .expect("an old set"));

    // An unfinished enrolment goes with housekeeping; confirmed factors stay.
    let pending = Factor {
        id: random_token(16),
        ..totp.clone()
    };
    store.create_factor(&pending).await.expect("pending");
    store
        .delete_expired(NOW + 7200)
        .await
        .expect("housekeeping");
    let ids: Vec<String> = store
        .list_factors(&owner.id)
        .await
        .expect("list")
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, vec![totp.id.clone(), passkey.id.clone()]);

    // Two removals at once that each keep one factor: one of them is refused.
    let (first, second) = tokio::join!(
        store.delete_factor(&owner.id, &passkey.id, true),
        store.delete_factor(&owner.id, &totp.id, true),
    );
    let (first, second) = (first.expect("delete"), second.expect("delete"));
    assert!(
        first ^ second,
        "exactly one of two removals at once: {first} {second}"
    );
    let left = store.list_factors(&owner.id).await.expect("list");
    assert_eq!(left.len(), 1, "the last factor is kept");
    assert!(!store
        .delete_factor(&owner.id, &left[0].id, true)
        .await
        .expect("kept"));
    assert!(!store
        .delete_factor(&owner.id, "no-such-factor", false)
        .await
        .expect("gone"));
    assert_eq!(store.delete_factors(&owner.id).await.expect("reset"), 1);
    assert!(store
        .list_factors(&owner.id)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        store.count_recovery_codes(&owner.id).await.expect("count"),
        0
    );
}

async fn federation(store: Arc<dyn Store>) {
    use sigil_core::federation::{FederatedIdentity, Provider, ProviderKind};
    let provider = Provider {
        id: "upstream".into(),
        name: "Upstream".into(),
        kind: ProviderKind::OAuth2,
        issuer: "https://idp.example.com".into(),
        client_id: "sigil".into(),
        sealed_client_secret: "sealed".into(),
        scopes: "read:user".into(),
        authorize_url: Some("https://idp.example.com/authorize".into()),
        token_url: Some("https://idp.example.com/token".into()),
        userinfo_url: Some("https://idp.example.com/user".into()),
        subject_claim: "id".into(),
        create_users: true,
        trust_email: false,
        allow_http: false,
        created_at: NOW,
        updated_at: NOW,
    };
    store.create_provider(&provider).await.expect("provider");
    assert!(matches!(
        store.create_provider(&provider).await,
        Err(StoreError::Conflict(_))
    ));
    let second = Provider {
        id: "another".into(),
        name: "Another".into(),
        kind: ProviderKind::Oidc,
        authorize_url: None,
        token_url: None,
        userinfo_url: None,
        ..provider.clone()
    };
    store.create_provider(&second).await.expect("provider");
    assert_eq!(
        store.find_provider("upstream").await.expect("find"),
        Some(provider.clone())
    );
    let names: Vec<String> = store
        .list_providers()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(names, vec!["another", "upstream"], "by name");

    // A user made with its first identity, in one write; a clash on either writes nothing.
    let mut fed = user("federated-one");
    fed.password_hash = String::new();
    let identity = FederatedIdentity {
        issuer: provider.issuer.clone(),
        subject: "12345".into(),
        user_id: fed.id.clone(),
        provider_id: provider.id.clone(),
        email: Some("one@example.com".into()),
        created_at: NOW,
        last_used_at: None,
    };
    store
        .create_user_with_identity(&fed, &identity)
        .await
        .expect("create");
    let clash = user("federated-two");
    let same_identity = FederatedIdentity {
        user_id: clash.id.clone(),
        ..identity.clone()
    };
    match store
        .create_user_with_identity(&clash, &same_identity)
        .await
    {
        Err(StoreError::Conflict(what)) => assert!(what.contains("federated_identities"), "{what}"),
        other => panic!("expected a conflict on the identity, got {other:?}"),
    }
    assert_eq!(
        store.find_user(&clash.id).await.expect("find"),
        None,
        "rolled back"
    );
    let taken_name = FederatedIdentity {
        subject: "999".into(),
        user_id: fed.id.clone(),
        ..identity.clone()
    };
    assert!(matches!(
        store
            .create_user_with_identity(&user("federated-one"), &taken_name)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .find_identity(&provider.issuer, "999")
            .await
            .expect("find"),
        None,
        "rolled back"
    );
    assert_eq!(
        store
            .find_identity(&provider.issuer, "12345")
            .await
            .expect("find"),
        Some(identity.clone())
    );
    assert!(matches!(
        store.create_identity(&same_identity).await,
        Err(StoreError::Conflict(what)) if what.contains("federated_identities")
    ));
    store
        .touch_identity(&provider.issuer, "12345", NOW + 5)
        .await
        .expect("touch");
    let second_identity = FederatedIdentity {
        issuer: "https://other.example.com".into(),
        subject: "12345".into(),
        created_at: NOW + 1,
        ..identity.clone()
    };
    store.create_identity(&second_identity).await.expect("link");
    let listed = store.list_identities(&fed.id).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].last_used_at, Some(NOW + 5));
    assert_eq!(listed[1].issuer, "https://other.example.com");

    // No password: two unlinks at once that each keep a way in cannot take both.
    let (first, other) = tokio::join!(
        store.delete_identity(&fed.id, &provider.issuer, "12345", true),
        store.delete_identity(&fed.id, "https://other.example.com", "12345", true),
    );
    let (first, other) = (first.expect("delete"), other.expect("delete"));
    assert!(
        first ^ other,
        "exactly one of two unlinks at once: {first} {other}"
    );
    let left = store.list_identities(&fed.id).await.expect("list");
    assert_eq!(left.len(), 1);
    assert!(!store
        .delete_identity(&fed.id, &left[0].issuer, "12345", true)
        .await
        .expect("kept"));
    assert!(!store
        .delete_identity(&clash.id, &left[0].issuer, "12345", false)
        .await
        .expect("another user's"));
    assert!(store
        .delete_identity(&fed.id, &left[0].issuer, "12345", false)
        .await
        .expect("deleted"));
    // With a password, the last identity may go.
    let with_password = user("federated-three");
    store.create_user(&with_password).await.expect("user");
    let third = FederatedIdentity {
        subject: "3".into(),
        user_id: with_password.id.clone(),
        ..identity.clone()
    };
    store.create_identity(&third).await.expect("link");
    assert!(store
        .delete_identity(&with_password.id, &third.issuer, "3", true)
        .await
        .expect("a password is left"));

    assert!(store.delete_provider("upstream").await.expect("delete"));
    assert!(!store.delete_provider("upstream").await.expect("gone"));
    assert_eq!(store.find_provider("upstream").await.expect("find"), None);
}

/// Back-channel logout: sessions' clients, queueing the logouts of ended sessions once,
/// the per-client bound, exclusive claims, outcomes, counts and housekeeping.
async fn backchannel_logout(store: Arc<dyn Store>) {
    let carol = user("bcl-carol");
    store.create_user(&carol).await.expect("user");
    let dave = user("bcl-dave");
    store.create_user(&dave).await.expect("user");
    let with_uri = |name: &str| ClientRegistration {
        name: name.into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        backchannel_logout_uri: Some("https://app.example.com/bcl".into()),
        ..Default::default()
    };
    let (web, _) = with_uri("web").build(NOW).expect("client");
    let (other, _) = with_uri("other").build(NOW).expect("client");
    let (silent, _) = registration("silent").build(NOW).expect("client");
    for client in [&web, &other, &silent] {
        store.create_client(client).await.expect("client");
    }
    // Sessions s1, s2, s3 of carol, s4 of dave; s1 signed in to all three clients.
    for (sid, client, who) in [
        ("s1", &web, &carol),
        ("s1", &other, &carol),
        ("s1", &silent, &carol),
        ("s1", &web, &carol),
        ("s2", &web, &carol),
        ("s3", &web, &carol),
        ("s4", &web, &dave),
    ] {
        store
            .record_session_client(sid, &client.id, &who.id, NOW)
            .await
            .expect("record");
    }
    let mut expected = vec![web.id.clone(), other.id.clone(), silent.id.clone()];
    expected.sort();
    assert_eq!(
        store.list_session_clients("s1").await.expect("list"),
        expected
    );

    // One session: a delivery per client with a URI; the silent client gets none.
    let queued = store
        .queue_logouts(&carol.id, Some("s1"), None, 1000, NOW)
        .await
        .expect("queue");
    assert_eq!(
        queued,
        QueuedLogouts {
            queued: 2,
            dropped: 0
        }
    );
    assert!(store
        .list_session_clients("s1")
        .await
        .expect("list")
        .is_empty());
    let again = store
        .queue_logouts(&carol.id, Some("s1"), None, 1000, NOW)
        .await
        .expect("queue");
    assert_eq!(
        again,
        QueuedLogouts::default(),
        "a session's logout is queued once"
    );
    // Another user's session is not touched by carol's logouts.
    let others = store
        .queue_logouts(&carol.id, Some("s4"), None, 1000, NOW)
        .await
        .expect("queue");
    assert_eq!(others, QueuedLogouts::default());
    // Every session but s2, with a bound of 3 pending for `web`: s3 fits, then full.
    let except = store
        .queue_logouts(&carol.id, None, Some("s2"), 3, NOW)
        .await
        .expect("queue");
    assert_eq!(
        except,
        QueuedLogouts {
            queued: 1,
            dropped: 0
        }
    );
    let bounded = store
        .queue_logouts(&carol.id, None, None, 2, NOW)
        .await
        .expect("queue");
    assert_eq!(
        bounded,
        QueuedLogouts {
            queued: 0,
            dropped: 1
        },
        "s2 is dropped: web already has two waiting"
    );
    let listed = store.list_logouts(Some(&web.id), 10).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|d| d.subject == carol.id && d.attempts == 0));
    let mut sids: Vec<Option<String>> = listed.iter().map(|d| d.sid.clone()).collect();
    sids.sort();
    assert_eq!(sids, [Some("s1".to_string()), Some("s3".to_string())]);

    // Deleting a client takes its deliveries with it.
    store.delete_client(&other.id).await.expect("delete");
    assert!(store
        .list_logouts(Some(&other.id), 10)
        .await
        .expect("list")
        .is_empty());

    // Concurrent claims: each delivery has one holder.
    let mut claims = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        claims.push(tokio::spawn(async move {
            store.claim_logout(NOW, NOW + 60).await.expect("claim")
        }));
    }
    let mut claimed = Vec::new();
    for claim in claims {
        if let Some(delivery) = claim.await.expect("join") {
            claimed.push(delivery.id);
        }
    }
    claimed.sort();
    let total = claimed.len();
    claimed.dedup();
    assert_eq!(
        (total, claimed.len()),
        (2, 2),
        "two deliveries, each claimed once"
    );
    assert_eq!(
        store.claim_logout(NOW, NOW + 60).await.expect("claim"),
        None
    );
    // After the lease, an unfinished claim is free again.
    let retaken = store
        .claim_logout(NOW + 61, NOW + 120)
        .await
        .expect("claim")
        .expect("lease over");
    store
        .mark_logout_failed(
            &retaken.id,
            "the client answered 503",
            Some(NOW + 200),
            NOW + 61,
        )
        .await
        .expect("failed");
    let counts = store.logout_counts().await.expect("counts");
    assert_eq!((counts.pending, counts.retrying), (2, 1));
    assert_eq!(counts.oldest_pending_at, Some(NOW));
    let second = store
        .claim_logout(NOW + 121, NOW + 180)
        .await
        .expect("claim")
        .expect("due");
    assert_ne!(second.id, retaken.id, "a retry waits for its time");
    store
        .mark_logout_delivered(&second.id, NOW + 121)
        .await
        .expect("delivered");
    assert_eq!(
        store
            .claim_logout(NOW + 121, NOW + 180)
            .await
            .expect("claim"),
        None
    );
    let back = store
        .claim_logout(NOW + 200, NOW + 260)
        .await
        .expect("claim")
        .expect("the retry is due");
    assert_eq!((back.id.as_str(), back.attempts), (retaken.id.as_str(), 1));
    store
        .mark_logout_failed(&back.id, "the client answered 400", None, NOW + 200)
        .await
        .expect("given up");
    let counts = store.logout_counts().await.expect("counts");
    assert_eq!(
        (
            counts.pending,
            counts.retrying,
            counts.delivered,
            counts.given_up
        ),
        (0, 0, 1, 1)
    );
    assert_eq!(counts.oldest_pending_at, None);
    // One more, left pending.
    store
        .record_session_client("s5", &web.id, &carol.id, NOW)
        .await
        .expect("record");
    let pending = store
        .queue_logouts(&carol.id, Some("s5"), None, 1000, NOW)
        .await
        .expect("queue");
    assert_eq!(pending.queued, 1);
    // Housekeeping: finished deliveries a week on, sessions' lists after 90 days.
    store
        .delete_expired(NOW + 8 * 86_400)
        .await
        .expect("housekeeping");
    let left = store.list_logouts(None, 10).await.expect("list");
    assert_eq!(left.len(), 1, "the pending one stays");
    store
        .delete_expired(NOW + 91 * 86_400)
        .await
        .expect("housekeeping");
    assert!(store
        .list_session_clients("s2")
        .await
        .expect("list")
        .is_empty());
}

async fn third_party(store: Arc<dyn Store>) {
    // Initial access tokens: uses taken one at a time, never past zero or expiry.
    let token = RegistrationToken {
        id: "iat-1".into(),
        token_hash: Secret::new("initial").storage_hash(),
        uses_left: 2,
        expires_at: NOW + 100,
        created_at: NOW,
    };
    store
        .create_registration_token(&token)
        .await
        .expect("token");
    assert!(matches!(
        store.create_registration_token(&token).await,
        Err(StoreError::Conflict(_))
    ));
    let hash = token.token_hash.clone();
    assert_eq!(
        store
            .use_registration_token(&hash, NOW + 200)
            .await
            .expect("use"),
        None,
        "expired"
    );
    assert_eq!(
        store
            .use_registration_token("other", NOW)
            .await
            .expect("use"),
        None
    );
    // Two uses left and five racing registrations: exactly two get one.
    let mut racers = Vec::new();
    for _ in 0..5 {
        let store = store.clone();
        let hash = hash.clone();
        racers.push(tokio::spawn(async move {
            store.use_registration_token(&hash, NOW).await.expect("use")
        }));
    }
    let mut won = 0;
    for racer in racers {
        if racer.await.expect("join") == Some("iat-1".to_string()) {
            won += 1;
        }
    }
    assert_eq!(won, 2);
    let listed = store.list_registration_tokens().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uses_left, 0);
    assert!(store
        .delete_registration_token("iat-1")
        .await
        .expect("delete"));
    assert!(!store
        .delete_registration_token("iat-1")
        .await
        .expect("delete"));

    // Self-registered clients: counted per address, marked used once, the unused removed.
    let mut made = Vec::new();
    for (name, from, age) in [
        ("dcr-a", "192.0.2.1", 1000),
        ("dcr-b", "192.0.2.1", 10),
        ("dcr-c", "192.0.2.2", 1000),
    ] {
        let (mut client, _) = ClientRegistration {
            name: name.into(),
            is_public: true,
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            ..Default::default()
        }
        .build(NOW - age)
        .expect("client");
        client.registration = Some(sigil_core::client::DynamicRegistration {
            access_token_hash: Secret::generate().storage_hash(),
            application_type: sigil_core::client::ApplicationType::Native,
            initial_token_id: None,
            metadata: serde_json::Map::new(),
        });
        client.registered_from = Some(from.into());
        store.create_client(&client).await.expect("client");
        let found = store
            .find_client(&client.id)
            .await
            .expect("find")
            .expect("there");
        assert_eq!(found, client, "a self-registered client reads back whole");
        made.push(client);
    }
    let (admin_made, _) = registration("not-self").build(NOW - 5000).expect("client");
    store.create_client(&admin_made).await.expect("client");
    assert_eq!(
        store
            .count_self_registered_clients(None)
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        store
            .count_self_registered_clients(Some("192.0.2.1"))
            .await
            .expect("count"),
        2
    );
    store
        .mark_client_used(&made[2].id, NOW)
        .await
        .expect("mark");
    store
        .mark_client_used(&made[2].id, NOW + 50)
        .await
        .expect("mark again");
    let used = store
        .find_client(&made[2].id)
        .await
        .expect("find")
        .expect("there");
    assert_eq!(used.first_used_at, Some(NOW), "the first use is kept");
    // Registered before NOW - 100 and never used: only dcr-a (dcr-c was used, dcr-b is new,
    // the admin's client is not self-registered).
    assert_eq!(
        store
            .delete_unused_self_registered_clients(NOW - 100)
            .await
            .expect("clean"),
        1
    );
    assert!(store
        .find_client(&made[0].id)
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_client(&made[1].id)
        .await
        .expect("find")
        .is_some());
    assert!(store
        .find_client(&made[2].id)
        .await
        .expect("find")
        .is_some());
    assert!(store
        .find_client(&admin_made.id)
        .await
        .expect("find")
        .is_some());

    // Resources: put replaces (keeping created_at), listed by URI.
    let resource = Resource {
        uri: "https://api.example.com/mcp".into(),
        name: "MCP".into(),
        scopes: vec!["todo:read".into(), "todo:write".into()],
        self_registered_clients: true,
        created_at: NOW,
        updated_at: NOW,
    };
    store.put_resource(&resource).await.expect("put");
    let changed = Resource {
        name: "MCP server".into(),
        scopes: vec!["todo:read".into()],
        self_registered_clients: false,
        created_at: NOW + 9,
        updated_at: NOW + 9,
        ..resource.clone()
    };
    store.put_resource(&changed).await.expect("replace");
    let found = store
        .find_resource(&resource.uri)
        .await
        .expect("find")
        .expect("there");
    assert_eq!(
        found,
        Resource {
            created_at: NOW,
            ..changed.clone()
        }
    );
    let other = Resource {
        uri: "https://a.example.com".into(),
        ..resource.clone()
    };
    store.put_resource(&other).await.expect("put");
    let uris: Vec<String> = store
        .list_resources()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.uri)
        .collect();
    assert_eq!(
        uris,
        vec!["https://a.example.com", "https://api.example.com/mcp"]
    );
    assert!(store.delete_resource(&other.uri).await.expect("delete"));
    assert!(!store.delete_resource(&other.uri).await.expect("delete"));
    assert!(store
        .find_resource(&other.uri)
        .await
        .expect("find")
        .is_none());

    // Pushed requests: taken once, by their client, before they expire.
    let pushed = PushedRequest {
        request_hash: Secret::generate().storage_hash(),
        client_id: made[1].id.clone(),
        parameters: r#"{"scope":"openid"}"#.into(),
        expires_at: NOW + 60,
    };
    store.create_pushed_request(&pushed).await.expect("push");
    assert!(store
        .take_pushed_request(&pushed.request_hash, "someone-else", NOW)
        .await
        .expect("take")
        .is_none());
    assert!(
        store
            .take_pushed_request(&pushed.request_hash, &pushed.client_id, NOW + 60)
            .await
            .expect("take")
            .is_none(),
        "expired"
    );
    assert_eq!(
        store
            .take_pushed_request(&pushed.request_hash, &pushed.client_id, NOW)
            .await
            .expect("take"),
        Some(pushed.clone())
    );
    assert!(
        store
            .take_pushed_request(&pushed.request_hash, &pushed.client_id, NOW)
            .await
            .expect("take")
            .is_none(),
        "single use"
    );

    // Client assertions: a jti once until it expires, then again.
    assert!(store
        .record_client_assertion("c", "j1", NOW + 60, NOW)
        .await
        .expect("jti"));
    assert!(!store
        .record_client_assertion("c", "j1", NOW + 60, NOW + 1)
        .await
        .expect("jti"));
    assert!(store
        .record_client_assertion("d", "j1", NOW + 60, NOW)
        .await
        .expect("other client"));
    assert!(store
        .record_client_assertion("c", "j1", NOW + 200, NOW + 61)
        .await
        .expect("expired before"));
    // Racing replays of one jti: one wins.
    let mut racers = Vec::new();
    for _ in 0..5 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store
                .record_client_assertion("c", "race", NOW + 60, NOW)
                .await
                .expect("jti")
        }));
    }
    let mut firsts = 0;
    for racer in racers {
        if racer.await.expect("join") {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1);
    // DPoP proofs (RFC 9449 §11.1): a replay key once until it expires, racing or not.
    assert!(store
        .record_dpop_proof("p1", NOW + 60, NOW)
        .await
        .expect("proof"));
    assert!(!store
        .record_dpop_proof("p1", NOW + 60, NOW + 59)
        .await
        .expect("proof"));
    assert!(store
        .record_dpop_proof("p1", NOW + 200, NOW + 60)
        .await
        .expect("expired before"));
    let mut racers = Vec::new();
    for _ in 0..5 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store
                .record_dpop_proof("race", NOW + 60, NOW)
                .await
                .expect("proof")
        }));
    }
    let mut firsts = 0;
    for racer in racers {
        if racer.await.expect("join") {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1, "one of five racing uses of a DPoP proof wins");
    // Several proofs in one write: each new one is recorded, a recorded one is a replay,
    // an expired one is taken over; more than one statement's worth as well.
    assert_eq!(
        store.record_dpop_proofs(&[], NOW).await.expect("none"),
        Vec::<bool>::new()
    );
    let batch = |keys: &[&str], until: i64| -> Vec<(String, i64)> {
        keys.iter().map(|k| (k.to_string(), until)).collect()
    };
    assert_eq!(
        store
            .record_dpop_proofs(&batch(&["b1", "b2"], NOW + 60), NOW)
            .await
            .expect("batch"),
        [true, true]
    );
    assert_eq!(
        store
            .record_dpop_proofs(&batch(&["b3", "b1", "p1", "b4"], NOW + 300), NOW + 30)
            .await
            .expect("batch"),
        [true, false, false, true],
        "b1 and p1 are live: replays"
    );
    assert_eq!(
        store
            .record_dpop_proofs(&batch(&["b2", "b5"], NOW + 400), NOW + 60)
            .await
            .expect("batch"),
        [true, true],
        "b2 expired at NOW + 60: taken over"
    );
    assert!(!store
        .record_dpop_proof("b5", NOW + 400, NOW + 61)
        .await
        .expect("proof"));
    let many: Vec<String> = (0..150).map(|n| format!("many{n}")).collect();
    let mut keys: Vec<&str> = many.iter().map(String::as_str).collect();
    let first_uses = store
        .record_dpop_proofs(&batch(&keys, NOW + 60), NOW)
        .await
        .expect("batch");
    assert_eq!(first_uses, vec![true; 150]);
    keys.push("new after the many");
    let first_uses = store
        .record_dpop_proofs(&batch(&keys, NOW + 60), NOW + 1)
        .await
        .expect("batch");
    assert_eq!(first_uses[..150], vec![false; 150]);
    assert!(first_uses[150]);
    // Housekeeping removes what has expired.
    store
        .delete_expired(NOW + 100_000)
        .await
        .expect("housekeeping");
    assert!(store
        .record_client_assertion("c", "race", NOW + 100_060, NOW + 100_000)
        .await
        .expect("gone"));
    assert!(store
        .record_dpop_proof("race", NOW + 100_060, NOW + 100_000)
        .await
        .expect("gone"));
}

/// The activity counters: counts add up per minute and hour (in total and per client),
/// concurrent writers add up instead of overwriting each other, reads bucket and page as
/// documented, and pruning keeps what is recent.
async fn activity_counters(store: Arc<dyn Store>) {
    use sigil_core::activity::{ActivityCount, ActivityPage, ActivityQuery, Grain, HOUR};
    let hour = NOW - NOW.rem_euclid(HOUR);
    let count = |minute: i64, metric: &'static str, label: &'static str, client: &str, n: i64| {
        ActivityCount {
            minute,
            metric,
            label,
            client_id: client.to_string(),
            count: n,
        }
    };
    store
        .add_activity(&[
            count(hour, "token", "client_credentials", "app-a", 2),
            count(hour, "token", "client_credentials", "app-b", 1),
            count(hour + 60, "token", "client_credentials", "app-a", 1),
            count(hour + 60, "sign_in", "password.ok", "", 3),
            count(hour + HOUR, "token", "refresh_token", "app-a", 4),
        ])
        .await
        .expect("add");
    store.add_activity(&[]).await.expect("nothing to add");
    // Eight writers at once on the same rows (as replicas do): every count is kept.
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .add_activity(&[
                        count(hour, "token", "client_credentials", "app-a", 1),
                        count(hour, "throttled", "", "", 1),
                    ])
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("join").expect("concurrent add");
    }
    let minutes = store
        .activity_series(&ActivityQuery {
            grain: Grain::Minute,
            from: hour,
            to: hour + 2 * HOUR,
            bucket_seconds: 60,
            client_id: None,
        })
        .await
        .expect("minutes");
    let seen: Vec<(i64, &str, &str, i64)> = minutes
        .iter()
        .map(|r| (r.bucket, r.metric.as_str(), r.label.as_str(), r.count))
        .collect();
    assert_eq!(
        seen,
        vec![
            (hour, "throttled", "", 8),
            (hour, "token", "client_credentials", 11),
            (hour + 60, "sign_in", "password.ok", 3),
            (hour + 60, "token", "client_credentials", 1),
            (hour + HOUR, "token", "refresh_token", 4),
        ]
    );
    // Quarter hours sum their minutes; a range leaves out what is outside it.
    let quarters = store
        .activity_series(&ActivityQuery {
            grain: Grain::Minute,
            from: hour,
            to: hour + HOUR,
            bucket_seconds: 900,
            client_id: None,
        })
        .await
        .expect("quarters");
    assert!(quarters.iter().all(|r| r.bucket == hour));
    let tokens: i64 = quarters
        .iter()
        .filter(|r| r.metric == "token")
        .map(|r| r.count)
        .sum();
    assert_eq!(tokens, 12);
    // Hours: the total of every client, and one client's own.
    let hours = |client: Option<&str>| {
        let store = store.clone();
        let client = client.map(str::to_string);
        async move {
            store
                .activity_series(&ActivityQuery {
                    grain: Grain::Hour,
                    from: hour,
                    to: hour + 2 * HOUR,
                    bucket_seconds: HOUR,
                    client_id: client,
                })
                .await
                .expect("hours")
                .into_iter()
                .map(|r| (r.bucket, r.metric, r.label, r.count))
                .collect::<Vec<_>>()
        }
    };
    let s = |v: &str| v.to_string();
    assert_eq!(
        hours(None).await,
        vec![
            (hour, s("sign_in"), s("password.ok"), 3),
            (hour, s("throttled"), s(""), 8),
            (hour, s("token"), s("client_credentials"), 12),
            (hour + HOUR, s("token"), s("refresh_token"), 4),
        ]
    );
    assert_eq!(
        hours(Some("app-a")).await,
        vec![
            (hour, s("token"), s("client_credentials"), 11),
            (hour + HOUR, s("token"), s("refresh_token"), 4),
        ]
    );
    assert_eq!(hours(Some("nobody")).await, vec![]);
    assert_eq!(
        store.last_token_hour("app-a").await.expect("last"),
        Some(hour + HOUR)
    );
    assert_eq!(
        store.last_token_hour("app-b").await.expect("last"),
        Some(hour)
    );
    assert_eq!(store.last_token_hour("nobody").await.expect("last"), None);
    // Export pages: every hour row once, in order, across pages of 2.
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_activity(&ActivityPage {
                grain: Grain::Hour,
                from: 0,
                to: i64::MAX,
                after: after.clone(),
                limit: 2,
            })
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some((
            last.bucket,
            last.metric.clone(),
            last.label.clone(),
            last.client_id.clone(),
        ));
        let short = page.len() < 2;
        rows.extend(page);
        if short {
            break;
        }
    }
    let keys: Vec<(i64, &str, &str, &str, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.bucket,
                r.metric.as_str(),
                r.label.as_str(),
                r.client_id.as_str(),
                r.count,
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (hour, "sign_in", "password.ok", "", 3),
            (hour, "throttled", "", "", 8),
            (hour, "token", "client_credentials", "", 12),
            (hour, "token", "client_credentials", "app-a", 11),
            (hour, "token", "client_credentials", "app-b", 1),
            (hour + HOUR, "token", "refresh_token", "", 4),
            (hour + HOUR, "token", "refresh_token", "app-a", 4),
        ]
    );
    let minute_rows = store
        .list_activity(&ActivityPage {
            grain: Grain::Minute,
            from: hour + 60,
            to: hour + HOUR,
            after: None,
            limit: 10,
        })
        .await
        .expect("minute rows");
    assert_eq!(minute_rows.len(), 2, "the range bounds the rows");
    assert!(minute_rows.iter().all(|r| r.client_id.is_empty()));
    // Pruning: minutes before the second hour go, hours are kept; then everything.
    let pruned = store
        .prune_activity(hour + HOUR, hour)
        .await
        .expect("prune");
    assert_eq!(pruned, 4, "the four minute rows of the first hour");
    assert_eq!(
        store
            .prune_activity(i64::MAX, i64::MAX)
            .await
            .expect("prune all"),
        1 + 7
    );
}

async fn open(db: &TestDb) -> Database {
    Database::open(db.url(), &DatabaseOptions::default())
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    activity_counters(store.clone()).await;
    conformance(store.clone()).await;
    sign_in_failures(store.clone()).await;
    self_service(store.clone()).await;
    second_factors(store.clone()).await;
    federation(store.clone()).await;
    backchannel_logout(store.clone()).await;
    console_sessions_and_usage(store.clone()).await;
    third_party(store).await;
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
    activity_counters(database.store()).await;
    conformance(database.store()).await;
    sign_in_failures(database.store()).await;
    self_service(database.store()).await;
    second_factors(database.store()).await;
    federation(database.store()).await;
    backchannel_logout(database.store()).await;
    console_sessions_and_usage(database.store()).await;
    third_party(database.store()).await;
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
    activity_counters(database.store()).await;
    conformance(database.store()).await;
    sign_in_failures(database.store()).await;
    self_service(database.store()).await;
    second_factors(database.store()).await;
    federation(database.store()).await;
    backchannel_logout(database.store()).await;
    console_sessions_and_usage(database.store()).await;
    third_party(database.store()).await;
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

#[tokio::test]
async fn an_in_memory_sqlite_database_is_refused_clearly() {
    // Each pooled connection (and the rotation writer's own) would see a database of its own.
    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://x.db?mode=memory",
    ] {
        let error = Database::connect(url, &DatabaseOptions::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} must be refused"));
        assert!(
            error.to_string().contains("in-memory SQLite database"),
            "{url}: {error}"
        );
    }
}
