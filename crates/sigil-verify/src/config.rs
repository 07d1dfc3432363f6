//! Verifier configuration.

use std::time::Duration;

/// Signature algorithms a verifier may accept. `none` and the HMAC algorithms are not
/// representable: they are always refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
        }
    }
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// The leeway may not exceed five minutes.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// How a [`crate::Verifier`] validates tokens and caches keys.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The issuer, exactly as in the tokens' `iss` (e.g. `https://sigil.example.com`).
    pub issuer: String,
    /// This resource server's audience: tokens must name it in `aud`.
    pub audience: String,
    /// Accepted algorithms (default: `RS256` only).
    pub algorithms: Vec<Algorithm>,
    /// Clock leeway for `exp` and `nbf` (default 30 s, at most [`MAX_LEEWAY`]).
    pub leeway: Duration,
    /// The JWKS is cached at least this long, whatever `max-age` says (default 1 minute).
    pub min_cache: Duration,
    /// ...and at most this long (default 1 day).
    pub max_cache: Duration,
    /// Least time between two refetches of the JWKS (default 30 s).
    pub refetch_cooldown: Duration,
    /// Timeout of a discovery or JWKS request (default 5 s).
    pub http_timeout: Duration,
    /// Longest accepted token, checked before anything else (default 8 KiB).
    pub max_token_len: usize,
    /// How many verified tokens to remember (default 10,000; 0 turns it off). A token seen
    /// again is matched by its SHA-256 and only its times are checked again, and only
    /// while the key that signed it is still in the current, unexpired key set.
    pub verified_cache_capacity: usize,
    /// Accepting DPoP-bound tokens with `Authorization: DPoP` and a proof (RFC 9449), and
    /// saying so in the challenges. `None` (the default): bearer tokens only; a DPoP-bound
    /// token is refused whatever the scheme.
    pub dpop: Option<crate::dpop::DpopConfig>,
}

impl VerifierConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(30),
            min_cache: Duration::from_secs(60),
            max_cache: Duration::from_secs(86_400),
            refetch_cooldown: Duration::from_secs(30),
            http_timeout: Duration::from_secs(5),
            max_token_len: 8 * 1024,
            verified_cache_capacity: 10_000,
            dpop: None,
        }
    }

    /// Accepts DPoP-bound tokens as `dpop` says (see [`crate::DpopConfig`]).
    pub fn with_dpop(mut self, dpop: crate::dpop::DpopConfig) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Sets the leeway, capped at [`MAX_LEEWAY`].
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY);
        self
    }
}
