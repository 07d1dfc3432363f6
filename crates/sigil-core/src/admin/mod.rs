//! Administration: registering and editing clients, managing users and what they granted,
//! and reading what the console and the command line list (users, clients, the audit log).
//! [`Admin`] is the one way the admin pages and the command line reach the store, so both
//! follow the same rules and leave the same audit trail. Every change takes the [`Caller`].

mod activity;
mod clients;
mod records;
mod resources;
mod sessions;
mod usage;
mod users;

pub use activity::ClientUsage;
pub use records::{AuditVerdict, Overview};
pub use sessions::{
    AdminSession, BadCursor, SessionClient, SessionCursor, SessionsPage, SESSION_ID_BYTES,
};
pub use usage::{LastSignIn, LinkedIdentity, SignInFacts, SignInMethod};

use crate::audit::AuditLog;
use crate::authority::{Authority, ClientCache};
use crate::client::Client;
use crate::clock::Clock;
use crate::cpu::CpuPool;
use crate::password::PasswordHasher;
use crate::password_rules::{check_new_password, PasswordContext};
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use crate::user::User;
use std::sync::Arc;

/// The administration service. Cheap to share behind an `Arc`.
pub struct Admin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit_log: AuditLog,
    /// How passwords are hashed; `None` for a command that never sets one.
    hashing: Option<(Arc<PasswordHasher>, CpuPool)>,
    /// The protocol engine's client cache, when there is one in this process.
    clients: Option<Arc<ClientCache>>,
    /// Where the logouts of sessions an admin ends go (back-channel logout).
    logouts: crate::backchannel::LogoutQueue,
}

impl Admin {
    /// An administration service over `store` alone (the command line): no client cache to
    /// keep fresh, and no password hashing until [`Admin::with_password_hashing`].
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            audit_log: AuditLog::new(store.clone(), clock.clone()),
            logouts: crate::backchannel::LogoutQueue::new(store.clone(), clock.clone()),
            store,
            clock,
            hashing: None,
            clients: None,
        }
    }

    /// Hashes passwords with `hasher` on `pool`.
    pub fn with_password_hashing(mut self, hasher: Arc<PasswordHasher>, pool: CpuPool) -> Self {
        self.hashing = Some((hasher, pool));
        self
    }

    /// The administration service of a serving process: it shares the engine's store,
    /// clock, password pool and audit log, and forgets the engine's cached copy of a
    /// client the moment it changes.
    pub fn for_authority(authority: &Authority) -> Self {
        Self {
            store: authority.store.clone(),
            clock: authority.clock.clone(),
            audit_log: authority.audit_log.clone(),
            hashing: Some((authority.passwords.clone(), authority.password_pool.clone())),
            clients: Some(authority.clients.clone()),
            logouts: authority.logout_queue.clone(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn forget_client(&self, client_id: &str) {
        if let Some(clients) = &self.clients {
            clients.forget(client_id);
        }
    }

    fn hashing(&self) -> Result<&(Arc<PasswordHasher>, CpuPool), AdminError> {
        self.hashing.as_ref().ok_or(AdminError::NoPasswordHashing)
    }
}

/// Why an administrative action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The input breaks a rule; the message says which, in words for a form.
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    /// No such browser session, or it has ended already.
    #[error("no such session, or it has ended")]
    NoSuchSession,
    /// The password pool is full; try again shortly.
    #[error("the server is busy; try again")]
    Busy,
    /// This service was built without password hashing (a command that never sets a
    /// password asked to set one): a bug in the caller.
    #[error("password hashing is not available here")]
    NoPasswordHashing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new user, as an admin or the command line enters it.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_admin: bool,
    /// The user must pick a new password at first sign-in.
    pub must_change_password: bool,
    /// The address does not count as verified (the caller mails a verification link).
    pub unverified_email: bool,
}

/// Profile claims an admin may edit.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// One application a user granted access to: a remembered consent, live refresh-token
/// families, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGrant {
    pub client_id: String,
    /// `None` when the client has been deleted meanwhile.
    pub client_name: Option<String>,
    /// The consented scope, if consent was remembered.
    pub consented_scope: Option<String>,
    pub consented_at: Option<i64>,
    /// How many refresh-token families (signed-in devices) are live.
    pub live_sessions: usize,
    /// The newest live family's scope.
    pub token_scope: Option<String>,
    /// When the app last got tokens for the user (a code exchange or a refresh that
    /// issued a refresh token), if it ever did.
    pub last_used_at: Option<i64>,
}

fn optional(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn validate_email(email: &Option<String>) -> Result<(), AdminError> {
    if let Some(email) = email {
        crate::user::validate_email(email)
            .map_err(|_| AdminError::Invalid(format!("{email:?} is not an email address")))?;
    }
    Ok(())
}

fn validate_name(name: &Option<String>) -> Result<(), AdminError> {
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 200 || crate::user::has_invisible_controls(n))
    {
        return Err(AdminError::Invalid(
            "the name must be at most 200 characters, without control characters".into(),
        ));
    }
    Ok(())
}

impl Admin {
    /// Checks a new password for `user` against the rules, then hashes it.
    async fn hash_password(
        &self,
        password: Secret,
        username: &str,
        email: Option<&str>,
    ) -> Result<String, AdminError> {
        check_new_password(password.expose(), PasswordContext { username, email })
            .map_err(AdminError::Invalid)?;
        self.hash(password).await
    }

    /// Hashes a password with argon2id on the password pool, whatever its length.
    async fn hash(&self, password: Secret) -> Result<String, AdminError> {
        let (hasher, pool) = self.hashing()?;
        let hasher = hasher.clone();
        pool.run(move || hasher.hash(password.expose()))
            .await
            .map_err(|_| AdminError::Busy)?
            .map_err(AdminError::Invalid)
    }

    /// Why an update changed nothing: the user is gone, or was changed meanwhile (by
    /// another admin, or by themselves) and the change would have undone that.
    async fn not_saved(&self, user_id: &str) -> AdminError {
        match self.store.find_user(user_id).await {
            Ok(Some(_)) => AdminError::Invalid(
                "the account was changed meanwhile: reload the page and try again".into(),
            ),
            Ok(None) => AdminError::NotFound,
            Err(error) => error.into(),
        }
    }

    async fn existing_user(&self, user_id: &str) -> Result<User, AdminError> {
        self.store
            .find_user(user_id)
            .await?
            .ok_or(AdminError::NotFound)
    }

    async fn existing_client(&self, client_id: &str) -> Result<Client, AdminError> {
        self.store
            .find_client(client_id)
            .await?
            .ok_or(AdminError::NotFound)
    }
}
