//! The storage interface, one trait per role: a flow asks only for the records it uses.
//! [`super::Store`] is their union. Every implementation must give each method the same
//! meaning; the conformance suite in the server crate checks that they do.

use super::{
    AccountLink, AuthorizationCode, BrowserSession, Consent, Factor, LinkPurpose, LogoutDelivery,
    LogoutDeliveryCounts, OutboxCounts, OutboxMessage, PushedRequest, QueuedLogouts, RefreshFamily,
    RefreshTokenRecord, RegistrationToken, Resource, SignInFailures, StoreError,
};
use crate::activity::{ActivityCount, ActivityPage, ActivityQuery, ActivityRow};
use crate::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::client::Client;
use crate::federation::{FederatedIdentity, Provider};
use crate::throttle::ThrottlePolicy;
use crate::user::User;
use async_trait::async_trait;

/// User accounts. User names and e-mail addresses are unique by their keys
/// ([`crate::user::username_key`], [`crate::user::email_key`]): a second account with the
/// same key is a [`StoreError::Conflict`] whose message names `username_key` or `email_key`.
/// Of concurrent creations with one key, on any replica, exactly one succeeds.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Replaces a user's record (matched by id) if it is still at `user.version`, and
    /// counts the version up by one. Returns false, writing nothing, when there is no such
    /// user or the record changed since it was read (compare-and-set: of concurrent updates
    /// from one read, exactly one applies).
    async fn update_user(&self, user: &User) -> Result<bool, StoreError>;
    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// The user whose name has the same key as `username` (case-insensitive, normalised).
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// The user whose e-mail address has the same key as `email`.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn count_users(&self) -> Result<i64, StoreError>;
    /// Replaces a user's password hash with `new_hash` only while it is still
    /// `expected_hash` (a rehash must not undo a password changed meanwhile), counting the
    /// version up. Returns whether it did.
    async fn replace_password_hash(
        &self,
        user_id: &str,
        expected_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Users whose user name, name or email contains `search` (case-insensitive), by user
    /// name; at most `limit`.
    async fn list_users(&self, search: Option<&str>, limit: i64) -> Result<Vec<User>, StoreError>;
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// Every origin some client allows (each once, in any order).
    async fn list_client_origins(&self) -> Result<Vec<String>, StoreError>;
    /// The longest per-client access-token lifetime override, if any client has one.
    async fn max_client_access_token_ttl(&self) -> Result<Option<i64>, StoreError>;
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
}

