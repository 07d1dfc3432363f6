//! Checking a DPoP proof (RFC 9449 §4.3) against the request it came with.

use crate::key::Alg;
use crate::{MAX_JTI_LEN, MAX_PROOF_LEN, PROOF_TYP};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What the checker allows: the caller's configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The algorithms accepted (RFC 9449 §5.1 `dpop_signing_alg_values_supported`).
    pub algorithms: Vec<Alg>,
    /// How old a proof's `iat` may be (seconds).
    pub max_age: i64,
    /// How far in the future a proof's `iat` may be, for clocks that run ahead (seconds).
    pub leeway: i64,
}

impl Default for Rules {
    /// Every algorithm, proofs up to 5 minutes old (RFC 9449 leaves the window to the
    /// server; a nonce narrows it where clocks cannot be trusted), 30 s of leeway.
    fn default() -> Self {
        Self {
            algorithms: crate::ALGORITHMS.to_vec(),
            max_age: 300,
            leeway: 30,
        }
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The HTTP method, as sent (`POST`, `GET`).
    pub method: &'a str,
    /// The URL the request was sent to; its query and fragment are ignored.
    pub url: &'a str,
    /// The access token presented with the proof, if any: the proof must then carry its
    /// hash in `ath` (RFC 9449 §4.3 point 12, §7).
    pub access_token: Option<&'a str>,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

/// A proof that passed [`check`]. What is left to the caller: a `nonce` it requires, a
/// `jti` it has not seen (kept until [`Proof::replay_until`]), and, with an access token,
/// that the token's `cnf.jkt` is [`Proof::jkt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The `nonce` claim, if the proof has one.
    pub nonce: Option<String>,
    max_age: i64,
}

impl Proof {
    /// A digest of the key and the `jti` that identifies this proof for replay detection
    /// (two clients picking the same `jti` do not collide), base64url.
    pub fn replay_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.replay_digest())
    }

    /// The digest [`Proof::replay_key`] encodes, as bytes: for replay caches that keep 32
    /// bytes per proof rather than a string.
    pub fn replay_digest(&self) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.jkt.as_bytes());
        digest.update(b".");
        digest.update(self.jti.as_bytes());
        digest.finalize().into()
    }

    /// Until when its `jti` must be remembered: the first second the proof is no longer
    /// accepted ([`check`] takes it while now ≤ iat + max age; stores drop a record once
    /// its expiry ≤ now, so the last accepted second must still be covered).
    pub fn replay_until(&self) -> i64 {
        self.iat.saturating_add(self.max_age).saturating_add(1)
    }
}

