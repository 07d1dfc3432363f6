//! The cached key set: parsing a JWKS into ready verifiers, fetching it, and reading its
//! cache lifetime.

use crate::config::Algorithm;
use crate::error::{ErrorKind, VerifyError};
use josekit::jwk::Jwk;
use josekit::jws::{JwsVerifier, RS256, RS384, RS512};
use std::collections::HashMap;
use std::time::Duration;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One published key, with a verifier per algorithm it may be used with.
pub(crate) struct PublishedKey {
    verifiers: Vec<(Algorithm, Box<dyn JwsVerifier>)>,
}

impl PublishedKey {
    /// The algorithms this key verifies.
    pub(crate) fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.verifiers.iter().map(|(alg, _)| *alg)
    }

    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, v)| v.verify(message, signature).is_ok())
    }
}

/// Parses a JWKS into verifiers for the allowed algorithms. Keys that are not RSA signing
/// keys, have no `kid`, or name a disallowed `alg` are skipped.
pub(crate) fn parse_jwks(
    body: &[u8],
    allowed: &[Algorithm],
) -> Result<HashMap<String, PublishedKey>, VerifyError> {
    let malformed = |why: &str| {
        VerifyError::new(
            ErrorKind::KeysUnavailable,
            format!("the JWKS is malformed: {why}"),
        )
    };
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
    let keys = doc["keys"]
        .as_array()
        .ok_or_else(|| malformed("no keys array"))?;
    let mut out = HashMap::new();
    for key in keys {
        let Some(map) = key.as_object() else { continue };
        if map.get("kty").and_then(|v| v.as_str()) != Some("RSA") {
            continue;
        }
        if map
            .get("use")
            .and_then(|v| v.as_str())
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Some(kid) = map.get("kid").and_then(|v| v.as_str()) else {
            continue;
        };
        let algs: Vec<Algorithm> = match map.get("alg").and_then(|v| v.as_str()) {
            Some(name) => Algorithm::from_name(name)
                .filter(|a| allowed.contains(a))
                .into_iter()
                .collect(),
            None => allowed.to_vec(),
        };
        let Ok(jwk) = Jwk::from_map(map.clone()) else {
            continue;
        };
        let mut verifiers: Vec<(Algorithm, Box<dyn JwsVerifier>)> = Vec::new();
        for alg in algs {
            let verifier = match alg {
                Algorithm::RS256 => RS256
                    .verifier_from_jwk(&jwk)
                    .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
                Algorithm::RS384 => RS384
                    .verifier_from_jwk(&jwk)
                    .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
                Algorithm::RS512 => RS512
                    .verifier_from_jwk(&jwk)
                    .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            };
            if let Ok(verifier) = verifier {
                verifiers.push((alg, verifier));
            }
        }
        if !verifiers.is_empty() {
            out.insert(kid.to_string(), PublishedKey { verifiers });
        }
    }
    Ok(out)
}

/// `max-age` from a `Cache-Control` header, if any.
pub(crate) fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    cache_control?
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// GETs a JSON document, bounded in size and time.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    url: &str,
) -> Result<(Vec<u8>, Option<Duration>), VerifyError> {
    let unavailable = |why: String| VerifyError::new(ErrorKind::KeysUnavailable, why);
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| unavailable(format!("cannot fetch {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("{url} answered {}", response.status())));
    }
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_JWKS_BYTES)
    {
        return Err(unavailable(format!("{url} is too large")));
    }
    let age = max_age(
        response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
    );
    let body = response
        .bytes()
        .await
        .map_err(|e| unavailable(format!("cannot read {url}: {e}")))?;
    if body.len() > MAX_JWKS_BYTES {
        return Err(unavailable(format!("{url} is too large")));
    }
    Ok((body.to_vec(), age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age(Some("public, max-age=600")),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age(Some("no-cache")), None);
        assert_eq!(max_age(None), None);
    }

    #[test]
    fn skips_keys_it_cannot_use() {
        let jwks = br#"{"keys":[{"kty":"oct","kid":"h","k":"AAAA"},{"kty":"RSA","kid":"x","use":"enc","n":"AQAB","e":"AQAB"}]}"#;
        assert!(parse_jwks(jwks, &[Algorithm::RS256])
            .expect("parse")
            .is_empty());
        assert!(parse_jwks(b"{}", &[Algorithm::RS256]).is_err());
    }
}
