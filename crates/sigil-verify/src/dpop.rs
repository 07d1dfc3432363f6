//! DPoP at the resource server (RFC 9449 §7): which scheme a request used, the proof that
//! must come with a DPoP-bound token, the replay cache (§11.1) and the resource server's
//! nonces (§9). The proof itself is checked by `sigil_dpop::check`, the one implementation
//! Sigil's token endpoint shares.
//!
//! [`Verifier::verify_request`] is the framework-free entry point; the axum layer and
//! extractor in [`crate::axum_support`] call it.

mod nonce;
mod replay;

use crate::claims::Claims;
use crate::error::{ErrorKind, VerifyError};
use crate::verifier::Verifier;
pub(crate) use nonce::Nonces;
pub(crate) use replay::{ReplayCache, ReplayOutcome};
pub use sigil_dpop::Alg as ProofAlgorithm;
/// Every proof algorithm `sigil-verify` checks, the default of [`DpopConfig::algorithms`].
pub use sigil_dpop::ALGORITHMS as PROOF_ALGORITHMS;
use std::time::Duration;

/// How a resource server reads DPoP requests: set [`crate::VerifierConfig::dpop`] to accept
/// `Authorization: DPoP` (a verifier without it accepts bearer tokens only, and still refuses
/// a DPoP-bound token sent as `Bearer`, RFC 9449 §7.2).
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// Where clients reach this resource server: the `htu` of a proof must be this and the
    /// request's path (RFC 9449 §4.3 point 9).
    pub public_origin: PublicOrigin,
    /// Proof algorithms accepted, named in the challenge's `algs` (default: ES256, RS256,
    /// PS256, EdDSA).
    pub algorithms: Vec<ProofAlgorithm>,
    /// How old a proof's `iat` may be (default 5 minutes); also how long its `jti` is
    /// remembered.
    pub max_age: Duration,
    /// How far in the future a proof's `iat` may be (default 30 s, for clocks that run ahead).
    pub leeway: Duration,
    /// How many proofs the replay cache remembers at most (default 250,000, about 10 MB).
    /// A proof is remembered until its `iat` is older than `max_age`; when the cache is full
    /// of unexpired proofs, new proofs are refused with 503 rather than old ones forgotten,
    /// so a replay can never slip through. Size it to the proof rate times `max_age`.
    pub replay_capacity: usize,
    /// With `Some(window)`, every proof must carry a nonce this verifier issued (RFC 9449
    /// §9): nonces change every `window` and the current and the previous ones are accepted.
    /// A proof without one gets 401 `use_dpop_nonce` and a `DPoP-Nonce` header. Default off.
    pub nonce_window: Option<Duration>,
}

impl DpopConfig {
    /// DPoP for a resource server reached at `public_origin`, with the defaults above.
    pub fn new(public_origin: PublicOrigin) -> Self {
        Self {
            public_origin,
            algorithms: sigil_dpop::ALGORITHMS.to_vec(),
            max_age: Duration::from_secs(300),
            leeway: Duration::from_secs(30),
            replay_capacity: 250_000,
            nonce_window: None,
        }
    }

    /// Requires resource-server nonces (RFC 9449 §9) that change every `window`.
    pub fn with_nonces(mut self, window: Duration) -> Self {
        self.nonce_window = Some(window.max(Duration::from_secs(1)));
        self
    }
}

/// The scheme and authority (and any path prefix) clients use for this resource server, from
/// which the URL a proof's `htu` must name is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicOrigin {
    /// The public base URL, such as `https://api.example.com` or, behind a proxy that strips a
    /// prefix, `https://example.com/api`; the request's path is appended to it. The safe
    /// choice behind a reverse proxy, where the `Host` a client sent cannot be trusted.
    Url(String),
    /// The request's `Host` header with this scheme (`https` when true). Only where no proxy
    /// can pass a client's `Host` through unchecked: an attacker who replays a stolen proof
    /// cannot change its `htu`, but a server that believes any `Host` accepts proofs made
    /// for another server that shares its keys' clients.
    RequestHost { https: bool },
}

/// How the request presented its access token (RFC 6750 §2.1, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// The `DPoP` request headers (RFC 9449 §4.3 point 1: not more than one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofHeader<'a> {
    Missing,
    One(&'a str),
    /// More than one `DPoP` header, or one that is not visible ASCII.
    Invalid,
}

/// A request as [`Verifier::verify_request`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct PresentedRequest<'a> {
    pub scheme: Scheme,
    /// The access token from the `Authorization` header.
    pub token: &'a str,
    pub proof: ProofHeader<'a>,
    /// The HTTP method, as sent.
    pub method: &'a str,
    /// The URL the client sent the request to, as [`PublicOrigin`] makes it; its query is
    /// ignored.
    pub url: &'a str,
    /// The route accepts DPoP-bound tokens only (no bearer tokens).
    pub require_dpop: bool,
}

