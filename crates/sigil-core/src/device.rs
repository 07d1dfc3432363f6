//! Trusted-device tokens (OWASP Authentication Cheat Sheet, "device cookies"): after a
//! successful sign-in on the sign-in page, the browser is given a token signed by Sigil
//! that names the account and a random device id. When that browser signs in to the same
//! account again, its attempts are counted against the device instead of the account
//! (see [`crate::throttle::device_subject`]): someone guessing at the account from
//! elsewhere can keep the account's count high, but cannot lock out the browsers its
//! owner already uses. The device's own count has the account's allowance, and the
//! client address is counted as always.
//!
//! A token is `v1.<device id>.<issued at>.<HMAC-SHA256>`, the MAC over the account name as
//! counted (trimmed, lower-cased), the device id and the time, under a 256-bit key kept
//! beside the signing keys. It is not a session and grants nothing by itself: the password
//! is still checked on every sign-in.

use crate::secret::random_token;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::memcmp;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

/// How long a device stays trusted after its last successful sign-in, in seconds.
pub const DEVICE_TOKEN_TTL: i64 = 180 * 86_400;
const LABEL: &[u8] = b"sigil trusted device v1\0";

/// The key that signs and checks device tokens. Parsed once.
pub struct DeviceKey {
    key: PKey<Private>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(redacted)")
    }
}

impl DeviceKey {
    /// A key from at least 32 secret bytes.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("the device-token key must be at least 32 bytes".into());
        }
        let key = PKey::hmac(secret).map_err(|e| format!("device-token key: {e}"))?;
        Ok(Self { key })
    }

    fn mac(&self, username: &str, device_id: &str, issued_at: i64) -> Option<Vec<u8>> {
        let account = username.trim().to_lowercase();
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).ok()?;
        signer.update(LABEL).ok()?;
        signer.update(account.as_bytes()).ok()?;
        signer.update(b"\0").ok()?;
        signer.update(device_id.as_bytes()).ok()?;
        signer.update(b"\0").ok()?;
        signer.update(issued_at.to_string().as_bytes()).ok()?;
        signer.sign_to_vec().ok()
    }

    /// A token for a browser that just signed in as `username` at `now`; it keeps the
    /// device id of the token it had, if any, so its count stays its own.
    pub fn issue(&self, username: &str, device_id: Option<&str>, now: i64) -> Option<String> {
        let device_id = device_id.map_or_else(|| random_token(16), str::to_string);
        let mac = self.mac(username, &device_id, now)?;
        Some(format!(
            "v1.{device_id}.{now}.{}",
            URL_SAFE_NO_PAD.encode(mac)
        ))
    }

    /// The device id of `token` when it was issued by this key for `username` and has not
    /// expired at `now`; `None` for anything else.
    pub fn verify(&self, token: &str, username: &str, now: i64) -> Option<String> {
        if token.len() > 256 {
            return None;
        }
        let mut parts = token.split('.');
        let (Some("v1"), Some(device_id), Some(issued_at), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let issued_at: i64 = issued_at.parse().ok()?;
        if device_id.is_empty() || issued_at > now + 60 || now - issued_at > DEVICE_TOKEN_TTL {
            return None;
        }
        let presented = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = self.mac(username, device_id, issued_at)?;
        (presented.len() == expected.len() && memcmp::eq(&presented, &expected))
            .then(|| device_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_speaks_for_one_account_one_key_and_a_limited_time() {
        let key = DeviceKey::new(&[7; 32]).expect("key");
        let token = key.issue("Alice", None, 1_000).expect("token");
        let device = key.verify(&token, " alice ", 1_000).expect("valid");
        assert_eq!(key.verify(&token, "bob", 1_000), None, "another account");
        let other = DeviceKey::new(&[8; 32]).expect("key");
        assert_eq!(other.verify(&token, "alice", 1_000), None, "another key");
        assert_eq!(
            key.verify(&token, "alice", 1_000 + DEVICE_TOKEN_TTL + 1),
            None,
            "expired"
        );
        let renewed = key.issue("alice", Some(&device), 2_000).expect("token");
        assert_eq!(key.verify(&renewed, "alice", 2_000), Some(device.clone()));
        let forged = renewed.replace("2000", "2001");
        assert_eq!(key.verify(&forged, "alice", 2_001), None, "tampered time");
        assert_eq!(key.verify("v1.x.1000.", "alice", 1_000), None);
        assert_eq!(key.verify("garbage", "alice", 1_000), None);
        assert!(DeviceKey::new(&[1; 16]).is_err(), "short keys refused");
    }
}
