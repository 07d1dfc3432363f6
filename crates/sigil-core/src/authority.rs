//! The authorization server's protocol engine: one value holding the store, keys, clock,
//! password hasher and CPU pools, with a method per protocol operation.

use crate::audit::{AuditLog, Caller};
use crate::client::Client;
use crate::client_assertion::ClientAssertion;
use crate::client_keys::{ClientKeySource, InlineKeyCache};
use crate::clock::Clock;
use crate::cpu::CpuPool;
use crate::error::OAuthError;
use crate::keys::KeyRing;
use crate::password::PasswordHasher;
use crate::secret::Secret;
use crate::store::Store;
use crate::token::{
    sign_access_and_id_token, AccessTokenClaims, IdTokenClaims, TokenError, VerifiedTokens,
};
use crate::user::User;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Lifetimes and names the protocol needs. All durations in seconds.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// The issuer identifier: `iss` of every token, base of every endpoint URL.
    pub issuer: String,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    /// Idle lifetime of a refresh token: unused this long, it expires.
    pub refresh_token_ttl: i64,
    /// Absolute lifetime of a refresh-token family, however often it rotates.
    pub refresh_token_absolute_ttl: i64,
    /// The idle and absolute refresh-token lifetimes of public clients.
    pub public_client_refresh_token_ttl: i64,
    pub public_client_refresh_token_absolute_ttl: i64,
    /// How long a client looked up on a hot path may be served from memory.
    pub client_cache_ttl: i64,
    /// Seconds during which a replay of a just-rotated refresh token gets the same
    /// successor again instead of revoking the family. 0 (the default) is strict.
    pub refresh_reuse_grace: i64,
    /// How failed sign-ins slow down further attempts.
    pub throttle: crate::throttle::ThrottlePolicy,
    /// Who must sign in with a second factor (`--mfa`).
    pub mfa: crate::factors::MfaPolicy,
    /// The scopes a client that registered itself (dynamic registration, RFC 7591, or a
    /// client ID metadata document) may ask for, beside the scopes of registered resources.
    pub self_registered_scopes: Vec<String>,
    /// RFC 9126 §5: every client must push its authorization requests (`POST /par`);
    /// without it, only the clients registered so (`require_pushed_authorization_requests`).
    pub require_pushed_authorization_requests: bool,
    /// Pushed authorization requests one client may make per minute, the lifetime of a
    /// `request_uri` (see [`crate::par`]).
    pub pushed_requests_max_per_client: u32,
    /// What DPoP proofs (RFC 9449) must be (see [`crate::dpop`]).
    pub dpop: crate::dpop::DpopPolicy,
}

impl AuthorityConfig {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            access_token_ttl: 600,
            id_token_ttl: 3600,
            refresh_token_ttl: 30 * 86_400,
            refresh_token_absolute_ttl: 90 * 86_400,
            public_client_refresh_token_ttl: 86_400,
            public_client_refresh_token_absolute_ttl: 7 * 86_400,
            client_cache_ttl: 5,
            refresh_reuse_grace: 0,
            throttle: crate::throttle::ThrottlePolicy::default(),
            mfa: crate::factors::MfaPolicy::Optional,
            self_registered_scopes: crate::client::DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            require_pushed_authorization_requests: false,
            pushed_requests_max_per_client: crate::par::DEFAULT_MAX_PER_CLIENT,
            dpop: crate::dpop::DpopPolicy::default(),
        }
    }
}

/// The credentials a client presented (RFC 6749 §2.3), already taken out of the request.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    /// `None` when the client sent only its id (public clients) or an assertion.
    pub secret: Option<Secret>,
    /// A `private_key_jwt` assertion (RFC 7523 §2.2); then `client_id` is its `sub` and
    /// there is no secret.
    pub assertion: Option<ClientAssertion>,
}

impl ClientCredentials {
    /// An id, with the secret if the client sent one.
    pub fn with_secret(client_id: impl Into<String>, secret: Option<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            secret,
            assertion: None,
        }
    }

    /// A client assertion, standing for the client it names.
    pub fn with_assertion(assertion: ClientAssertion) -> Self {
        Self {
            client_id: assertion.client_id().to_string(),
            secret: None,
            assertion: Some(assertion),
        }
    }
}

/// Counts of security events, for metrics.
#[derive(Debug, Default)]
pub struct EventCounts {
    pub sign_in_successes: AtomicU64,
    pub sign_in_failures: AtomicU64,
    pub refresh_reuse_detected: AtomicU64,
    /// argon2 verifications run (a known user, or the dummy hash for an unknown name).
    pub password_verifications: AtomicU64,
}

