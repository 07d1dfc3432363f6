//! One access-token validation: header checks, cached-key lookup, RS256 signature
//! verification, claim checks; and the same token again, answered by the verified-token
//! cache (SHA-256 of the token, key still current, times checked). Run with
//! `cargo bench -p sigil-verify`.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_verify::{Verifier, VerifierConfig};
use support::{claims, jwks, TestKey, AUDIENCE, ISSUER};

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

criterion_group!(benches, validation);
criterion_main!(benches);
