//! The federation service over the memory store: what each kind of upstream sign-in comes
//! to, and the rules on providers, linking and unlinking.

use super::*;
use crate::audit::{AuditFilter, Caller};
use crate::clock::Clock;
use crate::factors::FactorKey;
use crate::secret::Secret;
use crate::store::memory::MemoryStore;
use crate::store::{AuditStore, FederationStore, Store, UserStore};
use crate::user::{AccountOrigin, User};
use std::sync::Arc;

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> i64 {
        1_800_000_000
    }
}

fn service() -> (Federation, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let key = Arc::new(FactorKey::generate().expect("key"));
    let dyn_store: Arc<dyn Store> = store.clone();
    (Federation::new(dyn_store, Arc::new(FixedClock), key), store)
}

fn new_provider(id: &str) -> NewProvider {
    NewProvider {
        id: id.into(),
        name: "Upstream".into(),
        kind: ProviderKind::Oidc,
        issuer: "https://idp.example.com".into(),
        client_id: "sigil".into(),
        scopes: None,
        authorize_url: None,
        token_url: None,
        userinfo_url: None,
        subject_claim: None,
        create_users: true,
        trust_email: true,
        allow_http: false,
    }
}

fn upstream(subject: &str, email: &str, verified: bool) -> UpstreamIdentity {
    UpstreamIdentity {
        issuer: "https://idp.example.com".into(),
        subject: subject.into(),
        email: Some(email.into()),
        email_verified: verified,
        name: Some("Ada Lovelace".into()),
        preferred_username: Some("ada".into()),
    }
}

fn local_user(username: &str, email: &str) -> User {
    User {
        id: format!("id-{username}"),
        username: username.into(),
        email: Some(email.into()),
        email_verified: true,
        name: None,
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        is_admin: false,
        is_disabled: false,
        must_change_password: false,
        requires_second_factor: false,
        session_epoch: 0,
        origin: AccountOrigin::Admin,
        version: 0,
        created_at: 0,
        updated_at: 0,
    }
}

async fn actions(store: &MemoryStore) -> Vec<String> {
    let filter = AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    };
    let mut actions: Vec<String> = store
        .list_audit(&filter)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.record.action)
        .collect();
    actions.reverse();
    actions
}

#[tokio::test]
async fn the_client_secret_is_sealed_and_opens_for_its_provider_only() {
    let (federation, store) = service();
    let provider = federation
        .add_provider(
            &Caller::cli(),
            new_provider("idp"),
            &Secret::new("s3cret-value"),
        )
        .await
        .expect("added");
    assert!(!provider.sealed_client_secret.contains("s3cret"));
    assert_eq!(
        federation.client_secret(&provider).expect("opens").expose(),
        "s3cret-value"
    );
    let mut moved = provider.clone();
    moved.id = "other".into();
    assert!(federation.client_secret(&moved).is_err());
    assert_eq!(provider.scopes, "openid profile email");
    let again = federation
        .add_provider(&Caller::cli(), new_provider("idp"), &Secret::new("x"))
        .await;
    assert!(matches!(again, Err(FederationError::Invalid(_))));
    assert_eq!(actions(&store).await, vec!["provider.added"]);
}

