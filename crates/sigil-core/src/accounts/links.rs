//! The links sent by mail and what following one does: verify an address, reset a
//! forgotten password, confirm a new address.

use super::{capitalise, AccountError, Accounts};
use crate::audit::{Actor, Caller};
use crate::mail::MailKind;
use crate::secret::Secret;
use crate::store::{AccountLink, LinkPurpose};
use crate::user::{email_key, normalize_email, validate_email, User};

impl Accounts {
    /// Uses a link for `purpose` once, and the account it is for, if it still counts.
    async fn use_link(
        &self,
        token: &Secret,
        purpose: LinkPurpose,
    ) -> Result<(AccountLink, User), AccountError> {
        let now = self.now();
        let hash = token.storage_hash();
        // Read first: a link for another account state (a reset after a password change)
        // is refused without being used up, and says nothing more than "not valid".
        let link = self
            .store
            .find_account_link(&hash)
            .await?
            .filter(|l| l.purpose == purpose && l.used_at.is_none() && l.expires_at > now)
            .ok_or(AccountError::InvalidLink)?;
        let user = match &link.user_id {
            Some(id) => self.store.find_user(id).await?,
            None => None,
        }
        .filter(|u| !u.is_disabled)
        .ok_or(AccountError::InvalidLink)?;
        let still_counts = match purpose {
            // Any password change (or end of all sessions) since the link was made voids it.
            LinkPurpose::ResetPassword => user.session_epoch == link.session_epoch,
            // The address it proves must still be the account's.
            LinkPurpose::VerifyEmail => {
                user.email.as_deref().map(email_key) == link.email.as_deref().map(email_key)
            }
            // A password change (or any end of all sessions) since voids an address change
            // too: a thief's pending change does not outlive the owner's recovery.
            LinkPurpose::ChangeEmail => user.session_epoch == link.session_epoch,
            LinkPurpose::Invitation => true,
        };
        if !still_counts {
            return Err(AccountError::InvalidLink);
        }
        let link = self
            .store
            .consume_account_link(&hash, purpose, now)
            .await?
            .ok_or(AccountError::InvalidLink)?;
        Ok((link, user))
    }

    /// Follows a verification link: the account's address counts as verified.
    pub async fn verify_email(
        &self,
        caller: &Caller,
        token: &Secret,
    ) -> Result<User, AccountError> {
        let (_, mut user) = self.use_link(token, LinkPurpose::VerifyEmail).await?;
        user.email_verified = true;
        user.updated_at = self.now();
        if !crate::store::save_user(&*self.store, &mut user).await? {
            return Err(AccountError::Changed);
        }
        self.audit_log
            .record(
                &caller.acting_as(actor(&user)),
                "user.email_verified",
                Some(&user.username),
                "",
            )
            .await;
        Ok(user)
    }

