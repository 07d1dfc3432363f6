//! [`SecondFactors`]: enrolling, using and removing second factors and recovery codes.
//! Every change is audited with the user (or the admin) as the actor, and mailed to the
//! user's verified address, so that a change they did not make does not go unnoticed.

use super::recovery;
use super::seal::FactorKey;
use super::totp::{issuer_label, TotpSecret};
use super::{throttle_subject, validate_name, FactorError, FactorsConfig, Method};
use crate::activity::{Event, SignInMethod};
use crate::audit::{AuditLog, Caller};
use crate::authority::Authority;
use crate::clock::Clock;
use crate::mail::{Mail, MailKind, MailQueue};
use crate::secret::random_token;
use crate::store::{Factor, FactorKind, Store};
use crate::user::User;
use std::sync::Arc;

/// A TOTP enrolment in progress: the secret to show (as a QR code of `uri`, and as text).
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub factor_id: String,
    pub secret: TotpSecret,
    /// The `otpauth://` URI.
    pub uri: String,
}

/// A user's confirmed factors and how many recovery codes they have left.
#[derive(Debug, Clone, Default)]
pub struct FactorSummary {
    pub factors: Vec<Factor>,
    pub recovery_codes_left: i64,
}

impl FactorSummary {
    pub fn has_any(&self) -> bool {
        !self.factors.is_empty()
    }
    pub fn has_totp(&self) -> bool {
        self.factors.iter().any(|f| f.kind == FactorKind::Totp)
    }
    pub fn has_passkey(&self) -> bool {
        self.factors.iter().any(|f| f.kind == FactorKind::Passkey)
    }
}

/// The second-factor service.
pub struct SecondFactors {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit_log: AuditLog,
    mail: Arc<dyn MailQueue>,
    key: Arc<FactorKey>,
    config: FactorsConfig,
}

impl SecondFactors {
    /// The service of a serving process: the engine's store, clock and audit log.
    /// The activity counters this service counts the second steps of sign-ins into.
    pub fn activity(&self) -> &Arc<crate::activity::Activity> {
        self.audit_log.activity()
    }

    pub fn for_authority(
        authority: &Authority,
        mail: Arc<dyn MailQueue>,
        key: Arc<FactorKey>,
        config: FactorsConfig,
    ) -> Self {
        Self {
            store: authority.store.clone(),
            clock: authority.clock.clone(),
            audit_log: authority.audit_log.clone(),
            mail,
            key,
            config,
        }
    }