/// The protocol engine. Cheap to share behind an `Arc`.
pub struct Authority {
    pub(crate) config: AuthorityConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) passwords: Arc<PasswordHasher>,
    pub(crate) password_pool: CpuPool,
    pub(crate) signing_pool: CpuPool,
    pub(crate) clients: Arc<ClientCache>,
    pub(crate) audit_log: AuditLog,
    /// Access tokens verified before (introspection and userinfo see the same ones again).
    verified: VerifiedTokens,
    pub(crate) events: Arc<EventCounts>,
    pub(crate) logout_queue: crate::backchannel::LogoutQueue,
    /// The parsed inline key sets of `private_key_jwt` clients.
    pub(crate) inline_keys: InlineKeyCache,
    /// Where the keys at a client's `jwks_uri` come from (the server's fetcher); without
    /// one, such clients cannot authenticate.
    pub(crate) client_key_source: Option<Arc<dyn ClientKeySource>>,
    /// Clients named by a metadata-document URL (none: such ids are unknown clients).
    client_documents: Option<Arc<dyn crate::cimd::ClientDocuments>>,
    /// Each client's recent pushed authorization requests, for their cap.
    pub(crate) pushes: crate::par::PushCounter,
    /// DPoP proofs' replay keys, recorded in batches.
    pub(crate) dpop_recorder: crate::dpop::ProofRecorder,
}

/// How many verified access tokens [`Authority`] keeps: a few megabytes at most.
const VERIFIED_TOKENS_KEPT: usize = 10_000;

const CLIENT_CACHE_MAX: usize = 10_000;

/// How often a browser session's "last seen" is written, at most (seconds).
const SESSION_TOUCH_EVERY: i64 = 300;

impl Authority {
    pub fn new(
        config: AuthorityConfig,
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        passwords: Arc<PasswordHasher>,
        password_pool: CpuPool,
        signing_pool: CpuPool,
    ) -> Self {
        Self {
            clients: Arc::new(ClientCache::new(config.client_cache_ttl)),
            audit_log: AuditLog::new(store.clone(), clock.clone()),
            logout_queue: crate::backchannel::LogoutQueue::new(store.clone(), clock.clone()),
            dpop_recorder: crate::dpop::ProofRecorder::new(store.clone()),
            config,
            store,
            keys,
            clock,
            passwords,
            password_pool,
            signing_pool,
            verified: VerifiedTokens::new(VERIFIED_TOKENS_KEPT),
            events: Arc::new(EventCounts::default()),
            inline_keys: InlineKeyCache::default(),
            client_key_source: None,
            client_documents: None,
            pushes: crate::par::PushCounter::default(),
        }
    }

    /// Sets where the keys published at clients' `jwks_uri`s come from.
    pub fn set_client_key_source(&mut self, source: Arc<dyn ClientKeySource>) {
        self.client_key_source = Some(source);
    }

    /// Accepts client ID metadata documents: a `client_id` that is a URL is looked up
    /// through `documents` (never in the store or the client cache).
    pub fn with_client_documents(
        mut self,
        documents: Arc<dyn crate::cimd::ClientDocuments>,
    ) -> Self {
        self.client_documents = Some(documents);
        self
    }

    /// The clock every decision reads.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
    pub fn password_pool(&self) -> &CpuPool {
        &self.password_pool
    }
    /// Security events counted since start.
    pub fn events(&self) -> &EventCounts {
        &self.events
    }

    /// The activity counters of the admin console's charts, shared by every service made
    /// from this authority ([`crate::activity`]).
    pub fn activity(&self) -> &Arc<crate::activity::Activity> {
        self.audit_log.activity()
    }

    /// Every browser origin some client allows (for CORS preflights, which name no client).
    pub async fn client_origins(&self) -> Result<Vec<String>, OAuthError> {
        Ok(self.store.list_client_origins().await?)
    }

    /// Finds a client, from a short-lived memory cache when possible.
    /// A client id that is a URL names a metadata document ([`crate::cimd`]): it is
    /// fetched (or remembered) through the [`crate::cimd::ClientDocuments`] given, and a
    /// document that cannot be used is an `invalid_client` error.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<Arc<Client>>, OAuthError> {
        if crate::cimd::is_document_client_id(client_id) {
            return match &self.client_documents {
                Some(documents) => documents.fetch(client_id).await.map(Some),
                None => Ok(None),
            };
        }
        let now = self.now();
        if let Some(client) = self.clients.get(client_id, now) {
            return Ok(Some(client));
        }
        let Some(client) = self.store.find_client(client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        self.clients.insert(client.clone(), now);
        Ok(Some(client))
    }

