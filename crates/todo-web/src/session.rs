//! Server-side sessions. The browser holds only a random 256-bit cookie value; the map is
//! keyed by its SHA-256, so the store never holds a usable cookie. The tokens live here and
//! never reach the browser.
//!
//! This is an in-memory map: fine for a sample and a single process, but sessions are lost
//! on restart and not shared between replicas. A real deployment puts them in a database
//! or Redis, keyed the same way.

use crate::secret::{random_token, Secret};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a started sign-in may take before its callback is refused.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Most sign-ins in flight at once (each `GET /login` makes one): bounds the memory an
/// anonymous visitor can make us spend.
pub const MAX_PENDING_LOGINS: usize = 10_000;

/// The SHA-256 of a cookie value: what the maps are keyed by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct CookieHash([u8; 32]);

impl CookieHash {
    fn of(cookie_value: &str) -> Self {
        Self(Sha256::digest(cookie_value.as_bytes()).into())
    }
}

/// Who signed in, from the verified ID token.
#[derive(Debug, Clone)]
pub struct User {
    pub subject: String,
    pub name: String,
    /// The `sid` claim (OIDC Front/Back-Channel Logout): Sigil's session, named in logout
    /// tokens. `None` when the issuer does not send it.
    pub session_id: Option<String>,
}

/// The tokens of one session. Behind an async mutex, so that one refresh at a time runs per
/// session (two tabs must not both spend the same rotating refresh token).
#[derive(Debug)]
pub struct Tokens {
    pub access_token: Secret,
    /// When the access token expires (from `expires_in`).
    pub access_token_expires_at: Instant,
    /// The lifetime the access token was issued with, to refresh at a fraction of it.
    pub access_token_lifetime: Duration,
    /// The newest refresh token Sigil returned (it rotates on every use).
    pub refresh_token: Option<Secret>,
    /// The raw ID token, sent back as `id_token_hint` at sign-out.
    pub id_token: Secret,
}

/// One signed-in browser.
#[derive(Debug)]
pub struct Session {
    pub user: User,
    /// The CSRF token of every form of this session.
    pub csrf: Secret,
    pub tokens: tokio::sync::Mutex<Tokens>,
    last_used: Mutex<Instant>,
}

/// A sign-in between `/login` and `/callback`: what the callback checks.
#[derive(Debug)]
pub struct PendingLogin {
    pub state: Secret,
    pub nonce: Secret,
    pub pkce_verifier: Secret,
    started_at: Instant,
}

impl PendingLogin {
    pub fn new(state: Secret, nonce: Secret, pkce_verifier: Secret) -> Self {
        Self {
            state,
            nonce,
            pkce_verifier,
            started_at: Instant::now(),
        }
    }
}

/// All sessions and sign-ins in flight.
#[derive(Clone)]
pub struct SessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    idle_timeout: Duration,
    sessions: Mutex<HashMap<CookieHash, Arc<Session>>>,
    pending: Mutex<HashMap<CookieHash, PendingLogin>>,
    /// The `state` of sign-outs sent to Sigil, to greet the user when they come back.
    logouts: Mutex<HashMap<CookieHash, Instant>>,
}