    /// Mails a new verification link to an unverified account, at most a few times per
    /// account and per address (then the request is refused as throttled).
    pub async fn resend_verification(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<(), AccountError> {
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        if user.email_verified || user.email.is_none() {
            return Ok(());
        }
        self.mail_throttle(caller, &user.id).await?;
        self.send_verification(&user).await?;
        self.audit_log
            .record(
                caller,
                "user.verification_sent",
                Some(&user.username),
                "verification link mailed again",
            )
            .await;
        Ok(())
    }

    /// Mails a verification link for an account an admin made (or asked for it again),
    /// without the self-service limits.
    pub async fn mail_verification(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<(), AccountError> {
        let user = self.existing_user(user_id).await?;
        if user.email_verified || user.email.is_none() {
            return Ok(());
        }
        self.send_verification(&user).await?;
        self.audit_log
            .record(
                caller,
                "user.verification_sent",
                Some(&user.username),
                "verification link mailed by an admin",
            )
            .await;
        Ok(())
    }

    /// The per-address and per-account limits on mails asked for.
    async fn mail_throttle(&self, caller: &Caller, user_id: &str) -> Result<(), AccountError> {
        if let Some(address) = &caller.address {
            self.throttle(
                &format!("mail:address:{}", crate::throttle::address_key(address)),
                self.config.mails_per_address,
            )
            .await?;
        }
        self.throttle(
            &format!("mail:account:{user_id}"),
            self.config.mails_per_account,
        )
        .await
    }

    /// `/forgot-password`: when an account has this address (and is enabled), mails it a
    /// reset link. Whether one exists is never told: the caller answers the same either
    /// way, and should not wait for this to finish (see the server's page). Throttled per
    /// address (refused, which tells nothing about any account) and per account (silently:
    /// no more mail).
    pub async fn request_password_reset(
        &self,
        caller: &Caller,
        email: &str,
    ) -> Result<(), AccountError> {
        let email = normalize_email(email);
        if validate_email(&email).is_err() {
            return Ok(());
        }
        let Some(user) = self.store.find_user_by_email(&email).await? else {
            self.audit_log
                .record(
                    caller,
                    "user.password_reset_requested",
                    None,
                    "no account has this address; nothing sent",
                )
                .await;
            return Ok(());
        };
        if user.is_disabled {
            return Ok(());
        }
        if self
            .throttle(
                &format!("mail:account:{}", user.id),
                self.config.mails_per_account,
            )
            .await
            .is_err()
        {
            tracing::info!(user = %user.id, "password reset mail throttled");
            return Ok(());
        }
        let Some(to) = user.email.clone() else {
            return Ok(());
        };
        let link = self
            .make_link(
                LinkPurpose::ResetPassword,
                Some(&user),
                Some(&to),
                self.config.reset_ttl,
                "/reset-password",
            )
            .await?;
        self.send(
            &to,
            MailKind::PasswordReset {
                username: user.username.clone(),
                link,
                minutes: self.config.reset_ttl / 60,
            },
        )
        .await?;
        self.audit_log
            .record(
                caller,
                "user.password_reset_requested",
                Some(&user.username),
                "reset link mailed",
            )
            .await;
        Ok(())
    }

    /// Refuses a request from this address when it asked for too many mails already
    /// (before the page looks anything up).
    pub async fn check_mail_request_allowed(&self, caller: &Caller) -> Result<(), AccountError> {
        match &caller.address {
            Some(address) => {
                self.throttle(
                    &format!("mail:address:{}", crate::throttle::address_key(address)),
                    self.config.mails_per_address,
                )
                .await
            }
            None => Ok(()),
        }
    }

    /// Whether a reset link is still good (for showing its form), without using it.
    pub async fn check_reset_link(&self, token: &Secret) -> Result<User, AccountError> {
        let now = self.now();
        let link = self
            .store
            .find_account_link(&token.storage_hash())
            .await?
            .filter(|l| {
                l.purpose == LinkPurpose::ResetPassword && l.used_at.is_none() && l.expires_at > now
            })
            .ok_or(AccountError::InvalidLink)?;
        let user = match &link.user_id {
            Some(id) => self.store.find_user(id).await?,
            None => None,
        }
        .filter(|u| !u.is_disabled && u.session_epoch == link.session_epoch)
        .ok_or(AccountError::InvalidLink)?;
        Ok(user)
    }

    /// Follows a reset link with a new password: the password is set, every session,
    /// refresh family and access token of the user ends, other reset links stop working,
    /// and the user is told by mail. A following link also proves the address.
    pub async fn reset_password(
        &self,
        caller: &Caller,
        token: &Secret,
        password: Secret,
    ) -> Result<User, AccountError> {
        let user = self.check_reset_link(token).await?;
        // The rules first, so that a refused password leaves the link usable.
        let hash = self
            .hash_new_password(&password, &user.username, user.email.as_deref())
            .await?;
        let (link, mut user) = self.use_link(token, LinkPurpose::ResetPassword).await?;
        user.password_hash = hash;
        user.must_change_password = false;
        if user.email.as_deref().map(email_key) == link.email.as_deref().map(email_key) {
            user.email_verified = true;
        }
        let revoked = self.save_and_end_sessions(&mut user).await?;
        self.store
            .void_account_links(&user.id, LinkPurpose::ResetPassword, self.now())
            .await?;
        self.store
            .clear_sign_in_failures(&crate::throttle::account_subject(&user.username))
            .await?;
        self.audit_log
            .record(
                &caller.acting_as(actor(&user)),
                "user.password_reset",
                Some(&user.username),
                format!(
                    "by a reset link; sessions ended, {revoked} refresh-token families revoked"
                ),
            )
            .await;
        if let Some(email) = user.email.clone() {
            self.send(
                &email,
                MailKind::PasswordChanged {
                    username: user.username.clone(),
                    by_reset: true,
                },
            )
            .await?;
        }
        Ok(user)
    }

    /// Starts an address change: the current password is required; the new address gets a
    /// link, and replaces the old one only once the link is followed. Whether another
    /// account has the address is not told (that address's owner is mailed instead), and
    /// the limits come before any look-up.
    pub async fn request_email_change(
        &self,
        caller: &Caller,
        user_id: &str,
        new_email: &str,
        current: Secret,
    ) -> Result<(), AccountError> {
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let email = normalize_email(new_email);
        validate_email(&email).map_err(|m| AccountError::field("email", capitalise(m)))?;
        if user.email.as_deref().map(email_key) == Some(email_key(&email)) {
            return Err(AccountError::field(
                "email",
                "This is your address already.",
            ));
        }
        self.check_current_password(&user, current).await?;
        self.mail_throttle(caller, &user.id).await?;
        if let Some(owner) = self.store.find_user_by_email(&email).await? {
            self.mail_account_exists(&owner).await?;
            self.audit_log
                .record(
                    caller,
                    "user.email_change_requested",
                    Some(&user.username),
                    "the new address belongs to another account; nothing sent to it but a notice",
                )
                .await;
            return Ok(());
        }
        self.store
            .void_account_links(&user.id, LinkPurpose::ChangeEmail, self.now())
            .await?;
        let link = self
            .make_link(
                LinkPurpose::ChangeEmail,
                Some(&user),
                Some(&email),
                self.config.verify_ttl,
                "/verify-email",
            )
            .await?;
        self.send(
            &email,
            MailKind::ConfirmNewEmail {
                username: user.username.clone(),
                link,
                hours: self.config.verify_ttl / 3600,
            },
        )
        .await?;
        self.audit_log
            .record(
                caller,
                "user.email_change_requested",
                Some(&user.username),
                "confirmation mailed to the new address",
            )
            .await;
        Ok(())
    }

    /// The address a `/verify-email` link would confirm, if the link is still good, without
    /// using it (the page asks for a click first: mail scanners that fetch every link must
    /// not confirm addresses).
    pub async fn check_email_link(&self, token: &Secret) -> Result<String, AccountError> {
        let now = self.now();
        let link = self
            .store
            .find_account_link(&token.storage_hash())
            .await?
            .filter(|l| {
                matches!(
                    l.purpose,
                    LinkPurpose::VerifyEmail | LinkPurpose::ChangeEmail
                ) && l.used_at.is_none()
                    && l.expires_at > now
            })
            .ok_or(AccountError::InvalidLink)?;
        link.email.ok_or(AccountError::InvalidLink)
    }

    /// Follows a link from mail at `/verify-email`: a verification of the account's
    /// address, or the confirmation of a new one (which replaces the old, and the old is
    /// told).
    pub async fn follow_email_link(
        &self,
        caller: &Caller,
        token: &Secret,
    ) -> Result<User, AccountError> {
        let purpose = self
            .store
            .find_account_link(&token.storage_hash())
            .await?
            .map(|l| l.purpose);
        match purpose {
            Some(LinkPurpose::VerifyEmail) => self.verify_email(caller, token).await,
            Some(LinkPurpose::ChangeEmail) => self.confirm_email_change(caller, token).await,
            _ => Err(AccountError::InvalidLink),
        }
    }

    async fn confirm_email_change(
        &self,
        caller: &Caller,
        token: &Secret,
    ) -> Result<User, AccountError> {
        let (link, mut user) = self.use_link(token, LinkPurpose::ChangeEmail).await?;
        let Some(new_email) = link.email else {
            return Err(AccountError::InvalidLink);
        };
        let old_email = user.email.replace(new_email.clone());
        user.email_verified = true;
        user.updated_at = self.now();
        match crate::store::save_user(&*self.store, &mut user).await {
            Ok(true) => {}
            Ok(false) => return Err(AccountError::Changed),
            Err(crate::store::StoreError::Conflict(_)) => {
                return Err(AccountError::field(
                    "email",
                    "Another account has this e-mail address now.",
                ))
            }
            Err(error) => return Err(error.into()),
        }
        self.store
            .void_account_links(&user.id, LinkPurpose::VerifyEmail, self.now())
            .await?;
        // A reset link sent to the old address must not outlive the change.
        self.store
            .void_account_links(&user.id, LinkPurpose::ResetPassword, self.now())
            .await?;
        self.audit_log
            .record(
                &caller.acting_as(actor(&user)),
                "user.email_changed",
                Some(&user.username),
                "the new address was confirmed",
            )
            .await;
        if let Some(old) = old_email {
            self.send(
                &old,
                MailKind::EmailChanged {
                    username: user.username.clone(),
                    new_email,
                },
            )
            .await?;
        }
        Ok(user)
    }
}

pub(super) fn actor(user: &User) -> Actor {
    Actor::User {
        id: user.id.clone(),
        name: user.username.clone(),
    }
}
