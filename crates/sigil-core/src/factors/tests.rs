//! The second-factor rules on the memory store with a fixed clock: an app counts once a
//! code confirms it, a code works once, wrong codes are throttled, recovery codes work once
//! and are mailed, the last factor of a user who must have one stays.

use super::totp::{TotpSecret, STEP};
use super::*;
use crate::accounts::tests::Outbox;
use crate::audit::Caller;
use crate::clock::{Clock, FixedClock};
use crate::mail::MailKind;
use crate::store::memory::MemoryStore;
use crate::store::Store;
use crate::user::{AccountOrigin, User};
use std::sync::Arc;

const NOW: i64 = 1_800_000_010;

struct Fixture {
    factors: SecondFactors,
    clock: Arc<FixedClock>,
    outbox: Arc<Outbox>,
    user: User,
}

async fn fixture(policy: MfaPolicy) -> Fixture {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(FixedClock::new(NOW));
    let outbox = Arc::new(Outbox::default());
    let user = User {
        id: "u-factors".into(),
        username: "frida".into(),
        email: Some("frida@example.com".into()),
        email_verified: true,
        name: None,
        password_hash: String::new(),
        is_admin: false,
        is_disabled: false,
        must_change_password: false,
        requires_second_factor: false,
        session_epoch: 0,
        origin: AccountOrigin::Admin,
        version: 0,
        created_at: NOW,
        updated_at: NOW,
    };
    store.create_user(&user).await.expect("user");
    let mut config = FactorsConfig::new("https://id.example.com");
    config.policy = policy;
    let factors = SecondFactors::new(
        store,
        clock.clone(),
        outbox.clone(),
        Arc::new(FactorKey::generate().expect("key")),
        config,
    );
    Fixture {
        factors,
        clock,
        outbox,
        user,
    }
}

fn caller(user: &User) -> Caller {
    Caller::user(user.id.clone(), user.username.clone(), None)
}

/// Enrols an app and returns its secret and the recovery codes shown.
async fn enrol(f: &Fixture) -> (TotpSecret, Vec<String>) {
    let enrolment = f.factors.start_totp(&f.user).await.expect("start");
    assert!(enrolment.uri.starts_with("otpauth://totp/"));
    let code = enrolment.secret.code_at_step(NOW / STEP);
    let codes = f
        .factors
        .confirm_totp(
            &caller(&f.user),
            &f.user,
            &enrolment.factor_id,
            "Phone",
            &code,
        )
        .await
        .expect("confirm")
        .expect("the first factor comes with recovery codes");
    (enrolment.secret, codes)
}

#[tokio::test]
async fn an_app_counts_once_confirmed_and_each_code_works_once() {
    let f = fixture(MfaPolicy::Optional).await;
    let pending = f.factors.start_totp(&f.user).await.expect("start");
    assert!(!f
        .factors
        .summary(&f.user.id)
        .await
        .expect("summary")
        .has_any());
    let wrong = f
        .factors
        .confirm_totp(
            &caller(&f.user),
            &f.user,
            &pending.factor_id,
            "Phone",
            "000000",
        )
        .await;
    assert!(
        matches!(wrong, Err(FactorError::WrongCode))
            || pending.secret.code_at_step(NOW / STEP) == "000000"
    );
    let (secret, codes) = enrol(&f).await;
    assert_eq!(codes.len(), 10);
    let summary = f.factors.summary(&f.user.id).await.expect("summary");
    assert!(summary.has_totp());
    assert_eq!(summary.recovery_codes_left, 10);
    // The confirming code does not sign in; the next step's does, once.
    let same = secret.code_at_step(NOW / STEP);
    assert!(matches!(
        f.factors
            .verify_code(&caller(&f.user), &f.user, &same)
            .await,
        Err(FactorError::WrongCode)
    ));
    f.clock.advance(STEP);
    let next = secret.code_at_step(f.clock.now() / STEP);
    assert_eq!(
        f.factors
            .verify_code(&caller(&f.user), &f.user, &next)
            .await
            .expect("next"),
        Method::Totp
    );
    assert!(matches!(
        f.factors
            .verify_code(&caller(&f.user), &f.user, &next)
            .await,
        Err(FactorError::WrongCode)
    ));
    // Counted for the console's charts: one second step accepted, two refused.
    let mut counted = std::collections::BTreeMap::new();
    for c in f.factors.activity().drain() {
        *counted.entry(c.label).or_insert(0) += c.count;
    }
    assert_eq!(
        counted.into_iter().collect::<Vec<_>>(),
        vec![("second_factor.failed", 2), ("second_factor.ok", 1)]
    );
    let added = f.outbox.0.lock().expect("lock").iter().any(
        |m| matches!(&m.kind, MailKind::SecondFactorAdded { what, .. } if what.contains("Phone")),
    );
    assert!(added, "the new factor is mailed");
}