    /// The service over a store alone (the command line).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        mail: Arc<dyn MailQueue>,
        key: Arc<FactorKey>,
        config: FactorsConfig,
    ) -> Self {
        Self {
            audit_log: AuditLog::new(store.clone(), clock.clone()),
            store,
            clock,
            mail,
            key,
            config,
        }
    }

    pub fn config(&self) -> &FactorsConfig {
        &self.config
    }

    /// Whether `user` must sign in with a second factor (policy, or the admin's choice).
    pub fn is_required(&self, user: &User) -> bool {
        self.config.policy.requires(user)
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The user's confirmed factors and recovery codes left.
    pub async fn summary(&self, user_id: &str) -> Result<FactorSummary, FactorError> {
        let factors = self
            .store
            .list_factors(user_id)
            .await?
            .into_iter()
            .filter(Factor::is_confirmed)
            .collect();
        Ok(FactorSummary {
            factors,
            recovery_codes_left: self.store.count_recovery_codes(user_id).await?,
        })
    }

    /// Starts adding an authenticator app: a new secret, kept sealed in an unconfirmed
    /// factor until a code from the app confirms it. An earlier unfinished enrolment of
    /// the user's is dropped.
    pub async fn start_totp(&self, user: &User) -> Result<TotpEnrolment, FactorError> {
        for earlier in self.store.list_factors(&user.id).await? {
            if !earlier.is_confirmed() && earlier.kind == FactorKind::Totp {
                self.store
                    .delete_factor(&user.id, &earlier.id, false)
                    .await?;
            }
        }
        let secret = TotpSecret::generate();
        let id = random_token(16);
        let now = self.now();
        self.store
            .create_factor(&Factor {
                id: id.clone(),
                user_id: user.id.clone(),
                kind: FactorKind::Totp,
                name: String::new(),
                data: self.key.seal(secret.expose(), &id)?,
                credential_id: None,
                last_step: None,
                created_at: now,
                confirmed_at: None,
                last_used_at: None,
            })
            .await?;
        Ok(self.enrolment(user, id, secret))
    }

    /// The user's unfinished TOTP enrolment `factor_id`, to show again.
    pub async fn totp_enrolment(
        &self,
        user: &User,
        factor_id: &str,
    ) -> Result<TotpEnrolment, FactorError> {
        let factor = self.unconfirmed_totp(user, factor_id).await?;
        let secret = TotpSecret::from_bytes(self.key.open(&factor.data, &factor.id)?);
        Ok(self.enrolment(user, factor.id, secret))
    }

    fn enrolment(&self, user: &User, factor_id: String, secret: TotpSecret) -> TotpEnrolment {
        let uri = secret.otpauth_uri(&issuer_label(&self.config.issuer), &user.username);
        TotpEnrolment {
            factor_id,
            secret,
            uri,
        }
    }

    async fn unconfirmed_totp(&self, user: &User, factor_id: &str) -> Result<Factor, FactorError> {
        self.store
            .list_factors(&user.id)
            .await?
            .into_iter()
            .find(|f| f.id == factor_id && !f.is_confirmed() && f.kind == FactorKind::Totp)
            .ok_or(FactorError::NotFound)
    }

    /// Finishes adding an authenticator app: `code` must be the app's current code (its
    /// step is then used, so the same code cannot sign in). Throttled like sign-in codes.
    /// The user's first factor comes with a set of recovery codes, returned to be shown
    /// once.
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        user: &User,
        factor_id: &str,
        name: &str,
        code: &str,
    ) -> Result<Option<Vec<String>>, FactorError> {
        let name = validate_name(name)?;
        let factor = self.unconfirmed_totp(user, factor_id).await?;
        let subject = self.reserve_guess(&user.id).await?;
        let secret = TotpSecret::from_bytes(self.key.open(&factor.data, &factor.id)?);
        let now = self.now();
        let Some(step) = secret.matching_step(code, now) else {
            return Err(FactorError::WrongCode);
        };
        if !self
            .store
            .confirm_factor(&user.id, &factor.id, &name, Some(step), now)
            .await?
        {
            return Err(FactorError::NotFound);
        }
        self.store.clear_sign_in_failures(&subject).await?;
        self.added(caller, user, "an authenticator app", &name)
            .await
    }

    /// Adds a passkey the server has verified (a WebAuthn registration ceremony):
    /// `credential_id` in base64url, `data` the credential as the library keeps it. The
    /// user's first factor comes with recovery codes, as for an app.
    pub async fn add_passkey(
        &self,
        caller: &Caller,
        user: &User,
        name: &str,
        credential_id: &str,
        data: String,
    ) -> Result<Option<Vec<String>>, FactorError> {
        let name = validate_name(name)?;
        let now = self.now();
        self.store
            .create_factor(&Factor {
                id: random_token(16),
                user_id: user.id.clone(),
                kind: FactorKind::Passkey,
                name: name.clone(),
                data,
                credential_id: Some(credential_id.to_string()),
                last_step: None,
                created_at: now,
                confirmed_at: Some(now),
                last_used_at: None,
            })
            .await?;
        self.added(caller, user, "a passkey", &name).await
    }

    /// Audits and mails a new factor; makes the first recovery codes if there are none.
    async fn added(
        &self,
        caller: &Caller,
        user: &User,
        what: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>, FactorError> {
        self.audit_log
            .record(
                caller,
                "user.factor_added",
                Some(&user.username),
                format!("{what} named {name:?}"),
            )
            .await;
        self.send(
            user,
            MailKind::SecondFactorAdded {
                username: user.username.clone(),
                what: format!("{what} named \"{name}\""),
            },
        )
        .await?;
        if self.store.count_recovery_codes(&user.id).await? > 0 {
            return Ok(None);
        }
        Ok(Some(self.new_recovery_codes(&user.id).await?))
    }

    /// The passkey with this credential id (for a passkey sign-in), if any.
    pub async fn find_passkey(&self, credential_id: &str) -> Result<Option<Factor>, FactorError> {
        Ok(self
            .store
            .find_factor_by_credential(credential_id)
            .await?
            .filter(|f| f.kind == FactorKind::Passkey))
    }

    /// Notes a passkey's use, with its updated data (the signature counter).
    pub async fn passkey_used(
        &self,
        factor_id: &str,
        data: Option<&str>,
    ) -> Result<(), FactorError> {
        self.store
            .record_factor_use(factor_id, data, self.now())
            .await?;
        Ok(())
    }

    /// Audits a sign-in with a passkey alone (`sign_in.success`, as a password sign-in is;
    /// the passkey as a second step is part of the password's sign-in).
    pub async fn passkey_signed_in(&self, caller: &Caller, user: &User) {
        self.audit_log.count(Event::SignIn {
            method: SignInMethod::Passkey,
            ok: true,
        });
        self.audit_log
            .record(
                caller,
                "sign_in.success",
                Some(&user.username),
                "with a passkey, no password",
            )
            .await;
    }

    /// Checks a code typed at the second step of sign-in: a current code of one of the
    /// user's authenticator apps (each step once), or one of their unused recovery codes.
    /// Throttled per account like passwords, atomically across replicas. A recovery code
    /// used is audited and mailed.
    pub async fn verify_code(
        &self,
        caller: &Caller,
        user: &User,
        code: &str,
    ) -> Result<Method, FactorError> {
        let subject = self.reserve_guess(&user.id).await?;
        let now = self.now();
        let method = if let Some(recovery_code) = recovery::normalize(code) {
            let hash = self.key.recovery_hash(&user.id, &recovery_code)?;
            self.store
                .use_recovery_code(&user.id, &hash, now)
                .await?
                .then_some(Method::RecoveryCode)
        } else {
            self.use_totp(user, code, now).await?
        };
        self.audit_log.count(Event::SignIn {
            method: SignInMethod::SecondFactor,
            ok: method.is_some(),
        });
        let Some(method) = method else {
            self.audit_log
                .record(
                    caller,
                    "sign_in.second_factor_failure",
                    Some(&user.username),
                    "wrong or reused code",
                )
                .await;
            return Err(FactorError::WrongCode);
        };
        self.store.clear_sign_in_failures(&subject).await?;
        if method == Method::RecoveryCode {
            let left = self.store.count_recovery_codes(&user.id).await?;
            self.audit_log
                .record(
                    caller,
                    "user.recovery_code_used",
                    Some(&user.username),
                    format!("{left} left"),
                )
                .await;
            self.send(
                user,
                MailKind::RecoveryCodeUsed {
                    username: user.username.clone(),
                    left,
                },
            )
            .await?;
        }
        Ok(method)
    }

    /// The first of the user's apps whose code `code` is, its step taken (refused if the
    /// step was used already, on any replica).
    async fn use_totp(
        &self,
        user: &User,
        code: &str,
        now: i64,
    ) -> Result<Option<Method>, FactorError> {
        for factor in self.store.list_factors(&user.id).await? {
            if factor.kind != FactorKind::Totp || !factor.is_confirmed() {
                continue;
            }
            let secret = TotpSecret::from_bytes(self.key.open(&factor.data, &factor.id)?);
            if let Some(step) = secret.matching_step(code, now) {
                if self.store.use_totp_step(&factor.id, step, now).await? {
                    return Ok(Some(Method::Totp));
                }
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Takes a place in the user's count of code guesses; none left, and the guess is
    /// refused without being checked.
    async fn reserve_guess(&self, user_id: &str) -> Result<String, FactorError> {
        let subject = throttle_subject(user_id);
        let policy = &self.config.throttle;
        let now = self.now();
        match self
            .store
            .reserve_sign_in_attempt(&subject, policy.account_free_failures, policy, now)
            .await?
        {
            None => Ok(subject),
            Some(count) => Err(FactorError::Throttled(
                policy.wait(&[count], now).max(1) as u64
            )),
        }
    }

    /// A new set of recovery codes for the user, replacing the old (audited, mailed).
    /// Only for a user with a factor: codes alone are not a second factor.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        user: &User,
    ) -> Result<Vec<String>, FactorError> {
        if !self.summary(&user.id).await?.has_any() {
            return Err(FactorError::NotFound);
        }
        let codes = self.new_recovery_codes(&user.id).await?;
        self.audit_log
            .record(
                caller,
                "user.recovery_codes_replaced",
                Some(&user.username),
                "",
            )
            .await;
        Ok(codes)
    }

    async fn new_recovery_codes(&self, user_id: &str) -> Result<Vec<String>, FactorError> {
        let codes = recovery::generate_set();
        let hashes = codes
            .iter()
            .map(|code| self.key.recovery_hash(user_id, code))
            .collect::<Result<Vec<String>, _>>()?;
        self.store
            .replace_recovery_codes(user_id, &hashes, self.now())
            .await?;
        Ok(codes)
    }

    /// Renames one of the user's factors.
    pub async fn rename(
        &self,
        user: &User,
        factor_id: &str,
        name: &str,
    ) -> Result<(), FactorError> {
        let name = validate_name(name)?;
        if self.store.rename_factor(&user.id, factor_id, &name).await? {
            Ok(())
        } else {
            Err(FactorError::NotFound)
        }
    }

    /// Removes one of the user's factors; refused for the last one of a user who must
    /// have one. Removing the last factor drops the recovery codes too.
    pub async fn remove(
        &self,
        caller: &Caller,
        user: &User,
        factor_id: &str,
    ) -> Result<(), FactorError> {
        let summary = self.summary(&user.id).await?;
        let Some(factor) = summary.factors.iter().find(|f| f.id == factor_id) else {
            return Err(FactorError::NotFound);
        };
        let is_required = self.is_required(user);
        if summary.factors.len() == 1 && is_required {
            return Err(FactorError::LastRequiredFactor);
        }
        if !self
            .store
            .delete_factor(&user.id, factor_id, is_required)
            .await?
        {
            // Gone meanwhile, or another removal at the same time took the one kept.
            let still_there = self
                .summary(&user.id)
                .await?
                .factors
                .iter()
                .any(|f| f.id == factor_id);
            return Err(if still_there {
                FactorError::LastRequiredFactor
            } else {
                FactorError::NotFound
            });
        }
        if summary.factors.len() == 1 {
            self.store
                .replace_recovery_codes(&user.id, &[], self.now())
                .await?;
        }
        let what = match factor.kind {
            FactorKind::Totp => "an authenticator app",
            FactorKind::Passkey => "a passkey",
        };
        self.audit_log
            .record(
                caller,
                "user.factor_removed",
                Some(&user.username),
                format!("{what} named {:?}", factor.name),
            )
            .await;
        self.send(
            user,
            MailKind::SecondFactorRemoved {
                username: user.username.clone(),
                what: format!("{what} named \"{}\"", factor.name),
            },
        )
        .await?;
        Ok(())
    }

    /// An admin's reset: every factor and recovery code of the user goes (audited, mailed).
    /// A user who must have a factor enrols one again at their next sign-in.
    pub async fn reset(&self, caller: &Caller, user: &User) -> Result<u64, FactorError> {
        let removed = self.store.delete_factors(&user.id).await?;
        self.audit_log
            .record(
                caller,
                "user.factors_reset",
                Some(&user.username),
                format!("{removed} factors removed"),
            )
            .await;
        self.send(
            user,
            MailKind::SecondFactorsReset {
                username: user.username.clone(),
            },
        )
        .await?;
        Ok(removed)
    }

    async fn send(&self, user: &User, kind: MailKind) -> Result<(), FactorError> {
        if let Some(email) = user.email.clone().filter(|_| user.email_verified) {
            self.mail.queue(Mail { to: email, kind }).await?;
        }
        Ok(())
    }
}
