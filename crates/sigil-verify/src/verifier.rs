//! The verifier: discovery, the key cache with single-flight, rate-limited refetches, and
//! the validation rules.

use crate::claims::Claims;
use crate::clock::Clock;
use crate::config::{Algorithm, VerifierConfig, MAX_LEEWAY};
use crate::dpop::DpopState;
use crate::error::{ErrorKind, VerifyError};
use crate::jwks::{fetch, parse_jwks, PublishedKey};
use crate::step_up::AuthenticationRequirement;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

mod builder;
pub use builder::VerifierBuilder;

/// Validates access tokens of one issuer for one audience. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Verifier {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .field("jwks_uri", &self.inner.jwks_uri)
            .finish()
    }
}

struct KeyCache {
    keys: Arc<HashMap<String, PublishedKey>>,
    expires_at: Instant,
}

pub(crate) struct Inner {
    config: VerifierConfig,
    /// Token times, the key cache's lifetime and the refetch cool-down are read here.
    pub(crate) clock: Arc<dyn Clock>,
    http: reqwest::Client,
    /// `None` for a verifier built from a fixed key set.
    jwks_uri: Option<String>,
    cache: RwLock<Arc<KeyCache>>,
    /// Held while fetching: concurrent needs share one fetch.
    refresh: tokio::sync::Mutex<()>,
    last_fetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    /// Tokens verified before, by SHA-256: their claims and the key that signed them.
    verified: RwLock<HashMap<[u8; 32], Arc<Verified>>>,
    /// DPoP: the proof rules, the replay cache and the nonces, when accepted.
    pub(crate) dpop: Option<DpopState>,
}

struct Verified {
    claims: Claims,
    kid: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

impl Verifier {
    /// Reads the issuer's discovery document for `jwks_uri`, then fetches the key set.
    pub async fn discover(config: VerifierConfig) -> Result<Self, VerifyError> {
        Self::builder(config).discover().await
    }

    /// A verifier with a known JWKS URL; the keys are fetched on first use.
    pub fn with_jwks_uri(
        config: VerifierConfig,
        jwks_uri: impl Into<String>,
    ) -> Result<Self, VerifyError> {
        Self::builder(config).jwks_uri(jwks_uri)
    }

    /// A verifier with a fixed key set that is never refetched: for tests, benchmarks and
    /// deployments that distribute keys themselves.
    pub fn with_static_jwks(config: VerifierConfig, jwks_json: &[u8]) -> Result<Self, VerifyError> {
        Self::builder(config).static_jwks(jwks_json)
    }

    /// The constructors above with a choice of more than the configuration: the time
    /// source (see [`VerifierBuilder::clock`]).
    pub fn builder(config: VerifierConfig) -> VerifierBuilder {
        VerifierBuilder::new(config)
    }

