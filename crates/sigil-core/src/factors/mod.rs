//! Second factors: authenticator apps (TOTP, RFC 6238), passkeys (WebAuthn) and recovery
//! codes, the policy that requires them, and what a sign-in proved (`acr`, `amr`,
//! `auth_time`). [`SecondFactors`] is the service the pages call; passkey ceremonies
//! themselves run in the server (the `webauthn-rs` crate), which hands the verified
//! credential to [`SecondFactors::add_passkey`] and [`SecondFactors::passkey_used`].

mod methods;
pub mod recovery;
pub mod seal;
mod service;
#[cfg(test)]
mod tests;
pub mod totp;

pub use methods::{
    amr, last_used, level, Authentication, Level, Method, UsedMethod, ACR_1FA, ACR_2FA, ACR_PHR,
    ACR_VALUES_SUPPORTED,
};
pub use seal::FactorKey;
pub use service::{FactorSummary, SecondFactors, TotpEnrolment};

use crate::store::StoreError;
use crate::throttle::ThrottlePolicy;
use crate::user::User;

/// Who must have a second factor (`--mfa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaPolicy {
    /// Nobody must, everybody may (the default).
    #[default]
    Optional,
    /// Admins must.
    RequiredForAdmins,
    /// Everybody must.
    Required,
}

impl MfaPolicy {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "optional" => Some(Self::Optional),
            "required-for-admins" => Some(Self::RequiredForAdmins),
            "required" => Some(Self::Required),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optional => "optional",
            Self::RequiredForAdmins => "required-for-admins",
            Self::Required => "required",
        }
    }

    /// Whether `user` must sign in with a second factor: by this policy, or because an
    /// admin required it of them.
    pub fn requires(self, user: &User) -> bool {
        user.requires_second_factor || self.requires_role(user.is_admin)
    }

    /// Whether this policy alone (not an admin's choice) requires a second factor of a
    /// user with or without the admin role.
    pub fn requires_role(self, is_admin: bool) -> bool {
        match self {
            Self::Optional => false,
            Self::RequiredForAdmins => is_admin,
            Self::Required => true,
        }
    }
}

/// The second-factor service's settings.
#[derive(Debug, Clone)]
pub struct FactorsConfig {
    /// The issuer, whose host names this server in authenticator apps.
    pub issuer: String,
    pub policy: MfaPolicy,
    /// Wrong codes count like wrong passwords (per account, the same waits).
    pub throttle: ThrottlePolicy,
}

impl FactorsConfig {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            policy: MfaPolicy::Optional,
            throttle: ThrottlePolicy::default(),
        }
    }
}

/// Why a second-factor action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactorError {
    /// The code is not a current TOTP code, an unused recovery code, or was used already.
    #[error("the code is not valid")]
    WrongCode,
    /// Too many wrong codes: wait this many seconds.
    #[error("too many wrong codes; wait {0} seconds")]
    Throttled(u64),
    #[error("no such factor")]
    NotFound,
    /// The user must have a second factor, and this is their last.
    #[error("a second factor is required for this account: add another before removing this one")]
    LastRequiredFactor,
    /// A name that is empty, too long or holds invisible characters.
    #[error("{0}")]
    InvalidName(&'static str),
    /// A stored secret does not open under the factor key, or its cryptography failed.
    #[error(transparent)]
    Sealed(#[from] seal::SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The throttle subject of a user's second-factor guesses.
pub fn throttle_subject(user_id: &str) -> String {
    format!("factor:{user_id}")
}

/// Checks a factor's name: 1 to 64 characters, no invisible or control characters.
pub fn validate_name(name: &str) -> Result<String, FactorError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FactorError::InvalidName("give it a name"));
    }
    if name.chars().count() > 64 {
        return Err(FactorError::InvalidName(
            "a name may be at most 64 characters",
        ));
    }
    if crate::user::has_invisible_controls(name) {
        return Err(FactorError::InvalidName(
            "a name may not hold invisible or control characters",
        ));
    }
    Ok(name.to_string())
}
