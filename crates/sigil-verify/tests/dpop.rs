//! DPoP at the resource server (RFC 9449 §7, §9, §11.1), over real HTTP: axum on 127.0.0.1
//! behind `VerifyLayer` and the `Authenticated` extractor, requests sent with reqwest, proofs
//! made with `sigil_dpop::ProofSigner`, time moved with a `ManualClock`.

mod support;

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sigil_dpop::{Alg, ProofSigner};
use sigil_verify::axum_support::{Authenticated, VerifyLayer};
use sigil_verify::{Clock, DpopConfig, ManualClock, PublicOrigin, Verifier, VerifierConfig};
use std::sync::Arc;
use std::time::Duration;
use support::{claims, jwks, TestKey, AUDIENCE, ISSUER};

const ALGS: &str = "algs=\"ES256 RS256 PS256 EdDSA\"";
const METADATA: &str = "https://api.test/.well-known/oauth-protected-resource";

async fn whoami(Authenticated(claims): Authenticated) -> String {
    claims.sub
}

struct Server {
    origin: String,
    clock: Arc<ManualClock>,
    key: TestKey,
    signer: ProofSigner,
    verifier: Verifier,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    challenge: String,
    nonce: Option<String>,
    body: String,
}

/// Serves `/me` (bearer or DPoP), `/dpop-only` (`require_dpop`), `/scoped` (scope
/// `todos:read`, metadata named) and `/extractor` (no layer) with `dpop` as configured.
async fn serve(configure: impl FnOnce(DpopConfig) -> DpopConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let clock = Arc::new(ManualClock::new());
    let key = TestKey::generate("k1");
    let dpop = configure(DpopConfig::new(PublicOrigin::Url(origin.clone())));
    let verifier = Verifier::builder(VerifierConfig::new(ISSUER, AUDIENCE).with_dpop(dpop))
        .clock(clock.clone())
        .static_jwks(&jwks(&[&key]))
        .expect("verifier");
    let layer = VerifyLayer::new(verifier.clone());
    let app = Router::new()
        .route("/me", get(whoami).post(whoami).route_layer(layer.clone()))
        .route(
            "/dpop-only",
            get(whoami).route_layer(layer.clone().require_dpop()),
        )
        .route(
            "/scoped",
            get(whoami).route_layer(
                layer
                    .require_scopes(["todos:read"])
                    .resource_metadata(METADATA),
            ),
        )
        .route("/extractor", get(whoami))
        .with_state(verifier.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        origin,
        clock,
        key,
        signer: ProofSigner::generate(Alg::Es256).expect("DPoP key"),
        verifier,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn now(&self) -> i64 {
        self.clock.unix_time()
    }

    /// A token bound to the server's DPoP key (`cnf.jkt`).
    fn bound_token(&self) -> String {
        let mut c = claims("todos:read");
        c["cnf"] = json!({"jkt": self.signer.jkt()});
        self.key.token(&c)
    }

    fn bearer_token(&self) -> String {
        self.key.token(&claims("todos:read"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// A proof for `method` and `path` of this server with `token`'s hash.
    fn proof(&self, method: &str, path: &str, token: &str, nonce: Option<&str>) -> String {
        self.signer
            .proof(method, &self.url(path), Some(token), nonce, self.now())
            .expect("proof")
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<String>,
        proofs: &[&str],
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        for proof in proofs {
            request = request.header("dpop", *proof);
        }
        let response = request.send().await.expect("send");
        let text = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii").to_string())
        };
        let (challenge, nonce) = (
            text("www-authenticate").unwrap_or_default(),
            text("dpop-nonce"),
        );
        Answer {
            status: response.status().as_u16(),
            challenge,
            nonce,
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&self, path: &str, authorization: Option<String>, proofs: &[&str]) -> Answer {
        self.send(reqwest::Method::GET, path, authorization, proofs)
            .await
    }

    /// `GET path` with the bound token and a fresh proof for it.
    async fn get_with_proof(&self, path: &str) -> Answer {
        let token = self.bound_token();
        let proof = self.proof("GET", path, &token, None);
        self.get(path, Some(format!("DPoP {token}")), &[&proof])
            .await
    }
}

/// The `DPoP` challenge of a refusal that names `error`, and the body's code.
fn assert_dpop_error(answer: &Answer, status: u16, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let dpop = answer
        .challenge
        .split_once("DPoP ")
        .map(|(_, dpop)| dpop)
        .unwrap_or_else(|| panic!("no DPoP challenge in {:?}", answer.challenge));
    assert!(
        dpop.starts_with(&format!("{ALGS}, error=\"{error}\", error_description=\"")),
        "{}",
        answer.challenge
    );
    let body: Value = serde_json::from_str(&answer.body).expect("JSON body");
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn a_bound_token_with_a_valid_proof_passes() {
    let server = serve(|d| d).await;
    let answer = server.get_with_proof("/me").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "user-1"));
    assert_eq!(answer.nonce, None, "nonces are off");
    // POST, the extractor without a layer, and the DPoP-only route take it too.
    let token = server.bound_token();
    let proof = server.proof("POST", "/me", &token, None);
    let answer = server
        .send(
            reqwest::Method::POST,
            "/me",
            Some(format!("DPoP {token}")),
            &[&proof],
        )
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "user-1"));
    for path in ["/extractor", "/dpop-only"] {
        let answer = server.get_with_proof(path).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "user-1"),
            "{path}"
        );
    }
    // The scheme name is case-insensitive; a query is not part of htu.
    let proof = server.proof("GET", "/me", &token, None);
    let answer = server
        .get("/me?page=2", Some(format!("dpop {token}")), &[&proof])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(server.verifier.dpop_replay_len(), 5);
}

