//! The account rules on the memory store with a fixed clock: links expire, die with a
//! password change, work once; the address change needs the password and outlives no
//! reset; guesses of the current password are throttled.

use super::*;
use crate::clock::FixedClock;
use crate::mail::{Mail, MailKind, MailQueue};
use crate::password::Argon2Params;
use crate::store::memory::MemoryStore;
use crate::store::UserStore;
use std::sync::Mutex;

const NOW: i64 = 1_800_000_000;
const PASSWORD: &str = "a pass phrase to start with";

/// A mail queue that keeps what it is given (the factor tests use it too).
#[derive(Default)]
pub(crate) struct Outbox(pub(crate) Mutex<Vec<Mail>>);

#[async_trait::async_trait]
impl MailQueue for Outbox {
    async fn queue(&self, mail: Mail) -> Result<(), StoreError> {
        match self.0.lock() {
            Ok(mut sent) => sent.push(mail),
            Err(poisoned) => poisoned.into_inner().push(mail),
        }
        Ok(())
    }
}

impl Outbox {
    /// The token of the last link sent to `to`.
    fn last_token(&self, to: &str) -> Secret {
        let sent = self.0.lock().expect("lock");
        let link = sent
            .iter()
            .rev()
            .filter(|m| m.to == to)
            .find_map(|m| match &m.kind {
                MailKind::VerifyEmail { link, .. }
                | MailKind::PasswordReset { link, .. }
                | MailKind::ConfirmNewEmail { link, .. }
                | MailKind::Invitation { link, .. } => Some(link.expose().to_string()),
                _ => None,
            })
            .expect("a link");
        let token = link
            .split_once("token=")
            .or_else(|| link.split_once("invite="))
            .map(|(_, t)| t.to_string())
            .expect("token");
        Secret::new(token)
    }

    fn count(&self, to: &str) -> usize {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| m.to == to)
            .count()
    }
}

struct Fixture {
    accounts: Accounts,
    clock: Arc<FixedClock>,
    outbox: Arc<Outbox>,
    store: Arc<MemoryStore>,
}

fn fixture(mode: SignUpMode) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FixedClock::new(NOW));
    let outbox = Arc::new(Outbox::default());
    let hasher = PasswordHasher::new(Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("hasher");
    let mut config = AccountsConfig::new("https://id.example");
    config.sign_up = mode;
    let accounts = Accounts::new(
        store.clone(),
        clock.clone(),
        (Arc::new(hasher), CpuPool::new("test-hash", 1, 16)),
        outbox.clone(),
        config,
    );
    Fixture {
        accounts,
        clock,
        outbox,
        store,
    }
}

fn form(username: &str, email: &str) -> SignUp {
    SignUp {
        username: username.into(),
        email: email.into(),
        name: None,
        invitation: None,
    }
}