#[test]
fn provider_settings_are_checked() {
    let check = |change: fn(&mut NewProvider)| {
        let mut new = new_provider("idp");
        change(&mut new);
        new.into_provider("sealed".into(), 0)
    };
    assert!(check(|_| {}).is_ok());
    assert!(check(|p| p.id = "Bad/Id".into()).is_err());
    assert!(check(|p| p.id = "-x".into()).is_err());
    assert!(check(|p| p.id = "a".repeat(33)).is_err());
    assert!(check(|p| p.issuer = "http://idp.example.com".into()).is_err());
    // --allow-http is for loopback addresses only.
    assert!(check(|p| {
        p.issuer = "http://idp.example.com".into();
        p.allow_http = true;
    })
    .is_err());
    assert!(check(|p| {
        p.issuer = "http://10.0.0.1:8080".into();
        p.allow_http = true;
    })
    .is_err());
    assert!(check(|p| {
        p.issuer = "http://127.0.0.1:8080".into();
        p.allow_http = true;
    })
    .is_ok());
    assert!(check(|p| {
        p.issuer = "http://[::1]:8080".into();
        p.allow_http = true;
    })
    .is_ok());
    assert!(check(|p| p.issuer = "https://user:pw@idp.example.com".into()).is_err());
    assert!(check(|p| p.issuer = "https://idp.example.com/#x".into()).is_err());
    assert!(check(|p| p.name = "\u{202e}evil".into()).is_err());
    assert!(check(|p| p.scopes = Some("email \"bad\"".into())).is_err());
    // openid is always asked of an OpenID Connect provider.
    let provider = check(|p| p.scopes = Some("email".into())).expect("ok");
    assert_eq!(provider.scopes, "openid email");
    // Discovery gives an OpenID Connect provider's endpoints; OAuth 2.0 needs all three.
    assert!(check(|p| p.token_url = Some("https://idp.example.com/token".into())).is_err());
    assert!(check(|p| p.kind = ProviderKind::OAuth2).is_err());
    let oauth2 = check(|p| {
        p.kind = ProviderKind::OAuth2;
        p.authorize_url = Some("https://idp.example.com/authorize".into());
        p.token_url = Some("https://idp.example.com/token".into());
        p.userinfo_url = Some("https://api.idp.example.com/user".into());
        p.subject_claim = Some("id".into());
    })
    .expect("oauth2");
    assert_eq!(oauth2.scopes, "");
    assert_eq!(oauth2.subject_claim, "id");
    assert!(check(|p| {
        p.kind = ProviderKind::OAuth2;
        p.authorize_url = Some("https://idp.example.com/authorize".into());
        p.token_url = Some("http://idp.example.com/token".into());
        p.userinfo_url = Some("https://api.idp.example.com/user".into());
    })
    .is_err());
}

#[tokio::test]
async fn a_new_identity_creates_a_user_and_then_signs_it_in() {
    let (federation, store) = service();
    let provider = federation
        .add_provider(&Caller::cli(), new_provider("idp"), &Secret::new("s"))
        .await
        .expect("added");
    let caller = Caller::anonymous(Some("192.0.2.1".into()));
    let identity = upstream("sub-1", "ada@example.com", true);
    let Resolution::Created(created) = federation
        .resolve(&caller, &provider, &identity)
        .await
        .expect("resolve")
    else {
        panic!("expected a new account");
    };
    assert_eq!(created.username, "ada");
    assert_eq!(created.email.as_deref(), Some("ada@example.com"));
    assert!(created.email_verified);
    assert!(!created.has_password());
    assert_eq!(created.origin, AccountOrigin::Federated);
    let Resolution::Linked(again) = federation
        .resolve(&caller, &provider, &identity)
        .await
        .expect("resolve")
    else {
        panic!("expected the linked account");
    };
    assert_eq!(again.id, created.id);
    // Another identity with the same preferred name gets a name of its own, and without
    // a verified address (the provider does not vouch for it) no address it could clash on.
    let other = upstream("sub-2", "ada@example.com", false);
    let Resolution::Created(second) = federation
        .resolve(&caller, &provider, &other)
        .await
        .expect("resolve")
    else {
        panic!("expected a second account");
    };
    assert_eq!(second.username, "ada-2");
    assert_eq!(second.email, None);
    // Three sign-ins through the provider, counted for the console's charts.
    let counted = federation.activity().drain();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(
        (counted[0].label, counted[0].count),
        ("provider.ok", 3),
        "{counted:?}"
    );
    assert_eq!(
        actions(&store).await,
        vec![
            "provider.added",
            "federation.user_created",
            "federation.sign_in",
            "federation.user_created"
        ]
    );
}

