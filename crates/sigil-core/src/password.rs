//! Password hashing with argon2id. The defaults are OWASP's (19 MiB, 2 passes, 1 lane);
//! tests pass cheaper parameters through configuration, never by changing these defaults.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords. Calls are CPU-heavy: run them on a [`crate::cpu::CpuPool`].
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified for unknown users so that they cost the same.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(params: Argon2Params) -> Result<Self, String> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let mut hasher = Self {
            params,
            dummy_hash: String::new(),
        };
        hasher.dummy_hash = hasher.hash(&crate::secret::random_token(16))?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a password into a PHC string with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, String> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| format!("argon2 hashing failed: {e}"))
    }

    /// Verifies `password` against a stored PHC hash (its own parameters apply). With
    /// `None` it verifies against a dummy hash and returns false, costing the same time.
    pub fn verify(&self, password: &str, stored_hash: Option<&str>) -> bool {
        let target = stored_hash.unwrap_or(&self.dummy_hash);
        let matched = match PasswordHash::new(target) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        };
        matched && stored_hash.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("valid params")
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = cheap();
        let hash = h.hash("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(h.verify("correct horse", Some(&hash)));
        assert!(!h.verify("wrong horse", Some(&hash)));
        assert!(!h.verify("correct horse", None));
        assert!(!h.verify("x", Some("not a hash")));
    }

    #[test]
    fn defaults_are_owasp() {
        let p = Argon2Params::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19_456, 2, 1));
    }
}