#[tokio::test]
async fn wrong_codes_are_throttled_before_they_are_checked() {
    let f = fixture(MfaPolicy::Optional).await;
    let (secret, _) = enrol(&f).await;
    let mut throttled = 0;
    for guess in 0..20 {
        match f
            .factors
            .verify_code(
                &caller(&f.user),
                &f.user,
                &format!("{:06}", 100_000 + guess),
            )
            .await
        {
            Err(FactorError::Throttled(wait)) => {
                assert!(wait >= 1);
                throttled += 1;
            }
            Err(FactorError::WrongCode) => {}
            other => panic!("a guess: {other:?}"),
        }
    }
    assert!(
        throttled >= 14,
        "after the free guesses each waits: {throttled}"
    );
    // Even the right code (the next step's, valid now) waits its turn.
    let right = secret.code_at_step(f.clock.now() / STEP + 1);
    assert!(matches!(
        f.factors
            .verify_code(&caller(&f.user), &f.user, &right)
            .await,
        Err(FactorError::Throttled(_))
    ));
}

#[tokio::test]
async fn recovery_codes_work_once_and_their_use_is_mailed() {
    let f = fixture(MfaPolicy::Optional).await;
    let (_, codes) = enrol(&f).await;
    let typed = codes[3].to_uppercase().replace('-', " ");
    assert_eq!(
        f.factors
            .verify_code(&caller(&f.user), &f.user, &typed)
            .await
            .expect("code"),
        Method::RecoveryCode
    );
    assert!(matches!(
        f.factors
            .verify_code(&caller(&f.user), &f.user, &codes[3])
            .await,
        Err(FactorError::WrongCode)
    ));
    let mailed = f
        .outbox
        .0
        .lock()
        .expect("lock")
        .iter()
        .any(|m| matches!(m.kind, MailKind::RecoveryCodeUsed { left: 9, .. }));
    assert!(mailed, "the use is mailed, with the count left");
    let fresh = f
        .factors
        .regenerate_recovery_codes(&caller(&f.user), &f.user)
        .await
        .expect("new set");
    assert!(
        matches!(
            f.factors
                .verify_code(&caller(&f.user), &f.user, &codes[4])
                .await,
            Err(FactorError::WrongCode)
        ),
        "the old set is void"
    );
    assert_eq!(
        f.factors
            .verify_code(&caller(&f.user), &f.user, &fresh[0])
            .await
            .expect("new"),
        Method::RecoveryCode
    );
}

#[tokio::test]
async fn the_last_factor_of_a_user_who_must_have_one_stays() {
    let f = fixture(MfaPolicy::Required).await;
    enrol(&f).await;
    let id = f
        .factors
        .summary(&f.user.id)
        .await
        .expect("summary")
        .factors[0]
        .id
        .clone();
    assert!(matches!(
        f.factors.remove(&caller(&f.user), &f.user, &id).await,
        Err(FactorError::LastRequiredFactor)
    ));
    let optional = fixture(MfaPolicy::Optional).await;
    enrol(&optional).await;
    let id = optional
        .factors
        .summary(&optional.user.id)
        .await
        .expect("summary")
        .factors[0]
        .id
        .clone();
    optional
        .factors
        .remove(&caller(&optional.user), &optional.user, &id)
        .await
        .expect("optional: removable");
    let summary = optional
        .factors
        .summary(&optional.user.id)
        .await
        .expect("summary");
    assert!(!summary.has_any());
    assert_eq!(
        summary.recovery_codes_left, 0,
        "codes go with the last factor"
    );
}
