//! Resource-server nonces (RFC 9449 §9), without state: `sigil_dpop::NonceKey`, the one
//! nonce scheme Sigil's token endpoint uses too, under a random key made when the process
//! starts, so a process accepts its own nonces only. A nonce is good in its window and the
//! next, so it lives between one and two windows. The current window's nonce is made once
//! and kept, so that a request with it costs a comparison, not an HMAC.

use sigil_dpop::NonceKey;
use std::sync::RwLock;
use std::time::Duration;

pub(crate) struct Nonces {
    /// `None` only if OpenSSL could not make the key: then every proof is refused (closed,
    /// never open), with no nonce to offer.
    key: Option<NonceKey>,
    /// The current window's number and nonce.
    cached: RwLock<Option<(i64, String)>>,
}

/// What a proof's nonce is; each refusal or stale acceptance carries the current nonce to
/// send in `DPoP-Nonce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// The current window's.
    Current,
    /// The previous window's: accepted, and here is the current one to send.
    Previous(Option<String>),
    /// Missing, or none of ours: refused, and here is the current one to send.
    Refused(Option<String>),
}

impl Nonces {
    pub(crate) fn new(window: Duration) -> Self {
        let key = NonceKey::random(window.as_secs().max(1) as i64);
        if let Err(error) = &key {
            tracing::error!(%error, "no DPoP nonce key: every DPoP proof will be refused");
        }
        Self {
            key: key.ok(),
            cached: RwLock::new(None),
        }
    }

    /// The current window's nonce.
    pub(crate) fn current(&self, now: i64) -> Option<String> {
        let key = self.key.as_ref()?;
        let window = key.period_of(now);
        if let Some((at, nonce)) = read(&self.cached).as_ref() {
            if *at == window {
                return Some(nonce.clone());
            }
        }
        let nonce = key.current(now)?;
        *write(&self.cached) = Some((window, nonce.clone()));
        Some(nonce)
    }

    pub(crate) fn check(&self, presented: Option<&str>, now: i64) -> NonceCheck {
        let (Some(key), Some(presented)) = (self.key.as_ref(), presented) else {
            return NonceCheck::Refused(self.current(now));
        };
        let current = self.current(now);
        // The lengths are public (every nonce has 32 characters); `eq` needs them equal.
        if current.as_deref().is_some_and(|current| {
            current.len() == presented.len()
                && openssl::memcmp::eq(current.as_bytes(), presented.as_bytes())
        }) {
            return NonceCheck::Current;
        }
        match key.check(presented, now) {
            sigil_dpop::NonceCheck::Current => NonceCheck::Current,
            sigil_dpop::NonceCheck::Previous => NonceCheck::Previous(current),
            sigil_dpop::NonceCheck::Refused => NonceCheck::Refused(current),
        }
    }
}

/// A poisoned lock still holds a whole value (each write replaces it).
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_and_the_previous_windows_nonces_are_accepted() {
        let nonces = Nonces::new(Duration::from_secs(60));
        let first = nonces.current(1_000).expect("nonce");
        assert_eq!(first.len(), 32);
        assert_eq!(nonces.check(Some(&first), 1_019), NonceCheck::Current);
        // Next window: the old nonce still passes, with the new one to send.
        let second = nonces.current(1_020).expect("nonce");
        assert_ne!(first, second);
        assert_eq!(
            nonces.check(Some(&first), 1_020),
            NonceCheck::Previous(Some(second.clone()))
        );
        assert_eq!(nonces.check(Some(&second), 1_020), NonceCheck::Current);
        // Two windows on: refused.
        assert_eq!(
            nonces.check(Some(&first), 1_080),
            NonceCheck::Refused(nonces.current(1_080))
        );
        assert!(matches!(
            nonces.check(None, 1_080),
            NonceCheck::Refused(Some(_))
        ));
        assert!(matches!(
            nonces.check(Some("made-up"), 1_080),
            NonceCheck::Refused(Some(_))
        ));
        // Another process's key makes other nonces.
        let other = Nonces::new(Duration::from_secs(60));
        assert!(matches!(
            other.check(nonces.current(1_080).as_deref(), 1_080),
            NonceCheck::Refused(_)
        ));
    }
}
