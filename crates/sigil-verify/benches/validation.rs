//! One access-token validation: header checks, cached-key lookup, RS256 signature
//! verification, claim checks. Run with `cargo bench -p sigil-verify`.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_verify::{Verifier, VerifierConfig};
use support::{claims, jwks, TestKey, AUDIENCE, ISSUER};

fn validation(c: &mut Criterion) {
    let key = TestKey::generate("k1");
    let verifier =
        Verifier::with_static_jwks(VerifierConfig::new(ISSUER, AUDIENCE), &jwks(&[&key]))
            .expect("verifier");
    let token = key.token(&claims("todos:read todos:write"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    c.bench_function("validate RS256 access token", |b| {
        b.iter(|| runtime.block_on(verifier.verify(&token)).expect("valid"))
    });
}

criterion_group!(benches, validation);
criterion_main!(benches);
