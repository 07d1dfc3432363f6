//! Entry points of the cargo-fuzz targets in `fuzz/` and of their regression tests. Not a
//! supported API: hidden from the docs, and free to change.

use crate::jwks::parse_jwks;
use crate::{Algorithm, Verifier, VerifierConfig};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::OnceLock;

const ISSUER: &str = "https://sigil.fuzz";
const AUDIENCE: &str = "https://api.fuzz";
/// The public half of a key whose private half was thrown away: no input can carry a
/// valid signature, so a fuzzed token that verifies is a bug.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"fuzz","alg":"RS256","use":"sig","e":"AQAB","n":"o8ELFDUdYxCQqzlLnRK7jIY4d3W7rdqUS5ayuRpbakCvFa-XbnyJyoUhdPF9b7LlgttT3btd2dNj9-hQjf659j_cplJoK1pwpmuAwY2zxs2AXSO0PtTEYh8553yMVO-nA82R-WsMQNFum8aCmfg9dMv-D89FFUhtn4escYHxZFvk-Fne4IgsEuVJg4S-yVFRuUHkYVVVbIRcQMoLFyijEOacjvNaTjchpNsUpD--odJkI5mbueJkYETbJUrTxl2i35AZzbMgeUR5MFHTz0on7yqiXe7hc1mlnsbUArJ6Qi1Z4oUwsoBO5AbVwXcE2OESDMA8CuAPqYWW7VLmFBmbGw"}]}"#;

struct Harness {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| Harness {
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime"),
        verifier: Verifier::with_static_jwks(
            VerifierConfig::new(ISSUER, AUDIENCE),
            JWKS.as_bytes(),
        )
        .expect("the fuzzing key set parses"),
    })
}

/// Turns fuzzer bytes into a token: as text when the first byte is even; otherwise the
/// rest is split at 0xFF into up to three parts, each base64url-encoded and joined with
/// dots, so that the fuzzer reaches the JSON parsing behind the encoding.
pub fn token_from_bytes(data: &[u8]) -> String {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => rest
            .splitn(3, |b| *b == 0xFF)
            .map(|part| URL_SAFE_NO_PAD.encode(part))
            .collect::<Vec<_>>()
            .join("."),
        Some((_, rest)) => String::from_utf8_lossy(rest).into_owned(),
        None => String::new(),
    }
}

/// Verifies a fuzzed token. Panics if it is accepted, which would be a forgery.
pub fn verify_token(data: &[u8]) {
    let harness = harness();
    let token = token_from_bytes(data);
    let result = harness.runtime.block_on(harness.verifier.verify(&token));
    assert!(
        result.is_err(),
        "a token without a valid signature was accepted"
    );
}

/// Parses a fuzzed JWKS document. Panics if a key is kept for an algorithm that is not
/// allowed.
pub fn parse_key_set(data: &[u8]) {
    if let Ok(keys) = parse_jwks(data, &[Algorithm::RS256]) {
        assert!(
            keys.values()
                .all(|key| key.algorithms().all(|alg| alg == Algorithm::RS256)),
            "a key was kept for an algorithm that is not allowed"
        );
    }
}