async fn signed_up(f: &Fixture, username: &str, email: &str) -> User {
    match f
        .accounts
        .sign_up(
            &Caller::anonymous(None),
            form(username, email),
            Secret::new(PASSWORD),
        )
        .await
        .expect("sign up")
    {
        SignUpOutcome::Created(user) => user,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sign_up_is_closed_by_default_and_by_invitation_needs_one() {
    let f = fixture(SignUpMode::Closed);
    let refused = f
        .accounts
        .sign_up(
            &Caller::cli(),
            form("ann", "ann@example.com"),
            Secret::new(PASSWORD),
        )
        .await;
    assert!(matches!(refused, Err(AccountError::SignUpClosed)));
    let f = fixture(SignUpMode::Invite);
    let refused = f
        .accounts
        .sign_up(
            &Caller::cli(),
            form("ann", "ann@example.com"),
            Secret::new(PASSWORD),
        )
        .await;
    assert!(matches!(refused, Err(AccountError::SignUpClosed)));
    f.accounts
        .invite(&Caller::cli(), "ann@example.com")
        .await
        .expect("invite");
    let mut with = form("ann", "ann@example.com");
    with.invitation = Some(f.outbox.last_token("ann@example.com"));
    let outcome = f
        .accounts
        .sign_up(&Caller::cli(), with.clone(), Secret::new(PASSWORD))
        .await
        .expect("sign up");
    let SignUpOutcome::Created(ann) = outcome else {
        panic!("created")
    };
    assert!(ann.email_verified, "the invitation proved the address");
    with.username = "ann2".into();
    with.email = "ann2@example.com".into();
    let again = f
        .accounts
        .sign_up(&Caller::cli(), with, Secret::new(PASSWORD))
        .await;
    assert!(
        matches!(again, Err(AccountError::InvalidLink)),
        "one account per invitation"
    );
}

#[tokio::test]
async fn verification_links_expire_and_work_once() {
    let f = fixture(SignUpMode::Open);
    let bea = signed_up(&f, "bea", "bea@example.com").await;
    assert!(bea.awaits_email_verification());
    let token = f.outbox.last_token("bea@example.com");
    f.clock.advance(24 * 3600);
    let late = f.accounts.follow_email_link(&Caller::cli(), &token).await;
    assert!(
        matches!(late, Err(AccountError::InvalidLink)),
        "24 hours and no more"
    );
    f.clock.set(NOW + 60);
    let user = f
        .accounts
        .follow_email_link(&Caller::cli(), &token)
        .await
        .expect("verify");
    assert!(user.email_verified && !user.awaits_email_verification());
    let again = f.accounts.follow_email_link(&Caller::cli(), &token).await;
    assert!(matches!(again, Err(AccountError::InvalidLink)));
    let tampered = Secret::new(format!("{}x", token.expose()));
    assert!(f
        .accounts
        .follow_email_link(&Caller::cli(), &tampered)
        .await
        .is_err());
}

#[tokio::test]
async fn a_reset_link_dies_with_any_password_change_and_after_30_minutes() {
    let f = fixture(SignUpMode::Open);
    let cy = signed_up(&f, "cy", "cy@example.com").await;
    let caller = Caller::anonymous(Some("192.0.2.1".into()));
    f.accounts
        .request_password_reset(&caller, "CY@example.com")
        .await
        .expect("request");
    let first = f.outbox.last_token("cy@example.com");
    f.accounts
        .request_password_reset(&caller, "cy@example.com")
        .await
        .expect("request");
    let second = f.outbox.last_token("cy@example.com");
    // A change of the password (here by the user on the account page) voids both.
    f.accounts
        .change_password(
            &caller,
            &cy.id,
            Secret::new(PASSWORD),
            Secret::new("a brand new pass phrase"),
        )
        .await
        .expect("change");
    for token in [&first, &second] {
        let used = f
            .accounts
            .reset_password(&caller, token, Secret::new("the thief's pass phrase"))
            .await;
        assert!(matches!(used, Err(AccountError::InvalidLink)));
    }
    // A fresh one works within 30 minutes, not after.
    f.clock.advance(3600);
    f.accounts
        .request_password_reset(&caller, "cy@example.com")
        .await
        .expect("request");
    let third = f.outbox.last_token("cy@example.com");
    f.clock.advance(30 * 60);
    let late = f
        .accounts
        .reset_password(&caller, &third, Secret::new("too late pass phrase"))
        .await;
    assert!(matches!(late, Err(AccountError::InvalidLink)));
    // An unknown address: nothing sent, the same Ok.
    let before = f.outbox.count("nobody@example.com");
    f.accounts
        .request_password_reset(&caller, "nobody@example.com")
        .await
        .expect("the same answer");
    assert_eq!(f.outbox.count("nobody@example.com"), before);
}

#[tokio::test]
async fn an_address_change_needs_the_password_and_dies_with_a_reset() {
    let f = fixture(SignUpMode::Open);
    let dee = signed_up(&f, "dee", "dee@example.com").await;
    let caller = Caller::user(dee.id.clone(), "dee", Some("192.0.2.2".into()));
    let wrong = f
        .accounts
        .request_email_change(
            &caller,
            &dee.id,
            "thief@evil.example",
            Secret::new("guess guess"),
        )
        .await;
    assert!(matches!(wrong, Err(AccountError::WrongPassword)));
    f.accounts
        .request_email_change(
            &caller,
            &dee.id,
            "thief@evil.example",
            Secret::new(PASSWORD),
        )
        .await
        .expect("request");
    let pending = f.outbox.last_token("thief@evil.example");
    // The owner recovers the account: the pending change is void.
    f.accounts
        .request_password_reset(&caller, "dee@example.com")
        .await
        .expect("reset request");
    let reset = f.outbox.last_token("dee@example.com");
    f.accounts
        .reset_password(&caller, &reset, Secret::new("the owner's new pass phrase"))
        .await
        .expect("reset");
    let stolen = f.accounts.follow_email_link(&caller, &pending).await;
    assert!(matches!(stolen, Err(AccountError::InvalidLink)));
    let user = f
        .store
        .find_user(&dee.id)
        .await
        .expect("find")
        .expect("dee");
    assert_eq!(user.email.as_deref(), Some("dee@example.com"));
}

#[tokio::test]
async fn current_password_guesses_are_throttled() {
    let f = fixture(SignUpMode::Open);
    let eve = signed_up(&f, "eve", "eve@example.com").await;
    let caller = Caller::user(eve.id.clone(), "eve", None);
    let mut refused = 0;
    for n in 0..8 {
        let result = f
            .accounts
            .change_password(
                &caller,
                &eve.id,
                Secret::new(format!("wrong guess {n}")),
                Secret::new("whatever new pass phrase"),
            )
            .await;
        if matches!(result, Err(AccountError::Throttled)) {
            refused += 1;
        }
    }
    assert!(
        refused >= 2,
        "after the free failures, guesses wait: {refused}"
    );
    // Even the right password waits now, as a sign-in would.
    let right = f
        .accounts
        .change_password(
            &caller,
            &eve.id,
            Secret::new(PASSWORD),
            Secret::new("whatever new pass phrase"),
        )
        .await;
    assert!(matches!(right, Err(AccountError::Throttled)));
}