/// Why a proof was refused. [`ProofError::description`] is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// Not a JWT of the right shape, or a header or claim missing or of the wrong type.
    Malformed(&'static str),
    /// An `alg` that is not on the allow-list.
    Algorithm,
    /// The `jwk` header is not a usable public key for the `alg`.
    Key(&'static str),
    /// The signature does not verify with the header's key.
    Signature,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URL.
    Url,
    /// `iat` is too old, or too far in the future.
    Time,
    /// An access token was presented and `ath` is missing or not its hash.
    AccessTokenHash,
}

impl ProofError {
    pub fn description(&self) -> &'static str {
        match self {
            ProofError::Malformed(what) => what,
            ProofError::Algorithm => "the DPoP proof's alg is not one of ES256, RS256, PS256 or EdDSA accepted here",
            ProofError::Key(what) => what,
            ProofError::Signature => "the DPoP proof's signature does not verify with its jwk",
            ProofError::Method => "the DPoP proof's htm is not the method of this request",
            ProofError::Url => "the DPoP proof's htu is not the URL of this request",
            ProofError::Time => "the DPoP proof's iat is outside the accepted window: make a new proof for each request",
            ProofError::AccessTokenHash => "the DPoP proof's ath is missing or is not the hash of the access token sent",
        }
    }
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for ProofError {}

/// `ath`: the base64url SHA-256 of the access token's ASCII text (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// A URL as `htu` compares it: parsed (so scheme and host in lower case, a default port
/// dropped, dot segments resolved, an empty path made `/`), without query and fragment
/// (RFC 9449 §4.3 point 9, RFC 3986 §6.2.2 and §6.2.3). `None` if it is not an absolute
/// http(s) URL.
pub fn normalize_htu(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return None;
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    Some(parsed.to_string())
}

/// Checks a proof against the request it came with (RFC 9449 §4.3 points 2 to 9, 11 and
/// 12): see the crate's documentation for what is left to the caller.
pub fn check(proof: &str, expected: &Expected<'_>, rules: &Rules) -> Result<Proof, ProofError> {
    check_proof(proof, expected, rules)
}

fn check_proof(proof: &str, expected: &Expected<'_>, rules: &Rules) -> Result<Proof, ProofError> {
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed(
            "the DPoP proof is empty or longer than 8 KiB",
        ));
    }
    let mut parts = proof.split('.');
    let (Some(header_part), Some(payload_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed(
            "the DPoP proof is not a JWT of three parts",
        ));
    };
    let header = decode_object(header_part).ok_or(ProofError::Malformed(
        "the DPoP proof's header is not base64url JSON",
    ))?;
    let claims = decode_object(payload_part).ok_or(ProofError::Malformed(
        "the DPoP proof's payload is not base64url JSON",
    ))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| ProofError::Malformed("the DPoP proof's signature is not base64url"))?;

    // Header: explicit typing, an accepted asymmetric alg, a public key, nothing critical.
    // RFC 7515 §4.1.9: `application/dpop+jwt` is the same type, written in full.
    let typ = header.get("typ").and_then(Value::as_str).map(|t| {
        t.get(..12)
            .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
            .map_or(t, |_| &t[12..])
    });
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYP)) {
        return Err(ProofError::Malformed(
            "the DPoP proof's typ must be dpop+jwt",
        ));
    }
    if header.contains_key("crit") {
        return Err(ProofError::Malformed(
            "the DPoP proof has crit header parameters, which are not understood here",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .filter(|alg| rules.algorithms.contains(alg))
        .ok_or(ProofError::Algorithm)?;
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofError::Malformed(
            "the DPoP proof's header has no jwk object",
        ))?;

    // Claims, before any cryptography.
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_LEN)
        .ok_or(ProofError::Malformed(
            "the DPoP proof needs a jti of 1 to 256 characters",
        ))?;
    let htm = text("htm").ok_or(ProofError::Malformed("the DPoP proof has no htm"))?;
    let htu = text("htu").ok_or(ProofError::Malformed("the DPoP proof has no htu"))?;
    let iat = claims
        .get("iat")
        .and_then(number_seconds)
        .ok_or(ProofError::Malformed("the DPoP proof needs a numeric iat"))?;
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) if !n.is_empty() => Some(n.clone()),
        Some(_) => {
            return Err(ProofError::Malformed(
                "the DPoP proof's nonce must be a non-empty string",
            ))
        }
    };
    if htm != expected.method {
        return Err(ProofError::Method);
    }
    let wanted = normalize_htu(expected.url).ok_or(ProofError::Url)?;
    if normalize_htu(htu).as_deref() != Some(wanted.as_str()) {
        return Err(ProofError::Url);
    }
    if iat > expected.now.saturating_add(rules.leeway)
        || iat < expected.now.saturating_sub(rules.max_age)
    {
        return Err(ProofError::Time);
    }
    if let Some(token) = expected.access_token {
        if text("ath") != Some(access_token_hash(token).as_str()) {
            return Err(ProofError::AccessTokenHash);
        }
    }

    // The key and the signature.
    let jkt = crate::key::thumbprint(jwk).ok_or(ProofError::Key(
        "the jwk header is not an RSA, EC or OKP public key",
    ))?;
    let key = alg.public_key(jwk, &jkt).map_err(ProofError::Key)?;
    let signing_input_len = header_part.len() + 1 + payload_part.len();
    if !key.verifies(alg, &proof.as_bytes()[..signing_input_len], &signature) {
        return Err(ProofError::Signature);
    }
    Ok(Proof {
        jkt,
        jti: jti.to_string(),
        iat,
        nonce,
        max_age: rules.max_age,
    })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A NumericDate as whole seconds (a fraction is dropped).
fn number_seconds(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;
