//! The storage interface. Core decides; a store only keeps records. SQLite and PostgreSQL
//! implementations live in the server crate; [`memory::MemoryStore`] serves core tests.

pub mod memory;

use crate::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::client::Client;
use crate::throttle::ThrottlePolicy;
use crate::user::User;
use async_trait::async_trait;

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

/// A chain of refresh tokens that descend from one grant (RFC 9700 §4.14.2). Revoking the
/// family ends every token in it, and every access token issued with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    /// The scope granted; every refresh token of the family carries exactly this scope.
    pub scope: String,
    pub auth_time: i64,
    pub created_at: i64,
    /// Absolute end of the family, whatever the rotations.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// One refresh token. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub id: String,
    pub family_id: String,
    pub token_hash: String,
    pub parent_id: Option<String>,
    pub created_at: i64,
    /// Idle expiry.
    pub expires_at: i64,
    /// Set when the token was exchanged; a second use is theft.
    pub used_at: Option<i64>,
    /// With a refresh reuse grace window: the response that rotated this token, sealed
    /// under a key only this token's holder can derive (see `grant::refresh_seal`).
    pub sealed_successor: Option<String>,
}

/// Failed sign-ins counted for one subject (`account:<name>` or `address:<ip>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFailures {
    pub subject: String,
    pub failures: i64,
    pub first_failure_at: i64,
    pub last_failure_at: i64,
}

/// An authorization code (RFC 6749 §4.1.2). Only the SHA-256 of the code is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// Whether the authorization request named the redirect URI (then the token request
    /// must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    pub scope: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// What the exchange issued, so that a replay can revoke it (RFC 6749 §4.1.2).
    pub family_id: Option<String>,
    pub access_token_jti: Option<String>,
    pub access_token_exp: Option<i64>,
}

/// A user's remembered consent for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
}

/// Storage for everything Sigil keeps. Implementations must give every method the same
/// meaning; the conformance suite in the server crate checks that they do.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Replaces a user's record (matched by id). Returns false when there is no such user.
    async fn update_user(&self, user: &User) -> Result<bool, StoreError>;
    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    async fn count_users(&self) -> Result<i64, StoreError>;
    /// Replaces a user's password hash with `new_hash` only while it is still
    /// `expected_hash` (a rehash must not undo a password changed meanwhile). Returns
    /// whether it did.
    async fn replace_password_hash(
        &self,
        user_id: &str,
        expected_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    async fn create_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// The longest per-client access-token lifetime override, if any client has one.
    async fn max_client_access_token_ttl(&self) -> Result<Option<i64>, StoreError>;

    /// Creates a family together with its first token, atomically.
    async fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError>;
    async fn find_refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError>;
    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError>;
    /// [`Store::find_refresh_token`] together with the family's user (`None` if the user
    /// is gone): the refresh grant's one read. Databases answer it with one query.
    async fn find_refresh_token_and_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily, Option<User>)>, StoreError> {
        let Some((token, family)) = self.find_refresh_token(token_hash).await? else {
            return Ok(None);
        };
        let user = self.find_user(&family.user_id).await?;
        Ok(Some((token, family, user)))
    }
    /// Atomically marks `used_id` as used at `now` (keeping `sealed_successor` on it) and
    /// stores `successor`, only if `used_id` was unused and its family unrevoked. Returns
    /// false (and writes nothing) otherwise: exactly one of any number of concurrent calls
    /// for one token succeeds. A `true` is durable before this returns.
    async fn rotate_refresh_token(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
        sealed_successor: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Revokes a family (idempotent; the first revocation time is kept).
    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> Result<(), StoreError>;

    /// Adds an access token's `jti` to the deny list until its expiry.
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;

    async fn create_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;
    async fn find_authorization_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError>;
    /// Marks an unused code used and records what its exchange issues, atomically. Returns
    /// false (writing nothing) when the code was already used: exactly one exchange wins.
    async fn consume_authorization_code(
        &self,
        code_hash: &str,
        now: i64,
        family_id: Option<&str>,
        access_token_jti: &str,
        access_token_exp: i64,
    ) -> Result<bool, StoreError>;

    /// The scopes a user has consented to for a client, space-separated.
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Records (replaces) a user's consent for a client.
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Clients whose name or id contains `search` (case-insensitive), by name; at most `limit`.
    async fn list_clients(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, StoreError>;
    /// Replaces a client's record (matched by id). Returns false when there is no such client.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    /// Deletes a client with its refresh families, codes and consents.
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError>;

    /// Users whose user name, name or email contains `search` (case-insensitive), by user
    /// name; at most `limit`.
    async fn list_users(&self, search: Option<&str>, limit: i64) -> Result<Vec<User>, StoreError>;

    /// A user's remembered consents.
    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError>;
    /// Forgets a user's consent for a client.
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError>;
    /// A user's refresh families that are neither revoked nor expired at `now`.
    async fn list_live_refresh_families(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError>;
    /// Revokes every unrevoked family of a user (of one client, if given). Returns how many.
    async fn revoke_user_refresh_families(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Appends a record to the audit log as the next link of the hash chain
    /// ([`crate::audit::chain_entry`]). Concurrent appends, from any replica, each get
    /// their own sequence number: none is lost and the chain stays linear.
    async fn append_audit(&self, record: AuditRecord) -> Result<AuditEntry, StoreError>;
    /// Entries matching the filter, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
    /// Up to `limit` entries with `seq` greater than `after_seq`, oldest first.
    async fn audit_entries_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Deletes records that can no longer matter: expired families and their tokens,
    /// expired deny-list entries, authorization codes a day after they expired. Returns how
    /// many rows went.
    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError>;

    /// The failure counts of the given subjects (absent subjects have none).
    async fn find_sign_in_failures(
        &self,
        subjects: &[String],
    ) -> Result<Vec<SignInFailures>, StoreError>;
    /// Takes a sign-in attempt's place in the count of `subject`, atomically (one
    /// conditional statement, so concurrent attempts on any replica each see the count the
    /// ones before them left): when `subject` may try at `now` under `policy` (fewer than
    /// `free` failures, a last failure older than the window, or the wait after it over;
    /// see [`ThrottlePolicy::wait`]), counts the attempt as one more failure (a count whose
    /// last failure is older than the window starts again from one) and returns `None`;
    /// otherwise writes nothing and returns the count that refuses it. An attempt that
    /// then succeeds gives its place back ([`Store::release_sign_in_attempt`]) or clears
    /// the count.
    async fn reserve_sign_in_attempt(
        &self,
        subject: &str,
        free: i64,
        policy: &ThrottlePolicy,
        now: i64,
    ) -> Result<Option<SignInFailures>, StoreError>;
    /// Gives back one place taken by [`Store::reserve_sign_in_attempt`] (never below zero).
    async fn release_sign_in_attempt(&self, subject: &str) -> Result<(), StoreError>;
    /// Forgets the failures of `subject` (after a successful sign-in).
    async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError>;
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