#[tokio::test]
async fn a_verified_address_of_an_existing_account_only_asks_to_prove_it() {
    let (federation, store) = service();
    let provider = federation
        .add_provider(&Caller::cli(), new_provider("idp"), &Secret::new("s"))
        .await
        .expect("added");
    store
        .create_user(&local_user("grace", "grace@example.com"))
        .await
        .expect("user");
    let caller = Caller::anonymous(None);
    let identity = upstream("sub-9", "Grace@example.com", true);
    let resolution = federation
        .resolve(&caller, &provider, &identity)
        .await
        .expect("resolve");
    let Resolution::ProveAccount(user) = resolution else {
        panic!("expected ProveAccount, got {resolution:?}");
    };
    assert_eq!(user.username, "grace");
    // Nothing is linked yet.
    assert!(store
        .find_identity(&identity.issuer, "sub-9")
        .await
        .expect("read")
        .is_none());
    // Once proven, the link is made; a second link of the same identity is refused.
    federation
        .link(&caller, &user, &provider, &identity)
        .await
        .expect("linked");
    assert!(matches!(
        federation.link(&caller, &user, &provider, &identity).await,
        Err(FederationError::AlreadyLinked)
    ));
    assert!(matches!(
        federation.resolve(&caller, &provider, &identity).await,
        Ok(Resolution::Linked(u)) if u.id == user.id
    ));
    // A provider whose addresses are not trusted never leads to the account: its user
    // gets an account of its own, without the address.
    let mut untrusting = new_provider("other");
    untrusting.trust_email = false;
    let untrusting = federation
        .add_provider(&Caller::cli(), untrusting, &Secret::new("s"))
        .await
        .expect("added");
    let stranger = upstream("sub-10", "grace@example.com", true);
    let Ok(Resolution::Created(made)) = federation.resolve(&caller, &untrusting, &stranger).await
    else {
        panic!("expected a new account");
    };
    assert_ne!(made.id, user.id);
    assert_eq!(made.email, None);
}

#[tokio::test]
async fn without_create_users_an_unknown_identity_has_no_account() {
    let (federation, store) = service();
    let mut new = new_provider("idp");
    new.create_users = false;
    let provider = federation
        .add_provider(&Caller::cli(), new, &Secret::new("s"))
        .await
        .expect("added");
    let result = federation
        .resolve(
            &Caller::anonymous(None),
            &provider,
            &upstream("s", "x@example.com", true),
        )
        .await
        .expect("resolve");
    assert!(matches!(result, Resolution::NoAccount));
    assert_eq!(store.count_users().await.expect("count"), 0);
}

#[tokio::test]
async fn a_disabled_account_is_not_signed_in() {
    let (federation, store) = service();
    let provider = federation
        .add_provider(&Caller::cli(), new_provider("idp"), &Secret::new("s"))
        .await
        .expect("added");
    let identity = upstream("sub-1", "ada@example.com", true);
    let Ok(Resolution::Created(mut user)) = federation
        .resolve(&Caller::anonymous(None), &provider, &identity)
        .await
    else {
        panic!("expected a new account");
    };
    user.is_disabled = true;
    assert!(store.update_user(&user).await.expect("update"));
    assert!(matches!(
        federation
            .resolve(&Caller::anonymous(None), &provider, &identity)
            .await,
        Ok(Resolution::Disabled)
    ));
}

#[tokio::test]
async fn the_last_way_in_is_not_unlinked() {
    let (federation, store) = service();
    let provider = federation
        .add_provider(&Caller::cli(), new_provider("idp"), &Secret::new("s"))
        .await
        .expect("added");
    let caller = Caller::anonymous(None);
    let first = upstream("sub-1", "ada@example.com", true);
    let Ok(Resolution::Created(user)) = federation.resolve(&caller, &provider, &first).await else {
        panic!("expected a new account");
    };
    // No password and one identity: it stays.
    assert!(matches!(
        federation
            .unlink(&caller, &user, &first.issuer, "sub-1")
            .await,
        Err(FederationError::LastWayIn)
    ));
    let second = upstream("sub-2", "ada@example.com", true);
    federation
        .link(&caller, &user, &provider, &second)
        .await
        .expect("link");
    federation
        .unlink(&caller, &user, &first.issuer, "sub-1")
        .await
        .expect("unlinked, one is left");
    assert!(matches!(
        federation
            .unlink(&caller, &user, &first.issuer, "sub-2")
            .await,
        Err(FederationError::LastWayIn)
    ));
    // Someone else's identity is not found for this user.
    store
        .create_user(&local_user("eve", "eve@example.com"))
        .await
        .expect("user");
    let eve = store.find_user("id-eve").await.expect("read").expect("eve");
    assert!(matches!(
        federation
            .unlink(&caller, &eve, &first.issuer, "sub-2")
            .await,
        Err(FederationError::NotFound)
    ));
    // With a password, the last identity may go.
    federation
        .link(
            &caller,
            &eve,
            &provider,
            &upstream("sub-3", "eve@example.com", true),
        )
        .await
        .expect("link");
    federation
        .unlink(&caller, &eve, &first.issuer, "sub-3")
        .await
        .expect("a password is left");
    assert_eq!(federation.identities(&eve.id).await.expect("list").len(), 0);
}
