//! Password sign-in: one attempt checks a user name and password on the password pool,
//! throttled per account (or trusted device) and per client address, counted and audited
//! (OWASP Authentication Cheat Sheet; see `throttle.rs` for the policy).

use crate::activity::{Event, SignInMethod};
use crate::audit::{Actor, AuditLog, Caller};
use crate::authority::{Authority, EventCounts};
use crate::clock::Clock;
use crate::cpu::Admission;
use crate::error::OAuthError;
use crate::password::PasswordHasher;
use crate::secret::Secret;
use crate::store::Store;
use crate::throttle::ThrottlePolicy;
use crate::user::User;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Authority {
    /// Checks a user name and password on the password pool, counts and audits the
    /// attempt, and returns the user when both are right and the account is enabled. An
    /// unknown user costs the same argon2 work and gets the same answer (no enumeration).
    /// The audit entry names the user only when the name exists, so a password typed into
    /// the user-name field never lands in the log. `via` says where the attempt came from;
    /// `device` is the id of a trusted-device cookie already proven to belong to this user
    /// name (see [`crate::throttle::device_subject`]).
    ///
    /// The check runs as a task of its own that the caller only waits for: a caller that
    /// gives up (a client that hangs up, a request timeout) neither frees its place in the
    /// password pool's queue before the hash has run (see [`crate::cpu::CpuPool::admit`]) nor stops the
    /// outcome from being counted and audited.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: Secret,
        via: &str,
        device: Option<&str>,
        caller: &Caller,
    ) -> Result<Option<User>, OAuthError> {
        let admission = self.password_pool.admit()?;
        let attempt = PasswordAttempt {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit_log: self.audit_log.clone(),
            passwords: self.passwords.clone(),
            events: self.events.clone(),
            policy: self.config.throttle,
            address: caller.address.clone(),
            username: username.to_string(),
            via: via.to_string(),
            device: device.map(str::to_string),
        };
        tokio::spawn(attempt.run(admission, password))
            .await
            .map_err(|e| OAuthError::server_error(&format!("the password check failed: {e}")))?
    }
}

/// One sign-in attempt, with everything it needs to finish on its own.
struct PasswordAttempt {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit_log: AuditLog,
    passwords: Arc<PasswordHasher>,
    events: Arc<EventCounts>,
    policy: ThrottlePolicy,
    address: Option<String>,
    username: String,
    via: String,
    device: Option<String>,
}

impl PasswordAttempt {
    /// Throttling first, by taking the attempt's place in each count atomically before
    /// any argon2 work (so that concurrent guesses cost what the same guesses one after
    /// another cost, on every replica); a refused attempt costs a statement per count and
    /// no hash. Then the hash, then the outcome: a failure keeps its places in the counts,
    /// a success clears the account's (or the trusted device's) count and gives the
    /// address's place back.
    async fn run(self, admission: Admission, password: Secret) -> Result<Option<User>, OAuthError> {
        let now = self.clock.now();
        let policy = self.policy;
        let mut subjects = vec![match &self.device {
            Some(device) => crate::throttle::device_subject(device),
            None => crate::throttle::account_subject(&self.username),
        }];
        if let Some(address) = self
            .address
            .as_deref()
            .filter(|_| policy.counts_addresses())
        {
            subjects.push(crate::throttle::address_subject(address));
        }
        let mut reserved: Vec<&str> = Vec::new();
        for subject in &subjects {
            let free = policy.free_failures(subject);
            match self
                .store
                .reserve_sign_in_attempt(subject, free, &policy, now)
                .await
            {
                Ok(None) => reserved.push(subject),
                Ok(Some(count)) => {
                    self.release(&reserved).await;
                    return Err(OAuthError::throttled(
                        policy.wait(&[count], now).max(1) as u64
                    ));
                }
                Err(error) => {
                    self.release(&reserved).await;
                    return Err(error.into());
                }
            }
        }
        let found = match self.store.find_user_by_username(&self.username).await {
            Ok(found) => found,
            Err(error) => {
                self.release(&reserved).await;
                return Err(error.into());
            }
        };
        let stored_hash = found.as_ref().map(|u| u.password_hash.clone());
        let hasher = self.passwords.clone();
        let checked = admission
            .run(move || {
                let verification = hasher.check(password.expose(), stored_hash.as_deref());
                let rehash = verification
                    .needs_rehash
                    .then(|| hasher.hash(password.expose()).ok())
                    .flatten();
                (verification.matched, rehash)
            })
            .await;
        let (matched, rehash) = match checked {
            Ok(checked) => checked,
            Err(overloaded) => {
                self.release(&reserved).await;
                return Err(overloaded.into());
            }
        };
        self.events
            .password_verifications
            .fetch_add(1, Ordering::Relaxed);
        let is_known = found.is_some();
        let accepted = found.filter(|u| matched && !u.is_disabled);
        let via = self.via.as_str();
        match &accepted {
            Some(user) => {
                self.events
                    .sign_in_successes
                    .fetch_add(1, Ordering::Relaxed);
                self.audit_log.count(Event::SignIn {
                    method: SignInMethod::Password,
                    ok: true,
                });
                // The account's (or device's) count starts over; the address's place is
                // given back but its count stays (otherwise one valid account would reset
                // the count of an address guessing at others).
                self.store.clear_sign_in_failures(&subjects[0]).await?;
                self.release(&reserved[1..]).await;
                if let Some(new_hash) = rehash {
                    match self
                        .store
                        .replace_password_hash(&user.id, &user.password_hash, &new_hash, now)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(user = %user.id, "password rehashed with the current settings")
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not store the rehashed password")
                        }
                    }
                }
                let actor = Actor::User {
                    id: user.id.clone(),
                    name: user.username.clone(),
                };
                self.audit(
                    actor,
                    "sign_in.success",
                    Some(&user.username),
                    format!("via {via}"),
                )
                .await
            }
            None => {
                self.events.sign_in_failures.fetch_add(1, Ordering::Relaxed);
                self.audit_log.count(Event::SignIn {
                    method: SignInMethod::Password,
                    ok: false,
                });
                let (target, detail) = if is_known {
                    (
                        Some(self.username.as_str()),
                        format!("wrong password or disabled account, via {via}"),
                    )
                } else {
                    (None, format!("unknown user name, via {via}"))
                };
                self.audit(Actor::Nobody, "sign_in.failure", target, detail)
                    .await
            }
        }
        Ok(accepted)
    }

    /// Gives back the places this attempt took in the counts of `subjects`.
    async fn release(&self, subjects: &[&str]) {
        for subject in subjects {
            if let Err(error) = self.store.release_sign_in_attempt(subject).await {
                tracing::warn!(%error, "could not give back a sign-in attempt's place");
            }
        }
    }

    async fn audit(&self, actor: Actor, action: &str, target: Option<&str>, detail: String) {
        let caller = Caller {
            actor,
            address: self.address.clone(),
        };
        self.audit_log.record(&caller, action, target, detail).await
    }
}
