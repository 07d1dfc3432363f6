//! The storage interface. Core decides; a store only keeps records. SQLite and PostgreSQL
//! implementations live in the server crate; `memory::MemoryStore` (feature `test-util`)
//! serves tests.
//!
//! The interface is split by role ([`UserStore`], [`ClientStore`], [`RefreshTokenStore`],
//! [`AccessTokenDenyList`], [`AuthorizationCodeStore`], [`ConsentStore`], [`AuditStore`],
//! [`SignInFailureStore`], [`AccountLinkStore`], [`MailOutbox`], [`BrowserSessionStore`],
//! [`SecondFactorStore`], [`FederationStore`], [`BackchannelLogoutStore`], [`ThirdPartyStore`],
//! [`Housekeeping`]) so that a flow asks only for what it uses;
//! [`Store`] is all of them, what the engine holds (`Arc<dyn Store>`). A `&dyn Store`
//! coerces to any one role (`&dyn UserStore`).

#[cfg(any(test, feature = "test-util"))]
pub mod memory;
mod records;
mod roles;

use crate::user::User;

pub use records::{
    AccountLink, AuthorizationCode, BrowserSession, Consent, Factor, FactorKind, LinkPurpose,
    LogoutDelivery, LogoutDeliveryCounts, OutboxCounts, OutboxMessage, PushedRequest,
    QueuedLogouts, RefreshFamily, RefreshTokenRecord, RegistrationToken, Resource, SignInFailures,
};
pub use roles::{
    AccessTokenDenyList, AccountLinkStore, ActivityStore, AuditStore, AuthorizationCodeStore,
    BackchannelLogoutStore, BrowserSessionStore, ClientStore, ConsentStore, FederationStore,
    Housekeeping, MailOutbox, RefreshTokenStore, SecondFactorStore, SignInFailureStore,
    ThirdPartyStore, UserStore,
};

/// Stores `user` if its record is still at `user.version` ([`UserStore::update_user`]),
/// and then counts `user.version` up as the store did. False: no such user, or changed
/// since it was read.
pub async fn save_user(store: &dyn UserStore, user: &mut User) -> Result<bool, StoreError> {
    let saved = store.update_user(user).await?;
    if saved {
        user.version += 1;
    }
    Ok(saved)
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique constraint was violated (e.g. the user name is taken).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database cannot be reached (connection refused, pool timed out).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupted data.
    #[error("database error: {0}")]
    Other(String),
}

/// Storage for everything Sigil keeps: every role at once. Implemented for any type that
/// implements all the roles; implement those, not this.
pub trait Store:
    UserStore
    + ClientStore
    + RefreshTokenStore
    + AccessTokenDenyList
    + AuthorizationCodeStore
    + ConsentStore
    + AuditStore
    + SignInFailureStore
    + AccountLinkStore
    + MailOutbox
    + BrowserSessionStore
    + SecondFactorStore
    + FederationStore
    + BackchannelLogoutStore
    + ThirdPartyStore
    + ActivityStore
    + Housekeeping
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: UserStore
        + ClientStore
        + RefreshTokenStore
        + AccessTokenDenyList
        + AuthorizationCodeStore
        + ConsentStore
        + AuditStore
        + SignInFailureStore
        + AccountLinkStore
        + MailOutbox
        + BrowserSessionStore
        + SecondFactorStore
        + FederationStore
        + BackchannelLogoutStore
        + ThirdPartyStore
        + ActivityStore
        + Housekeeping
        + 'static
{
}

/// A store failure as a protocol error: unavailability is `temporarily_unavailable`,
/// anything else `server_error`; the store's text is kept as the cause, for the log.
impl From<StoreError> for crate::error::OAuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => Self::store_unavailable(cause),
            other => Self::server_error(&other),
        }
    }
}