/// A request that passed: its token's claims and, when nonces are on and the client's is
/// about to go stale, a fresh nonce to send back in `DPoP-Nonce` (RFC 9449 §8.2).
#[derive(Debug, Clone)]
pub struct Authorized {
    pub claims: Claims,
    pub next_nonce: Option<String>,
}

/// What a challenge needs of the verifier and the request: see
/// [`VerifyError::dpop_challenge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopChallenge {
    /// The `algs` of the `DPoP` challenge (space-separated).
    pub algs: String,
    /// Whether the `Bearer` challenge is offered too.
    pub bearer_allowed: bool,
    /// The scheme the request used, whose challenge carries the error (RFC 9449 §7.2); `None`
    /// when it could not be told (both carry it).
    pub used: Option<Scheme>,
}

impl Verifier {
    /// Verifies a request's access token the way RFC 9449 §7 asks: a DPoP-bound token (one
    /// with `cnf.jkt`) only with the `DPoP` scheme and exactly one valid proof for this
    /// method and URL, whose `ath` is the token's hash, whose key is `cnf.jkt`, with this
    /// verifier's nonce when nonces are on, and never seen before; a bearer token only with
    /// the `Bearer` scheme, and not where `require_dpop` is set. The errors carry the
    /// [`DpopChallenge`] when this verifier accepts DPoP.
    pub async fn verify_request(
        &self,
        request: &PresentedRequest<'_>,
    ) -> Result<Authorized, VerifyError> {
        self.check_request(request)
            .await
            .map_err(|error| self.dpop_context(error, Some(request.scheme), request.require_dpop))
    }

    async fn check_request(
        &self,
        request: &PresentedRequest<'_>,
    ) -> Result<Authorized, VerifyError> {
        let dpop = self.inner.dpop.as_ref();
        if request.scheme == Scheme::Bearer && request.require_dpop {
            return Err(VerifyError::new(
                ErrorKind::DpopRequired,
                "this resource accepts DPoP-bound tokens only (Authorization: DPoP and a DPoP proof)",
            ));
        }
        let dpop = match (request.scheme, dpop) {
            (Scheme::Dpop, None) => {
                return Err(VerifyError::new(
                    ErrorKind::BadRequest,
                    "the Authorization header must be Bearer",
                ))
            }
            (_, dpop) => dpop,
        };
        let claims = self.verify(request.token).await?;
        if claims
            .cnf
            .as_ref()
            .is_some_and(|cnf| cnf.has_other_members || cnf.jkt.is_none())
        {
            return Err(VerifyError::new(
                ErrorKind::Binding,
                "the token is bound to a key of a kind this resource server cannot check",
            ));
        }
        let (dpop, jkt) =
            match (request.scheme, dpop, claims.confirmation_key()) {
                (Scheme::Bearer, _, None) => {
                    return Ok(Authorized {
                        claims,
                        next_nonce: None,
                    })
                }
                // RFC 9449 §7.2: a DPoP-bound token sent as a bearer token is refused.
                (Scheme::Bearer, _, Some(_)) => return Err(VerifyError::new(
                    ErrorKind::Binding,
                    "the token is DPoP-bound: send it with Authorization: DPoP and a DPoP proof",
                )),
                // RFC 9449 §7.1: the DPoP scheme carries DPoP-bound tokens; the check that the
                // proof's key is the token's cannot succeed for a token bound to no key.
                (Scheme::Dpop, _, None) => {
                    return Err(VerifyError::new(
                        ErrorKind::Binding,
                        "the token is not DPoP-bound: send it with Authorization: Bearer",
                    ))
                }
                (Scheme::Dpop, Some(dpop), Some(jkt)) => (dpop, jkt),
                // A verifier without DPoP refused the scheme above; a bound token is refused.
                (Scheme::Dpop, None, Some(_)) => {
                    return Err(VerifyError::new(
                        ErrorKind::Binding,
                        "this resource server does not accept DPoP",
                    ))
                }
            };
        let proof = match request.proof {
            ProofHeader::One(proof) => proof,
            ProofHeader::Missing => {
                return Err(VerifyError::new(
                    ErrorKind::InvalidDpopProof,
                    "a DPoP-bound token needs a DPoP proof in the DPoP header",
                ))
            }
            ProofHeader::Invalid => {
                return Err(VerifyError::new(
                    ErrorKind::InvalidDpopProof,
                    "the request must carry exactly one DPoP header of visible ASCII",
                ))
            }
        };
        let now = self.inner.clock.unix_time();
        let expected = sigil_dpop::Expected {
            method: request.method,
            url: request.url,
            access_token: Some(request.token),
            now,
        };
        let proof = sigil_dpop::check(proof, &expected, &dpop.rules)
            .map_err(|e| VerifyError::new(ErrorKind::InvalidDpopProof, e.description()))?;
        if proof.jkt != jkt {
            // RFC 9449 §7.1 Figure 16: a failed key binding is an invalid token.
            return Err(VerifyError::new(
                ErrorKind::Binding,
                "the DPoP proof is not signed by the key the token is bound to",
            ));
        }
        let next_nonce = match &dpop.nonces {
            None => None,
            Some(nonces) => match nonces.check(proof.nonce.as_deref(), now) {
                nonce::NonceCheck::Current => None,
                nonce::NonceCheck::Previous(fresh) => fresh,
                nonce::NonceCheck::Refused(fresh) => {
                    let message = if proof.nonce.is_some() {
                        "the DPoP proof's nonce is stale or not one of this resource server's: use the one in DPoP-Nonce"
                    } else {
                        "this resource server requires a nonce in the DPoP proof: use the one in DPoP-Nonce"
                    };
                    let error = VerifyError::new(ErrorKind::UseDpopNonce, message);
                    return Err(match fresh {
                        Some(fresh) => error.with_dpop_nonce(fresh),
                        None => error,
                    });
                }
            },
        };
        match dpop
            .replay
            .remember(proof.replay_digest(), proof.replay_until(), now)
        {
            ReplayOutcome::New => {}
            ReplayOutcome::Replayed => {
                return Err(VerifyError::new(
                    ErrorKind::InvalidDpopProof,
                    "the DPoP proof was used before: make a new proof for each request",
                ))
            }
            ReplayOutcome::Full => {
                tracing::warn!(
                    capacity = dpop.replay.capacity(),
                    "DPoP replay cache full of unexpired proofs; refusing new proofs"
                );
                return Err(VerifyError::new(
                    ErrorKind::ReplayCacheFull,
                    "too many DPoP proofs in the last minutes for this server to remember; try again shortly",
                ));
            }
        }
        Ok(Authorized { claims, next_nonce })
    }

