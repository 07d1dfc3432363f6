//! RFC 9470 step-up: what a route demands of the user's sign-in (an `acr` it accepts, a
//! recent enough `auth_time`), and the check of a token's claims against it.
//!
//! ```
//! use sigil_verify::step_up::{AuthenticationRequirement, ACR_2FA, ACR_PHR};
//! use std::time::Duration;
//!
//! let second_factor_in_the_last_five_minutes = AuthenticationRequirement::new()
//!     .with_acr_values([ACR_2FA, ACR_PHR])
//!     .with_max_age(Duration::from_secs(300));
//! # let _ = second_factor_in_the_last_five_minutes;
//! ```
//!
//! A refusal is [`crate::ErrorKind::InsufficientUserAuthentication`]; its
//! [`crate::VerifyError::required_authentication`] gives the requirement back, from which
//! [`crate::axum_support`] builds the RFC 9470 §3 challenge. The client answers it by sending
//! the user to Sigil's `/authorize` again with these `acr_values` and `max_age`.

use crate::claims::Claims;
use crate::error::VerifyError;
use std::time::Duration;

/// Sigil's `acr` for one factor (a password, or an upstream provider, alone).
pub const ACR_1FA: &str = "urn:sigil:acr:1fa";
/// Sigil's `acr` for a password and a second factor (TOTP, a recovery code, a passkey).
pub const ACR_2FA: &str = "urn:sigil:acr:2fa";
/// Sigil's `acr` when a passkey took part: phishing-resistant, stronger than [`ACR_2FA`].
/// (Sigil issues the short value `phr`, as its discovery document's `acr_values_supported`
/// lists it.)
pub const ACR_PHR: &str = "phr";

/// What a route requires of the authentication behind a token (RFC 9470 §3): an `acr` among
/// [`Self::acr_values`], and an `auth_time` no older than [`Self::max_age`]. An empty
/// requirement (from [`Self::new`] alone) is met by every token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthenticationRequirement {
    acr_values: Vec<String>,
    max_age: Option<Duration>,
}

impl AuthenticationRequirement {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token's `acr` must be one of `values`. A resource server names every value it
    /// accepts, in order of preference (they become the challenge's `acr_values`); there is
    /// no implied order of strength. A token without `acr` (client credentials) fails.
    /// Values are compared exactly; each must be printable ASCII without spaces or quotes.
    pub fn with_acr_values<I, T>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.acr_values = values.into_iter().map(Into::into).collect();
        self
    }

    /// The user must have authenticated at most `max_age` ago: `auth_time` must be present
    /// and `now - auth_time <= max_age`, counted in whole seconds. The verifier's leeway does
    /// not lengthen `max_age`; it only forgives an `auth_time` slightly in the future.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The accepted `acr` values, in order of preference; empty when any will do.
    pub fn acr_values(&self) -> &[String] {
        &self.acr_values
    }

    /// The longest accepted time since the user authenticated, if limited.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// Checks `claims` at `now` (seconds since the epoch), forgiving an `auth_time` up to
    /// `leeway` in the future (clock skew between Sigil and this server).
    pub(crate) fn check(
        &self,
        claims: &Claims,
        now: i64,
        leeway: Duration,
    ) -> Result<(), VerifyError> {
        if !self.acr_values.is_empty() {
            match claims.acr.as_deref() {
                None => {
                    return Err(self.refusal("the token does not say how the user authenticated"))
                }
                Some(acr) if !self.acr_values.iter().any(|accepted| accepted == acr) => {
                    return Err(self.refusal("a stronger authentication is required"))
                }
                Some(_) => {}
            }
        }
        if let Some(max_age) = self.max_age {
            let Some(auth_time) = claims.auth_time else {
                return Err(self.refusal("the token does not say when the user authenticated"));
            };
            let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
            let age = now.saturating_sub(auth_time);
            if age > max_age {
                return Err(self.refusal("a more recent authentication is required"));
            }
            if age < leeway.saturating_neg() {
                return Err(self.refusal("the token's auth_time is in the future"));
            }
        }
        Ok(())
    }

    fn refusal(&self, message: &str) -> VerifyError {
        VerifyError::insufficient_user_authentication(message, self.clone())
    }
}

impl Claims {
    /// Fails with [`crate::ErrorKind::InsufficientUserAuthentication`] unless the token's
    /// `acr` and `auth_time` meet `requirement` at `now` (seconds since the epoch). No
    /// leeway: an `auth_time` after `now` is refused. [`crate::Verifier::require_authentication`]
    /// reads the verifier's clock and forgives its leeway of clock skew instead.
    pub fn require_authentication(
        &self,
        requirement: &AuthenticationRequirement,
        now: i64,
    ) -> Result<(), VerifyError> {
        requirement.check(self, now, Duration::ZERO)
    }
}
