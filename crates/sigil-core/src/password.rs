//! Password hashing with argon2id. The defaults are OWASP's (19 MiB, 2 passes, 1 lane);
//! tests pass cheaper parameters through configuration, never by changing these defaults.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

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
        self.check(password, stored_hash).matched
    }

    /// [`PasswordHasher::verify`], also saying whether a matched hash should be replaced.
    ///
    /// Timing: an unknown user costs one verification of the dummy hash, made with this
    /// hasher's settings. A stored hash made with cheaper settings (by `sigil user add` with
    /// other options, or before the server's were raised) is padded with a verification of
    /// the dummy hash too, so that no account answers measurably faster than an unknown
    /// name; and once its password is proven it is rehashed ([`Verification::needs_rehash`]),
    /// so the padding is paid at most until the user's next sign-in.
    ///
    /// The argon2 working memory (19 MiB with the defaults) is kept per thread and reused,
    /// instead of being allocated, faulted in and freed for every check: the CPU pool's
    /// few fixed threads each hold one block of it, so memory stays flat under load.
    pub fn check(&self, password: &str, stored_hash: Option<&str>) -> Verification {
        let target = stored_hash.unwrap_or(&self.dummy_hash);
        let parsed = PasswordHash::new(target).ok();
        let matched = parsed
            .as_ref()
            .is_some_and(|parsed| verify_with_thread_memory(password.as_bytes(), parsed));
        let is_weaker = stored_hash.is_some() && parsed.as_ref().is_none_or(|p| self.is_weaker(p));
        if is_weaker {
            if let Ok(dummy) = PasswordHash::new(&self.dummy_hash) {
                let _ = verify_with_thread_memory(password.as_bytes(), &dummy);
            }
        }
        let matched = matched && stored_hash.is_some();
        Verification {
            matched,
            needs_rehash: matched && is_weaker,
        }
    }

    /// Whether a stored hash is cheaper to compute than this hasher's (fewer KiB or passes,
    /// or not argon2id version 0x13).
    fn is_weaker(&self, stored: &PasswordHash<'_>) -> bool {
        let Ok(params) = Params::try_from(stored) else {
            return true;
        };
        let is_current_algorithm = Algorithm::try_from(stored.algorithm) == Ok(Algorithm::Argon2id)
            && stored.version.map(Version::try_from) == Some(Ok(Version::V0x13));
        !is_current_algorithm
            || params.m_cost() < self.params.m_cost()
            || params.t_cost() < self.params.t_cost()
    }
}

/// What [`PasswordHasher::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is the stored one.
    pub matched: bool,
    /// The password matched a hash made with cheaper settings than the hasher's: store a
    /// new hash of it.
    pub needs_rehash: bool,
}

thread_local! {
    /// This thread's argon2 working memory, grown to the largest cost it has verified.
    static WORKING_MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The PHC verification of the `password-hash` crate (same algorithm, version, parameters
/// and salt as stored; constant-time comparison of the output), on reused memory. Every
/// block is written before it is read in the first pass, so stale contents do not matter.
fn verify_with_thread_memory(password: &[u8], stored: &PasswordHash<'_>) -> bool {
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let version = match stored.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut output = vec![0u8; expected.len()];
    let computed = WORKING_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, &mut output, &mut memory[..blocks])
            .is_ok()
    });
    computed && bool::from(output.as_slice().ct_eq(expected.as_bytes()))
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
    fn reused_memory_verifies_exactly_like_the_reference() {
        use argon2::password_hash::PasswordVerifier;
        let cheap = cheap();
        let bigger = PasswordHasher::new(Argon2Params {
            memory_kib: 256,
            iterations: 2,
            parallelism: 2,
        })
        .expect("valid params");
        // Bigger first, then smaller, then bigger again: the one buffer serves all.
        for (hasher, password) in [(&bigger, "a"), (&cheap, "b"), (&bigger, "c")] {
            let hash = hasher.hash(password).expect("hash");
            let parsed = PasswordHash::new(&hash).expect("phc");
            for attempt in [password, "wrong", ""] {
                let reference = hasher
                    .argon2()
                    .verify_password(attempt.as_bytes(), &parsed)
                    .is_ok();
                assert_eq!(
                    hasher.verify(attempt, Some(&hash)),
                    reference,
                    "{attempt:?}"
                );
                assert_eq!(reference, attempt == password);
            }
        }
        // A hash made by the reference implementation, with argon2i and another version.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 1, 1, None).expect("params"),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = argon2i
            .hash_password(b"old", &salt)
            .expect("hash")
            .to_string();
        assert!(cheap.verify("old", Some(&hash)));
        assert!(!cheap.verify("new", Some(&hash)));
        // Tampered output, missing parts: refused.
        let at = hash.len() - 5;
        let swapped = if &hash[at..at + 1] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &hash[..at], &hash[at + 1..]);
        assert!(!cheap.verify("old", Some(&tampered)));
        assert!(!cheap.verify("old", Some("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ")));
    }

    #[test]
    fn defaults_are_owasp() {
        let p = Argon2Params::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19_456, 2, 1));
    }

    #[test]
    fn weaker_hashes_are_padded_and_flagged_for_rehash() {
        let server = PasswordHasher::new(Argon2Params {
            memory_kib: 256,
            iterations: 2,
            parallelism: 1,
        })
        .expect("valid params");
        let weak = cheap().hash("pw").expect("hash");
        let current = server.hash("pw").expect("hash");
        assert_eq!(
            server.check("pw", Some(&weak)),
            Verification {
                matched: true,
                needs_rehash: true
            }
        );
        assert_eq!(
            server.check("nope", Some(&weak)),
            Verification {
                matched: false,
                needs_rehash: false
            }
        );
        assert_eq!(
            server.check("pw", Some(&current)),
            Verification {
                matched: true,
                needs_rehash: false
            }
        );
        assert!(!server.check("pw", None).matched);
        // A stronger stored hash is left alone.
        assert!(!cheap().check("pw", Some(&current)).needs_rehash);
    }
}
