//! DPoP (RFC 9449) at the authorization server: checking the proofs that come with token,
//! pushed authorization and userinfo requests, and the server's nonces (§8).
//!
//! The proof's own rules (§4.3: shape, `typ`, `alg`, key, signature, `htm`, `htu`, `iat`,
//! `ath`) are `sigil_dpop`'s, shared with `sigil-verify`; they run on the signing pool.
//! Here come the rest: the nonce when the server requires one, and the `jti`, recorded in
//! the database until the proof would expire, so that a replay is refused on every replica
//! (§11.1). What a proof binds (a token's `cnf.jkt`, a code's `dpop_jkt`, a public client's
//! refresh family) is decided by the grants.

mod recorder;

pub(crate) use recorder::ProofRecorder;

use crate::authority::Authority;
use crate::error::{ErrorCode, OAuthError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// The proof algorithms Sigil accepts and lists in discovery
/// (`dpop_signing_alg_values_supported`).
pub const SIGNING_ALGS: [&str; 4] = ["ES256", "RS256", "PS256", "EdDSA"];

/// How far in the future a proof's `iat` may be (seconds).
pub const PROOF_LEEWAY: i64 = 30;

/// How long one nonce is handed out (seconds); a nonce is accepted for two such periods.
pub const NONCE_PERIOD: i64 = 120;

/// RFC 7800 `cnf` of a DPoP-bound token (RFC 9449 §6): the key's thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// What the server requires of proofs.
#[derive(Clone)]
pub struct DpopPolicy {
    /// How old a proof's `iat` may be (seconds).
    pub proof_max_age: i64,
    /// Set when proofs must carry a nonce Sigil issued (§8).
    pub nonces: Option<NonceKey>,
}

impl Default for DpopPolicy {
    fn default() -> Self {
        Self {
            proof_max_age: 300,
            nonces: None,
        }
    }
}

impl std::fmt::Debug for DpopPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopPolicy")
            .field("proof_max_age", &self.proof_max_age)
            .field("nonces", &self.nonces.is_some())
            .finish()
    }
}

/// The key nonces are made with (`sigil_dpop`'s, shared with `sigil-verify`): a nonce is
/// the period it was made in and an HMAC of it, so every replica that shares the key (the
/// keys directory) accepts every replica's nonces without sharing any state. Sigil's are
/// made with [`NONCE_PERIOD`].
pub use sigil_dpop::NonceKey;

/// A proof sent with a request, not yet checked. Its `Debug` leaves the proof out.
#[derive(Clone, Copy)]
pub struct DpopProof<'a> {
    /// The `DPoP` header's value.
    pub proof: &'a str,
    /// The request's method.
    pub method: &'a str,
}

/// Whether `value` has the form of a JWK SHA-256 thumbprint: 43 base64url characters.
pub fn is_thumbprint(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl std::fmt::Debug for DpopProof<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopProof")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, description)
}

impl Authority {
    /// The nonce to send in `DPoP-Nonce` now, when the server requires nonces.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.config
            .dpop
            .nonces
            .as_ref()
            .and_then(|key| key.current(self.now()))
    }

    /// Checks a proof sent to the endpoint at `path` (under the issuer), with the access
    /// token it came with if any, and records its use; the key's thumbprint (`jkt`) when
    /// it is good. Refusals are `invalid_dpop_proof`, or `use_dpop_nonce` when the server
    /// wants a (new) nonce.
    pub async fn check_dpop_proof(
        &self,
        proof: DpopProof<'_>,
        path: &str,
        access_token: Option<&str>,
    ) -> Result<String, OAuthError> {
        let key = self.verify_dpop_proof(proof, path, access_token).await?;
        self.record_dpop_use(&key).await?;
        Ok(key.jkt)
    }

    /// [`Authority::check_dpop_proof`] but for the use: the proof's rules and the nonce,
    /// nothing written. The token endpoint records the use only once the grant is good
    /// ([`Authority::record_dpop_use`], just before signing), so that junk sent with a
    /// valid proof (a made-up code for a public client) costs no database write.
    pub(crate) async fn verify_dpop_proof(
        &self,
        proof: DpopProof<'_>,
        path: &str,
        access_token: Option<&str>,
    ) -> Result<ProvenKey, OAuthError> {
        let now = self.now();
        let url = format!("{}{path}", self.config.issuer);
        let rules = sigil_dpop::Rules {
            algorithms: sigil_dpop::ALGORITHMS.to_vec(),
            max_age: self.config.dpop.proof_max_age,
            leeway: PROOF_LEEWAY,
        };
        let text = proof.proof.to_string();
        let method = proof.method.to_string();
        let token = access_token.map(str::to_string);
        let checked = self
            .signing_pool
            .run(move || {
                sigil_dpop::check(
                    &text,
                    &sigil_dpop::Expected {
                        method: &method,
                        url: &url,
                        access_token: token.as_deref(),
                        now,
                    },
                    &rules,
                )
            })
            .await?
            .map_err(|e| invalid(e.description()))?;
        if let Some(key) = &self.config.dpop.nonces {
            if !checked
                .nonce
                .as_deref()
                .is_some_and(|n| key.accepts(n, now))
            {
                return Err(OAuthError::new(
                    ErrorCode::UseDpopNonce,
                    "the DPoP proof must carry the nonce this server gave in DPoP-Nonce",
                ));
            }
        }
        Ok(ProvenKey {
            replay_key: checked.replay_key(),
            until: checked.replay_until(),
            jkt: checked.jkt,
            recorded: AtomicBool::new(false),
        })
    }

    /// Records the use of a proof that passed [`Authority::verify_dpop_proof`], once (a
    /// second call for the same request does nothing): refused as a replay when it was
    /// used before, on any replica.
    pub(crate) async fn record_dpop_use(&self, key: &ProvenKey) -> Result<(), OAuthError> {
        if key.recorded.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let first_use = self
            .dpop_recorder
            .record(&key.replay_key, key.until, self.now())
            .await?;
        if !first_use {
            return Err(invalid(
                "the DPoP proof was used before: make a new proof for each request",
            ));
        }
        Ok(())
    }
}

/// The key of a proof that passed its checks, and what recording its use needs.
pub(crate) struct ProvenKey {
    /// The RFC 7638 thumbprint the tokens are bound to.
    pub jkt: String,
    replay_key: String,
    until: i64,
    recorded: AtomicBool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigils_nonces_last_one_to_two_periods() {
        let key = NonceKey::new(&[7u8; 32], NONCE_PERIOD).expect("key");
        let now = 1_800_000_000;
        let nonce = key.current(now).expect("nonce");
        assert!(key.accepts(&nonce, now + NONCE_PERIOD));
        assert!(!key.accepts(&nonce, now + 2 * NONCE_PERIOD));
    }
}
