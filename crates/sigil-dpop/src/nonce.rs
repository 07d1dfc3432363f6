//! Server-provided nonces (RFC 9449 §8 at the authorization server, §9 at a resource
//! server), without state: a nonce is the number of the period it was made in and an
//! HMAC-SHA-256 (RFC 2104) of that number under the server's key, so whoever holds the key
//! (every Sigil replica sharing the keys directory; one resource-server process) accepts it
//! without remembering anything. A nonce is good in its period and the next one, so it lives
//! between one and two periods.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

/// The bytes of a nonce: the period (8) and the first 16 bytes of its MAC.
const NONCE_BYTES: usize = 24;
/// What the MAC is over, before the period: keeps these MACs apart from any other use of
/// the key.
const DOMAIN: &[u8] = b"sigil dpop nonce ";

/// The key nonces are made with, and how long one is handed out.
#[derive(Clone)]
pub struct NonceKey {
    key: PKey<Private>,
    period: i64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// What a presented nonce is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Made in the current period.
    Current,
    /// Made in the period before: still good, and the client should get the current one.
    Previous,
    /// Not one of this key's, or older.
    Refused,
}

impl NonceKey {
    /// A key from a 32-byte secret; a nonce is handed out for `period` seconds (at least 1).
    pub fn new(secret: &[u8; 32], period: i64) -> Result<Self, String> {
        PKey::hmac(secret)
            .map(|key| Self {
                key,
                period: period.max(1),
            })
            .map_err(|e| format!("DPoP nonce key: {e}"))
    }

    /// A key from fresh random bytes: for a process whose nonces no other process must take.
    pub fn random(period: i64) -> Result<Self, String> {
        let mut secret = [0u8; 32];
        openssl::rand::rand_bytes(&mut secret).map_err(|e| format!("DPoP nonce key: {e}"))?;
        Self::new(&secret, period)
    }

    /// The number of the period `now` falls in.
    pub fn period_of(&self, now: i64) -> i64 {
        now.div_euclid(self.period)
    }

    fn mac(&self, period: i64) -> Option<Vec<u8>> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).ok()?;
        signer.update(DOMAIN).ok()?;
        signer.update(&period.to_be_bytes()).ok()?;
        let mut mac = signer.sign_to_vec().ok()?;
        mac.truncate(NONCE_BYTES - 8);
        Some(mac)
    }

    /// The nonce of the period `now` falls in: 32 base64url characters, all of them RFC
    /// 9449's NQCHAR. `None` only if OpenSSL cannot compute an HMAC.
    pub fn current(&self, now: i64) -> Option<String> {
        let period = self.period_of(now);
        let mut bytes = period.to_be_bytes().to_vec();
        bytes.extend(self.mac(period)?);
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Whether `nonce` was made with this key in the current period or the one before
    /// (the MAC compared in constant time).
    pub fn check(&self, nonce: &str, now: i64) -> NonceCheck {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return NonceCheck::Refused;
        };
        if bytes.len() != NONCE_BYTES {
            return NonceCheck::Refused;
        }
        let mut period = [0u8; 8];
        period.copy_from_slice(&bytes[..8]);
        let period = i64::from_be_bytes(period);
        let this = self.period_of(now);
        let answer = if period == this {
            NonceCheck::Current
        } else if period == this.saturating_sub(1) {
            NonceCheck::Previous
        } else {
            return NonceCheck::Refused;
        };
        match self.mac(period) {
            Some(mac) if openssl::memcmp::eq(&mac, &bytes[8..]) => answer,
            _ => NonceCheck::Refused,
        }
    }

    /// Whether `nonce` is good now ([`NonceCheck::Current`] or [`NonceCheck::Previous`]).
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        self.check(nonce, now) != NonceCheck::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_good_in_its_period_and_the_next_only() {
        let key = NonceKey::new(&[7u8; 32], 120).expect("key");
        let now = 1_800_000_000;
        let nonce = key.current(now).expect("nonce");
        assert_eq!(nonce.len(), 32);
        assert_eq!(key.check(&nonce, now), NonceCheck::Current);
        assert_eq!(key.check(&nonce, now + 120), NonceCheck::Previous);
        assert!(key.accepts(&nonce, now + 120));
        assert_eq!(key.check(&nonce, now + 240), NonceCheck::Refused);
        assert_eq!(key.check(&nonce, now - 120), NonceCheck::Refused);
        let other = NonceKey::new(&[8u8; 32], 120).expect("key");
        assert_eq!(
            other.check(&nonce, now),
            NonceCheck::Refused,
            "another key's"
        );
        let random = NonceKey::random(120).expect("key");
        assert_eq!(random.check(&nonce, now), NonceCheck::Refused);
        let mut forged = URL_SAFE_NO_PAD.decode(&nonce).expect("b64");
        forged[23] ^= 1;
        assert!(!key.accepts(&URL_SAFE_NO_PAD.encode(&forged), now));
        // The period is under the MAC: moving a nonce to another period breaks it.
        let mut moved = URL_SAFE_NO_PAD.decode(&nonce).expect("b64");
        moved[7] ^= 1;
        assert!(!key.accepts(&URL_SAFE_NO_PAD.encode(&moved), now + 120));
        assert!(!key.accepts(&URL_SAFE_NO_PAD.encode(&moved), now - 120));
        assert!(!key.accepts("not a nonce", now));
        assert!(!key.accepts("", now));
        // The edges of time make no nonce good.
        let edge = key.current(i64::MIN).expect("nonce");
        assert!(!key.accepts(&edge, i64::MAX));
        assert_eq!(key.check(&edge, i64::MIN), NonceCheck::Current);
    }
}
