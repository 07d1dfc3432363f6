//! Sealing a refresh rotation's response for the opt-in reuse grace window.
//!
//! When a refresh token is rotated with a grace window, the whole token response (new
//! access token, new refresh token, ID token) is encrypted with AES-256-GCM under a key
//! derived from the rotated token itself, HMAC-SHA256(token, label ‖ token id), and kept on
//! the rotated token's row. Only the holder of that token can derive the key, so a replay
//! by the same holder inside the window can be answered with the *same* successor, while
//! the database never holds a usable token: it holds the SHA-256 of each token and a
//! ciphertext whose key is the token it no longer stores.

use crate::grant::TokenResponse;
use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use serde::{Deserialize, Serialize};

const LABEL: &[u8] = b"sigil refresh-successor seal v1\0";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What is sealed: the response as first sent, and when it was issued.
#[derive(Serialize, Deserialize)]
struct Sealed {
    access_token: String,
    expires_in: i64,
    scope: String,
    refresh_token: Option<String>,
    id_token: Option<String>,
    issued_at: i64,
}

fn key_for(parent: &Secret, parent_id: &str) -> Option<Vec<u8>> {
    let key = PKey::hmac(parent.expose().as_bytes()).ok()?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).ok()?;
    signer.update(LABEL).ok()?;
    signer.update(parent_id.as_bytes()).ok()?;
    signer.sign_to_vec().ok()
}

/// Seals `response` (issued at `issued_at`) under a key derived from `parent`, the
/// refresh token being rotated. `None` only if OpenSSL fails.
pub(crate) fn seal(
    parent: &Secret,
    parent_id: &str,
    response: &TokenResponse,
    issued_at: i64,
) -> Option<String> {
    let key = key_for(parent, parent_id)?;
    let sealed = Sealed {
        access_token: response.access_token.clone(),
        expires_in: response.expires_in,
        scope: response.scope.clone(),
        refresh_token: response.refresh_token.clone(),
        id_token: response.id_token.clone(),
        issued_at,
    };
    let plaintext = serde_json::to_vec(&sealed).ok()?;
    let mut nonce = [0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce).ok()?;
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        &key,
        Some(&nonce),
        parent_id.as_bytes(),
        &plaintext,
        &mut tag,
    )
    .ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out.extend_from_slice(&tag);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal`] made, with the same `parent` token, and returns the response with
/// `expires_in` reduced by the time gone since it was issued. `None` if the token is not
/// the one it was sealed under or the data was altered.
pub(crate) fn open(
    parent: &Secret,
    parent_id: &str,
    sealed: &str,
    now: i64,
) -> Option<TokenResponse> {
    let key = key_for(parent, parent_id)?;
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = bytes.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let plaintext = decrypt_aead(
        Cipher::aes_256_gcm(),
        &key,
        Some(nonce),
        parent_id.as_bytes(),
        ciphertext,
        tag,
    )
    .ok()?;
    let sealed: Sealed = serde_json::from_slice(&plaintext).ok()?;
    Some(TokenResponse {
        access_token: sealed.access_token,
        token_type: "Bearer",
        expires_in: (sealed.expires_in - (now - sealed.issued_at)).max(0),
        scope: sealed.scope,
        refresh_token: sealed.refresh_token,
        id_token: sealed.id_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> TokenResponse {
        TokenResponse {
            access_token: "access".into(),
            token_type: "Bearer",
            expires_in: 600,
            scope: "openid".into(),
            refresh_token: Some("next-refresh".into()),
            id_token: None,
        }
    }

    #[test]
    fn only_the_parent_token_opens_the_seal() {
        let parent = Secret::generate();
        let sealed = seal(&parent, "t1", &response(), 100).expect("sealed");
        assert!(!sealed.contains("next-refresh"));
        let opened = open(&parent, "t1", &sealed, 103).expect("opened");
        assert_eq!(opened.refresh_token.as_deref(), Some("next-refresh"));
        assert_eq!(opened.access_token, "access");
        assert_eq!(opened.expires_in, 597);
        // Another token, another token id, or a flipped bit: nothing.
        assert!(open(&Secret::generate(), "t1", &sealed, 103).is_none());
        assert!(open(&parent, "t2", &sealed, 103).is_none());
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("b64");
        bytes[NONCE_LEN + 1] ^= 1;
        assert!(open(&parent, "t1", &URL_SAFE_NO_PAD.encode(bytes), 103).is_none());
        assert!(open(&parent, "t1", "short", 103).is_none());
    }
}