/// Refresh-token families and their tokens (RFC 9700 §4.14.2).
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
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
    /// [`RefreshTokenStore::find_refresh_token`] together with the family's user (`None`
    /// if the user is gone): the refresh grant's one read. Databases answer it with one
    /// query.
    async fn find_refresh_token_and_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily, Option<User>)>, StoreError>;
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
    /// A user's refresh families that are neither revoked nor expired at `now`.
    async fn list_live_refresh_families(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError>;
    /// When each client last got a refresh token for the user (a code exchange or a
    /// refresh), per client id, from the user's families revoked or not: the account
    /// page's "last used".
    async fn last_refresh_by_client(&self, user_id: &str)
        -> Result<Vec<(String, i64)>, StoreError>;
    /// How many of a client's refresh families (signed-in devices, of every user) are
    /// neither revoked nor expired at `now`: counted, not loaded.
    async fn count_live_refresh_families(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<i64, StoreError>;
    /// Revokes every unrevoked family of a user (of one client, if given). Returns how many.
    async fn revoke_user_refresh_families(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError>;
}

/// Revoked access tokens, by `jti`, until they would have expired anyway (RFC 7009), and
/// the DPoP proofs already seen (RFC 9449 §11.1).
#[async_trait]
pub trait AccessTokenDenyList: Send + Sync {
    /// Adds an access token's `jti` to the deny list until its expiry (the first expiry
    /// given is kept).
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Records a DPoP proof (by `replay_key`, a digest of its key and `jti`) until
    /// `expires_at`; false when it was recorded before and has not expired (a replay), on
    /// every replica, even when two record it at once.
    async fn record_dpop_proof(
        &self,
        replay_key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// [`AccessTokenDenyList::record_dpop_proof`] for several proofs (`replay_key`,
    /// `expires_at`) of distinct replay keys, in one write where the store can: whether
    /// each was new, in order. All of them are recorded, or (on an error) none.
    async fn record_dpop_proofs(
        &self,
        proofs: &[(String, i64)],
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let mut first_uses = Vec::with_capacity(proofs.len());
        for (replay_key, expires_at) in proofs {
            first_uses.push(self.record_dpop_proof(replay_key, *expires_at, now).await?);
        }
        Ok(first_uses)
    }
}

/// Authorization codes (RFC 6749 §4.1.2).
#[async_trait]
pub trait AuthorizationCodeStore: Send + Sync {
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
}

/// What users remember consenting to, per client.
#[async_trait]
pub trait ConsentStore: Send + Sync {
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
    /// A user's remembered consents.
    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError>;
    /// Forgets a user's consent for a client.
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError>;
    /// How many users remember consenting to a client: counted, not loaded.
    async fn count_consents(&self, client_id: &str) -> Result<i64, StoreError>;
}

/// The audit log, a hash chain ([`crate::audit`]).
#[async_trait]
pub trait AuditStore: Send + Sync {
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
}

/// Failed sign-ins counted per subject, for throttling ([`crate::throttle`]).
#[async_trait]
pub trait SignInFailureStore: Send + Sync {
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
    /// then succeeds gives its place back ([`SignInFailureStore::release_sign_in_attempt`])
    /// or clears the count.
    async fn reserve_sign_in_attempt(
        &self,
        subject: &str,
        free: i64,
        policy: &ThrottlePolicy,
        now: i64,
    ) -> Result<Option<SignInFailures>, StoreError>;
    /// Gives back one place taken by [`SignInFailureStore::reserve_sign_in_attempt`]
    /// (never below zero).
    async fn release_sign_in_attempt(&self, subject: &str) -> Result<(), StoreError>;
    /// Forgets the failures of `subject` (after a successful sign-in).
    async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError>;
}

/// Single-use links sent by mail (verification, reset, invitation, address change).
#[async_trait]
pub trait AccountLinkStore: Send + Sync {
    async fn create_account_link(&self, link: &AccountLink) -> Result<(), StoreError>;
    async fn find_account_link(&self, token_hash: &str) -> Result<Option<AccountLink>, StoreError>;
    /// Marks the link used at `now` if it is for `purpose`, unused and unexpired; returns
    /// it then, and `None` (writing nothing) otherwise: of concurrent uses exactly one wins.
    async fn consume_account_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
        now: i64,
    ) -> Result<Option<AccountLink>, StoreError>;
    /// Marks every unused link of a user for `purpose` used (a newer one replaces them, or
    /// what they would do is done). Returns how many.
    async fn void_account_links(
        &self,
        user_id: &str,
        purpose: LinkPurpose,
        now: i64,
    ) -> Result<u64, StoreError>;
}

/// The durable mail outbox: a message is stored before the request that caused it is
/// answered, and delivered by a background worker on any replica.
#[async_trait]
pub trait MailOutbox: Send + Sync {
    async fn enqueue_mail(&self, message: &OutboxMessage) -> Result<(), StoreError>;
    /// Claims the pending message due longest ago (`next_attempt_at <= now`, not claimed by
    /// anyone until after `now`) until `lease_until`, and returns it: of workers on every
    /// replica, exactly one gets each message at a time.
    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<OutboxMessage>, StoreError>;
    /// Records a delivery: the message is sent and its sealed content cleared.
    async fn mark_mail_sent(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// Records a failed attempt (`error` holds no secret): tried again at
    /// `next_attempt_at`, or given up (content cleared) when that is `None`.
    async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
    /// The newest messages to `recipient`, newest first (for the console and tests).
    async fn list_outbox(
        &self,
        recipient: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
}

/// Signed-in browser sessions, so that a user can see and end them.
#[async_trait]
pub trait BrowserSessionStore: Send + Sync {
    async fn create_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError>;
    async fn find_browser_session(&self, id: &str) -> Result<Option<BrowserSession>, StoreError>;
    /// Sets `last_seen_at` (and the address) of a session.
    async fn touch_browser_session(
        &self,
        id: &str,
        address: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// A user's sessions not ended and seen since `seen_since`, the most recent first.
    async fn list_browser_sessions(
        &self,
        user_id: &str,
        seen_since: i64,
    ) -> Result<Vec<BrowserSession>, StoreError>;
    /// Every user's sessions not ended and seen since `seen_since`, the most recently seen
    /// first (ties by id, descending), at most `limit`: those after the cursor `before`
    /// (`(last_seen_at, id)`: strictly older in that order) when it is given. The console's
    /// list, one page at a time.
    async fn list_live_browser_sessions(
        &self,
        seen_since: i64,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<BrowserSession>, StoreError>;
    /// Ends a user's sessions: only `only` if given, every one but `except` if given, or all
    /// of them. Returns how many ended.
    async fn end_browser_sessions(
        &self,
        user_id: &str,
        only: Option<&str>,
        except: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError>;
}

/// Second factors and recovery codes. Every change is a single statement, atomic across
/// replicas: of concurrent uses of one TOTP step or one recovery code, exactly one succeeds.
#[async_trait]
pub trait SecondFactorStore: Send + Sync {
    /// A passkey whose credential id is taken is a [`StoreError::Conflict`].
    async fn create_factor(&self, factor: &Factor) -> Result<(), StoreError>;
    /// The user's factors, confirmed or not, oldest first.
    async fn list_factors(&self, user_id: &str) -> Result<Vec<Factor>, StoreError>;
    /// The confirmed passkey with this credential id, whoever's it is.
    async fn find_factor_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<Factor>, StoreError>;
    /// Confirms the user's unconfirmed factor `id` under `name`, noting its first use
    /// (`step`: the TOTP step of the confirming code). False when there is none.
    async fn confirm_factor(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        step: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Accepts TOTP step `step` for the confirmed factor `id` only if it is later than the
    /// last accepted one (a code is good once), noting the use. False: replayed or gone.
    async fn use_totp_step(&self, id: &str, step: i64, now: i64) -> Result<bool, StoreError>;
    /// Notes a use of the confirmed factor `id`, replacing its data when `data` is given
    /// (a passkey's counter). False when there is no such factor.
    async fn record_factor_use(
        &self,
        id: &str,
        data: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;
    async fn rename_factor(&self, user_id: &str, id: &str, name: &str) -> Result<bool, StoreError>;
    /// Deletes the user's factor `id`. With `keep_one`, only if the user keeps another
    /// confirmed factor, decided atomically: two removals at once cannot take the last
    /// two. False: no such factor, or it is the last one kept.
    async fn delete_factor(
        &self,
        user_id: &str,
        id: &str,
        keep_one: bool,
    ) -> Result<bool, StoreError>;
    /// Deletes every factor and recovery code of the user; returns the factors deleted.
    async fn delete_factors(&self, user_id: &str) -> Result<u64, StoreError>;
    /// Replaces the user's recovery codes with `hashes` (none: the user has no codes).
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError>;
    /// Marks the user's unused code with this hash used. False: no such unused code.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// The user's unused recovery codes.
    async fn count_recovery_codes(&self, user_id: &str) -> Result<i64, StoreError>;
}

/// Upstream identity providers and the identities linked to users (issuer + subject,
/// unique: one identity belongs to one user).
#[async_trait]
pub trait FederationStore: Send + Sync {
    /// A taken id is a [`StoreError::Conflict`].
    async fn create_provider(&self, provider: &Provider) -> Result<(), StoreError>;
    async fn find_provider(&self, id: &str) -> Result<Option<Provider>, StoreError>;
    /// Every provider, by name.
    async fn list_providers(&self) -> Result<Vec<Provider>, StoreError>;
    /// Deletes a provider (its linked identities stay). False when there is none.
    async fn delete_provider(&self, id: &str) -> Result<bool, StoreError>;
    async fn find_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<FederatedIdentity>, StoreError>;
    /// A user's identities, oldest first.
    async fn list_identities(&self, user_id: &str) -> Result<Vec<FederatedIdentity>, StoreError>;
    /// Links an identity; one linked already (to anyone) is a [`StoreError::Conflict`]
    /// naming `federated_identities`.
    async fn create_identity(&self, identity: &FederatedIdentity) -> Result<(), StoreError>;
    /// Creates a user together with its first identity, atomically: a conflict on either
    /// (the user name or address, see [`UserStore::create_user`]; the identity, naming
    /// `federated_identities`) writes nothing.
    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &FederatedIdentity,
    ) -> Result<(), StoreError>;
    /// Notes a sign-in with the identity.
    async fn touch_identity(&self, issuer: &str, subject: &str, now: i64)
        -> Result<(), StoreError>;
    /// Deletes the user's identity. With `keep_way_in`, only if the user keeps a password
    /// or another identity, decided atomically (two unlinks at once cannot take the last
    /// two). False: no such identity of the user, or it is the last way in.
    async fn delete_identity(
        &self,
        user_id: &str,
        issuer: &str,
        subject: &str,
        keep_way_in: bool,
    ) -> Result<bool, StoreError>;
}

/// OpenID Connect Back-Channel Logout 1.0: which clients each browser session (by `sid`)
/// signed in to, and the durable outbox of logout tokens to deliver to them. Workers on
/// every replica share the outbox as they share the mail outbox.
#[async_trait]
pub trait BackchannelLogoutStore: Send + Sync {
    /// Notes that the session `sid` of `user_id` signed in to `client_id` (idempotent).
    async fn record_session_client(
        &self,
        sid: &str,
        client_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The clients a session signed in to, by id (for tests and the console).
    async fn list_session_clients(&self, sid: &str) -> Result<Vec<String>, StoreError>;
    /// For the user's sessions that ended (`only` that `sid`, every one but `except`, or
    /// all), queues one delivery per session and client that has a back-channel logout
    /// URI, unless that client already has `max_pending_per_client` undelivered (those are
    /// dropped and counted), and forgets those sessions' clients; atomically, so that two
    /// logouts of one session queue it once. Durable before this returns.
    async fn queue_logouts(
        &self,
        user_id: &str,
        only: Option<&str>,
        except: Option<&str>,
        max_pending_per_client: i64,
        now: i64,
    ) -> Result<QueuedLogouts, StoreError>;
    /// Claims the undelivered logout due longest ago (`next_attempt_at <= now`, not
    /// claimed by anyone until after `now`) until `lease_until`: of workers on every
    /// replica, exactly one gets each delivery at a time.
    async fn claim_logout(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<LogoutDelivery>, StoreError>;
    async fn mark_logout_delivered(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// Records a failed attempt (`error` holds no secret): tried again at
    /// `next_attempt_at`, or given up when that is `None`.
    async fn mark_logout_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn logout_counts(&self) -> Result<LogoutDeliveryCounts, StoreError>;
    /// The newest deliveries (of one client, if given), newest first.
    async fn list_logouts(
        &self,
        client_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LogoutDelivery>, StoreError>;
}

/// The store's own upkeep: health and expiry.
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Deletes records that can no longer matter: expired families and their tokens,
    /// expired deny-list entries, authorization codes a day after they expired, sign-in
    /// failure counts a day after their last failure, account links a day after they
    /// expired, outbox messages a week after they were sent or given up, browser sessions
    /// a day after they ended or 90 days after they were last seen, logout deliveries a
    /// week after they were delivered or given up, and sessions' client lists 90 days after
    /// they were made. Returns how many rows went.
    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError>;
}

/// Third-party clients: dynamic registration's initial access tokens and caps, the resource
/// registry, pushed authorization requests (RFC 9126) and the client assertions already
/// seen (RFC 7523 `jti`).
#[async_trait]
pub trait ThirdPartyStore: Send + Sync {
    async fn create_registration_token(&self, token: &RegistrationToken) -> Result<(), StoreError>;
    /// Takes one use of the live token (not expired at `now`, a use left) with this hash,
    /// in one conditional step; its id, or `None` when there is no such live token.
    async fn use_registration_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Every initial access token, newest first.
    async fn list_registration_tokens(&self) -> Result<Vec<RegistrationToken>, StoreError>;
    async fn delete_registration_token(&self, id: &str) -> Result<bool, StoreError>;
    /// Self-registered clients: all of them, or those registered from one address.
    async fn count_self_registered_clients(&self, from: Option<&str>) -> Result<i64, StoreError>;
    /// Notes a client's first code or token (nothing if it was used before).
    async fn mark_client_used(&self, client_id: &str, now: i64) -> Result<(), StoreError>;
    /// Deletes the self-registered clients never used and registered before `before`.
    async fn delete_unused_self_registered_clients(&self, before: i64) -> Result<u64, StoreError>;

    /// Adds a resource, or replaces the one with its URI (keeping its `created_at`).
    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError>;
    async fn find_resource(&self, uri: &str) -> Result<Option<Resource>, StoreError>;
    /// Every resource, by URI.
    async fn list_resources(&self) -> Result<Vec<Resource>, StoreError>;
    async fn delete_resource(&self, uri: &str) -> Result<bool, StoreError>;

    async fn create_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError>;
    /// Takes the live pushed request with this hash for `client_id`, once: a second take,
    /// another client's take or an expired one finds nothing.
    async fn take_pushed_request(
        &self,
        request_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<PushedRequest>, StoreError>;

    /// Records a client assertion's `jti` (by hash) until `expires_at`; false when it was
    /// recorded before and has not expired (a replay), on every replica.
    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
}

/// The activity counters of the admin console's charts ([`crate::activity`]). Counts only
/// ever add up: writes from several replicas, in any order, give the same totals.
#[async_trait]
pub trait ActivityStore: Send + Sync {
    /// Adds counts, in one transaction: each to its minute's total (all clients together)
    /// and to its hour's total and, when it names a client, to that client's hour.
    async fn add_activity(&self, counts: &[ActivityCount]) -> Result<(), StoreError>;
    /// Sums of the stored counts, by bucket, metric and label, oldest bucket first.
    async fn activity_series(&self, query: &ActivityQuery) -> Result<Vec<ActivityRow>, StoreError>;
    /// A page of the stored rows, in (bucket, metric, label, client) order.
    async fn list_activity(&self, page: &ActivityPage) -> Result<Vec<ActivityRow>, StoreError>;
    /// The start of the latest hour in which `client_id` was issued a token, if any is kept.
    async fn last_token_hour(&self, client_id: &str) -> Result<Option<i64>, StoreError>;
    /// Deletes minute rows older than `minutes_before` and hour rows older than
    /// `hours_before`; returns how many went.
    async fn prune_activity(
        &self,
        minutes_before: i64,
        hours_before: i64,
    ) -> Result<u64, StoreError>;
}
