//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592):
//! `Registrations`, the service behind `POST /register` and `/register/{client_id}`, and the
//! initial access tokens of `--registration token`.
//!
//! What an attacker would try, and what stops it:
//! - a flood of registrations: a per-address sliding window (in memory, per replica), a cap
//!   on the clients one address may hold and on self-registered clients in all (in the
//!   database, for every replica), and unused clients removed after a while;
//! - registering a client that looks like a first-party app: self-registered clients are
//!   never first-party (they always see the consent page), get no audiences of their own
//!   (only registered resources open to them), no password grant, no back-channel logout
//!   URI (Sigil would POST wherever it pointed), and only the self-registered scopes;
//! - guessing or replaying tokens: initial and registration access tokens are 256-bit
//!   random values kept as SHA-256 hashes, compared in constant time; an initial token's
//!   uses are taken with one conditional statement, so two registrations cannot share the
//!   last; the registration access token is replaced at every read and update (only its hash
//!   is kept, and RFC 7592 §3 returns one each time);
//! - enumerating clients through `/register/{id}`: an unknown client and a wrong token give
//!   the same `401 invalid_token`.

pub mod metadata;

use crate::audit::{AuditLog, Caller};
use crate::authority::{Authority, ClientCache};
use crate::client::{Client, DynamicRegistration};
use crate::clock::Clock;
use crate::error::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;
use crate::secret::{constant_time_eq, random_token, Secret};
use crate::store::{RegistrationToken, Store, StoreError};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Who may register through `POST /register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    /// Nobody (the default): clients are made by administrators.
    #[default]
    Closed,
    /// Holders of an initial access token (RFC 7591 §3: `Authorization: Bearer`).
    Token,
    /// Anyone, within the limits.
    Open,
}

/// The limits on self-registration.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    pub mode: RegistrationMode,
    /// Registrations one address may make per hour (on each replica).
    pub per_address_per_hour: u32,
    /// Self-registered clients one address may hold.
    pub max_per_address: u32,
    /// Self-registered clients in all.
    pub max_clients: u32,
    /// A self-registered client that got no code or token this long after it registered
    /// is removed (seconds).
    pub unused_ttl: i64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Closed,
            per_address_per_hour: 10,
            max_per_address: 50,
            max_clients: 10_000,
            unused_ttl: 7 * 86_400,
        }
    }
}

/// Addresses the sliding window remembers at most; beyond it, registrations are refused
/// until old entries age out (a flood from many addresses cannot grow memory).
const MAX_TRACKED_ADDRESSES: usize = 100_000;
const WINDOW: i64 = 3600;

/// A client registered, read or updated, and the RFC 7591 §3.2.1 response to send.
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub response: Map<String, Value>,
}

/// The dynamic-registration service.
pub struct Registrations {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit_log: AuditLog,
    clients: Option<Arc<ClientCache>>,
    config: RegistrationConfig,
    issuer: String,
    self_registered_scopes: ScopeSet,
    recent: Mutex<HashMap<String, VecDeque<i64>>>,
}

fn invalid_token() -> OAuthError {
    OAuthError::invalid_token("the registration access token is invalid, or the client is gone")
}

impl Registrations {
    /// The service of a running server: the engine's store, clock and client cache.
    pub fn for_authority(authority: &Authority, config: RegistrationConfig) -> Self {
        Self {
            store: authority.store.clone(),
            clock: authority.clock.clone(),
            audit_log: authority.audit_log.clone(),
            clients: Some(authority.clients.clone()),
            issuer: authority.config.issuer.clone(),
            self_registered_scopes: ScopeSet::from_list(
                authority.config.self_registered_scopes.iter().cloned(),
            ),
            config,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// For the command line: initial access tokens only.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            audit_log: AuditLog::new(store.clone(), clock.clone()),
            store,
            clock,
            clients: None,
            config: RegistrationConfig::default(),
            issuer: String::new(),
            self_registered_scopes: ScopeSet::default(),
            recent: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> RegistrationMode {
        self.config.mode
    }

    /// RFC 7592 §1: where a client reads, updates and deletes its registration.
    pub fn client_uri(&self, client_id: &str) -> String {
        format!("{}/register/{client_id}", self.issuer)
    }

    fn forget(&self, client_id: &str) {
        if let Some(clients) = &self.clients {
            clients.forget(client_id);
        }
    }

    /// The scopes a self-registered client may be given: the server's list and the scopes
    /// of resources open to such clients.
    async fn allowed_scopes(&self) -> Result<ScopeSet, OAuthError> {
        let mut scopes = self.self_registered_scopes.to_vec();
        for resource in self.store.list_resources().await? {
            if resource.self_registered_clients {
                scopes.extend(resource.scopes);
            }
        }
        Ok(ScopeSet::from_list(scopes))
    }

    /// Counts a registration from `address` in its window; an error when it is full.
    fn take_rate(&self, address: &str, now: i64) -> Result<(), OAuthError> {
        let mut recent = match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if recent.len() >= MAX_TRACKED_ADDRESSES && !recent.contains_key(address) {
            recent.retain(|_, times| times.back().is_some_and(|t| *t > now - WINDOW));
            if recent.len() >= MAX_TRACKED_ADDRESSES {
                return Err(OAuthError::rate_limited(
                    Some(60),
                    "too many registrations right now; try again later",
                ));
            }
        }
        let times = recent.entry(address.to_string()).or_default();
        while times.front().is_some_and(|t| *t <= now - WINDOW) {
            times.pop_front();
        }
        if times.len() >= self.config.per_address_per_hour as usize {
            let retry = times.front().map(|t| t + WINDOW - now).unwrap_or(WINDOW);
            return Err(OAuthError::rate_limited(
                Some(retry.max(1) as u64),
                "too many registrations from this address; try again later",
            ));
        }
        times.push_back(now);
        Ok(())
    }

    /// RFC 7591 §3: registers a client. `initial_token` is the bearer token of the request.
    pub async fn register(
        &self,
        caller: &Caller,
        initial_token: Option<&Secret>,
        body: &Map<String, Value>,
    ) -> Result<Registered, OAuthError> {
        let now = self.clock.now();
        let address = caller
            .address
            .clone()
            .unwrap_or_else(|| "unknown".to_string());
        let initial_token_id = match self.config.mode {
            RegistrationMode::Closed => {
                return Err(OAuthError::new(
                    ErrorCode::AccessDenied,
                    "dynamic client registration is closed on this server; ask its administrator to register the client",
                ))
            }
            RegistrationMode::Token => {
                let Some(token) = initial_token else {
                    return Err(OAuthError::invalid_token(
                        "an initial access token is required (Authorization: Bearer)",
                    ));
                };
                // Checked before the rate limit, so that an attacker without a token does
                // not use up a legitimate registrant's window from a shared address.
                let Some(id) = self
                    .store
                    .use_registration_token(&token.storage_hash(), now)
                    .await?
                else {
                    return Err(OAuthError::invalid_token(
                        "the initial access token is invalid, expired or used up",
                    ));
                };
                Some(id)
            }
            RegistrationMode::Open => None,
        };
        self.take_rate(&address, now)?;
        let requested = metadata::read_request(body, &self.allowed_scopes().await?)?;
        if self.store.count_self_registered_clients(None).await? >= self.config.max_clients as i64 {
            return Err(OAuthError::rate_limited(
                None,
                "this server holds as many self-registered clients as it allows",
            ));
        }
        if self
            .store
            .count_self_registered_clients(Some(&address))
            .await?
            >= self.config.max_per_address as i64
        {
            return Err(OAuthError::rate_limited(
                None,
                "this address has registered as many clients as it may",
            ));
        }
        let (mut client, secret) = requested
            .registration
            .build(now)
            .map_err(registration_error)?;
        let access_token = Secret::generate();
        client.registration = Some(DynamicRegistration {
            access_token_hash: access_token.storage_hash(),
            application_type: requested.application_type,
            initial_token_id,
            metadata: requested.kept,
        });
        client.registered_from = Some(address.clone());
        self.store.create_client(&client).await?;
        self.audit_log
            .record(
                caller,
                "client.registered",
                Some(&client.id),
                format!(
                    "{} client {:?} registered itself (RFC 7591) from {address}",
                    client.token_endpoint_auth_method.as_str(),
                    client.name
                ),
            )
            .await;
        let response = self.response(&client, secret.as_ref(), &access_token);
        Ok(Registered { client, response })
    }

    /// The client behind `/register/{client_id}` if `token` is its registration access
    /// token; the same error for an unknown client as for a wrong token.
    async fn authorized(&self, client_id: &str, token: &Secret) -> Result<Client, OAuthError> {
        let presented = token.storage_hash();
        let client = self.store.find_client(client_id).await?;
        let stored = client
            .as_ref()
            .and_then(|c| c.registration.as_ref())
            .map(|r| r.access_token_hash.as_str())
            .unwrap_or("");
        let matches = constant_time_eq(stored, &presented);
        match client {
            Some(client) if matches && !stored.is_empty() => Ok(client),
            _ => Err(invalid_token()),
        }
    }

    /// Replaces the registration access token: RFC 7592 §3 returns one in every answer and
    /// only its hash is kept.
    async fn rotate_access_token(&self, client: &mut Client) -> Result<Secret, OAuthError> {
        let token = Secret::generate();
        if let Some(registration) = client.registration.as_mut() {
            registration.access_token_hash = token.storage_hash();
        }
        if !self.store.update_client(client).await? {
            return Err(invalid_token());
        }
        self.forget(&client.id);
        Ok(token)
    }

    /// RFC 7592 §2.1: the client reads its registration (and gets a new access token).
    pub async fn read(&self, client_id: &str, token: &Secret) -> Result<Registered, OAuthError> {
        let mut client = self.authorized(client_id, token).await?;
        let access_token = self.rotate_access_token(&mut client).await?;
        let response = self.response(&client, None, &access_token);
        Ok(Registered { client, response })
    }

    /// RFC 7592 §2.2: the client replaces its metadata. `client_id` must be in the body and
    /// equal; a `client_secret` in it must be the client's. The id, secret and the time of
    /// registration stay.
    pub async fn update(
        &self,
        caller: &Caller,
        client_id: &str,
        token: &Secret,
        body: &Map<String, Value>,
    ) -> Result<Registered, OAuthError> {
        let existing = self.authorized(client_id, token).await?;
        match body.get("client_id") {
            Some(Value::String(id)) if id == client_id => {}
            _ => {
                return Err(OAuthError::invalid_request(
                    "the body's client_id must be the client's (RFC 7592 §2.2)",
                ))
            }
        }
        match body.get("client_secret") {
            None | Some(Value::Null) => {}
            Some(Value::String(secret)) => {
                let stored = existing.secret_hash.as_deref().unwrap_or("");
                if !constant_time_eq(stored, &Secret::new(secret.clone()).storage_hash()) {
                    return Err(OAuthError::invalid_request(
                        "client_secret does not match the client's",
                    ));
                }
            }
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "client_secret must be a string",
                ))
            }
        }
        let mut requested = metadata::read_request(body, &self.allowed_scopes().await?)?;
        if requested.registration.token_endpoint_auth_method
            != Some(existing.token_endpoint_auth_method)
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "token_endpoint_auth_method cannot change; register a new client instead",
            ));
        }
        requested.registration.is_public = !existing.is_confidential();
        let now = self.clock.now();
        let (mut client, _unused_secret) = requested
            .registration
            .build(now)
            .map_err(registration_error)?;
        client.id = existing.id.clone();
        client.secret_hash = existing.secret_hash.clone();
        client.created_at = existing.created_at;
        client.registered_from = existing.registered_from.clone();
        client.first_used_at = existing.first_used_at;
        client.registration = existing.registration.clone().map(|r| DynamicRegistration {
            application_type: requested.application_type,
            metadata: requested.kept,
            ..r
        });
        let access_token = self.rotate_access_token(&mut client).await?;
        self.audit_log
            .record(
                caller,
                "client.updated",
                Some(client_id),
                format!("{:?} changed its own registration (RFC 7592)", client.name),
            )
            .await;
        let response = self.response(&client, None, &access_token);
        Ok(Registered { client, response })
    }

    /// RFC 7592 §2.3: the client deletes itself; its grants and tokens go with it.
    pub async fn delete(
        &self,
        caller: &Caller,
        client_id: &str,
        token: &Secret,
    ) -> Result<(), OAuthError> {
        let client = self.authorized(client_id, token).await?;
        if !self.store.delete_client(client_id).await? {
            return Err(invalid_token());
        }
        self.forget(client_id);
        self.audit_log
            .record(
                caller,
                "client.deleted",
                Some(client_id),
                format!("{:?} deleted its own registration (RFC 7592)", client.name),
            )
            .await;
        Ok(())
    }

    fn response(
        &self,
        client: &Client,
        secret: Option<&Secret>,
        access_token: &Secret,
    ) -> Map<String, Value> {
        let mut out = metadata::describe(client);
        if let Some(secret) = secret {
            out.insert("client_secret".into(), secret.expose().into());
        }
        out.insert(
            "registration_access_token".into(),
            access_token.expose().into(),
        );
        out.insert(
            "registration_client_uri".into(),
            self.client_uri(&client.id).into(),
        );
        out
    }

    /// `sigil registration-token create`: an initial access token good for `uses`
    /// registrations until `ttl` seconds from now. The token is returned to be shown once.
    pub async fn create_initial_token(
        &self,
        caller: &Caller,
        uses: i64,
        ttl: i64,
    ) -> Result<(RegistrationToken, Secret), StoreError> {
        let now = self.clock.now();
        let secret = Secret::generate();
        let token = RegistrationToken {
            id: random_token(9),
            token_hash: secret.storage_hash(),
            uses_left: uses,
            expires_at: now + ttl,
            created_at: now,
        };
        self.store.create_registration_token(&token).await?;
        self.audit_log
            .record(
                caller,
                "registration_token.created",
                Some(&token.id),
                format!("initial access token for {uses} registration(s), valid {ttl} s"),
            )
            .await;
        Ok((token, secret))
    }

    pub async fn list_initial_tokens(&self) -> Result<Vec<RegistrationToken>, StoreError> {
        self.store.list_registration_tokens().await
    }

    pub async fn revoke_initial_token(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<bool, StoreError> {
        let deleted = self.store.delete_registration_token(id).await?;
        if deleted {
            self.audit_log
                .record(caller, "registration_token.revoked", Some(id), "revoked")
                .await;
        }
        Ok(deleted)
    }

    /// Housekeeping: removes the self-registered clients never used within the unused
    /// lifetime of their registration.
    pub async fn delete_unused(&self) -> Result<u64, StoreError> {
        let before = self.clock.now() - self.config.unused_ttl;
        let deleted = self
            .store
            .delete_unused_self_registered_clients(before)
            .await?;
        if deleted > 0 {
            tracing::info!(
                deleted,
                "removed self-registered clients that were never used"
            );
        }
        Ok(deleted)
    }
}

/// A registration the client rules refused, as RFC 7591 §3.2.2 names it.
fn registration_error(error: crate::client::RegistrationError) -> OAuthError {
    use crate::client::RegistrationError as E;
    let code = match error {
        E::RedirectUri { .. } | E::CodeGrantWithoutRedirectUri => ErrorCode::InvalidRedirectUri,
        _ => ErrorCode::InvalidClientMetadata,
    };
    OAuthError::new(code, error.to_string())
}

#[cfg(test)]
mod tests;
