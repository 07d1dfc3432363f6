//! OpenID Connect Back-Channel Logout 1.0: the session id (`sid`) that ID tokens carry,
//! the logout token (§2.4), where a client may receive it (§2.2), which sessions ended
//! (and so which clients to tell), and when a failed delivery is tried again.
//!
//! A logout is queued in the store (the `logout_deliveries` outbox) in the same request
//! that ends the session, so it survives a crash; the server's worker signs a fresh token
//! at each attempt and POSTs it. Nothing queued is a credential.

use crate::authority::Authority;
use crate::clock::Clock;
use crate::error::OAuthError;
use crate::secret::random_token;
use crate::store::{QueuedLogouts, Store};
use crate::token::sign_jwt;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// §2.4: the `typ` header of a logout token (explicit typing, RFC 8725 §3.11).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// §2.4: the member of `events` that makes a JWT a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is good for after it is signed (§2.4 recommends a short `exp`).
pub const LOGOUT_TOKEN_TTL: i64 = 120;
/// Undelivered logout tokens one client may have waiting at once. A client whose
/// endpoint is down for long cannot grow the outbox without bound: beyond this, new
/// logouts for it are dropped (and counted).
pub const MAX_PENDING_PER_CLIENT: i64 = 1000;
/// The wait after the first failed delivery; it doubles with each failure.
pub const FIRST_RETRY_SECONDS: i64 = 1;
/// The longest wait between two attempts.
pub const MAX_RETRY_SECONDS: i64 = 300;
/// A logout still undelivered this long after it was queued is given up.
pub const GIVE_UP_AFTER_SECONDS: i64 = 24 * 3600;

/// The `sid` of a browser session: derived from the session's record id (never the
/// cookie) by SHA-256, so a client learns nothing it could use against the session, and
/// every replica derives the same value.
pub fn session_sid(session_record_id: &str) -> String {
    let digest = Sha256::digest(format!("sigil-sid:{session_record_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..18])
}

/// §2.2: a back-channel logout URI is an absolute `https` URL (or `http` on a loopback IP
/// address, for development), which may carry a port, path and query but no fragment and
/// no user information.
pub fn validate_logout_uri(uri: &str) -> Result<(), &'static str> {
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let url = url::Url::parse(uri).map_err(|_| "must be an absolute https URL")?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err("must not contain a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user information");
    }
    let host = url.host_str().ok_or("must name a host")?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if matches!(host, "127.0.0.1" | "[::1]") => Ok(()),
        "http" => Err("must use https (http only on a loopback IP address)"),
        _ => Err("must be an https URL"),
    }
}

/// §2.4 logout token claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogoutTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub events: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Which of a user's browser sessions ended, by `sid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedSessions<'a> {
    /// One session (a sign-out, or the user ending it on the account page).
    Only(&'a str),
    /// Every session but this one ("sign out of other sessions").
    AllExcept(&'a str),
    /// Every session (sign out everywhere, a password reset, an admin disabling the user).
    All,
}

impl EndedSessions<'_> {
    /// The (`only`, `except`) pair of `sid`s a store selects with.
    pub fn as_filter(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Self::Only(sid) => (Some(sid), None),
            Self::AllExcept(sid) => (None, Some(sid)),
            Self::All => (None, None),
        }
    }
}

/// When to try a delivery again after its `failures`-th failed attempt (1 for the first),
/// queued at `created_at`: 1 s, doubling up to 5 minutes, given up (`None`) a day after
/// queueing.
pub fn next_attempt_at(created_at: i64, failures: i64, now: i64) -> Option<i64> {
    let doublings = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let wait = FIRST_RETRY_SECONDS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_SECONDS);
    let at = now.saturating_add(wait);
    (at <= created_at.saturating_add(GIVE_UP_AFTER_SECONDS)).then_some(at)
}