    fn build(
        mut config: VerifierConfig,
        clock: Arc<dyn Clock>,
        http: reqwest::Client,
        jwks_uri: Option<String>,
    ) -> Self {
        config.leeway = config.leeway.min(MAX_LEEWAY);
        let now = clock.instant();
        let dpop = config.dpop.clone().map(DpopState::new);
        Self {
            inner: Arc::new(Inner {
                dpop,
                config,
                clock,
                http,
                jwks_uri,
                cache: RwLock::new(Arc::new(KeyCache {
                    keys: Arc::new(HashMap::new()),
                    expires_at: now,
                })),
                refresh: tokio::sync::Mutex::new(()),
                last_fetch: Mutex::new(None),
                fetches: AtomicU64::new(0),
                verified: RwLock::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// How many times the JWKS has been requested.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    fn current(&self) -> Arc<KeyCache> {
        match self.inner.cache.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, cache: KeyCache) {
        match self.inner.cache.write() {
            Ok(mut guard) => *guard = Arc::new(cache),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(cache),
        }
    }

    /// Verifies a token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let config = &self.inner.config;
        if token.len() > config.max_token_len {
            return Err(VerifyError::new(
                ErrorKind::TooLong,
                "the token is too long",
            ));
        }
        if config.verified_cache_capacity == 0 {
            return self.verify_signed(token).await.map(|(claims, _)| claims);
        }
        // sha2 rather than OpenSSL: OpenSSL 3 looks the digest up under a shared lock on
        // every call, which shows up as contention on this hot path.
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified_before(&digest) {
            return Ok(claims);
        }
        let (claims, kid) = self.verify_signed(token).await?;
        self.remember(digest, &claims, kid);
        Ok(claims)
    }

    /// Fails with [`ErrorKind::InsufficientUserAuthentication`] unless the verified
    /// `claims` meet `requirement` (RFC 9470) at this verifier's clock's time. An `auth_time`
    /// up to the configured leeway in the future is forgiven (clock skew); the leeway never
    /// lengthens `max_age`.
    pub fn require_authentication(
        &self,
        claims: &Claims,
        requirement: &AuthenticationRequirement,
    ) -> Result<(), VerifyError> {
        requirement.check(
            claims,
            self.inner.clock.unix_time(),
            self.inner.config.leeway,
        )
    }

    /// The claims of a token verified before, if its key is still current and its times
    /// still hold; `None` sends it through the full verification.
    fn verified_before(&self, digest: &[u8; 32]) -> Option<Claims> {
        let keys = self.current();
        if keys.expires_at <= self.inner.clock.instant() {
            return None;
        }
        let verified = match self.inner.verified.read() {
            Ok(map) => map.get(digest).cloned(),
            Err(poisoned) => poisoned.into_inner().get(digest).cloned(),
        }?;
        if !keys.keys.contains_key(&verified.kid) {
            return None;
        }
        self.check_times(&verified.claims).ok()?;
        Some(verified.claims.clone())
    }

    fn remember(&self, digest: [u8; 32], claims: &Claims, kid: String) {
        let capacity = self.inner.config.verified_cache_capacity;
        let mut map = match self.inner.verified.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= capacity {
            // Bounded, simply: start over rather than track recency on the hot path.
            map.clear();
        }
        map.insert(
            digest,
            Arc::new(Verified {
                claims: claims.clone(),
                kid,
            }),
        );
    }

    /// Every rule, signature included. Returns the claims and the key id that signed.
    async fn verify_signed(&self, token: &str) -> Result<(Claims, String), VerifyError> {
        let config = &self.inner.config;
        let malformed = || VerifyError::new(ErrorKind::Malformed, "the token is malformed");
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(malformed)?;
        let alg = Algorithm::from_name(&header.alg)
            .filter(|a| config.algorithms.contains(a))
            .ok_or_else(|| {
                VerifyError::new(ErrorKind::Algorithm, "the token's algorithm is not allowed")
            })?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::new(
                ErrorKind::Type,
                "the token is not an access token (typ at+jwt)",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| VerifyError::new(ErrorKind::UnknownKey, "the token names no key"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| malformed())?;
        let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        let cache = self.cache_with(&kid).await?;
        let key = cache.keys.get(&kid).ok_or_else(|| {
            VerifyError::new(
                ErrorKind::UnknownKey,
                "the token was signed by an unknown key",
            )
        })?;
        if !key.verify(alg, signed, &signature) {
            return Err(VerifyError::new(
                ErrorKind::Signature,
                "the token's signature is invalid",
            ));
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(malformed)?;
        if claims.iss != config.issuer {
            return Err(VerifyError::new(
                ErrorKind::Issuer,
                "the token was issued by another issuer",
            ));
        }
        if !claims.aud.contains(&config.audience) {
            return Err(VerifyError::new(
                ErrorKind::Audience,
                "the token is not meant for this audience",
            ));
        }
        self.check_times(&claims)?;
        Ok((claims, kid))
    }

    /// `exp` and `nbf`, with the leeway.
    fn check_times(&self, claims: &Claims) -> Result<(), VerifyError> {
        let now = self.inner.clock.unix_time();
        let leeway = self.inner.config.leeway.as_secs() as i64;
        if claims.exp + leeway <= now {
            return Err(VerifyError::new(
                ErrorKind::Expired,
                "the token has expired",
            ));
        }
        if claims.nbf.is_some_and(|nbf| nbf - leeway > now) {
            return Err(VerifyError::new(
                ErrorKind::NotYetValid,
                "the token is not valid yet",
            ));
        }
        Ok(())
    }

    /// The cache, refreshed first when it has expired or lacks `kid`.
    async fn cache_with(&self, kid: &str) -> Result<Arc<KeyCache>, VerifyError> {
        let cache = self.current();
        if cache.expires_at <= self.inner.clock.instant() {
            self.refresh(None).await;
        } else if !cache.keys.contains_key(kid) {
            self.refresh(Some(kid)).await;
        } else {
            return Ok(cache);
        }
        let cache = self.current();
        if cache.keys.is_empty() {
            return Err(VerifyError::new(
                ErrorKind::KeysUnavailable,
                "the issuer's keys are unavailable",
            ));
        }
        if !cache.keys.contains_key(kid) {
            // An unknown kid on an expired cache gets its chance too.
            self.refresh(Some(kid)).await;
            return Ok(self.current());
        }
        Ok(cache)
    }

    /// Fetches the JWKS unless another task just did (single flight) or the cool-down has
    /// not passed. A failed fetch keeps the cached keys.
    async fn refresh(&self, wanted_kid: Option<&str>) {
        let _flight = self.inner.refresh.lock().await;
        let cache = self.current();
        let now = self.inner.clock.instant();
        let satisfied = match wanted_kid {
            Some(kid) => cache.keys.contains_key(kid),
            None => cache.expires_at > now,
        };
        if satisfied {
            return;
        }
        let config = &self.inner.config;
        let Some(jwks_uri) = self.inner.jwks_uri.as_deref() else {
            return;
        };
        {
            let Ok(mut last) = self.inner.last_fetch.lock() else {
                return;
            };
            if last.is_some_and(|at| now.duration_since(at) < config.refetch_cooldown) {
                return;
            }
            *last = Some(now);
        }
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = fetch(&self.inner.http, jwks_uri)
            .await
            .and_then(|(body, age)| Ok((parse_jwks(&body, &config.algorithms)?, age)));
        match fetched {
            Ok((keys, age)) => {
                let ttl = age
                    .unwrap_or(config.min_cache)
                    .clamp(config.min_cache, config.max_cache.max(config.min_cache));
                tracing::debug!(keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
                self.store(KeyCache {
                    keys: Arc::new(keys),
                    expires_at: self.inner.clock.instant() + ttl,
                });
            }
            Err(error) => {
                tracing::warn!(%error, "JWKS refetch failed; keeping the cached keys");
                self.store(KeyCache {
                    keys: cache.keys.clone(),
                    expires_at: self.inner.clock.instant() + config.refetch_cooldown,
                });
            }
        }
    }
}

fn http_client(config: &VerifierConfig) -> Result<reqwest::Client, VerifyError> {
    reqwest::Client::builder()
        .timeout(config.http_timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| {
            VerifyError::new(
                ErrorKind::KeysUnavailable,
                format!("cannot build an HTTP client: {e}"),
            )
        })
}

#[cfg(test)]
mod cache_tests;
