//! What a signed-in user changes on the account page: name, password.

use super::links::actor;
use super::{AccountError, Accounts};
use crate::audit::Caller;
use crate::mail::MailKind;
use crate::secret::{constant_time_eq, Secret};
use crate::user::User;

impl Accounts {
    pub(super) async fn existing_user(&self, user_id: &str) -> Result<User, AccountError> {
        self.store
            .find_user(user_id)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// Stores `user` with a new session epoch, and ends what the old one allowed: every
    /// browser session, refresh family and access token of the user. Returns how many
    /// refresh families were revoked.
    pub(super) async fn save_and_end_sessions(&self, user: &mut User) -> Result<u64, AccountError> {
        let now = self.now();
        user.session_epoch += 1;
        user.updated_at = now;
        if !crate::store::save_user(&*self.store, user).await? {
            return Err(AccountError::Changed);
        }
        self.store
            .end_browser_sessions(&user.id, None, None, now)
            .await?;
        self.logouts
            .sessions_ended(&user.id, crate::backchannel::EndedSessions::All)
            .await;
        Ok(self
            .store
            .revoke_user_refresh_families(&user.id, None, now)
            .await?)
    }

    /// Proves the current password for a change on the account page. Wrong guesses count
    /// against the account like failed sign-ins (a stolen session cannot guess the
    /// password without limit, nor flood the password pool); a right one gives its place
    /// back.
    pub async fn check_current_password(
        &self,
        user: &User,
        current: Secret,
    ) -> Result<(), AccountError> {
        let subject = crate::throttle::account_subject(&user.username);
        let policy = self.config.throttle;
        if self
            .store
            .reserve_sign_in_attempt(&subject, policy.account_free_failures, &policy, self.now())
            .await?
            .is_some()
        {
            return Err(AccountError::Throttled);
        }
        let (hasher, pool) = &self.hashing;
        let hasher = hasher.clone();
        let stored = user.password_hash.clone();
        let matched = pool
            .run(move || hasher.verify(current.expose(), Some(&stored)))
            .await
            .map_err(|_| AccountError::Busy)?;
        if !matched {
            return Err(AccountError::WrongPassword);
        }
        self.store.release_sign_in_attempt(&subject).await?;
        Ok(())
    }

    /// Changes the name shown to apps (the `name` claim). Empty removes it.
    pub async fn update_name(
        &self,
        caller: &Caller,
        user_id: &str,
        name: &str,
    ) -> Result<User, AccountError> {
        let mut user = self.existing_user(user_id).await?;
        let name = name.trim();
        if let Some(message) = super::name_problem(name) {
            return Err(AccountError::field("name", message));
        }
        user.name = (!name.is_empty()).then(|| name.to_string());
        user.updated_at = self.now();
        if !crate::store::save_user(&*self.store, &mut user).await? {
            return Err(AccountError::Changed);
        }
        self.audit_log
            .record(caller, "user.profile_changed", Some(&user.username), "name")
            .await;
        Ok(user)
    }

    /// Changes a user's own password: the current one is required, the new one must meet
    /// the rules and differ. Every session, refresh family and access token of the user
    /// ends (the caller signs its own session in again), and the user is told by mail.
    pub async fn change_password(
        &self,
        caller: &Caller,
        user_id: &str,
        current: Secret,
        new_password: Secret,
    ) -> Result<User, AccountError> {
        let mut user = self.existing_user(user_id).await?;
        if constant_time_eq(current.expose(), new_password.expose()) {
            return Err(AccountError::field(
                "new_password",
                "The new password must differ from the current one.",
            ));
        }
        self.check_current_password(&user, current).await?;
        user.password_hash = self
            .hash_new_password(&new_password, &user.username, user.email.as_deref())
            .await
            .map_err(|error| match error {
                AccountError::Fields(mut fields) => {
                    for field in &mut fields {
                        field.field = "new_password";
                    }
                    AccountError::Fields(fields)
                }
                other => other,
            })?;
        user.must_change_password = false;
        let revoked = self.save_and_end_sessions(&mut user).await?;
        self.store
            .void_account_links(
                &user.id,
                crate::store::LinkPurpose::ResetPassword,
                self.now(),
            )
            .await?;
        self.audit_log
            .record(
                &caller.acting_as(actor(&user)),
                "user.password_changed",
                Some(&user.username),
                format!("changed by the user; other sessions ended, {revoked} refresh-token families revoked"),
            )
            .await;
        if let Some(email) = user.email.clone().filter(|_| user.email_verified) {
            self.send(
                &email,
                MailKind::PasswordChanged {
                    username: user.username.clone(),
                    by_reset: false,
                },
            )
            .await?;
        }
        Ok(user)
    }
}
