//! One DPoP proof check (RFC 9449 §4.3) as the token endpoint and a resource server make it:
//! shape, header and claim rules, the `jwk` header turned into a verifier, the RFC 7638
//! thumbprint, and the signature, for each algorithm. Run with `cargo bench -p sigil-dpop`.

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_dpop::{check, Alg, Expected, ProofSigner, Rules};

const URL: &str = "https://sigil.example.com/token";
const NOW: i64 = 1_800_000_000;

fn proofs(c: &mut Criterion) {
    let rules = Rules::default();
    let expected = Expected {
        method: "POST",
        url: URL,
        access_token: Some("an access token"),
        now: NOW,
    };
    for alg in sigil_dpop::ALGORITHMS {
        let signer = ProofSigner::generate(alg).expect("key");
        let proof = signer
            .proof("POST", URL, Some("an access token"), None, NOW)
            .expect("proof");
        c.bench_function(&format!("check a {} DPoP proof", alg.name()), |b| {
            b.iter(|| check(&proof, &expected, &rules).expect("valid"))
        });
    }
    // What junk costs: a proof refused before any cryptography.
    let signer = ProofSigner::generate(Alg::Es256).expect("key");
    let stale = signer
        .proof("POST", URL, Some("an access token"), None, NOW - 3600)
        .expect("proof");
    c.bench_function("refuse a stale DPoP proof", |b| {
        b.iter(|| check(&stale, &expected, &rules).expect_err("stale"))
    });
}

criterion_group!(benches, proofs);
criterion_main!(benches);
