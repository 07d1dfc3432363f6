//! `sigil-dpop`: DPoP proofs (RFC 9449), the one implementation of their rules that Sigil's
//! token and userinfo endpoints and `sigil-verify` (what resource servers embed) share.
//!
//! * [`check`] does the checks of RFC 9449 §4.3 that need nothing but the proof and the
//!   request: one well-formed JWT, `typ` `dpop+jwt`, an asymmetric `alg` from the caller's
//!   allow-list, a public `jwk` of the matching type in the header, the signature, `htm`,
//!   `htu` (both sides normalised, query and fragment ignored), `iat` within a window, a
//!   `jti`, and `ath` when an access token is presented (§4.3 point 12, §7). It returns the
//!   key's RFC 7638 thumbprint (`jkt`), the `jti` and the `nonce`, so that the caller does
//!   the rest: a nonce it issued (§8, §9) and a `jti` not seen before (§11.1), each where it
//!   keeps state (a database shared by replicas, or one process's memory).
//! * Everything is refused before any cryptography when the shape is wrong, and the error
//!   says what was wrong without quoting the proof.
//! * [`NonceKey`] makes and checks server-provided nonces (§8, §9) without state.
//! * [`ProofSigner`] makes proofs: for clients written in Rust and for tests.

mod key;
mod nonce;
mod proof;
mod signer;

pub use key::{rsa_modulus_bits, thumbprint, Alg, ALGORITHMS};
pub use nonce::{NonceCheck, NonceKey};
pub use proof::{access_token_hash, check, normalize_htu, Expected, Proof, ProofError, Rules};
pub use signer::ProofSigner;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// Longest proof read (bytes): enough for a 4096-bit RSA key in the header.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// Longest `jti` accepted (characters).
pub const MAX_JTI_LEN: usize = 256;
