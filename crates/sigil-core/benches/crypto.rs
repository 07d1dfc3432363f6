//! The two CPU costs of the hot paths: signing an RS256 access token (one RSA-2048
//! private-key operation through josekit/OpenSSL, plus JSON and base64), and checking a
//! password with argon2id at the production parameters (OWASP: 19 MiB, t=2, p=1).
//! Run with `cargo bench -p sigil-core`.

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_core::keys::{generate_key, SigningKey};
use sigil_core::password::{Argon2Params, PasswordHasher};
use sigil_core::token::sign_jwt;

fn rs256_signing(c: &mut Criterion) {
    let generated = generate_key().expect("key");
    let key = SigningKey::from_pem(&generated.private_pem, 0, 0).expect("parse");
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "8m2b7Yq3TgWc1yQ0xk9a1w",
        "aud": "https://api.example.com",
        "exp": 1_900_000_600,
        "iat": 1_900_000_000,
        "jti": "c4xq0mU1T2a9b8Zp3LkQ7w",
        "client_id": "8m2b7Yq3TgWc1yQ0xk9a1w",
        "scope": "reports:read reports:write",
    });
    c.bench_function("sign RS256 access token", |b| {
        b.iter(|| sign_jwt(&key, "at+jwt", &claims).expect("signed"))
    });
}

fn argon2id_verification(c: &mut Criterion) {
    let hasher = PasswordHasher::new(Argon2Params::default()).expect("hasher");
    let hash = hasher.hash("correct horse battery staple").expect("hash");
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function("verify password (OWASP parameters)", |b| {
        b.iter(|| assert!(hasher.verify("correct horse battery staple", Some(&hash))))
    });
    group.finish();
}

criterion_group!(benches, rs256_signing, argon2id_verification);
criterion_main!(benches);