    /// `error` with the [`DpopChallenge`] of this verifier (unchanged when it does not accept
    /// DPoP, or already has one): `used` is the scheme of the request, if known.
    pub fn dpop_context(
        &self,
        error: VerifyError,
        used: Option<Scheme>,
        require_dpop: bool,
    ) -> VerifyError {
        let Some(dpop) = self.inner.dpop.as_ref() else {
            return error;
        };
        if error.dpop_challenge().is_some() {
            return error;
        }
        error.with_dpop_challenge(DpopChallenge {
            algs: dpop.algs.clone(),
            bearer_allowed: !require_dpop,
            used,
        })
    }

    /// The public origin DPoP proofs' `htu` is checked against, if this verifier accepts
    /// DPoP.
    pub fn dpop_public_origin(&self) -> Option<&PublicOrigin> {
        self.inner.dpop.as_ref().map(|d| &d.config.public_origin)
    }

    /// A fresh nonce to hand clients in `DPoP-Nonce`, when nonces are on.
    pub fn dpop_nonce(&self) -> Option<String> {
        let dpop = self.inner.dpop.as_ref()?;
        dpop.nonces.as_ref()?.current(self.inner.clock.unix_time())
    }

    /// How many proofs the replay cache holds now (for tests and metrics).
    pub fn dpop_replay_len(&self) -> usize {
        self.inner.dpop.as_ref().map_or(0, |d| d.replay.len())
    }
}

/// A verifier's DPoP state, built once from its [`DpopConfig`].
pub(crate) struct DpopState {
    pub(crate) config: DpopConfig,
    rules: sigil_dpop::Rules,
    algs: String,
    replay: ReplayCache,
    nonces: Option<Nonces>,
}

impl DpopState {
    pub(crate) fn new(config: DpopConfig) -> Self {
        let rules = sigil_dpop::Rules {
            algorithms: config.algorithms.clone(),
            max_age: config.max_age.as_secs() as i64,
            leeway: config.leeway.as_secs() as i64,
        };
        let algs = config
            .algorithms
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            rules,
            algs,
            replay: ReplayCache::new(config.replay_capacity),
            nonces: config.nonce_window.map(Nonces::new),
            config,
        }
    }
}

/// The URL a proof's `htu` must name for a request to `path` (query dropped) with `host`,
/// per `origin`; `None` when it cannot be made (no `Host` for [`PublicOrigin::RequestHost`]).
pub fn request_url(origin: &PublicOrigin, host: Option<&str>, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    match origin {
        PublicOrigin::Url(base) => Some(format!("{}{path}", base.trim_end_matches('/'))),
        PublicOrigin::RequestHost { https } => {
            let host = host.filter(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@']))?;
            let scheme = if *https { "https" } else { "http" };
            Some(format!("{scheme}://{host}{path}"))
        }
    }
}
