//! The factor key: AES-256-GCM sealing of TOTP secrets (the one secret of a factor that
//! must be read back) and the keyed hash of recovery codes. The key (32 random bytes) is
//! kept in a file beside the signing keys (`factors.key`), never in the database, so a copy
//! of the database opens no secret and cannot test recovery-code guesses offline.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use rand::RngCore;

pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const SEAL_LABEL: &[u8] = b"sigil factor seal v1\0";
const RECOVERY_LABEL: &[u8] = b"sigil recovery code v1\0";

/// The key. Its `Debug` hides it.
pub struct FactorKey {
    seal: [u8; KEY_BYTES],
    recovery: Vec<u8>,
}

impl std::fmt::Debug for FactorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactorKey(…)")
    }
}

/// A sealed value did not open: tampered with, moved to another row, or sealed under
/// another key (a replica with a keys directory of its own).
#[derive(Debug, thiserror::Error)]
#[error("the sealed factor does not open under this factor key (is the keys directory shared by every replica?)")]
pub struct OpenError;

impl FactorKey {
    /// The key from the file's 32 bytes; two subkeys are derived from it, one per use.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self {
            seal: derive(&bytes, SEAL_LABEL),
            recovery: derive(&bytes, RECOVERY_LABEL).to_vec(),
        }
    }

    /// A random key (tests, and processes that never read a sealed value back).
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// base64url(nonce ‖ ciphertext ‖ tag), a fresh 96-bit nonce, with `context` (the
    /// factor's id) as associated data: a sealed value copied to another row does not open.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut tag = [0u8; TAG_BYTES];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.seal,
            Some(&nonce),
            context.as_bytes(),
            plaintext,
            &mut tag,
        )
        .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_BYTES + ciphertext.len() + TAG_BYTES);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, OpenError> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError)?;
        if raw.len() < NONCE_BYTES + TAG_BYTES {
            return Err(OpenError);
        }
        let (nonce, rest) = raw.split_at(NONCE_BYTES);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_BYTES);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.seal,
            Some(nonce),
            context.as_bytes(),
            ciphertext,
            tag,
        )
        .map_err(|_| OpenError)
    }

    /// The stored form of a recovery code: HMAC-SHA-256 under the recovery subkey, over
    /// the user's id and the code (a hash copied to another user matches nothing).
    pub fn recovery_hash(&self, user_id: &str, code: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac(
            &self.recovery,
            &[user_id.as_bytes(), b"\0", code.as_bytes()],
        ))
    }
}

fn derive(key: &[u8], label: &[u8]) -> [u8; KEY_BYTES] {
    let mac = hmac(key, &[label]);
    let mut out = [0u8; KEY_BYTES];
    out.copy_from_slice(&mac[..KEY_BYTES]);
    out
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let signed = PKey::hmac(key).and_then(|key| {
        let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
        for part in parts {
            signer.update(part)?;
        }
        signer.sign_to_vec()
    });
    // HMAC-SHA-256 over bytes in memory fails only if OpenSSL itself is broken.
    signed.unwrap_or_else(|_| vec![0u8; KEY_BYTES])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key_and_context() {
        let key = FactorKey::generate();
        let sealed = key.seal(b"secret bytes", "factor-1");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            key.open(&sealed, "factor-1").ok().as_deref(),
            Some(&b"secret bytes"[..])
        );
        assert!(key.open(&sealed, "factor-2").is_err());
        assert!(FactorKey::generate().open(&sealed, "factor-1").is_err());
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert!(key.open(&tampered, "factor-1").is_err());
        assert!(key.open("short", "factor-1").is_err());
    }

    #[test]
    fn recovery_hashes_depend_on_key_user_and_code() {
        let bytes = [7u8; KEY_BYTES];
        let key = FactorKey::from_bytes(bytes);
        let same = FactorKey::from_bytes(bytes);
        assert_eq!(
            key.recovery_hash("u1", "abcde-12345"),
            same.recovery_hash("u1", "abcde-12345")
        );
        assert_ne!(
            key.recovery_hash("u1", "abcde-12345"),
            key.recovery_hash("u2", "abcde-12345")
        );
        assert_ne!(
            key.recovery_hash("u1", "abcde-12345"),
            key.recovery_hash("u1", "abcde-12346")
        );
        assert_ne!(
            key.recovery_hash("u1", "abcde-12345"),
            FactorKey::generate().recovery_hash("u1", "abcde-12345")
        );
    }
}