    /// Notes the first code or token of a self-registered client, which then stays (one
    /// that is never used is removed after a while). Nothing for other clients, nor once
    /// noted: no write on the hot path after the first.
    pub(crate) async fn note_first_use(&self, client: &Client) {
        if client.registration.is_none() || client.first_used_at.is_some() {
            return;
        }
        match self.store.mark_client_used(&client.id, self.now()).await {
            Ok(()) => self.clients.forget(&client.id),
            Err(error) => {
                tracing::warn!(client = %client.id, %error, "could not note a client's first use")
            }
        }
    }

    /// A user by id (the browser pages' signed-in user), straight from the store.
    pub async fn find_user(&self, user_id: &str) -> Result<Option<User>, crate::store::StoreError> {
        self.store.find_user(user_id).await
    }

    /// The user a browser session is signed in as, if the session still counts: the
    /// account is enabled, nothing ended all its sessions since (the epoch), and the
    /// session itself was not ended from the account page. Returns the session's record
    /// too, when it has one.
    pub async fn signed_in_user_and_session(
        &self,
        signed_in: &crate::authorize::SignedIn,
    ) -> Result<Option<(User, Option<crate::store::BrowserSession>)>, crate::store::StoreError>
    {
        let Some(user) = self
            .store
            .find_user(&signed_in.user_id)
            .await?
            .filter(|u| signed_in.is_valid_for(u) && !u.awaits_email_verification())
        else {
            return Ok(None);
        };
        let session = match &signed_in.session_id {
            None => None,
            Some(id) => match self.store.find_browser_session(id).await? {
                Some(s) if s.user_id == user.id && s.ended_at.is_none() => Some(s),
                _ => return Ok(None),
            },
        };
        // "Last seen" on the account page, written at most every few minutes, whichever
        // page or flow (authorize, consent, the console) the session is used on.
        if let Some(record) = &session {
            let now = self.now();
            if now - record.last_seen_at >= SESSION_TOUCH_EVERY {
                if let Err(error) = self
                    .store
                    .touch_browser_session(&record.id, None, now)
                    .await
                {
                    tracing::warn!(%error, "could not note a session's last use");
                }
            }
        }
        Ok(Some((user, session)))
    }

    /// [`Authority::signed_in_user_and_session`] without the session.
    pub async fn signed_in_user(
        &self,
        signed_in: &crate::authorize::SignedIn,
    ) -> Result<Option<User>, crate::store::StoreError> {
        Ok(self
            .signed_in_user_and_session(signed_in)
            .await?
            .map(|(user, _)| user))
    }

    /// Succeeds when the database answers (the readiness check).
    pub async fn ping_store(&self) -> Result<(), crate::store::StoreError> {
        self.store.ping().await
    }

    /// Deletes records that can no longer matter (expired refresh families, deny-list
    /// entries, old codes); returns how many rows went. Run by the server's housekeeping.
    pub async fn delete_expired(&self) -> Result<u64, crate::store::StoreError> {
        self.store.delete_expired(self.now()).await
    }

    /// Writes the activity counted since the last write to the store, in one transaction;
    /// returns how many counts went. Counts whose write failed are kept for the next one.
    pub async fn write_activity(&self) -> Result<usize, crate::store::StoreError> {
        let activity = self.activity();
        let counts = activity.drain();
        if counts.is_empty() {
            return Ok(0);
        }
        match self.store.add_activity(&counts).await {
            Ok(()) => Ok(counts.len()),
            Err(error) => {
                activity.restore(counts);
                Err(error)
            }
        }
    }

    /// Deletes minute counts older than `minute_retention` seconds and hour counts older
    /// than `hour_retention` seconds; returns how many rows went.
    pub async fn prune_activity(
        &self,
        minute_retention: i64,
        hour_retention: i64,
    ) -> Result<u64, crate::store::StoreError> {
        let now = self.now();
        self.store
            .prune_activity(now - minute_retention, now - hour_retention)
            .await
    }

    /// RFC 6749 §2.3: authenticates a client. A public client authenticates with its id
    /// alone; a confidential one must present its secret, or, registered for
    /// `private_key_jwt`, a client assertion (RFC 7523 §2.2, see [`crate::client_assertion`]).
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Arc<Client>, OAuthError> {
        if let Some(assertion) = &credentials.assertion {
            if credentials.secret.is_some() || credentials.client_id != assertion.client_id() {
                return Err(OAuthError::invalid_request(
                    "use only one client authentication method",
                ));
            }
            return self.authenticate_with_assertion(assertion).await;
        }
        let client = self.find_client(&credentials.client_id).await?;
        match client {
            Some(client) => {
                client.verify_secret(credentials.secret.as_ref())?;
                Ok(client)
            }
            None => {
                // Same work as a known client, so that timing does not reveal client ids.
                if let Some(secret) = &credentials.secret {
                    let _ = crate::secret::constant_time_eq(&secret.storage_hash(), "");
                }
                Err(OAuthError::invalid_client("client authentication failed"))
            }
        }
    }

