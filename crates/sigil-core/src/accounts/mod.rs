//! Accounts people run themselves: sign-up (open, or by invitation), e-mail verification,
//! password reset, and what the account page changes (profile, address, password, browser
//! sessions, connected apps). Every change is audited; every mail goes through the durable
//! outbox ([`MailQueue`]); every link is single-use, expires, and is stored only as a hash.

mod links;
mod profile;
mod sessions;
#[cfg(test)]
pub(crate) mod tests;

pub use sessions::SessionInfo;

use crate::audit::{AuditLog, Caller};
use crate::authority::Authority;
use crate::clock::Clock;
use crate::cpu::CpuPool;
use crate::mail::{Link, Mail, MailKind, MailQueue};
use crate::password::PasswordHasher;
use crate::password_rules::{check_new_password, PasswordContext};
use crate::secret::{random_token, Secret};
use crate::store::{AccountLink, LinkPurpose, Store, StoreError};
use crate::throttle::ThrottlePolicy;
use crate::user::{
    email_key, normalize_email, normalize_username, validate_email, validate_username,
    AccountOrigin, User,
};
use std::sync::Arc;

/// Who may create an account at `/signup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignUpMode {
    /// Nobody: accounts are made by an admin (the default).
    #[default]
    Closed,
    /// Anybody.
    Open,
    /// Whoever has an admin's invitation link.
    Invite,
}

impl SignUpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::Invite => "invite",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "closed" => Self::Closed,
            "open" => Self::Open,
            "invite" => Self::Invite,
            _ => return None,
        })
    }
}

/// Lifetimes and limits of the account flows.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Links in mail are absolute under the issuer.
    pub issuer: String,
    pub sign_up: SignUpMode,
    /// E-mail verification links (24 h).
    pub verify_ttl: i64,
    /// Password reset links (30 min).
    pub reset_ttl: i64,
    /// Invitations (7 days).
    pub invitation_ttl: i64,
    /// Sign-ups per client address before each further one must wait (the sign-in
    /// throttle's doubling wait, `throttle`).
    pub sign_ups_per_address: i64,
    /// Reset or verification mails asked for per client address before each must wait.
    pub mails_per_address: i64,
    /// Reset or verification mails per account before each must wait.
    pub mails_per_account: i64,
    /// The waits (doubling from `base_delay`) and the window after which counts start over.
    pub throttle: ThrottlePolicy,
}

impl AccountsConfig {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            sign_up: SignUpMode::Closed,
            verify_ttl: 24 * 3600,
            reset_ttl: 30 * 60,
            invitation_ttl: 7 * 86_400,
            sign_ups_per_address: 5,
            mails_per_address: 10,
            mails_per_account: 3,
            throttle: ThrottlePolicy::default(),
        }
    }
}

/// Why an account action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Form fields break rules: each with a sentence for the form.
    #[error("invalid input")]
    Fields(Vec<FieldError>),
    /// The link is unknown, used, expired, or voided by a later change.
    #[error("the link is not valid")]
    InvalidLink,
    /// Sign-up is closed, or needs an invitation.
    #[error("sign-up is not open")]
    SignUpClosed,
    /// Too many requests from this address or for this account; wait a while.
    #[error("too many requests")]
    Throttled,
    /// A wrong current password on the account page.
    #[error("the current password is not correct")]
    WrongPassword,
    #[error("not found")]
    NotFound,
    /// The account changed while this change was made (another change won); try again.
    #[error("the account changed meanwhile")]
    Changed,
    /// The password pool is full; try again shortly.
    #[error("the server is busy; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccountError {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Fields(vec![FieldError {
            field,
            message: message.into(),
        }])
    }
}

/// The messages of `fields`, as one text (for a page that shows them together).
pub fn field_messages(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One form field's problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `username`, `email`, `name`, `password`, `current_password`.
    pub field: &'static str,
    pub message: String,
}

/// What a sign-up came to.
#[derive(Debug, Clone)]
pub enum SignUpOutcome {
    /// The account was made.
    Created(User),
    /// The address has an account already; its owner was mailed. Say "check your mail".
    AddressTaken { email: String },
}

/// What someone typed into the sign-up form.
#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub username: String,
    pub email: String,
    pub name: Option<String>,
    /// The invitation link's token, when sign-up is by invitation.
    pub invitation: Option<Secret>,
}

