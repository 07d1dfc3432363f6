//! Secrets as types: random generation, hashing for storage, constant-time comparison,
//! and a `Debug` that never prints the value.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret string (password, client secret, refresh token, code). It cannot be printed
/// or serialized; read it with [`Secret::expose`] only where it is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// A fresh 256-bit random value, base64url without padding (43 characters).
    pub fn generate() -> Self {
        Self(random_token(32))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The SHA-256 hash under which this secret is stored and looked up.
    ///
    /// A fast hash is right here because the secrets Sigil hashes this way are 256-bit
    /// random values: nothing can be guessed from the hash. Passwords use argon2id instead.
    pub fn storage_hash(&self) -> String {
        hash_for_storage(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `bytes` random bytes from the OS generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Whether `value` has the exact shape of a [`random_token`] of `bytes` bytes: base64url
/// without padding that decodes to exactly that many bytes (ids of clients and users are
/// `random_token(16)`, 22 characters). Anything else, a `/`, `.`, `%` or `?` among them, is not.
pub fn is_random_token(value: &str, bytes: usize) -> bool {
    value.len() == bytes.div_ceil(3) * 4 - (3 - bytes % 3) % 3
        && URL_SAFE_NO_PAD
            .decode(value)
            .is_ok_and(|decoded| decoded.len() == bytes)
}

/// SHA-256 of `value`, base64url without padding.
pub fn hash_for_storage(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// Compares two strings in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_256_bit_and_distinct() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(a.expose()).map(|v| v.len()).ok(),
            Some(32)
        );
    }

    #[test]
    fn only_the_exact_shape_of_a_random_token_passes() {
        for bytes in [12, 16, 32] {
            assert!(is_random_token(&random_token(bytes), bytes));
        }
        let id = random_token(16);
        assert!(!is_random_token(&id, 32));
        assert!(!is_random_token(&id[..21], 16));
        assert!(!is_random_token(&format!("{id}A"), 16));
        for bad in [
            "",
            "..",
            "a/b",
            "AAAAAAAAAAAAAAAAAAAA%2F",
            "AAAAAAAAAAAAAAAAAAAA/.",
            "AAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(!is_random_token(bad, 16), "{bad}");
        }
        // 16 bytes leave 2 bits of the last character unused: only the canonical one passes.
        assert!(is_random_token("AAAAAAAAAAAAAAAAAAAAAA", 16));
        assert!(!is_random_token("AAAAAAAAAAAAAAAAAAAAAB", 16));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn storage_hash_is_stable_and_not_the_value() {
        let s = Secret::new("abc");
        assert_eq!(s.storage_hash(), s.storage_hash());
        assert_ne!(s.storage_hash(), "abc");
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
