//! todo-api with DPoP-bound tokens (RFC 9449): a proof for each request, and its refusals.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::BodyExt;
use josekit::jwk::KeyPair;
use josekit::jws::{JwsSigner, RS256};
use serde_json::{json, Value};
use sigil_dpop::{Alg, ProofSigner};
use sigil_verify::{Verifier, VerifierConfig};
use std::time::Duration;
use todo_api::resource::{dpop_config, protected_resource_metadata};
use todo_api::store::TodoStore;
use todo_api::{app, step_up_requirement, AppState};
use tower::ServiceExt;

const ISSUER: &str = "https://sigil.test";
const AUDIENCE: &str = "http://127.0.0.1:8090";
/// Where clients reach the API: the proofs' `htu` is this and the path.
const PUBLIC_URL: &str = "http://127.0.0.1:8090";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

struct Fixture {
    router: axum::Router,
    private_pem: Vec<u8>,
    client_key: ProofSigner,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    challenge: String,
    nonce: Option<String>,
    body: Value,
}

async fn fixture(nonce_window: Option<Duration>) -> Fixture {
    let pair = RS256.generate_key_pair(2048).expect("keygen");
    let mut jwk: Value = serde_json::from_str(&pair.to_jwk_public_key().to_string()).expect("jwk");
    jwk["kid"] = "k1".into();
    let dpop = dpop_config(PUBLIC_URL, nonce_window, 1_000).expect("DPoP");
    let verifier = Verifier::with_static_jwks(
        VerifierConfig::new(ISSUER, AUDIENCE).with_dpop(dpop),
        json!({ "keys": [jwk] }).to_string().as_bytes(),
    )
    .expect("verifier");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TodoStore::open(&format!("sqlite://{}/todo.db", dir.path().display()))
        .await
        .expect("store");
    Fixture {
        router: app(AppState {
            verifier,
            store,
            step_up: step_up_requirement(Duration::from_secs(300)),
            metadata: protected_resource_metadata(AUDIENCE, ISSUER).expect("metadata"),
        }),
        private_pem: pair.to_pem_private_key(),
        client_key: ProofSigner::generate(Alg::Es256).expect("DPoP key"),
        _dir: dir,
    }
}

impl Fixture {
    /// An access token as Sigil issues it to a DPoP client: bound to its key by `cnf.jkt`.
    fn bound_token(&self, sub: &str, scope: &str) -> String {
        let now = now();
        self.sign(&json!({
            "iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": now + 600, "iat": now,
            "scope": scope, "client_id": "c", "cnf": {"jkt": self.client_key.jkt()},
        }))
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = RS256.signer_from_pem(&self.private_pem).expect("signer");
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signer.sign(input.as_bytes()).expect("sign"))
        )
    }

    fn proof(&self, method: &Method, path: &str, token: &str, nonce: Option<&str>) -> String {
        self.client_key
            .proof(
                method.as_str(),
                &format!("{PUBLIC_URL}{path}"),
                Some(token),
                nonce,
                now(),
            )
            .expect("proof")
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        proof: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = self.router.clone().oneshot(request).await.expect("call");
        let text = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii").to_string())
        };
        let (status, challenge, nonce) = (
            response.status(),
            text("www-authenticate").unwrap_or_default(),
            text("dpop-nonce"),
        );
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            challenge,
            nonce,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `method path` with the token as DPoP and a fresh proof.
    async fn with_proof(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let proof = self.proof(&method, path, token, None);
        self.call(method, path, &format!("DPoP {token}"), Some(&proof), body)
            .await
    }
}

fn assert_refused(answer: &Answer, error: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.body["error"], error, "{}", answer.body);
    assert!(
        answer.challenge.contains(&format!(
            "DPoP algs=\"ES256 RS256 PS256 EdDSA\", error=\"{error}\""
        )),
        "{}",
        answer.challenge
    );
}

#[tokio::test]
async fn a_dpop_bound_token_with_a_proof_reads_and_writes() {
    let f = fixture(None).await;
    let token = f.bound_token("alice", "todos:read todos:write");
    let me = f.with_proof(Method::GET, "/api/me", &token, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["sub"], "alice");
    let created = f
        .with_proof(
            Method::POST,
            "/api/todos",
            &token,
            Some(json!({"title": "bind the token"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    let read = f
        .with_proof(Method::GET, &format!("/api/todos/{id}"), &token, None)
        .await;
    assert_eq!(read.body["title"], "bind the token");
    let list = f.with_proof(Method::GET, "/api/todos", &token, None).await;
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_dpop_bound_token_is_refused_without_its_proof() {
    let f = fixture(None).await;
    let token = f.bound_token("alice", "todos:read");
    let dpop = format!("DPoP {token}");
    // As a bearer token, even with a proof (RFC 9449 §7.2).
    let proof = f.proof(&Method::GET, "/api/todos", &token, None);
    let bearer = f
        .call(
            Method::GET,
            "/api/todos",
            &format!("Bearer {token}"),
            Some(&proof),
            None,
        )
        .await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
    assert!(
        bearer.challenge.starts_with(
            "Bearer error=\"invalid_token\", error_description=\"the token is DPoP-bound"
        ),
        "{}",
        bearer.challenge
    );
    // No proof; a proof for another route or method; the same proof twice.
    assert_refused(
        &f.call(Method::GET, "/api/todos", &dpop, None, None).await,
        "invalid_dpop_proof",
    );
    let elsewhere = f.proof(&Method::GET, "/api/me", &token, None);
    assert_refused(
        &f.call(Method::GET, "/api/todos", &dpop, Some(&elsewhere), None)
            .await,
        "invalid_dpop_proof",
    );
    let post = f.proof(&Method::POST, "/api/todos", &token, None);
    assert_refused(
        &f.call(Method::GET, "/api/todos", &dpop, Some(&post), None)
            .await,
        "invalid_dpop_proof",
    );
    let once = f.proof(&Method::GET, "/api/todos", &token, None);
    assert_eq!(
        f.call(Method::GET, "/api/todos", &dpop, Some(&once), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_refused(
        &f.call(Method::GET, "/api/todos", &dpop, Some(&once), None)
            .await,
        "invalid_dpop_proof",
    );
    // Signed by another key than the token's.
    let other = ProofSigner::generate(Alg::Es256).expect("key");
    let stolen = other
        .proof(
            "GET",
            &format!("{PUBLIC_URL}/api/todos"),
            Some(&token),
            None,
            now(),
        )
        .expect("proof");
    assert_refused(
        &f.call(Method::GET, "/api/todos", &dpop, Some(&stolen), None)
            .await,
        "invalid_token",
    );
    // The scopes still count: a reader may not write.
    let write = f
        .with_proof(
            Method::POST,
            "/api/todos",
            &token,
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn with_nonces_a_proof_needs_the_apis_nonce() {
    let f = fixture(Some(Duration::from_secs(60))).await;
    let token = f.bound_token("alice", "todos:read");
    let first = f.with_proof(Method::GET, "/api/me", &token, None).await;
    assert_refused(&first, "use_dpop_nonce");
    let nonce = first.nonce.expect("DPoP-Nonce");
    let proof = f.proof(&Method::GET, "/api/me", &token, Some(&nonce));
    let answer = f
        .call(
            Method::GET,
            "/api/me",
            &format!("DPoP {token}"),
            Some(&proof),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}
