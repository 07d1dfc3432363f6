//! Resource-server nonces (RFC 9449 §9), without state: the nonce of a time window is an
//! HMAC-SHA-256 (RFC 2104) of the window's number under a random key made when the process
//! starts, so nonces of one process are accepted by that process only. The current and the
//! previous window's nonces are accepted, so a nonce lives between one and two windows.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::RwLock;
use std::time::Duration;

pub(crate) struct Nonces {
    key: [u8; 32],
    window: i64,
    /// The window number, its nonce and the previous window's, computed once per window.
    cached: RwLock<Option<(i64, String, String)>>,
}

/// What a proof's nonce is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// The current window's.
    Current,
    /// The previous window's: accepted, and here is the current one to send.
    Previous(String),
    /// Missing, or none of ours: refused, and here is the current one to send.
    Refused(String),
}

impl Nonces {
    pub(crate) fn new(window: Duration) -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            key,
            window: window.as_secs().max(1) as i64,
            cached: RwLock::new(None),
        }
    }

    pub(crate) fn current(&self, now: i64) -> String {
        self.pair(now).0
    }

    pub(crate) fn check(&self, presented: Option<&str>, now: i64) -> NonceCheck {
        let window = now.div_euclid(self.window);
        {
            let cached = match self.cached.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some((at, current, previous)) = cached.as_ref() {
                if *at == window {
                    return classify(presented, current, previous);
                }
            }
        }
        let (current, previous) = self.pair(now);
        classify(presented, &current, &previous)
    }

    /// The current and the previous window's nonces at `now`.
    fn pair(&self, now: i64) -> (String, String) {
        let window = now.div_euclid(self.window);
        if let Ok(cached) = self.cached.read() {
            if let Some((at, current, previous)) = cached.as_ref() {
                if *at == window {
                    return (current.clone(), previous.clone());
                }
            }
        }
        let current = self.nonce_of(window);
        let previous = self.nonce_of(window - 1);
        let mut cached = match self.cached.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *cached = Some((window, current.clone(), previous.clone()));
        (current, previous)
    }

    /// 18 bytes of the MAC, base64url: 24 characters, all of them RFC 9449's NQCHAR.
    fn nonce_of(&self, window: i64) -> String {
        let mut message = *b"sigil-verify DPoP nonce 00000000";
        message[24..].copy_from_slice(&window.to_be_bytes());
        URL_SAFE_NO_PAD.encode(&hmac_sha256(&self.key, &message)[..18])
    }
}

fn classify(presented: Option<&str>, current: &str, previous: &str) -> NonceCheck {
    match presented {
        Some(nonce) if nonce == current => NonceCheck::Current,
        Some(nonce) if nonce == previous => NonceCheck::Previous(current.to_string()),
        _ => NonceCheck::Refused(current.to_string()),
    }
}

/// HMAC-SHA-256 (RFC 2104), by OpenSSL. It cannot fail for a SHA-256 HMAC key; if it
/// ever did, the nonce would be all zeros, which only makes proofs refused.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    let mac = PKey::hmac(key).ok().and_then(|key| {
        let mut signer = Signer::new(MessageDigest::sha256(), &key).ok()?;
        signer.update(message).ok()?;
        signer.sign_to_vec().ok()
    });
    let mut out = [0u8; 32];
    if let Some(mac) = mac.filter(|m| m.len() == 32) {
        out.copy_from_slice(&mac);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_rfc_4231s_first_test_case() {
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn the_current_and_the_previous_windows_nonces_are_accepted() {
        let nonces = Nonces::new(Duration::from_secs(60));
        let first = nonces.current(1_000);
        assert_eq!(first.len(), 24);
        assert_eq!(nonces.check(Some(&first), 1_019), NonceCheck::Current);
        // Next window: the old nonce still passes, with the new one to send.
        let second = nonces.current(1_020);
        assert_ne!(first, second);
        assert_eq!(
            nonces.check(Some(&first), 1_020),
            NonceCheck::Previous(second.clone())
        );
        // Two windows on: refused.
        assert_eq!(
            nonces.check(Some(&first), 1_080),
            NonceCheck::Refused(nonces.current(1_080))
        );
        assert!(matches!(nonces.check(None, 1_080), NonceCheck::Refused(_)));
        assert!(matches!(
            nonces.check(Some("made-up"), 1_080),
            NonceCheck::Refused(_)
        ));
        // Another process's key makes other nonces.
        let other = Nonces::new(Duration::from_secs(60));
        assert!(matches!(
            other.check(Some(&nonces.current(1_080)), 1_080),
            NonceCheck::Refused(_)
        ));
    }
}