#[tokio::test]
async fn a_proof_for_another_method_or_url_is_refused() {
    let server = serve(|d| d).await;
    let token = server.bound_token();
    let auth = || Some(format!("DPoP {token}"));
    let post = server.proof("POST", "/me", &token, None);
    assert_dpop_error(
        &server.get("/me", auth(), &[&post]).await,
        401,
        "invalid_dpop_proof",
    );
    let other_path = server.proof("GET", "/extractor", &token, None);
    let answer = server.get("/me", auth(), &[&other_path]).await;
    assert_dpop_error(&answer, 401, "invalid_dpop_proof");
    assert!(answer.body.contains("htu"), "{}", answer.body);
    let other_host = server
        .signer
        .proof(
            "GET",
            "http://api.other.test/me",
            Some(&token),
            None,
            server.now(),
        )
        .expect("proof");
    assert_dpop_error(
        &server.get("/me", auth(), &[&other_host]).await,
        401,
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn a_stale_or_future_proof_is_refused() {
    let server = serve(|d| d).await;
    let token = server.bound_token();
    let proof = server.proof("GET", "/me", &token, None);
    server.clock.advance(Duration::from_secs(301));
    let answer = server
        .get("/me", Some(format!("DPoP {token}")), &[&proof])
        .await;
    assert_dpop_error(&answer, 401, "invalid_dpop_proof");
    assert!(answer.body.contains("iat"), "{}", answer.body);
    let future = server
        .signer
        .proof(
            "GET",
            &server.url("/me"),
            Some(&token),
            None,
            server.now() + 60,
        )
        .expect("proof");
    assert_dpop_error(
        &server
            .get("/me", Some(format!("DPoP {token}")), &[&future])
            .await,
        401,
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let server = serve(|d| d).await;
    let token = server.bound_token();
    let proof = server.proof("GET", "/me", &token, None);
    let auth = || Some(format!("DPoP {token}"));
    assert_eq!(server.get("/me", auth(), &[&proof]).await.status, 200);
    let again = server.get("/me", auth(), &[&proof]).await;
    assert_dpop_error(&again, 401, "invalid_dpop_proof");
    assert!(again.body.contains("used before"), "{}", again.body);
    // On another route of the same verifier too (the cache is the verifier's).
    let answer = server.get("/extractor", auth(), &[&proof]).await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn a_proof_for_another_token_or_by_another_key_is_refused() {
    let server = serve(|d| d).await;
    let token = server.bound_token();
    let auth = Some(format!("DPoP {token}"));
    // ath: the hash of another token.
    let other_token = {
        let mut c = claims("todos:read");
        c["cnf"] = json!({"jkt": server.signer.jkt()});
        c["jti"] = json!("j2");
        server.key.token(&c)
    };
    let proof = server.proof("GET", "/me", &other_token, None);
    let answer = server.get("/me", auth.clone(), &[&proof]).await;
    assert_dpop_error(&answer, 401, "invalid_dpop_proof");
    assert!(answer.body.contains("ath"), "{}", answer.body);
    // Signed by a key other than cnf.jkt: the binding fails (RFC 9449 Figure 16).
    let thief = ProofSigner::generate(Alg::Es256).expect("key");
    let proof = thief
        .proof("GET", &server.url("/me"), Some(&token), None, server.now())
        .expect("proof");
    let answer = server.get("/me", auth, &[&proof]).await;
    assert_dpop_error(&answer, 401, "invalid_token");
    assert!(
        answer.challenge.starts_with("Bearer, DPoP "),
        "{}",
        answer.challenge
    );
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_is_refused() {
    let server = serve(|d| d).await;
    let token = server.bound_token();
    let proof = server.proof("GET", "/me", &token, None);
    // Even with a valid proof beside it (RFC 9449 §7.2).
    let answer = server
        .get("/me", Some(format!("Bearer {token}")), &[&proof])
        .await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.challenge.starts_with(
            "Bearer error=\"invalid_token\", error_description=\"the token is DPoP-bound"
        ) && answer.challenge.ends_with(&format!(", DPoP {ALGS}")),
        "the error is on the scheme used: {}",
        answer.challenge
    );
    // A verifier without DPoP refuses it too.
    let plain =
        Verifier::with_static_jwks(VerifierConfig::new(ISSUER, AUDIENCE), &jwks(&[&server.key]))
            .expect("verifier");
    let app = Router::new().route("/me", get(whoami)).with_state(plain);
    let request = axum::http::Request::builder()
        .uri("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(app, request)
        .await
        .expect("call");
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Bearer error=\"invalid_token\""));
}

#[tokio::test]
async fn a_bound_token_without_exactly_one_proof_is_refused() {
    let server = serve(|d| d).await;
    let token = server.bound_token();
    let auth = || Some(format!("DPoP {token}"));
    let missing = server.get("/me", auth(), &[]).await;
    assert_dpop_error(&missing, 401, "invalid_dpop_proof");
    let one = server.proof("GET", "/me", &token, None);
    let two = server.proof("GET", "/me", &token, None);
    let answer = server.get("/me", auth(), &[&one, &two]).await;
    assert_dpop_error(&answer, 401, "invalid_dpop_proof");
    assert!(
        answer.body.contains("exactly one DPoP header"),
        "{}",
        answer.body
    );
    // Neither proof was remembered: each still works alone.
    assert_eq!(server.get("/me", auth(), &[&one]).await.status, 200);
    assert_dpop_error(
        &server.get("/me", auth(), &["not.a.proof"]).await,
        401,
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn an_unbound_token_sent_as_dpop_is_refused() {
    let server = serve(|d| d).await;
    let token = server.bearer_token();
    let proof = server.proof("GET", "/me", &token, None);
    let answer = server
        .get("/me", Some(format!("DPoP {token}")), &[&proof])
        .await;
    assert_dpop_error(&answer, 401, "invalid_token");
    assert!(answer.body.contains("not DPoP-bound"), "{}", answer.body);
    assert!(
        answer.challenge.starts_with("Bearer, DPoP "),
        "{}",
        answer.challenge
    );
}

#[tokio::test]
async fn bearer_tokens_work_unless_the_route_demands_dpop() {
    let server = serve(|d| d).await;
    let bearer = || Some(format!("Bearer {}", server.bearer_token()));
    for path in ["/me", "/extractor", "/scoped"] {
        let answer = server.get(path, bearer(), &[]).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "user-1"),
            "{path}"
        );
    }
    let answer = server.get("/dpop-only", bearer(), &[]).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .challenge
            .starts_with(&format!("DPoP {ALGS}, error=\"invalid_token\", error_description=\"this resource accepts DPoP-bound tokens only")),
        "only the DPoP challenge: {}",
        answer.challenge
    );
    // No token at all on the DPoP-only route: the bare DPoP challenge.
    let answer = server.get("/dpop-only", None, &[]).await;
    assert_eq!(
        (answer.status, answer.challenge.as_str()),
        (401, &*format!("DPoP {ALGS}"))
    );
}

#[tokio::test]
async fn the_challenges_offer_both_schemes_with_scope_and_metadata() {
    let server = serve(|d| d).await;
    let answer = server.get("/me", None, &[]).await;
    // RFC 9449 Figure 17.
    assert_eq!(
        (answer.status, answer.challenge.as_str()),
        (401, &*format!("Bearer, DPoP {ALGS}"))
    );
    let answer = server.get("/scoped", None, &[]).await;
    assert_eq!(
        answer.challenge,
        format!(
            "Bearer scope=\"todos:read\", resource_metadata=\"{METADATA}\", \
             DPoP {ALGS}, scope=\"todos:read\", resource_metadata=\"{METADATA}\""
        )
    );
    // A bad token sent as Bearer: the error on the Bearer challenge (RFC 9449 Figure 18).
    let answer = server
        .get("/scoped", Some("Bearer not.a.token".into()), &[])
        .await;
    assert_eq!(
        answer.challenge,
        format!(
            "Bearer error=\"invalid_token\", error_description=\"the token is malformed\", \
             scope=\"todos:read\", resource_metadata=\"{METADATA}\", \
             DPoP {ALGS}, scope=\"todos:read\", resource_metadata=\"{METADATA}\""
        )
    );
    // The same token as DPoP: the error on the DPoP challenge.
    let answer = server
        .get("/scoped", Some("DPoP not.a.token".into()), &[])
        .await;
    assert_eq!(
        answer.challenge,
        format!(
            "Bearer scope=\"todos:read\", resource_metadata=\"{METADATA}\", \
             DPoP {ALGS}, error=\"invalid_token\", error_description=\"the token is malformed\", \
             scope=\"todos:read\", resource_metadata=\"{METADATA}\""
        )
    );
    // A bound token without the scope: 403 with the DPoP challenge carrying the error.
    let token = {
        let mut c = claims("todos:write");
        c["cnf"] = json!({"jkt": server.signer.jkt()});
        server.key.token(&c)
    };
    let proof = server.proof("GET", "/scoped", &token, None);
    let answer = server
        .get("/scoped", Some(format!("DPoP {token}")), &[&proof])
        .await;
    assert_eq!(answer.status, 403);
    assert!(
        answer.challenge.starts_with(&format!("Bearer scope=\"todos:read\", resource_metadata=\"{METADATA}\", DPoP {ALGS}, error=\"insufficient_scope\"")),
        "{}",
        answer.challenge
    );
    // Only the algorithms configured are offered.
    let es256_only = serve(|mut d| {
        d.algorithms = vec![Alg::Es256];
        d
    })
    .await;
    let answer = es256_only.get("/me", None, &[]).await;
    assert_eq!(answer.challenge, "Bearer, DPoP algs=\"ES256\"");
    let rsa = ProofSigner::generate(Alg::Ps256).expect("key");
    let token = {
        let mut c = claims("todos:read");
        c["cnf"] = json!({"jkt": rsa.jkt()});
        es256_only.key.token(&c)
    };
    let proof = rsa
        .proof(
            "GET",
            &es256_only.url("/me"),
            Some(&token),
            None,
            es256_only.now(),
        )
        .expect("proof");
    let answer = es256_only
        .get("/me", Some(format!("DPoP {token}")), &[&proof])
        .await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .challenge
            .contains("DPoP algs=\"ES256\", error=\"invalid_dpop_proof\""),
        "{}",
        answer.challenge
    );
}

#[tokio::test]
async fn the_nonce_flow() {
    let server = serve(|d| d.with_nonces(Duration::from_secs(60))).await;
    let token = server.bound_token();
    let auth = || Some(format!("DPoP {token}"));
    // No nonce: use_dpop_nonce and the nonce to use (RFC 9449 §9, Figure 20).
    let proof = server.proof("GET", "/me", &token, None);
    let first = server.get("/me", auth(), &[&proof]).await;
    assert_dpop_error(&first, 401, "use_dpop_nonce");
    let nonce = first.nonce.expect("DPoP-Nonce");
    // With it: through, and no new nonce while this one is current.
    let proof = server.proof("GET", "/me", &token, Some(&nonce));
    let answer = server.get("/me", auth(), &[&proof]).await;
    assert_eq!(
        (answer.status, answer.nonce.as_deref()),
        (200, None),
        "{}",
        answer.body
    );
    // A made-up nonce is refused with the real one.
    let proof = server.proof("GET", "/me", &token, Some("made-up"));
    let answer = server.get("/me", auth(), &[&proof]).await;
    assert_dpop_error(&answer, 401, "use_dpop_nonce");
    assert_eq!(answer.nonce.as_deref(), Some(nonce.as_str()));
    // The next window: the old nonce still passes, and the new one comes with the answer.
    server.clock.advance(Duration::from_secs(60));
    let proof = server.proof("GET", "/me", &token, Some(&nonce));
    let answer = server.get("/me", auth(), &[&proof]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let fresh = answer.nonce.expect("a fresh DPoP-Nonce");
    assert_ne!(fresh, nonce);
    // Two windows on, the old one is refused; the fresh one works.
    server.clock.advance(Duration::from_secs(60));
    let proof = server.proof("GET", "/me", &token, Some(&nonce));
    assert_dpop_error(
        &server.get("/me", auth(), &[&proof]).await,
        401,
        "use_dpop_nonce",
    );
    let proof = server.proof("GET", "/me", &token, Some(&fresh));
    assert_eq!(server.get("/me", auth(), &[&proof]).await.status, 200);
    // Bearer tokens need no nonce.
    let bearer = Some(format!("Bearer {}", server.bearer_token()));
    assert_eq!(server.get("/me", bearer, &[]).await.status, 200);
}

#[tokio::test]
async fn a_full_replay_cache_refuses_new_proofs_and_stays_bounded() {
    let server = serve(|mut d| {
        d.replay_capacity = 3;
        d
    })
    .await;
    for _ in 0..3 {
        assert_eq!(server.get_with_proof("/me").await.status, 200);
    }
    let answer = server.get_with_proof("/me").await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(
        answer.body.contains("temporarily_unavailable"),
        "{}",
        answer.body
    );
    assert_eq!(server.verifier.dpop_replay_len(), 3);
    // Once the proofs' window has passed, they make room; the cache never grew.
    server.clock.advance(Duration::from_secs(301));
    assert_eq!(server.get_with_proof("/me").await.status, 200);
    assert!(server.verifier.dpop_replay_len() <= 3);
}
