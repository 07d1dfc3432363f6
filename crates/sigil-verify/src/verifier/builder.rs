//! Building a verifier: discovery, a known JWKS URL or a fixed key set, and the time source.

use super::{http_client, KeyCache, Verifier};
use crate::clock::{Clock, SystemClock};
use crate::config::VerifierConfig;
use crate::error::{ErrorKind, VerifyError};
use crate::jwks::{fetch, parse_jwks};
use std::sync::Arc;
use std::time::Duration;

/// A [`Verifier`] in the making, from [`Verifier::builder`]. Without [`Self::clock`] it
/// reads the system's time, as [`Verifier::discover`] and the other constructors do.
///
/// ```no_run
/// use sigil_verify::{ManualClock, Verifier, VerifierConfig};
/// use std::sync::Arc;
///
/// # async fn run() -> Result<(), sigil_verify::VerifyError> {
/// let clock = Arc::new(ManualClock::new());
/// let config = VerifierConfig::new("https://sigil.example.com", "https://api.example.com");
/// let verifier = Verifier::builder(config).clock(clock.clone()).discover().await?;
/// clock.advance(std::time::Duration::from_secs(60)); // the cool-down has passed
/// # Ok(())
/// # }
/// ```
pub struct VerifierBuilder {
    config: VerifierConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long a fixed key set stays current: for ever, in practice.
const STATIC_KEYS_LIFETIME: Duration = Duration::from_secs(100 * 365 * 86_400);

impl VerifierBuilder {
    pub(super) fn new(config: VerifierConfig) -> Self {
        Self {
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock`: token expiry (`exp`, `nbf`), the key cache's lifetime
    /// and the refetch cool-down all follow it.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Reads the issuer's discovery document for `jwks_uri`, then fetches the key set.
    pub async fn discover(self) -> Result<Verifier, VerifyError> {
        let Self { config, clock } = self;
        let http = http_client(&config)?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            config.issuer.trim_end_matches('/')
        );
        let (body, _) = fetch(&http, &url).await?;
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            VerifyError::new(
                ErrorKind::KeysUnavailable,
                "the discovery document is not JSON",
            )
        })?;
        if doc["issuer"].as_str() != Some(config.issuer.as_str()) {
            return Err(VerifyError::new(
                ErrorKind::KeysUnavailable,
                "the discovery document names another issuer",
            ));
        }
        let jwks_uri = doc["jwks_uri"]
            .as_str()
            .ok_or_else(|| {
                VerifyError::new(
                    ErrorKind::KeysUnavailable,
                    "the discovery document has no jwks_uri",
                )
            })?
            .to_string();
        let verifier = Verifier::build(config, clock, http, Some(jwks_uri));
        verifier.refresh(None).await;
        if verifier.current().keys.is_empty() {
            return Err(VerifyError::new(
                ErrorKind::KeysUnavailable,
                "the issuer publishes no usable key",
            ));
        }
        Ok(verifier)
    }

    /// A verifier with a known JWKS URL; the keys are fetched on first use.
    pub fn jwks_uri(self, jwks_uri: impl Into<String>) -> Result<Verifier, VerifyError> {
        let http = http_client(&self.config)?;
        Ok(Verifier::build(
            self.config,
            self.clock,
            http,
            Some(jwks_uri.into()),
        ))
    }

    /// A verifier with a fixed key set that is never refetched.
    pub fn static_jwks(self, jwks_json: &[u8]) -> Result<Verifier, VerifyError> {
        let keys = parse_jwks(jwks_json, &self.config.algorithms)?;
        let http = http_client(&self.config)?;
        let expires_at = self.clock.instant() + STATIC_KEYS_LIFETIME;
        let verifier = Verifier::build(self.config, self.clock, http, None);
        verifier.store(KeyCache {
            keys: Arc::new(keys),
            expires_at,
        });
        Ok(verifier)
    }
}
