//! Sealing outbox messages: AES-256-GCM under the mail key (`mail.key` in the keys
//! directory, 32 random bytes, mode 0600, made on first use), so the database never holds a
//! link token in clear. A sealed message is base64url(nonce ‖ ciphertext ‖ tag) with a
//! fresh 96-bit nonce, and the message id as associated data: a sealed body copied onto
//! another row does not open.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use rand::RngCore;
use std::path::Path;

/// The mail key's file in the keys directory.
pub const MAIL_KEY_FILE: &str = "mail.key";

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// Why a message could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot seal the message: {0}")]
    Seal(String),
    /// Not base64url, too short, tampered with, for another row, or sealed under another
    /// key (a replica with its own keys directory).
    #[error("the sealed message does not open under this mail key (is the keys directory shared by every replica?)")]
    Open,
}

/// The key that seals outbox messages. Its `Debug` hides it.
pub struct MailKey([u8; KEY_BYTES]);

impl std::fmt::Debug for MailKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailKey(…)")
    }
}

impl MailKey {
    /// Reads `mail.key` from `keys_dir`, creating the directory (0700) and the key (0600)
    /// first if missing. Two processes that create it at once agree on one: each writes its
    /// own temporary file and links it into place only if no key is there yet.
    pub fn load_or_create(keys_dir: &Path) -> Result<Self, String> {
        crate::keyfiles::load_or_create_secret(keys_dir, MAIL_KEY_FILE, "mail key").map(Self)
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; KEY_BYTES]) -> Self {
        Self(key)
    }

    /// Seals `message` for the outbox row `id`.
    pub fn seal(&self, id: &str, message: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut tag = [0u8; TAG_BYTES];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            id.as_bytes(),
            message,
            &mut tag,
        )
        .map_err(|e| SealError::Seal(e.to_string()))?;
        let mut out = Vec::with_capacity(NONCE_BYTES + ciphertext.len() + TAG_BYTES);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`MailKey::seal`] sealed for row `id`.
    pub fn open(&self, id: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Open)?;
        if bytes.len() < NONCE_BYTES + TAG_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, rest) = bytes.split_at(NONCE_BYTES);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_BYTES);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(nonce),
            id.as_bytes(),
            ciphertext,
            tag,
        )
        .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sealed_message_opens_and_hides_its_text() {
        let key = MailKey::from_bytes([7; KEY_BYTES]);
        let message = b"Subject: hi\r\n\r\nhttps://x.test/verify-email?token=SECRET";
        let sealed = key.seal("m1", message).expect("seal");
        assert!(!sealed.contains("SECRET"));
        assert_eq!(key.open("m1", &sealed).expect("open"), message);
        let again = key.seal("m1", message).expect("seal");
        assert_ne!(sealed, again, "a fresh nonce each time");
    }

    #[test]
    fn a_tampered_misplaced_or_foreign_message_is_refused() {
        let key = MailKey::from_bytes([7; KEY_BYTES]);
        let sealed = key.seal("m1", b"hello").expect("seal");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("base64");
        for i in [0, NONCE_BYTES, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = URL_SAFE_NO_PAD.encode(&bytes);
            assert!(matches!(key.open("m1", &tampered), Err(SealError::Open)));
            bytes[i] ^= 1;
        }
        assert!(matches!(key.open("m2", &sealed), Err(SealError::Open)));
        let other = MailKey::from_bytes([8; KEY_BYTES]);
        assert!(matches!(other.open("m1", &sealed), Err(SealError::Open)));
        assert!(matches!(key.open("m1", "short"), Err(SealError::Open)));
        assert!(matches!(
            key.open("m1", "not base64!"),
            Err(SealError::Open)
        ));
        assert!(matches!(key.open("m1", ""), Err(SealError::Open)));
    }

    #[test]
    fn the_key_file_is_private_made_once_and_shared() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("keys");
        let first = MailKey::load_or_create(&dir).expect("create");
        let mode = fs::metadata(dir.join(MAIL_KEY_FILE))
            .expect("key file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let second = MailKey::load_or_create(&dir).expect("load");
        assert_eq!(first.0, second.0, "the second open reads the same key");
        let sealed = first.seal("m1", b"x").expect("seal");
        assert_eq!(second.open("m1", &sealed).expect("open"), b"x");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert_eq!(format!("{first:?}"), "MailKey(…)");
    }

    #[test]
    fn processes_creating_the_key_at_once_agree_on_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || MailKey::load_or_create(&dir).expect("key").0)
            })
            .collect();
        let keys: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn a_key_of_the_wrong_size_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join(MAIL_KEY_FILE), b"short").expect("write");
        let error = MailKey::load_or_create(tmp.path()).expect_err("refused");
        assert!(error.contains("holds 5 bytes"), "{error}");
    }
}
