//! Secrets as a type: random values, a redacting `Debug`, constant-time comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret string (a token, a cookie value, a CSRF token). No `Display`, no `Serialize`,
/// and `Debug` prints nothing of it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in constant time (for values an attacker may guess at).
    pub fn matches(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// 256 random bits from the OS generator, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print_and_compare_exactly() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(redacted)");
        assert!(secret.matches("hunter2"));
        assert!(!secret.matches("hunter"));
        assert!(!secret.matches("hunter22"));
        assert_ne!(random_token(), random_token());
    }
}
