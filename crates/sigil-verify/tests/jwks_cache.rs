//! The key cache against a local JWKS server that counts its requests: thousands of
//! validations, many concurrent, some with new or forged `kid`s, cost exactly the expected
//! number of fetches; a failing JWKS server leaves the cached keys working.

mod support;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use sigil_verify::{ErrorKind, ManualClock, Verifier, VerifierConfig};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{claims, jwks, TestKey, AUDIENCE};

#[derive(Clone, Default)]
struct Server {
    jwks: Arc<Mutex<Vec<u8>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    issuer: Arc<Mutex<String>>,
}

async fn jwks_handler(State(s): State<Server>) -> axum::response::Response {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    if s.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = s.jwks.lock().expect("lock").clone();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=600"),
        ],
        body,
    )
        .into_response()
}

async fn discovery(State(s): State<Server>) -> axum::Json<serde_json::Value> {
    let issuer = s.issuer.lock().expect("lock").clone();
    axum::Json(json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json") }))
}

async fn start(server: Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    *server.issuer.lock().expect("lock") = base.clone();
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks.json", get(jwks_handler))
        .with_state(server);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn token(key: &TestKey, issuer: &str) -> String {
    let mut c = claims("todos:read");
    c["iss"] = json!(issuer);
    key.token(&c)
}

async fn validate_concurrently(
    verifier: &Verifier,
    tokens: Vec<String>,
) -> Vec<Result<(), ErrorKind>> {
    let mut tasks = Vec::new();
    for t in tokens {
        let v = verifier.clone();
        tasks.push(tokio::spawn(async move {
            v.verify(&t).await.map(|_| ()).map_err(|e| e.kind())
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("join"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetches_are_shared_and_rate_limited() {
    let k1 = TestKey::generate("k1");
    let k2 = TestKey::generate("k2");
    let server = Server::default();
    *server.jwks.lock().expect("lock") = jwks(&[&k1]);
    let issuer = start(server.clone()).await;
    let mut config = VerifierConfig::new(issuer.clone(), AUDIENCE);
    config.refetch_cooldown = Duration::from_millis(1500);
    let clock = Arc::new(ManualClock::new());
    let verifier = Verifier::builder(config)
        .clock(clock.clone())
        .discover()
        .await
        .expect("discover");
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "discovery fetches the JWKS once"
    );

    // 2,000 validations with the known key, 500 at a time: no fetch.
    for _ in 0..4 {
        let results = validate_concurrently(&verifier, vec![token(&k1, &issuer); 500]).await;
        assert!(results.iter().all(Result::is_ok));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // Tokens with forged kids.
    let forged: Vec<String> = (0..1000)
        .map(|i| TestKey::sign_with_kid(&k1, &format!("forged-{i}"), &issuer))
        .collect();
    let k2_tokens = vec![token(&k2, &issuer); 500];

    // A new key is published; 500 concurrent tokens with its kid share exactly one fetch.
    *server.jwks.lock().expect("lock") = jwks(&[&k1, &k2]);
    clock.advance(Duration::from_millis(1600));
    let results = validate_concurrently(&verifier, k2_tokens).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        2,
        "one fetch for 500 tokens with a new kid"
    );

    // A flood of forged kids right after: the cool-down holds, no fetch at all.
    let results = validate_concurrently(&verifier, forged.clone()).await;
    assert!(results.iter().all(|r| *r == Err(ErrorKind::UnknownKey)));
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        2,
        "forged kids inside the cool-down cost nothing"
    );

    // After the cool-down, another flood costs exactly one fetch.
    clock.advance(Duration::from_millis(1600));
    let results = validate_concurrently(&verifier, forged).await;
    assert!(results.iter().all(|r| *r == Err(ErrorKind::UnknownKey)));
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        3,
        "one fetch per cool-down, however many forged kids"
    );
    assert_eq!(verifier.jwks_fetches(), 3);
    println!("JWKS fetches for 4,500 validations (2,000 known kid, 500 new kid, 2 x 1,000 forged kids): {}", server.fetches.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_jwks_keeps_the_cached_keys() {
    let k1 = TestKey::generate("k1");
    let server = Server::default();
    *server.jwks.lock().expect("lock") = jwks(&[&k1]);
    let issuer = start(server.clone()).await;
    let mut config = VerifierConfig::new(issuer.clone(), AUDIENCE);
    config.refetch_cooldown = Duration::from_millis(100);
    let clock = Arc::new(ManualClock::new());
    let verifier = Verifier::builder(config)
        .clock(clock.clone())
        .discover()
        .await
        .expect("discover");
    server.failing.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_millis(150));
    // An unknown kid makes it refetch, which fails: known tokens still validate.
    let k2 = TestKey::generate("k2");
    assert_eq!(
        verifier
            .verify(&token(&k2, &issuer))
            .await
            .expect_err("unknown")
            .kind(),
        ErrorKind::UnknownKey
    );
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
    assert!(verifier.verify(&token(&k1, &issuer)).await.is_ok());
}

#[tokio::test]
async fn discovery_must_name_the_issuer() {
    let server = Server::default();
    let issuer = start(server.clone()).await;
    *server.issuer.lock().expect("lock") = "https://someone-else".into();
    let result = Verifier::discover(VerifierConfig::new(issuer, AUDIENCE)).await;
    assert_eq!(
        result.expect_err("mismatch").kind(),
        ErrorKind::KeysUnavailable
    );
}