    /// Signs an access token, and the ID token issued with it if any, with the current
    /// signing key: one job on the signing pool (one place in its queue, one hand-off to
    /// a worker and back) for the whole token response.
    pub(crate) async fn sign_tokens(
        &self,
        access: AccessTokenClaims,
        id: Option<IdTokenClaims>,
    ) -> Result<(String, Option<String>), OAuthError> {
        let key = self
            .keys
            .current()
            .signing_key(self.now())
            .cloned()
            .ok_or_else(|| OAuthError::server_error(&"no signing key loaded"))?;
        self.signing_pool
            .run(move || sign_access_and_id_token(&key, &access, id))
            .await?
            .map_err(|e| OAuthError::server_error(&e))
    }

    /// Appends an entry to the audit log for what `caller` did (see [`AuditLog::record`]).
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<&str>,
        detail: impl Into<String>,
    ) {
        self.audit_log.record(caller, action, target, detail).await
    }

    /// Verifies signature, type, issuer and expiry of one of our access tokens. A token
    /// verified before skips the signature check if its key is still published (see
    /// [`VerifiedTokens`]); issuer and expiry are checked every time.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, TokenError> {
        self.verified
            .verify(&self.keys.current(), token, &self.config.issuer, self.now())
    }

    /// The authoritative state of a signature-valid access token: false when it was
    /// revoked, its refresh family was revoked, its user is gone or disabled or has ended
    /// every session since it was issued (a new session epoch), or its client is gone.
    pub async fn is_access_token_live(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<bool, OAuthError> {
        if self.store.is_access_token_revoked(&claims.jti).await? {
            return Ok(false);
        }
        if let Some(fid) = &claims.fid {
            match self.store.find_refresh_family(fid).await? {
                Some(family) if family.revoked_at.is_none() => {}
                _ => return Ok(false),
            }
        }
        if claims.is_for_user() {
            match self.store.find_user(&claims.sub).await? {
                Some(user)
                    if !user.is_disabled && claims.sep.is_none_or(|e| e == user.session_epoch) => {}
                _ => return Ok(false),
            }
        }
        match self.find_client(&claims.client_id).await {
            Ok(client) => Ok(client.is_some()),
            // A metadata document that no longer serves: its client is gone.
            Err(_) if crate::cimd::is_document_client_id(&claims.client_id) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The grants of a metadata-document client (codes, consents, refresh families) refer
    /// to a row in the store's client table: made, or brought up to date with the
    /// document, before the first of them is written. Only a user's consent or a code
    /// makes one, so a document nobody signed in to leaves no trace. Sigil never reads the
    /// row for the client's settings: the document is the truth.
    pub(crate) async fn keep_document_client(&self, client_id: &str) -> Result<(), OAuthError> {
        if !crate::cimd::is_document_client_id(client_id) {
            return Ok(());
        }
        let client = self
            .find_client(client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        match self.store.find_client(client_id).await? {
            None => match self.store.create_client(&client).await {
                // Made by a concurrent request meanwhile: as good.
                Ok(()) | Err(crate::store::StoreError::Conflict(_)) => {}
                Err(error) => return Err(error.into()),
            },
            Some(stored) if !crate::cimd::same_settings(&stored, &client) => {
                let mut updated = (*client).clone();
                updated.created_at = stored.created_at;
                updated.first_used_at = stored.first_used_at;
                self.store.update_client(&updated).await?;
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Clients looked up on hot paths, kept for `ttl` seconds. Shared with the administration
/// service, which forgets a client the moment it changes.
pub(crate) struct ClientCache {
    ttl: i64,
    entries: Mutex<HashMap<String, (Arc<Client>, i64)>>,
}

impl ClientCache {
    fn new(ttl: i64) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, client_id: &str, now: i64) -> Option<Arc<Client>> {
        let entries = self.entries.lock().ok()?;
        let (client, fetched_at) = entries.get(client_id)?;
        (now - fetched_at < self.ttl).then(|| client.clone())
    }

    fn insert(&self, client: Arc<Client>, now: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CLIENT_CACHE_MAX {
                entries.clear();
            }
            entries.insert(client.id.clone(), (client, now));
        }
    }

    /// Forgets a client at once (after an admin edited or deleted it).
    pub(crate) fn forget(&self, client_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(client_id);
        }
    }
}
