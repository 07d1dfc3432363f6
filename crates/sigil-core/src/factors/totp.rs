//! Time-based one-time passwords (RFC 6238) as authenticator apps expect them: HMAC-SHA-1,
//! 6 digits, 30-second steps, a code accepted one step either side of now (RFC 6238 §5.2,
//! for clock drift and typing time). The arithmetic is the `totp-rs` crate's.

use crate::secret::constant_time_eq;
use rand::RngCore;
use totp_rs::{Algorithm, TOTP};

/// Digits in a code.
pub const DIGITS: usize = 6;
/// Seconds per time step.
pub const STEP: i64 = 30;
/// Bytes of a new secret: 160 bits, the HMAC-SHA-1 output size RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;

/// A TOTP secret. Its `Debug` hides it; it is stored only sealed ([`super::seal`]).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret in base32 without padding, as apps take it when typed in.
    pub fn base32(&self) -> String {
        self.totp("x", "x")
            .map(|t| t.get_secret_base32())
            .unwrap_or_default()
    }

    /// The `otpauth://totp/…` URI an app reads from the QR code: `issuer` is the label the
    /// app shows (the server's host name), `account` the user name.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        self.totp(issuer, account)
            .map(|t| t.get_url())
            .unwrap_or_default()
    }

    /// The code of time step `step` (seconds since the epoch / [`STEP`]).
    pub fn code_at_step(&self, step: i64) -> String {
        self.totp("x", "x")
            .map(|t| t.generate(step.max(0) as u64 * STEP as u64))
            .unwrap_or_default()
    }

    /// The time step whose code `code` is, among the step of `now` and one either side;
    /// `None` when it is none of them. Every candidate is compared, in constant time.
    pub fn matching_step(&self, code: &str, now: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now.div_euclid(STEP);
        let mut found = None;
        for step in [current - 1, current, current + 1] {
            if constant_time_eq(&self.code_at_step(step), code) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }

    fn totp(&self, issuer: &str, account: &str) -> Option<TOTP> {
        // A `:` would split the URI's label: the issuer is a host name and user names
        // cannot hold one, but be sure.
        let issuer = issuer.replace(':', "-");
        let account = account.replace(':', "-");
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            1,
            STEP as u64,
            self.0.clone(),
            Some(issuer),
            account,
        )
        .ok()
    }
}

/// The label an app shows for this server: the issuer URL's host.
pub fn issuer_label(issuer: &str) -> String {
    let host = issuer
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(issuer)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    format!("Sigil ({})", host.replace(':', "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 secret and its 8-digit codes, last six digits.
    #[test]
    fn codes_match_rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(secret.code_at_step(time / STEP), code, "time {time}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_only() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let step = now / STEP;
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step), now),
            Some(step)
        );
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step - 1), now),
            Some(step - 1)
        );
        assert_eq!(
            secret.matching_step(&secret.code_at_step(step + 1), now),
            Some(step + 1)
        );
        let far = secret.code_at_step(step - 2);
        if ![step - 1, step, step + 1]
            .iter()
            .any(|s| secret.code_at_step(*s) == far)
        {
            assert_eq!(secret.matching_step(&far, now), None);
        }
        assert_eq!(secret.matching_step("12345", now), None);
        assert_eq!(secret.matching_step("abcdef", now), None);
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let uri = secret.otpauth_uri(&issuer_label("http://127.0.0.1:8080"), "alice");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("alice"), "{uri}");
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            issuer_label("https://id.example.com/"),
            "Sigil (id.example.com)"
        );
        assert_eq!(issuer_label("http://[::1]:9000"), "Sigil (..1)");
    }
}
