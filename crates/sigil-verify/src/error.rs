//! Why a token was refused.

use crate::dpop::DpopChallenge;
use crate::step_up::AuthenticationRequirement;

/// The kind of a verification failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No bearer token in the request.
    MissingToken,
    /// The request itself is malformed (e.g. a non-Bearer Authorization header).
    BadRequest,
    /// Longer than the configured maximum.
    TooLong,
    /// Not three base64url parts, or unreadable JSON.
    Malformed,
    /// `alg` is not on the allow-list (`none` and HMAC never are).
    Algorithm,
    /// `typ` is not `at+jwt`.
    Type,
    /// No published key has this `kid`.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `iss` is not the configured issuer.
    Issuer,
    /// `aud` does not contain the configured audience.
    Audience,
    /// `exp` has passed (beyond the leeway), or is missing.
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// The token lacks a scope the route requires.
    InsufficientScope,
    /// The user's authentication behind the token is too weak (`acr`) or too old
    /// (`auth_time`) for the route (RFC 9470); see [`VerifyError::required_authentication`].
    InsufficientUserAuthentication,
    /// The issuer's discovery document or JWKS could not be fetched and no keys are cached.
    KeysUnavailable,
    /// The token's key binding does not hold (RFC 9449 §7.1, §7.2): a DPoP-bound token sent
    /// as `Bearer`, a bearer token sent as `DPoP`, a proof signed by another key than
    /// `cnf.jkt`, or a `cnf` this verifier cannot check. Answered as `invalid_token`.
    Binding,
    /// The route accepts DPoP-bound tokens only and the request sent a bearer token.
    DpopRequired,
    /// The DPoP proof is missing, repeated, invalid (RFC 9449 §4.3) or replayed (§11.1):
    /// `invalid_dpop_proof`.
    InvalidDpopProof,
    /// The proof lacks a valid resource-server nonce (RFC 9449 §9): `use_dpop_nonce`, with
    /// the nonce to use in [`VerifyError::dpop_nonce`].
    UseDpopNonce,
    /// The replay cache is full of unexpired proofs, so no new proof can be accepted until
    /// some expire (503).
    ReplayCacheFull,
}

/// A verification failure. Its text is safe to return to the client; it never contains
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VerifyError {
    kind: ErrorKind,
    message: String,
    /// For [`ErrorKind::InsufficientScope`]: the scopes required; for another refusal, the
    /// scopes the route requires when it chose to name them (see [`VerifyError::with_scope`]).
    required_scope: Option<String>,
    /// For [`ErrorKind::InsufficientUserAuthentication`]: what the route requires.
    required_authentication: Option<Box<AuthenticationRequirement>>,
    /// The URL of the resource's RFC 9728 metadata, for the challenge's `resource_metadata`.
    resource_metadata: Option<String>,
    /// For a verifier that accepts DPoP: what its challenge says besides `Bearer`.
    dpop_challenge: Option<Box<DpopChallenge>>,
    /// A nonce for the `DPoP-Nonce` response header (RFC 9449 §9).
    dpop_nonce: Option<String>,
}

impl VerifyError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            required_scope: None,
            required_authentication: None,
            resource_metadata: None,
            dpop_challenge: None,
            dpop_nonce: None,
        }
    }
    pub(crate) fn insufficient_scope(scope: &str) -> Self {
        Self {
            kind: ErrorKind::InsufficientScope,
            message: format!("the token lacks the {scope} scope"),
            required_scope: Some(scope.to_string()),
            required_authentication: None,
            resource_metadata: None,
            dpop_challenge: None,
            dpop_nonce: None,
        }
    }
    pub(crate) fn insufficient_user_authentication(
        message: &str,
        requirement: AuthenticationRequirement,
    ) -> Self {
        Self {
            kind: ErrorKind::InsufficientUserAuthentication,
            message: message.to_string(),
            required_scope: None,
            required_authentication: Some(Box::new(requirement)),
            resource_metadata: None,
            dpop_challenge: None,
            dpop_nonce: None,
        }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The space-separated scopes the request needs: always for
    /// [`ErrorKind::InsufficientScope`], for other refusals when set by [`Self::with_scope`].
    /// The challenge names them in `scope` (RFC 6750 §3).
    pub fn required_scope(&self) -> Option<&str> {
        self.required_scope.as_deref()
    }
    /// Names `scope` (space-separated) as what the request needs, in the challenge's `scope`
    /// attribute (RFC 6750 §3): for a 401, the scopes a client should ask for before it tries
    /// again. Replaces the scopes an [`ErrorKind::InsufficientScope`] refusal carries.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.required_scope = Some(scope.into());
        self
    }
    /// The URL of the resource's RFC 9728 metadata, named in the challenge's
    /// `resource_metadata` (RFC 9728 §5.1), if set.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }
    /// Names `url`, the resource's RFC 9728 metadata (usually
    /// [`crate::ProtectedResourceMetadata::metadata_url`]), in the challenge, so that a client
    /// can find the authorization server. Characters that cannot sit in a quoted string
    /// (quotes, backslashes, anything but printable ASCII) are replaced in the challenge.
    pub fn with_resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }
    /// For [`ErrorKind::InsufficientUserAuthentication`]: the requirement the token failed,
    /// whose `acr_values` and `max_age` the client must ask Sigil's `/authorize` for.
    pub fn required_authentication(&self) -> Option<&AuthenticationRequirement> {
        self.required_authentication.as_deref()
    }
    /// For a verifier that accepts DPoP (see [`crate::Verifier::dpop_context`]): the `DPoP`
    /// challenge that goes with the `Bearer` one, or replaces it on a route that demands DPoP.
    pub fn dpop_challenge(&self) -> Option<&DpopChallenge> {
        self.dpop_challenge.as_deref()
    }
    pub(crate) fn with_dpop_challenge(mut self, challenge: DpopChallenge) -> Self {
        self.dpop_challenge = Some(Box::new(challenge));
        self
    }
    /// The nonce the client must put in its next proof (`DPoP-Nonce`, RFC 9449 §9): always
    /// for [`ErrorKind::UseDpopNonce`].
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop_nonce.as_deref()
    }
    pub(crate) fn with_dpop_nonce(mut self, nonce: String) -> Self {
        self.dpop_nonce = Some(nonce);
        self
    }
}
