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

/// Why sealing, opening or hashing under the factor key failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Tampered with, moved to another row, or sealed under another key (a replica with
    /// a keys directory of its own).
    #[error("the sealed factor does not open under this factor key (is the keys directory shared by every replica?)")]
    Open,
    /// OpenSSL refused the operation: nothing is stored rather than something wrong.
    #[error("the factor key's cryptography failed: {0}")]
    Crypto(String),
}

fn crypto(error: openssl::error::ErrorStack) -> SealError {
    SealError::Crypto(error.to_string())
}

impl FactorKey {
    /// The key from the file's 32 bytes; two subkeys are derived from it, one per use.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Result<Self, SealError> {
        Ok(Self {
            seal: derive(&bytes, SEAL_LABEL)?,
            recovery: derive(&bytes, RECOVERY_LABEL)?.to_vec(),
        })
    }

    /// A random key (tests, and processes that never read a sealed value back).
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// base64url(nonce ‖ ciphertext ‖ tag), a fresh 96-bit nonce, with `context` (the
    /// factor's id) as associated data: a sealed value copied to another row does not open.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SealError> {
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
        .map_err(crypto)?;
        let mut out = Vec::with_capacity(NONCE_BYTES + ciphertext.len() + TAG_BYTES);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_BYTES + TAG_BYTES {
            return Err(SealError::Open);
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
        .map_err(|_| SealError::Open)
    }

    /// The stored form of a recovery code: HMAC-SHA-256 under the recovery subkey, over
    /// the user's id and the code (a hash copied to another user matches nothing).
    pub fn recovery_hash(&self, user_id: &str, code: &str) -> Result<String, SealError> {
        let mac = hmac(
            &self.recovery,
            &[user_id.as_bytes(), b"\0", code.as_bytes()],
        )?;
        Ok(URL_SAFE_NO_PAD.encode(mac))
    }
}

fn derive(key: &[u8], label: &[u8]) -> Result<[u8; KEY_BYTES], SealError> {
    let mac = hmac(key, &[label])?;
    let mut out = [0u8; KEY_BYTES];
    out.copy_from_slice(&mac[..KEY_BYTES]);
    Ok(out)
}

/// HMAC-SHA-256; an OpenSSL failure is an error, never a fixed value that would make
/// every hash alike.
fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, SealError> {
    let key = PKey::hmac(key).map_err(crypto)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(crypto)?;
    for part in parts {
        signer.update(part).map_err(crypto)?;
    }
    signer.sign_to_vec().map_err(crypto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key_and_context() {
        let key = FactorKey::generate().expect("key");
        let sealed = key.seal(b"secret bytes", "factor-1").expect("seal");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            key.open(&sealed, "factor-1").ok().as_deref(),
            Some(&b"secret bytes"[..])
        );
        assert!(key.open(&sealed, "factor-2").is_err());
        assert!(FactorKey::generate()
            .expect("key")
            .open(&sealed, "factor-1")
            .is_err());
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
        let key = FactorKey::from_bytes(bytes).expect("key");
        let same = FactorKey::from_bytes(bytes).expect("key");
        assert_eq!(
            key.recovery_hash("u1", "abcde-12345").expect("hash"),
            same.recovery_hash("u1", "abcde-12345").expect("hash")
        );
        assert_ne!(
            key.recovery_hash("u1", "abcde-12345").expect("hash"),
            key.recovery_hash("u2", "abcde-12345").expect("hash")
        );
        assert_ne!(
            key.recovery_hash("u1", "abcde-12345").expect("hash"),
            key.recovery_hash("u1", "abcde-12346").expect("hash")
        );
        assert_ne!(
            key.recovery_hash("u1", "abcde-12345").expect("hash"),
            FactorKey::generate()
                .expect("key")
                .recovery_hash("u1", "abcde-12345")
                .expect("hash")
        );
    }
}
