//! The authorization server's protocol engine: one value holding the store, keys, clock,
//! password hasher and CPU pools, with a method per protocol operation.

use crate::audit::{Actor, AuditRecord};
use crate::client::Client;
use crate::clock::Clock;
use crate::cpu::CpuPool;
use crate::error::OAuthError;
use crate::keys::KeyRing;
use crate::password::PasswordHasher;
use crate::secret::Secret;
use crate::store::Store;
use crate::token::{sign_jwt, AccessTokenClaims, TokenError, VerifiedTokens};
use crate::user::User;
use serde::Serialize;
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
    pub(crate) events: EventCounts,
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
            events: EventCounts::default(),
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

    /// Signs claims with the current signing key on the signing pool.
    pub(crate) async fn sign<C: Serialize + Send + 'static>(
        &self,
        typ: &'static str,
        claims: C,
    ) -> Result<String, OAuthError> {
        let key = self
            .keys
            .current()
            .signing_key(self.now())
            .cloned()
            .ok_or_else(|| OAuthError::server_error(&"no signing key loaded"))?;
        self.signing_pool
            .run(move || sign_jwt(&key, typ, &claims))
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
        let record = AuditRecord {
            at: self.now(),
            actor: actor.name().to_string(),
            actor_id: actor.id().map(str::to_string),
            action: action.to_string(),
            target: target.map(str::to_string),
            detail: detail.into(),
            address: crate::audit::current_address(),
        };
        if let Err(error) = self.store.append_audit(record).await {
            tracing::error!(%error, action, "could not write the audit log");
        }
    }

    /// Checks a user name and password on the password pool, counts and audits the
    /// attempt, and returns the user when both are right and the account is enabled. An
    /// unknown user costs the same argon2 work and gets the same answer (no enumeration).
    /// The audit entry names the user only when the name exists, so a password typed into
    /// the user-name field never lands in the log. `via` says where the attempt came from.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: Secret,
        via: &str,
    ) -> Result<Option<User>, OAuthError> {
        // Throttling first: a refused attempt costs one read, no argon2 work.
        let now = self.now();
        let mut subjects = vec![crate::throttle::account_subject(username)];
        let policy = self.config.throttle;
        if let Some(address) = crate::audit::current_address().filter(|_| policy.counts_addresses())
        {
            subjects.push(crate::throttle::address_subject(&address));
        }
        let counts = self.store.find_sign_in_failures(&subjects).await?;
        let wait = policy.wait(&counts, now);
        if wait > 0 {
            return Err(OAuthError::throttled(wait as u64));
        }
        let found = self.store.find_user_by_username(username).await?;
        let stored_hash = found.as_ref().map(|u| u.password_hash.clone());
        let hasher = self.passwords.clone();
        let matched = self
            .password_pool
            .run(move || hasher.verify(password.expose(), stored_hash.as_deref()))
            .await?;
        self.events
            .password_verifications
            .fetch_add(1, Ordering::Relaxed);
        let is_known = found.is_some();
        let accepted = found.filter(|u| matched && !u.is_disabled);
        match &accepted {
            Some(user) => {
                self.events
                    .sign_in_successes
                    .fetch_add(1, Ordering::Relaxed);
                // Only the account's count: clearing the address's would let one valid
                // account reset the count of an address guessing at others.
                if counts.iter().any(|c| c.subject == subjects[0]) {
                    self.store.clear_sign_in_failures(&subjects[0]).await?;
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
                for subject in &subjects {
                    self.store
                        .record_sign_in_failure(subject, now, now - policy.window)
                        .await?;
                }
                let (target, detail) = if is_known {
                    (
                        Some(username),
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
    /// revoked, its refresh family was revoked, its user is gone or disabled, or its
    /// client is gone.
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
                Some(user) if !user.is_disabled => {}
                _ => return Ok(false),
            }
        }
        Ok(self.find_client(&claims.client_id).await?.is_some())
    }
}