/// The account service. Cheap to share behind an `Arc`.
pub struct Accounts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit_log: AuditLog,
    hashing: (Arc<PasswordHasher>, CpuPool),
    mail: Arc<dyn MailQueue>,
    config: AccountsConfig,
    /// Where the logouts of ended sessions go (back-channel logout).
    logouts: crate::backchannel::LogoutQueue,
}

impl Accounts {
    /// The account service of a serving process: the engine's store, clock, password pool
    /// and audit log.
    pub fn for_authority(
        authority: &Authority,
        mail: Arc<dyn MailQueue>,
        config: AccountsConfig,
    ) -> Self {
        Self {
            store: authority.store.clone(),
            clock: authority.clock.clone(),
            audit_log: authority.audit_log.clone(),
            hashing: (authority.passwords.clone(), authority.password_pool.clone()),
            mail,
            config,
            logouts: authority.logout_queue.clone(),
        }
    }

    /// An account service over a store alone (the command line).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hashing: (Arc<PasswordHasher>, CpuPool),
        mail: Arc<dyn MailQueue>,
        config: AccountsConfig,
    ) -> Self {
        Self {
            audit_log: AuditLog::new(store.clone(), clock.clone()),
            logouts: crate::backchannel::LogoutQueue::new(store.clone(), clock.clone()),
            store,
            clock,
            hashing,
            mail,
            config,
        }
    }

    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Takes a place in a throttle count (`sign_up:…`, `mail:…`): none left, and the
    /// action is refused. Places are never given back: each request counts.
    async fn throttle(&self, subject: &str, free: i64) -> Result<(), AccountError> {
        let refused = self
            .store
            .reserve_sign_in_attempt(subject, free, &self.config.throttle, self.now())
            .await?;
        match refused {
            None => Ok(()),
            Some(_) => Err(AccountError::Throttled),
        }
    }

    /// Checks a new password against the rules for `user`, then hashes it on the pool.
    async fn hash_new_password(
        &self,
        password: &Secret,
        username: &str,
        email: Option<&str>,
    ) -> Result<String, AccountError> {
        check_new_password(password.expose(), PasswordContext { username, email })
            .map_err(|message| AccountError::field("password", message))?;
        let (hasher, pool) = &self.hashing;
        let hasher = hasher.clone();
        let password = password.clone();
        pool.run(move || hasher.hash(password.expose()))
            .await
            .map_err(|_| AccountError::Busy)?
            .map_err(|e| AccountError::Store(StoreError::Other(e)))
    }

    /// Makes a single-use link: a 256-bit token, its hash stored with what it is for.
    async fn make_link(
        &self,
        purpose: LinkPurpose,
        user: Option<&User>,
        email: Option<&str>,
        ttl: i64,
        path: &str,
    ) -> Result<Link, AccountError> {
        let token = Secret::generate();
        let now = self.now();
        self.store
            .create_account_link(&AccountLink {
                token_hash: token.storage_hash(),
                purpose,
                user_id: user.map(|u| u.id.clone()),
                email: email.map(str::to_string),
                session_epoch: user.map_or(0, |u| u.session_epoch),
                created_at: now,
                expires_at: now + ttl,
                used_at: None,
            })
            .await?;
        let base = self.config.issuer.trim_end_matches('/');
        Ok(Link::new(format!("{base}{path}?token={}", token.expose())))
    }

    async fn send(&self, to: &str, kind: MailKind) -> Result<(), AccountError> {
        self.mail
            .queue(Mail {
                to: to.to_string(),
                kind,
            })
            .await?;
        Ok(())
    }

    /// Creates an account from the sign-up form. Open sign-up makes an unverified account
    /// and mails a verification link; an invitation (single-use) makes a verified one when
    /// the address is the invited one. Sign-ups are throttled per client address.
    ///
    /// An address that has an account already is not told to the form (that would let
    /// anyone find out who has an account, which the reset page hides): the answer is
    /// [`SignUpOutcome::AddressTaken`], which the page words like a new account, the same
    /// password work is done, and the address's owner is mailed instead.
    pub async fn sign_up(
        &self,
        caller: &Caller,
        form: SignUp,
        password: Secret,
    ) -> Result<SignUpOutcome, AccountError> {
        let invitation_hash = form.invitation.as_ref().map(Secret::storage_hash);
        let invited = match (self.config.sign_up, &invitation_hash) {
            (SignUpMode::Closed, _) => return Err(AccountError::SignUpClosed),
            (SignUpMode::Invite, None) => return Err(AccountError::SignUpClosed),
            (_, Some(hash)) => {
                let link = self.store.find_account_link(hash).await?;
                match link.filter(|l| {
                    l.purpose == LinkPurpose::Invitation
                        && l.used_at.is_none()
                        && l.expires_at > self.now()
                }) {
                    Some(link) => Some(link),
                    None => return Err(AccountError::InvalidLink),
                }
            }
            (SignUpMode::Open, None) => None,
        };
        let username = normalize_username(&form.username);
        let email = normalize_email(&form.email);
        let name = form
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        let mut errors = Vec::new();
        if let Err(message) = validate_username(&username) {
            errors.push(FieldError {
                field: "username",
                message: capitalise(message),
            });
        }
        if let Err(message) = validate_email(&email) {
            errors.push(FieldError {
                field: "email",
                message: capitalise(message),
            });
        }
        if let Some(message) = name.as_deref().and_then(name_problem) {
            errors.push(FieldError {
                field: "name",
                message: message.into(),
            });
        }
        if let Err(message) = check_new_password(
            password.expose(),
            PasswordContext {
                username: &username,
                email: Some(&email),
            },
        ) {
            errors.push(FieldError {
                field: "password",
                message,
            });
        }
        if !errors.is_empty() {
            return Err(AccountError::Fields(errors));
        }
        if let Some(address) = &caller.address {
            self.throttle(
                &format!("sign_up:{}", crate::throttle::address_key(address)),
                self.config.sign_ups_per_address,
            )
            .await?;
        }
        let verified_by_invitation = invited
            .as_ref()
            .and_then(|link| link.email.as_deref())
            .is_some_and(|invited| email_key(invited) == email_key(&email));
        // The hash comes before any look-up, so that a taken address costs the same time.
        let password_hash = self
            .hash_new_password(&password, &username, Some(&email))
            .await?;
        let now = self.now();
        let user = User {
            id: random_token(16),
            username,
            email: Some(email),
            email_verified: verified_by_invitation,
            name,
            password_hash,
            is_admin: false,
            is_disabled: false,
            must_change_password: false,
            requires_second_factor: false,
            session_epoch: 0,
            origin: if invited.is_some() {
                AccountOrigin::Invitation
            } else {
                AccountOrigin::SignUp
            },
            version: 0,
            created_at: now,
            updated_at: now,
        };
        // A name or address that is taken is said before the invitation is used up (the
        // unique keys still decide a race).
        if self
            .store
            .find_user_by_username(&user.username)
            .await?
            .is_some()
        {
            return Err(conflict("username_key"));
        }
        if let Some(email) = &user.email {
            if let Some(owner) = self.store.find_user_by_email(email).await? {
                return self.address_taken(caller, &owner, email).await;
            }
        }
        // The invitation is used up before the account is made, so that one link makes one
        // account even when two sign-ups race with it.
        if let Some(hash) = &invitation_hash {
            if self
                .store
                .consume_account_link(hash, LinkPurpose::Invitation, now)
                .await?
                .is_none()
            {
                return Err(AccountError::InvalidLink);
            }
        }
        match self.store.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(message)) if message.contains("email_key") => {
                // Taken since the check above, by a sign-up racing this one.
                if let Some(owner) = self
                    .store
                    .find_user_by_email(&email_key(user.email.as_deref().unwrap_or("")))
                    .await?
                {
                    return self
                        .address_taken(caller, &owner, user.email.as_deref().unwrap_or(""))
                        .await;
                }
                return Err(conflict(&message));
            }
            Err(StoreError::Conflict(message)) => return Err(conflict(&message)),
            Err(error) => return Err(error.into()),
        }
        let detail = match (&invited, user.email_verified) {
            (Some(_), true) => "by invitation; address verified by the invitation",
            (Some(_), false) => "by invitation, with another address: verification mailed",
            (None, _) => "verification mailed",
        };
        self.audit_log
            .record(
                &caller.acting_as(crate::audit::Actor::User {
                    id: user.id.clone(),
                    name: user.username.clone(),
                }),
                "user.signed_up",
                Some(&user.username),
                detail,
            )
            .await;
        if !user.email_verified {
            self.send_verification(&user).await?;
        }
        Ok(SignUpOutcome::Created(user))
    }

    /// Tells the owner of an address that someone tried to use it for another account.
    async fn mail_account_exists(&self, owner: &User) -> Result<(), AccountError> {
        let Some(to) = owner.email.as_deref() else {
            return Ok(());
        };
        let base = self.config.issuer.trim_end_matches('/');
        self.send(
            to,
            MailKind::AccountExists {
                username: owner.username.clone(),
                login: format!("{base}/login"),
                reset: format!("{base}/forgot-password"),
            },
        )
        .await
    }

    /// A sign-up with an address that has an account: its owner is told by mail.
    async fn address_taken(
        &self,
        caller: &Caller,
        owner: &User,
        email: &str,
    ) -> Result<SignUpOutcome, AccountError> {
        self.mail_account_exists(owner).await?;
        self.audit_log
            .record(
                caller,
                "user.sign_up_address_taken",
                Some(&owner.username),
                "a sign-up gave this account's address; its owner was mailed",
            )
            .await;
        Ok(SignUpOutcome::AddressTaken {
            email: email.to_string(),
        })
    }

    /// Mails a new verification link for the account's address (older ones stop working).
    async fn send_verification(&self, user: &User) -> Result<(), AccountError> {
        let Some(email) = user.email.as_deref() else {
            return Ok(());
        };
        self.store
            .void_account_links(&user.id, LinkPurpose::VerifyEmail, self.now())
            .await?;
        let link = self
            .make_link(
                LinkPurpose::VerifyEmail,
                Some(user),
                Some(email),
                self.config.verify_ttl,
                "/verify-email",
            )
            .await?;
        self.send(
            email,
            MailKind::VerifyEmail {
                username: user.username.clone(),
                link,
                hours: self.config.verify_ttl / 3600,
            },
        )
        .await
    }

    /// Makes an invitation to sign up and mails it to `email`. Returns the link, for an
    /// admin to pass on by other means too.
    pub async fn invite(&self, caller: &Caller, email: &str) -> Result<Link, AccountError> {
        let email = normalize_email(email);
        validate_email(&email).map_err(|m| AccountError::field("email", capitalise(m)))?;
        if self.store.find_user_by_email(&email).await?.is_some() {
            return Err(AccountError::field(
                "email",
                "An account with this e-mail address exists already.",
            ));
        }
        let link = self
            .make_link(
                LinkPurpose::Invitation,
                None,
                Some(&email),
                self.config.invitation_ttl,
                "/signup",
            )
            .await?;
        // The sign-up page takes `invite=…`.
        let link = Link::new(link.expose().replacen("?token=", "?invite=", 1));
        self.send(
            &email,
            MailKind::Invitation {
                link: link.clone(),
                days: self.config.invitation_ttl / 86_400,
            },
        )
        .await?;
        self.audit_log
            .record(caller, "user.invited", Some(&email), "invitation mailed")
            .await;
        Ok(link)
    }

    /// The address an invitation was sent to, if the invitation is still good.
    pub async fn invitation_email(&self, token: &Secret) -> Result<String, AccountError> {
        let link = self.store.find_account_link(&token.storage_hash()).await?;
        link.filter(|l| {
            l.purpose == LinkPurpose::Invitation && l.used_at.is_none() && l.expires_at > self.now()
        })
        .and_then(|l| l.email)
        .ok_or(AccountError::InvalidLink)
    }
}

/// A unique-key conflict from the store as a field error.
fn conflict(message: &str) -> AccountError {
    if message.contains("email_key") {
        AccountError::field(
            "email",
            "An account with this e-mail address exists already. Sign in, or reset your password.",
        )
    } else {
        AccountError::field(
            "username",
            "This user name is taken. Please choose another.",
        )
    }
}

fn name_problem(name: &str) -> Option<&'static str> {
    (name.chars().count() > 200 || crate::user::has_invisible_controls(name)).then_some(
        "The name must be at most 200 characters, without control or invisible characters.",
    )
}

/// "user name must be…" as a sentence: "User name must be….".
fn capitalise(message: &str) -> String {
    let mut chars = message.chars();
    let mut sentence: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !sentence.ends_with('.') {
        sentence.push('.');
    }
    sentence
}
