//! Passkeys (WebAuthn Level 3) through the `webauthn-rs` crate: the relying party built once
//! from the issuer (RP ID = its host, origin = its origin, name "Sigil"), and the three
//! ceremonies the pages run: registration (a discoverable credential, user verification
//! required), a passkey as the second step of a sign-in (the user's own credentials), and a
//! passwordless sign-in (discoverable credentials, user verification required). No HTTP
//! here: the handlers in `http/passkeys/` keep the ceremony state in the session and turn
//! [`PasskeyError`] into pages. What is stored is a [`Passkey`] as JSON, in `Factor.data`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigil_core::factors::Method;
use sigil_core::store::Factor;
use sigil_core::user::User;
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Url, Uuid, Webauthn, WebauthnBuilder,
};

/// The most a credential (the browser's JSON answer) may weigh. A registration with
/// attestation "none" is about a kilobyte; this leaves room for certificate chains.
pub const MAX_CREDENTIAL_JSON: usize = 16 * 1024;

/// How long a ceremony's options stay good: the browser's timeout, and the state's life.
pub const CEREMONY_TTL_SECONDS: i64 = 5 * 60;

/// Why a ceremony failed. The words are for the page; the library's own error is logged.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The issuer's host is an IP address (or has none): browsers refuse such an RP ID.
    #[error("passkeys need the server to be reached by a host name, not an IP address")]
    Unavailable,
    /// No ceremony of this kind is in progress in the session, or it is too old.
    #[error("the passkey request has expired")]
    Expired,
    /// The browser sent nothing, too much, or something that is not a credential.
    #[error("the browser did not send a passkey")]
    Malformed,
    /// The library refused the credential: wrong challenge, origin, signature, flags, ….
    #[error("the passkey was not accepted")]
    Refused(webauthn_rs::prelude::WebauthnError),
    /// A stored passkey does not parse (`Factor.data`), or options do not serialise.
    #[error("a stored passkey cannot be read")]
    Stored,
}

/// A credential the registration ceremony verified, ready for `SecondFactors::add_passkey`.
pub struct Registered {
    /// The credential id, base64url without padding.
    pub credential_id: String,
    /// The [`Passkey`] as JSON, for `Factor.data`.
    pub data: String,
    /// What the registration proved, for the session's methods.
    pub method: Method,
}

/// A passkey assertion the library verified.
pub struct Verified {
    pub method: Method,
    /// The stored passkey's new JSON when the assertion changed it (counter, backup
    /// state), for `SecondFactors::passkey_used`.
    pub updated_data: Option<String>,
}

/// The relying party. Built once at start-up; `None` inside when the issuer cannot be one.
pub struct Passkeys {
    webauthn: Option<Webauthn>,
}

/// A ceremony's state as the session keeps it (serialised with the library's
/// `danger-allow-state-serialisation`: it never leaves the server).
#[derive(Serialize, Deserialize)]
pub enum CeremonyState {
    Registration(PasskeyRegistration),
    SecondFactor(PasskeyAuthentication),
    Passwordless(DiscoverableAuthentication),
}

impl Passkeys {
    /// The relying party of `issuer`: RP ID its host, origin its origin, name "Sigil".
    /// An issuer on an IP address gets a relying party that is not available.
    pub fn for_issuer(issuer: &str) -> Self {
        let webauthn = Url::parse(issuer).ok().and_then(|url| {
            let host = url.domain()?.to_string();
            let origin = Url::parse(&url.origin().ascii_serialization()).ok()?;
            WebauthnBuilder::new(&host, &origin)
                .ok()?
                .rp_name("Sigil")
                .timeout(std::time::Duration::from_secs(CEREMONY_TTL_SECONDS as u64))
                .build()
                .ok()
        });
        if webauthn.is_none() {
            tracing::info!(%issuer, "passkeys are off: the issuer's host is not a domain name");
        }
        Self { webauthn }
    }

