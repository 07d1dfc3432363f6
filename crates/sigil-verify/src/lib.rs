//! `sigil-verify`: validates Sigil access tokens (RFC 9068 JWTs) offline, against the
//! issuer's published JWKS, so that a resource server never calls Sigil per request.
//!
//! * The JWKS location comes from the issuer's discovery document; the key set is cached for
//!   the `Cache-Control: max-age` Sigil sends, clamped between a floor and a ceiling.
//! * A token with an unknown `kid` triggers at most one refetch, shared by every concurrent
//!   request that needs it, and refetches are rate-limited by a cool-down, so a flood of
//!   forged `kid`s cannot become a flood of requests to Sigil. When a refetch fails, the
//!   cached keys keep working.
//! * Only allow-listed algorithms are accepted (default `RS256`); `none` and HMAC are always
//!   refused, whatever the header says. `typ` must be `at+jwt`; `iss` must match exactly;
//!   `aud` must contain the expected audience; `exp` and `nbf` are checked with a leeway.
//!   Oversized or malformed tokens are refused before any cryptography.
//! * Tokens are never logged.
//! * A route may demand more of the user's sign-in than a valid token (RFC 9470 step-up): an
//!   `acr` it accepts and a recent `auth_time`, see [`step_up`].
//! * A resource server can publish RFC 9728 protected resource metadata, so that clients
//!   that know only its URL find the authorization server: see [`ProtectedResourceMetadata`].
//! * DPoP (RFC 9449): with [`VerifierConfig::dpop`], a DPoP-bound token (`cnf.jkt`) is
//!   accepted only with `Authorization: DPoP` and one valid proof signed by its key, for this
//!   request, seen once (a bounded replay cache), with this server's nonce if required; see
//!   [`dpop`] and [`Verifier::verify_request`]. A DPoP-bound token sent as `Bearer` is always
//!   refused.
//! * Time is read from a [`Clock`]: the system's unless [`Verifier::builder`] is given
//!   another, such as a [`ManualClock`] that a test moves on instead of sleeping.
//!
//! ```no_run
//! use sigil_verify::{Verifier, VerifierConfig};
//!
//! # async fn run() -> Result<(), sigil_verify::VerifyError> {
//! let verifier = Verifier::discover(VerifierConfig::new(
//!     "https://sigil.example.com",
//!     "https://api.example.com",
//! ))
//! .await?;
//! let claims = verifier.verify("eyJhbGciOiJSUzI1NiIs...").await?;
//! assert!(claims.has_scope("todos:read"));
//! println!("request by {}", claims.sub);
//! # Ok(())
//! # }
//! ```
//!
//! With axum (the default `axum` feature), see [`axum_support`]: an extractor that yields
//! the verified claims, a per-route scope requirement, a tower layer for a whole router, and
//! the route that serves the RFC 9728 metadata document.

#[cfg(feature = "axum")]
pub mod axum_support;
mod claims;
mod clock;
mod config;
pub mod dpop;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod jwks;
mod resource_metadata;
pub mod step_up;
mod verifier;

pub use claims::{Claims, Confirmation};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Algorithm, VerifierConfig};
pub use dpop::{DpopConfig, ProofAlgorithm, PublicOrigin, PROOF_ALGORITHMS};
pub use error::{ErrorKind, VerifyError};
pub use resource_metadata::{
    MetadataError, ProtectedResourceMetadata, ProtectedResourceMetadataBuilder, WELL_KNOWN_PATH,
};
pub use step_up::AuthenticationRequirement;
pub use verifier::{Verifier, VerifierBuilder};
