//! The authorization server's protocol engine: one value holding the store, keys, clock,
//! password hasher and CPU pools, with a method per protocol operation.

use crate::audit::{Actor, AuditRecord};
use crate::client::Client;
use crate::clock::Clock;
use crate::cpu::{Admission, CpuPool};
use crate::error::OAuthError;
use crate::keys::KeyRing;
use crate::password::PasswordHasher;
use crate::secret::Secret;
use crate::store::Store;
use crate::throttle::ThrottlePolicy;
use crate::token::{
    sign_access_and_id_token, AccessTokenClaims, IdTokenClaims, TokenError, VerifiedTokens,
};
use crate::user::User;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// How long a client looked up on a hot path may be served from memory.
    pub client_cache_ttl: i64,
    /// Seconds during which a replay of a just-rotated refresh token gets the same
    /// successor again instead of revoking the family. 0 (the default) is strict.
    pub refresh_reuse_grace: i64,
    /// How failed sign-ins slow down further attempts.
    pub throttle: crate::throttle::ThrottlePolicy,
}

impl AuthorityConfig {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            access_token_ttl: 600,
            id_token_ttl: 3600,
            refresh_token_ttl: 30 * 86_400,
            refresh_token_absolute_ttl: 90 * 86_400,
            client_cache_ttl: 5,
            refresh_reuse_grace: 0,
            throttle: crate::throttle::ThrottlePolicy::default(),
        }
    }
}

/// The credentials a client presented (RFC 6749 §2.3), already taken out of the request.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    /// `None` when the client sent only its id (public clients).
    pub secret: Option<Secret>,
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
    clients: Mutex<HashMap<String, (Arc<Client>, i64)>>,
    /// Access tokens verified before (introspection and userinfo see the same ones again).
    verified: VerifiedTokens,
    pub(crate) events: Arc<EventCounts>,
}

/// How many verified access tokens [`Authority`] keeps: a few megabytes at most.
const VERIFIED_TOKENS_KEPT: usize = 10_000;

const CLIENT_CACHE_MAX: usize = 10_000;

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
            config,
            store,
            keys,
            clock,
            passwords,
            password_pool,
            signing_pool,
            clients: Mutex::new(HashMap::new()),
            verified: VerifiedTokens::new(VERIFIED_TOKENS_KEPT),
            events: Arc::new(EventCounts::default()),
        }
    }

    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
    pub fn passwords(&self) -> &Arc<PasswordHasher> {
        &self.passwords
    }
    pub fn password_pool(&self) -> &CpuPool {
        &self.password_pool
    }
    /// Security events counted since start.
    pub fn events(&self) -> &EventCounts {
        &self.events
    }

    /// Finds a client, from a short-lived memory cache when possible.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<Arc<Client>>, OAuthError> {
        let now = self.now();
        if let Ok(cache) = self.clients.lock() {
            if let Some((client, fetched_at)) = cache.get(client_id) {
                if now - fetched_at < self.config.client_cache_ttl {
                    return Ok(Some(client.clone()));
                }
            }
        }
        let Some(client) = self.store.find_client(client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        if let Ok(mut cache) = self.clients.lock() {
            if cache.len() >= CLIENT_CACHE_MAX {
                cache.clear();
            }
            cache.insert(client_id.to_string(), (client.clone(), now));
        }
        Ok(Some(client))
    }

    /// RFC 6749 §2.3: authenticates a client. A public client authenticates with its id
    /// alone; a confidential one must present its secret.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Arc<Client>, OAuthError> {
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

    /// Appends an entry to the audit log, with the current request's client address. A
    /// failure to record is logged as an error and does not fail the action: the action
    /// has already happened.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: Option<&str>,
        detail: impl Into<String>,
    ) {
        let record = audit_record(
            self.now(),
            actor,
            action,
            target,
            detail.into(),
            crate::audit::current_address(),
        );
        append_audit(self.store.as_ref(), record).await
    }

    /// Checks a user name and password on the password pool, counts and audits the
    /// attempt, and returns the user when both are right and the account is enabled. An
    /// unknown user costs the same argon2 work and gets the same answer (no enumeration).
    /// The audit entry names the user only when the name exists, so a password typed into
    /// the user-name field never lands in the log. `via` says where the attempt came from;
    /// `device` is the id of a trusted-device cookie already proven to belong to this user
    /// name (see [`crate::throttle::device_subject`]).
    ///
    /// The check runs as a task of its own that the caller only waits for: a caller that
    /// gives up (a client that hangs up, a request timeout) neither frees its place in the
    /// password pool's queue before the hash has run (see [`CpuPool::admit`]) nor stops the
    /// outcome from being counted and audited.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: Secret,
        via: &str,
        device: Option<&str>,
    ) -> Result<Option<User>, OAuthError> {
        let admission = self.password_pool.admit()?;
        let attempt = PasswordAttempt {
            store: self.store.clone(),
            clock: self.clock.clone(),
            passwords: self.passwords.clone(),
            events: self.events.clone(),
            policy: self.config.throttle,
            address: crate::audit::current_address(),
            username: username.to_string(),
            via: via.to_string(),
            device: device.map(str::to_string),
        };
        tokio::spawn(attempt.run(admission, password))
            .await
            .map_err(|e| OAuthError::server_error(&format!("the password check failed: {e}")))?
    }

    /// Forgets a cached client at once (after an admin edited or deleted it).
    pub fn forget_client(&self, client_id: &str) {
        if let Ok(mut cache) = self.clients.lock() {
            cache.remove(client_id);
        }
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
        Ok(self.find_client(&claims.client_id).await?.is_some())
    }
}