    /// Whether passkeys can work here (the issuer has a domain name).
    pub fn is_available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_ref().ok_or(PasskeyError::Unavailable)
    }

    /// Options for adding a passkey to `user`'s account: a discoverable credential (so it
    /// can sign in without a user name), user verification required, the user's
    /// `existing` passkeys excluded.
    pub fn start_registration(
        &self,
        user: &User,
        existing: &[Factor],
    ) -> Result<(Value, CeremonyState), PasskeyError> {
        let exclude: Vec<CredentialID> = existing
            .iter()
            .filter_map(|f| f.credential_id.as_deref())
            .filter_map(|id| URL_SAFE_NO_PAD.decode(id).ok())
            .map(CredentialID::from)
            .collect();
        let display_name = user.name.as_deref().unwrap_or(&user.username);
        let (options, state) = self
            .webauthn()?
            .start_passkey_registration(
                user_handle(&user.id),
                &user.username,
                display_name,
                Some(exclude),
            )
            .map_err(PasskeyError::Refused)?;
        // webauthn-rs asks for no resident key; passwordless sign-in needs one (the
        // ceremony's state does not depend on it).
        let mut options = to_json(&options)?;
        if let Some(selection) = options
            .get_mut("publicKey")
            .and_then(|pk| pk.get_mut("authenticatorSelection"))
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        Ok((options, CeremonyState::Registration(state)))
    }

    /// Verifies the browser's answer to a registration.
    pub fn finish_registration(
        &self,
        state: &PasskeyRegistration,
        credential_json: &str,
    ) -> Result<Registered, PasskeyError> {
        let credential: RegisterPublicKeyCredential = parse_credential(credential_json)?;
        let passkey = self
            .webauthn()?
            .finish_passkey_registration(&credential, state)
            .map_err(PasskeyError::Refused)?;
        let data = serde_json::to_string(&passkey).map_err(|_| PasskeyError::Stored)?;
        // The flags of the credential are not public on `Passkey`; its stored form has them.
        let flags: StoredFlags = serde_json::from_str(&data).map_err(|_| PasskeyError::Stored)?;
        Ok(Registered {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id().as_ref()),
            data,
            method: Method::Passkey {
                is_synced: flags.cred.backup_eligible || flags.cred.backup_state,
                user_verified: flags.cred.user_verified,
            },
        })
    }

    /// Options for the second step of `user`'s sign-in: any of their `passkeys`.
    pub fn start_second_factor(
        &self,
        passkeys: &[Factor],
    ) -> Result<(Value, CeremonyState), PasskeyError> {
        let stored = passkeys
            .iter()
            .map(stored_passkey)
            .collect::<Result<Vec<Passkey>, _>>()?;
        let (options, state) = self
            .webauthn()?
            .start_passkey_authentication(&stored)
            .map_err(PasskeyError::Refused)?;
        Ok((to_json(&options)?, CeremonyState::SecondFactor(state)))
    }

    /// Options for a passwordless sign-in: whichever discoverable credential the
    /// authenticator offers, user verification required. `mediation` is "conditional" in
    /// them; the page drops it for the button.
    pub fn start_passwordless(&self) -> Result<(Value, CeremonyState), PasskeyError> {
        let (options, state) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(PasskeyError::Refused)?;
        Ok((to_json(&options)?, CeremonyState::Passwordless(state)))
    }

    /// Parses an assertion and says which credential it names (base64url) and which user
    /// handle came with it (none from a non-discoverable credential).
    pub fn identify(
        &self,
        credential_json: &str,
    ) -> Result<(PublicKeyCredential, String, Option<Uuid>), PasskeyError> {
        let credential: PublicKeyCredential = parse_credential(credential_json)?;
        let id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
        let handle = credential
            .get_user_unique_id()
            .and_then(|bytes| Uuid::from_slice(bytes).ok());
        Ok((credential, id, handle))
    }

    /// Verifies an assertion against the ceremony's state and the stored passkey it named.
    pub fn finish_authentication(
        &self,
        state: CeremonyState,
        credential: &PublicKeyCredential,
        factor: &Factor,
    ) -> Result<Verified, PasskeyError> {
        let webauthn = self.webauthn()?;
        let mut passkey = stored_passkey(factor)?;
        let result: AuthenticationResult = match state {
            CeremonyState::SecondFactor(state) => {
                webauthn.finish_passkey_authentication(credential, &state)
            }
            CeremonyState::Passwordless(state) => webauthn.finish_discoverable_authentication(
                credential,
                state,
                &[DiscoverableKey::from(&passkey)],
            ),
            CeremonyState::Registration(_) => return Err(PasskeyError::Malformed),
        }
        .map_err(PasskeyError::Refused)?;
        let updated_data = match passkey.update_credential(&result) {
            Some(true) => Some(serde_json::to_string(&passkey).map_err(|_| PasskeyError::Stored)?),
            Some(false) => None,
            None => return Err(PasskeyError::Malformed),
        };
        Ok(Verified {
            method: Method::Passkey {
                is_synced: result.backup_eligible() || result.backup_state(),
                user_verified: result.user_verified(),
            },
            updated_data,
        })
    }
}

/// The WebAuthn user handle of a user: 16 bytes of SHA-256 over the user id, so that the
/// same user always has the same handle and the handle says nothing about the id.
pub fn user_handle(user_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("sigil passkey user handle\0{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// The flags of a stored passkey (its JSON form: `{"cred": {…}}`).
#[derive(Deserialize)]
struct StoredFlags {
    cred: CredentialFlags,
}

#[derive(Deserialize)]
struct CredentialFlags {
    #[serde(default)]
    user_verified: bool,
    #[serde(default)]
    backup_eligible: bool,
    #[serde(default)]
    backup_state: bool,
}

fn to_json(options: &impl Serialize) -> Result<Value, PasskeyError> {
    serde_json::to_value(options).map_err(|_| PasskeyError::Stored)
}

fn stored_passkey(factor: &Factor) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(&factor.data).map_err(|_| PasskeyError::Stored)
}

fn parse_credential<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, PasskeyError> {
    if json.is_empty() || json.len() > MAX_CREDENTIAL_JSON {
        return Err(PasskeyError::Malformed);
    }
    serde_json::from_str(json).map_err(|_| PasskeyError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_issuer_has_no_relying_party_and_a_host_name_has_one() {
        assert!(!Passkeys::for_issuer("http://127.0.0.1:8080").is_available());
        assert!(Passkeys::for_issuer("http://localhost:8080").is_available());
        assert!(Passkeys::for_issuer("https://id.example.com").is_available());
    }

    #[test]
    fn user_handles_are_stable_and_distinct() {
        assert_eq!(user_handle("a"), user_handle("a"));
        assert_ne!(user_handle("a"), user_handle("b"));
    }

    #[test]
    fn garbage_and_oversized_credentials_are_malformed() {
        let passkeys = Passkeys::for_issuer("http://localhost:8080");
        for json in ["", "{", "{\"id\":1}", &"x".repeat(MAX_CREDENTIAL_JSON + 1)] {
            assert!(matches!(
                passkeys.identify(json),
                Err(PasskeyError::Malformed)
            ));
        }
    }
}