/// A poisoned lock only means another request panicked; the maps stay consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionStore {
    pub fn new(idle_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                idle_timeout,
                sessions: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                logouts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Stores a new session and returns the cookie value for it (shown once, not kept).
    pub fn create(&self, user: User, tokens: Tokens) -> String {
        let cookie_value = random_token();
        let session = Session {
            user,
            csrf: Secret::new(random_token()),
            tokens: tokio::sync::Mutex::new(tokens),
            last_used: Mutex::new(Instant::now()),
        };
        let mut sessions = lock(&self.inner.sessions);
        let idle = self.inner.idle_timeout;
        sessions.retain(|_, s| !s.is_idle(idle));
        sessions.insert(CookieHash::of(&cookie_value), Arc::new(session));
        cookie_value
    }

    /// The live session of this cookie value, marking it used; an idle one is removed.
    pub fn find(&self, cookie_value: &str) -> Option<Arc<Session>> {
        let key = CookieHash::of(cookie_value);
        let mut sessions = lock(&self.inner.sessions);
        let session = sessions.get(&key)?.clone();
        if session.is_idle(self.inner.idle_timeout) {
            sessions.remove(&key);
            return None;
        }
        *lock(&session.last_used) = Instant::now();
        Some(session)
    }

    /// Ends the session of this cookie value (sign-out, or a refresh Sigil refused).
    pub fn delete(&self, cookie_value: &str) {
        lock(&self.inner.sessions).remove(&CookieHash::of(cookie_value));
    }

    /// Back-channel logout: ends every session with this `sid`, or, with only a `sub`,
    /// every session of that user (there is one issuer, so `sub` alone names the user).
    /// With both, the session must match both. Returns how many ended.
    pub fn delete_matching(&self, session_id: Option<&str>, subject: Option<&str>) -> usize {
        if session_id.is_none() && subject.is_none() {
            return 0;
        }
        let mut sessions = lock(&self.inner.sessions);
        let before = sessions.len();
        sessions.retain(|_, s| {
            let sid_matches =
                session_id.is_none_or(|sid| s.user.session_id.as_deref() == Some(sid));
            let sub_matches = subject.is_none_or(|sub| s.user.subject == sub);
            !(sid_matches && sub_matches)
        });
        before - sessions.len()
    }

    /// How many sessions are live (tests, metrics).
    pub fn len(&self) -> usize {
        let idle = self.inner.idle_timeout;
        lock(&self.inner.sessions)
            .values()
            .filter(|s| !s.is_idle(idle))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps a sign-in in flight and returns the cookie value that ties it to the browser.
    /// `None` when too many are in flight.
    pub fn create_pending(&self, login: PendingLogin) -> Option<String> {
        let mut pending = lock(&self.inner.pending);
        pending.retain(|_, p| p.started_at.elapsed() < LOGIN_TIMEOUT);
        if pending.len() >= MAX_PENDING_LOGINS {
            return None;
        }
        let cookie_value = random_token();
        pending.insert(CookieHash::of(&cookie_value), login);
        Some(cookie_value)
    }

    /// Takes (removes) the sign-in of this cookie value: a callback is used once.
    pub fn take_pending(&self, cookie_value: &str) -> Option<PendingLogin> {
        lock(&self.inner.pending)
            .remove(&CookieHash::of(cookie_value))
            .filter(|p| p.started_at.elapsed() < LOGIN_TIMEOUT)
    }
}

impl SessionStore {
    /// Remembers the `state` of a sign-out sent to Sigil (RP-Initiated Logout 1.0 §3).
    pub fn remember_logout(&self, state: &str) {
        let mut logouts = lock(&self.inner.logouts);
        logouts.retain(|_, at| at.elapsed() < LOGIN_TIMEOUT);
        if logouts.len() < MAX_PENDING_LOGINS {
            logouts.insert(CookieHash::of(state), Instant::now());
        }
    }

    /// Whether `state` is that of a recent sign-out (each counts once).
    pub fn take_logout(&self, state: &str) -> bool {
        lock(&self.inner.logouts)
            .remove(&CookieHash::of(state))
            .is_some_and(|at| at.elapsed() < LOGIN_TIMEOUT)
    }
}

impl Session {
    fn is_idle(&self, idle_timeout: Duration) -> bool {
        lock(&self.last_used).elapsed() > idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(sub: &str, sid: Option<&str>) -> User {
        User {
            subject: sub.into(),
            name: sub.into(),
            session_id: sid.map(str::to_string),
        }
    }

    fn tokens() -> Tokens {
        Tokens {
            access_token: Secret::new("at".into()),
            access_token_expires_at: Instant::now(),
            access_token_lifetime: Duration::from_secs(60),
            refresh_token: None,
            id_token: Secret::new("id".into()),
        }
    }

    #[test]
    fn the_store_never_holds_the_cookie_value() {
        let store = SessionStore::new(Duration::from_secs(60));
        let cookie = store.create(user("a", None), tokens());
        assert_eq!(cookie.len(), 43, "256 bits, base64url");
        assert!(store.find(&cookie).is_some());
        let keys: Vec<[u8; 32]> = lock(&store.inner.sessions).keys().map(|k| k.0).collect();
        assert_eq!(
            keys,
            vec![<[u8; 32]>::from(Sha256::digest(cookie.as_bytes()))]
        );
        assert!(store.find("another value").is_none());
    }

    #[test]
    fn idle_sessions_end() {
        let store = SessionStore::new(Duration::ZERO);
        let cookie = store.create(user("a", None), tokens());
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.find(&cookie).is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn back_channel_matching_by_sid_or_sub() {
        let store = SessionStore::new(Duration::from_secs(60));
        let a1 = store.create(user("a", Some("s1")), tokens());
        let a2 = store.create(user("a", Some("s2")), tokens());
        let b = store.create(user("b", Some("s3")), tokens());
        assert_eq!(store.delete_matching(Some("s1"), Some("a")), 1);
        assert!(store.find(&a1).is_none());
        assert!(store.find(&a2).is_some());
        assert_eq!(
            store.delete_matching(Some("s3"), Some("a")),
            0,
            "sub must match too"
        );
        assert_eq!(store.delete_matching(None, Some("a")), 1);
        assert!(store.find(&a2).is_none());
        assert!(store.find(&b).is_some());
        assert_eq!(store.delete_matching(None, None), 0);
    }

    #[test]
    fn a_pending_login_is_used_once() {
        let store = SessionStore::new(Duration::from_secs(60));
        let login = PendingLogin::new(
            Secret::new("s".into()),
            Secret::new("n".into()),
            Secret::new("v".into()),
        );
        let cookie = store.create_pending(login).expect("room");
        assert!(store.take_pending(&cookie).is_some());
        assert!(store.take_pending(&cookie).is_none());
    }
}