fn audit_record(
    at: i64,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    detail: String,
    address: Option<String>,
) -> AuditRecord {
    AuditRecord {
        at,
        actor: actor.name().to_string(),
        actor_id: actor.id().map(str::to_string),
        action: action.to_string(),
        target: target.map(str::to_string),
        detail,
        address,
    }
}

/// Appends `record` to the audit log; a failure is logged, not returned.
async fn append_audit(store: &dyn Store, record: AuditRecord) {
    let action = record.action.clone();
    if let Err(error) = store.append_audit(record).await {
        tracing::error!(%error, action, "could not write the audit log");
    }
}

/// One sign-in attempt, with everything it needs to finish on its own.
struct PasswordAttempt {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    passwords: Arc<PasswordHasher>,
    events: Arc<EventCounts>,
    policy: ThrottlePolicy,
    address: Option<String>,
    username: String,
    via: String,
    device: Option<String>,
}

impl PasswordAttempt {
    /// Throttling first, by taking the attempt's place in each count atomically before
    /// any argon2 work (so that concurrent guesses cost what the same guesses one after
    /// another cost, on every replica); a refused attempt costs a statement per count and
    /// no hash. Then the hash, then the outcome: a failure keeps its places in the counts,
    /// a success clears the account's (or the trusted device's) count and gives the
    /// address's place back.
    async fn run(self, admission: Admission, password: Secret) -> Result<Option<User>, OAuthError> {
        let now = self.clock.now();
        let policy = self.policy;
        let mut subjects = vec![match &self.device {
            Some(device) => crate::throttle::device_subject(device),
            None => crate::throttle::account_subject(&self.username),
        }];
        if let Some(address) = self
            .address
            .as_deref()
            .filter(|_| policy.counts_addresses())
        {
            subjects.push(crate::throttle::address_subject(address));
        }
        let mut reserved: Vec<&str> = Vec::new();
        for subject in &subjects {
            let free = policy.free_failures(subject);
            match self
                .store
                .reserve_sign_in_attempt(subject, free, &policy, now)
                .await
            {
                Ok(None) => reserved.push(subject),
                Ok(Some(count)) => {
                    self.release(&reserved).await;
                    return Err(OAuthError::throttled(
                        policy.wait(&[count], now).max(1) as u64
                    ));
                }
                Err(error) => {
                    self.release(&reserved).await;
                    return Err(error.into());
                }
            }
        }
        let found = match self.store.find_user_by_username(&self.username).await {
            Ok(found) => found,
            Err(error) => {
                self.release(&reserved).await;
                return Err(error.into());
            }
        };
        let stored_hash = found.as_ref().map(|u| u.password_hash.clone());
        let hasher = self.passwords.clone();
        let checked = admission
            .run(move || {
                let verification = hasher.check(password.expose(), stored_hash.as_deref());
                let rehash = verification
                    .needs_rehash
                    .then(|| hasher.hash(password.expose()).ok())
                    .flatten();
                (verification.matched, rehash)
            })
            .await;
        let (matched, rehash) = match checked {
            Ok(checked) => checked,
            Err(overloaded) => {
                self.release(&reserved).await;
                return Err(overloaded.into());
            }
        };
        self.events
            .password_verifications
            .fetch_add(1, Ordering::Relaxed);
        let is_known = found.is_some();
        let accepted = found.filter(|u| matched && !u.is_disabled);
        let via = self.via.as_str();
        match &accepted {
            Some(user) => {
                self.events
                    .sign_in_successes
                    .fetch_add(1, Ordering::Relaxed);
                // The account's (or device's) count starts over; the address's place is
                // given back but its count stays (otherwise one valid account would reset
                // the count of an address guessing at others).
                self.store.clear_sign_in_failures(&subjects[0]).await?;
                self.release(&reserved[1..]).await;
                if let Some(new_hash) = rehash {
                    match self
                        .store
                        .replace_password_hash(&user.id, &user.password_hash, &new_hash, now)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(user = %user.id, "password rehashed with the current settings")
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not store the rehashed password")
                        }
                    }
                }
                let actor = Actor::User {
                    id: user.id.clone(),
                    name: user.username.clone(),
                };
                self.audit(
                    &actor,
                    "sign_in.success",
                    Some(&user.username),
                    format!("via {via}"),
                )
                .await
            }
            None => {
                self.events.sign_in_failures.fetch_add(1, Ordering::Relaxed);
                let (target, detail) = if is_known {
                    (
                        Some(self.username.as_str()),
                        format!("wrong password or disabled account, via {via}"),
                    )
                } else {
                    (None, format!("unknown user name, via {via}"))
                };
                self.audit(&Actor::Nobody, "sign_in.failure", target, detail)
                    .await
            }
        }
        Ok(accepted)
    }

    /// Gives back the places this attempt took in the counts of `subjects`.
    async fn release(&self, subjects: &[&str]) {
        for subject in subjects {
            if let Err(error) = self.store.release_sign_in_attempt(subject).await {
                tracing::warn!(%error, "could not give back a sign-in attempt's place");
            }
        }
    }

    async fn audit(&self, actor: &Actor, action: &str, target: Option<&str>, detail: String) {
        let record = audit_record(
            self.clock.now(),
            actor,
            action,
            target,
            detail,
            self.address.clone(),
        );
        append_audit(self.store.as_ref(), record).await
    }
}
