//! Proof keys decoded before, so that a client's second proof costs a signature check and
//! not a key decoding as well (OpenSSL's point validation of an EC key costs about twice the
//! ES256 signature check itself).
//!
//! Keys are found by their RFC 7638 thumbprint (a SHA-256 of every member that makes the
//! key) and the algorithm, so a hit is the very key the header names. The header's `jwk` is
//! still checked as a public key of the algorithm's type on every proof (`Alg::check_key`).

use crate::key::Alg;
use josekit::jws::JwsVerifier;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Decoded proof keys, by thumbprint; at most `capacity` of them (when full it is emptied and
/// fills again, so a flood of one-off keys costs what it would without a cache). For
/// [`crate::check_cached`]. Share one per process.
pub struct KeyCache {
    capacity: usize,
    keys: RwLock<HashMap<String, Vec<(Alg, Arc<dyn JwsVerifier>)>>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        match self.keys.read() {
            Ok(keys) => keys.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verifier of `jwk` (whose thumbprint is `jkt`) for `alg`: from the cache, or
    /// decoded and kept.
    pub(crate) fn verifier(
        &self,
        alg: Alg,
        jkt: &str,
        jwk: &Map<String, Value>,
    ) -> Result<Arc<dyn JwsVerifier>, &'static str> {
        alg.check_key(jwk)?;
        {
            let keys = match self.keys.read() {
                Ok(keys) => keys,
                Err(poisoned) => poisoned.into_inner(),
            };
            let found = keys
                .get(jkt)
                .and_then(|kept| kept.iter().find(|(a, _)| *a == alg));
            if let Some((_, verifier)) = found {
                return Ok(verifier.clone());
            }
        }
        let verifier: Arc<dyn JwsVerifier> = Arc::from(alg.build_verifier(jwk)?);
        if self.capacity > 0 {
            let mut keys = match self.keys.write() {
                Ok(keys) => keys,
                Err(poisoned) => poisoned.into_inner(),
            };
            if keys.len() >= self.capacity && !keys.contains_key(jkt) {
                keys.clear();
            }
            let kept = keys.entry(jkt.to_string()).or_default();
            if !kept.iter().any(|(a, _)| *a == alg) {
                kept.push((alg, verifier.clone()));
            }
        }
        Ok(verifier)
    }
}
