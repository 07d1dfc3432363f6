//! Creating users, editing profiles, passwords, the admin role and disabling; what users
//! granted and revoking it. Every change audited.

use super::{
    optional, validate_email, validate_name, Admin, AdminError, NewUser, ProfileUpdate, UserGrant,
};
use crate::audit::Caller;
use crate::secret::{random_token, Secret};
use crate::store::StoreError;
use crate::user::{normalize_email, normalize_username, validate_username, AccountOrigin, User};

impl Admin {
    /// Creates a user with a password (hashed with argon2id on the password pool).
    pub async fn create_user(
        &self,
        caller: &Caller,
        new: NewUser,
        password: Secret,
    ) -> Result<User, AdminError> {
        let username = normalize_username(&new.username);
        validate_username(&username).map_err(|e| AdminError::Invalid(e.into()))?;
        let email = optional(new.email).map(|e| normalize_email(&e));
        let name = optional(new.name);
        validate_email(&email)?;
        validate_name(&name)?;
        let password_hash = self
            .hash_password(password, &username, email.as_deref())
            .await?;
        let now = self.now();
        let user = User {
            id: random_token(16),
            username,
            email_verified: email.is_some() && !new.unverified_email,
            email,
            name,
            password_hash,
            is_admin: new.is_admin,
            is_disabled: false,
            must_change_password: new.must_change_password,
            requires_second_factor: false,
            session_epoch: 0,
            origin: AccountOrigin::Admin,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(message)) if message.contains("email_key") => {
                return Err(AdminError::Invalid(
                    "another account has this email address".into(),
                ))
            }
            Err(StoreError::Conflict(_)) => {
                return Err(AdminError::Invalid(format!(
                    "the user name {:?} is taken",
                    user.username
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.audit_log
            .record(
                caller,
                "user.created",
                Some(&user.username),
                if user.is_admin {
                    "with the admin role"
                } else {
                    "without the admin role"
                },
            )
            .await;
        Ok(user)
    }

    /// Edits a user's profile claims.
    pub async fn update_profile(
        &self,
        caller: &Caller,
        user_id: &str,
        update: ProfileUpdate,
    ) -> Result<User, AdminError> {
        let mut user = self.existing_user(user_id).await?;
        let email = optional(update.email).map(|e| normalize_email(&e));
        let name = optional(update.name);
        validate_email(&email)?;
        validate_name(&name)?;
        user.email_verified = update.email_verified && email.is_some();
        let address_changed = user.email != email;
        user.email = email;
        user.name = name;
        user.updated_at = self.now();
        match crate::store::save_user(&*self.store, &mut user).await {
            Ok(true) => {}
            Ok(false) => return Err(self.not_saved(&user.id).await),
            Err(StoreError::Conflict(_)) => {
                return Err(AdminError::Invalid(
                    "another account has this email address".into(),
                ))
            }
            Err(error) => return Err(error.into()),
        }
        if address_changed {
            // Links for the old address (a reset, a pending change) stop working.
            for purpose in [
                crate::store::LinkPurpose::ResetPassword,
                crate::store::LinkPurpose::ChangeEmail,
                crate::store::LinkPurpose::VerifyEmail,
            ] {
                self.store
                    .void_account_links(&user.id, purpose, self.now())
                    .await?;
            }
        }
        self.audit_log
            .record(
                caller,
                "user.updated",
                Some(&user.username),
                "profile changed",
            )
            .await;
        Ok(user)
    }

    /// Sets a new password. When an admin resets someone's password, the user's sessions
    /// and refresh tokens end; `must_change` makes them pick their own at next sign-in.
    pub async fn reset_password(
        &self,
        caller: &Caller,
        user_id: &str,
        password: Secret,
        must_change: bool,
    ) -> Result<User, AdminError> {
        let mut user = self.existing_user(user_id).await?;
        user.password_hash = self
            .hash_password(password, &user.username, user.email.as_deref())
            .await?;
        user.must_change_password = must_change;
        let revoked = self.save_and_end_sessions(&mut user, self.now()).await?;
        self.audit_log
            .record(
                caller,
                "user.password_reset",
                Some(&user.username),
                format!("sessions ended, {revoked} refresh-token families revoked"),
            )
            .await;
        Ok(user)
    }

    /// Signs a user out everywhere: every browser session, refresh token and access token
    /// of theirs stops counting at once (see [`Admin::save_and_end_sessions`]).
    pub async fn sign_out_everywhere(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<User, AdminError> {
        let mut user = self.existing_user(user_id).await?;
        let revoked = self.save_and_end_sessions(&mut user, self.now()).await?;
        self.audit_log
            .record(
                caller,
                "user.signed_out_everywhere",
                Some(&user.username),
                format!("sessions ended, {revoked} refresh-token families revoked"),
            )
            .await;
        Ok(user)
    }

    /// Saves `user` with a new session epoch, then revokes all their refresh-token
    /// families; returns how many. Every browser session signed in under the old epoch is
    /// over on its next request, and every access token issued under it is inactive at
    /// introspection and userinfo (its `sep` claim no longer matches), on every replica,
    /// without hunting sessions or tokens down one by one.
    async fn save_and_end_sessions(&self, user: &mut User, now: i64) -> Result<u64, AdminError> {
        user.session_epoch += 1;
        user.updated_at = now;
        if !crate::store::save_user(&*self.store, user).await? {
            return Err(self.not_saved(&user.id).await);
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

    /// Grants or removes the admin role. The last admin cannot lose it, and an admin
    /// cannot remove their own.
    pub async fn set_admin(
        &self,
        caller: &Caller,
        user_id: &str,
        is_admin: bool,
    ) -> Result<User, AdminError> {
        let mut user = self.existing_user(user_id).await?;
        if user.is_admin == is_admin {
            return Ok(user);
        }
        if !is_admin && caller.actor.id() == Some(user.id.as_str()) {
            return Err(AdminError::Invalid(
                "you cannot remove your own admin role".into(),
            ));
        }
        user.is_admin = is_admin;
        user.updated_at = self.now();
        if !crate::store::save_user(&*self.store, &mut user).await? {
            return Err(self.not_saved(&user.id).await);
        }
        self.audit_log
            .record(
                caller,
                if is_admin {
                    "user.admin_granted"
                } else {
                    "user.admin_removed"
                },
                Some(&user.username),
                "",
            )
            .await;
        Ok(user)
    }

    /// Requires (or no longer requires) a second factor of one user, whatever `--mfa`
    /// says: a user who has none is walked through adding one at their next sign-in.
    pub async fn set_second_factor_required(
        &self,
        caller: &Caller,
        user_id: &str,
        is_required: bool,
    ) -> Result<User, AdminError> {
        let mut user = self.existing_user(user_id).await?;
        if user.requires_second_factor == is_required {
            return Ok(user);
        }
        user.requires_second_factor = is_required;
        user.updated_at = self.now();
        if !crate::store::save_user(&*self.store, &mut user).await? {
            return Err(self.not_saved(&user.id).await);
        }
        self.audit_log
            .record(
                caller,
                if is_required {
                    "user.second_factor_required"
                } else {
                    "user.second_factor_optional"
                },
                Some(&user.username),
                "",
            )
            .await;
        Ok(user)
    }

    /// Disables or re-enables a user. Disabling ends all their sessions and revokes all
    /// their refresh tokens at once; access tokens already issued stop passing
    /// introspection and userinfo.
    pub async fn set_disabled(
        &self,
        caller: &Caller,
        user_id: &str,
        is_disabled: bool,
    ) -> Result<User, AdminError> {
        let mut user = self.existing_user(user_id).await?;
        if is_disabled && caller.actor.id() == Some(user.id.as_str()) {
            return Err(AdminError::Invalid("you cannot disable yourself".into()));
        }
        user.is_disabled = is_disabled;
        if is_disabled {
            let revoked = self.save_and_end_sessions(&mut user, self.now()).await?;
            self.audit_log
                .record(
                    caller,
                    "user.disabled",
                    Some(&user.username),
                    format!("sessions ended, {revoked} refresh-token families revoked"),
                )
                .await;
        } else {
            user.updated_at = self.now();
            if !crate::store::save_user(&*self.store, &mut user).await? {
                return Err(self.not_saved(&user.id).await);
            }
            self.audit_log
                .record(caller, "user.enabled", Some(&user.username), "")
                .await;
        }
        Ok(user)
    }

    /// The applications a user granted: remembered consents and live refresh families.
    pub async fn user_grants(&self, user_id: &str) -> Result<Vec<UserGrant>, AdminError> {
        let consents = self.store.list_consents(user_id).await?;
        let families = self
            .store
            .list_live_refresh_families(user_id, self.now())
            .await?;
        let last_used = self.store.last_refresh_by_client(user_id).await?;
        let mut ids: Vec<String> = consents
            .iter()
            .map(|c| c.client_id.clone())
            .chain(families.iter().map(|f| f.client_id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        let mut grants = Vec::new();
        for client_id in ids {
            let consent = consents.iter().find(|c| c.client_id == client_id);
            let live: Vec<_> = families
                .iter()
                .filter(|f| f.client_id == client_id)
                .collect();
            let client_name = self.store.find_client(&client_id).await?.map(|c| c.name);
            grants.push(UserGrant {
                client_name,
                consented_scope: consent.map(|c| c.scope.clone()),
                consented_at: consent.map(|c| c.granted_at),
                live_sessions: live.len(),
                token_scope: live.last().map(|f| f.scope.clone()),
                last_used_at: last_used
                    .iter()
                    .find(|(id, _)| *id == client_id)
                    .map(|(_, at)| *at),
                client_id,
            });
        }
        Ok(grants)
    }

    /// Revokes what a user granted a client: the remembered consent and every refresh
    /// family (the app must ask again, and its refresh tokens stop working).
    pub async fn revoke_grant(
        &self,
        caller: &Caller,
        user_id: &str,
        client_id: &str,
    ) -> Result<(), AdminError> {
        let user = self.existing_user(user_id).await?;
        let forgot = self.store.delete_consent(user_id, client_id).await?;
        let revoked = self
            .store
            .revoke_user_refresh_families(user_id, Some(client_id), self.now())
            .await?;
        self.audit_log
            .record(
                caller,
                "grant.revoked",
                Some(&user.username),
                format!(
                    "client {client_id}: {} consent, {revoked} refresh-token families revoked",
                    if forgot { "forgot the" } else { "no" }
                ),
            )
            .await;
        Ok(())
    }
}
