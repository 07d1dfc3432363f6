//! One access-token validation: header checks, cached-key lookup, RS256 signature
//! verification, claim checks; and the same token again, answered by the verified-token
//! cache (SHA-256 of the token, key still current, times checked); and a request's check
//! with a bearer token against one with a DPoP-bound token and its ES256 proof. Run with
//! `cargo bench -p sigil-verify`.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sigil_dpop::{Alg, ProofSigner};
use sigil_verify::dpop::{PresentedRequest, ProofHeader, Scheme};
use sigil_verify::{DpopConfig, PublicOrigin, Verifier, VerifierConfig};
use support::{claims, jwks, TestKey, AUDIENCE, ISSUER};

/// The URL of the DPoP requests.
const URL: &str = "https://api.test/api/me";

fn validation(c: &mut Criterion) {
    let key = TestKey::generate("k1");
    let token = key.token(&claims("todos:read todos:write"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // Every validation in full: the verified-token cache is off.
    let mut config = VerifierConfig::new(ISSUER, AUDIENCE);
    config.verified_cache_capacity = 0;
    let full = Verifier::with_static_jwks(config, &jwks(&[&key])).expect("verifier");
    c.bench_function("validate RS256 access token", |b| {
        b.iter(|| runtime.block_on(full.verify(&token)).expect("valid"))
    });
    // The same token again, as a client presents it on every request of a session.
    let cached = Verifier::with_static_jwks(VerifierConfig::new(ISSUER, AUDIENCE), &jwks(&[&key]))
        .expect("verifier");
    runtime.block_on(cached.verify(&token)).expect("valid");
    c.bench_function("validate a token verified before (cache hit)", |b| {
        b.iter(|| runtime.block_on(cached.verify(&token)).expect("valid"))
    });
}

/// A request's whole check as the axum layer does it ([`Verifier::verify_request`]): a
/// bearer token, against a DPoP-bound token with a fresh ES256 proof (signature, `htm`,
/// `htu`, `iat`, `ath`, `cnf.jkt`, the replay cache). The token is in the verified-token
/// cache in both, as it is for a client's second request on; each proof is new (made
/// outside the timing), as the replay cache demands.
fn dpop(c: &mut Criterion) {
    let key = TestKey::generate("k1");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut dpop = DpopConfig::new(PublicOrigin::Url("https://api.test".into()));
    // Room for every proof of the run: nothing is refused as the cache fills.
    dpop.replay_capacity = 10_000_000;
    let verifier = Verifier::with_static_jwks(
        VerifierConfig::new(ISSUER, AUDIENCE).with_dpop(dpop),
        &jwks(&[&key]),
    )
    .expect("verifier");
    let bearer = key.token(&claims("todos:read"));
    runtime
        .block_on(verifier.verify_request(&request(Scheme::Bearer, &bearer, ProofHeader::Missing)))
        .expect("valid");
    c.bench_function("verify_request: bearer token (cache hit)", |b| {
        b.iter(|| {
            runtime
                .block_on(verifier.verify_request(&request(
                    Scheme::Bearer,
                    &bearer,
                    ProofHeader::Missing,
                )))
                .expect("valid")
        })
    });
    let signer = ProofSigner::generate(Alg::Es256).expect("DPoP key");
    let bound = {
        let mut c = claims("todos:read");
        c["cnf"] = serde_json::json!({"jkt": signer.jkt()});
        key.token(&c)
    };
    let now = || support::now();
    let fresh_proof = || {
        signer
            .proof("GET", URL, Some(&bound), None, now())
            .expect("proof")
    };
    let first = fresh_proof();
    runtime
        .block_on(verifier.verify_request(&request(Scheme::Dpop, &bound, ProofHeader::One(&first))))
        .expect("valid");
    c.bench_function("verify_request: DPoP-bound token + ES256 proof", |b| {
        b.iter_batched(
            fresh_proof,
            |proof| {
                runtime
                    .block_on(verifier.verify_request(&request(
                        Scheme::Dpop,
                        &bound,
                        ProofHeader::One(&proof),
                    )))
                    .expect("valid")
            },
            BatchSize::SmallInput,
        )
    });
    // The proof check alone, for comparison: sigil_dpop::check without the replay cache.
    let rules = sigil_dpop::Rules::default();
    c.bench_function("sigil_dpop::check: ES256 proof alone", |b| {
        b.iter_batched(
            fresh_proof,
            |proof| {
                let expected = sigil_dpop::Expected {
                    method: "GET",
                    url: URL,
                    access_token: Some(&bound),
                    now: now(),
                };
                sigil_dpop::check(&proof, &expected, &rules).expect("valid")
            },
            BatchSize::SmallInput,
        )
    });
}

fn request<'a>(scheme: Scheme, token: &'a str, proof: ProofHeader<'a>) -> PresentedRequest<'a> {
    PresentedRequest {
        scheme,
        token,
        proof,
        method: "GET",
        url: URL,
        require_dpop: false,
    }
}

criterion_group!(benches, validation, dpop);
criterion_main!(benches);