/// Queues the logouts of ended sessions, and wakes this process's delivery worker. Every
/// service that ends sessions holds one (shared within a process); a command-line process
/// has its own, and a serving replica's worker finds what it queued on its next poll.
#[derive(Clone)]
pub struct LogoutQueue {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    queued: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl LogoutQueue {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            wake: Arc::new(Notify::new()),
            queued: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Notes that the browser session `sid` of `user_id` signed in to `client_id` (an
    /// authorization code was issued from it). A failure is logged: the sign-in goes on,
    /// and only that client's back-channel logout of this session is lost.
    pub async fn signed_in_to(&self, sid: &str, client_id: &str, user_id: &str) {
        if let Err(error) = self
            .store
            .record_session_client(sid, client_id, user_id, self.clock.now())
            .await
        {
            tracing::warn!(%error, "could not note the session's client for back-channel logout");
        }
    }

    /// Queues a logout token for every client the `ended` sessions of `user_id` signed in
    /// to, then wakes the worker. Durable before it returns. A failure is logged and the
    /// logout goes on: the session ends at Sigil whatever the clients hear.
    pub async fn sessions_ended(&self, user_id: &str, ended: EndedSessions<'_>) -> QueuedLogouts {
        let (only, except) = ended.as_filter();
        match self
            .store
            .queue_logouts(
                user_id,
                only,
                except,
                MAX_PENDING_PER_CLIENT,
                self.clock.now(),
            )
            .await
        {
            Ok(queued) => {
                if queued.dropped > 0 {
                    self.dropped.fetch_add(queued.dropped, Ordering::Relaxed);
                    tracing::warn!(
                        dropped = queued.dropped,
                        "back-channel logouts dropped: their client has too many undelivered"
                    );
                }
                if queued.queued > 0 {
                    self.queued.fetch_add(queued.queued, Ordering::Relaxed);
                    self.wake.notify_one();
                }
                queued
            }
            Err(error) => {
                tracing::warn!(%error, "could not queue back-channel logouts");
                QueuedLogouts::default()
            }
        }
    }

    /// Resolves when something was queued in this process since the last call.
    pub async fn queued(&self) {
        self.wake.notified().await
    }

    /// Logouts queued by this process since start.
    pub fn queued_count(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Logouts dropped by the per-client bound since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Authority {
    /// The logout queue the engine's services share.
    pub fn logout_queue(&self) -> &LogoutQueue {
        &self.logout_queue
    }

    /// Signs a logout token (§2.4) for `client_id` about `subject` (and the session `sid`),
    /// on the signing pool: `iat` now, `exp` [`LOGOUT_TOKEN_TTL`] later, a fresh `jti`, no
    /// `nonce` (§2.4 forbids it).
    pub async fn sign_logout_token(
        &self,
        client_id: &str,
        subject: &str,
        sid: Option<&str>,
    ) -> Result<String, OAuthError> {
        let now = self.now();
        let claims = LogoutTokenClaims {
            iss: self.config.issuer.clone(),
            sub: subject.to_string(),
            aud: client_id.to_string(),
            iat: now,
            exp: now + LOGOUT_TOKEN_TTL,
            jti: random_token(16),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
            sid: sid.map(str::to_string),
        };
        let key = self
            .keys
            .current()
            .signing_key(now)
            .cloned()
            .ok_or_else(|| OAuthError::server_error(&"no signing key loaded"))?;
        self.signing_pool
            .run(move || sign_jwt(&key, LOGOUT_TOKEN_TYP, &claims))
            .await?
            .map_err(|e| OAuthError::server_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_stable_opaque_and_distinct() {
        let a = session_sid("session-a");
        assert_eq!(a, session_sid("session-a"));
        assert_ne!(a, session_sid("session-b"));
        assert_eq!(a.len(), 24);
        assert!(!a.contains("session"));
    }

    #[test]
    fn logout_uris_follow_section_2_2() {
        for good in [
            "https://rp.example.com/backchannel-logout",
            "https://rp.example.com:8443/bcl?tenant=a",
            "http://127.0.0.1:8091/backchannel-logout",
            "http://[::1]:8091/backchannel-logout",
        ] {
            assert_eq!(validate_logout_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "https://rp.example.com/bcl#frag",
            "http://rp.example.com/bcl",
            "http://localhost:8091/bcl",
            "https://user:pw@rp.example.com/bcl",
            "javascript:alert(1)",
            "/relative",
            "https://rp.example .com/",
        ] {
            assert!(validate_logout_uri(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let waits: Vec<i64> = (1..=11)
            .map(|n| next_attempt_at(0, n, 0).expect("retried"))
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(next_attempt_at(0, 3, GIVE_UP_AFTER_SECONDS), None);
    }
}
