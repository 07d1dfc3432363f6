//! Attacks on todo-web's back-channel logout endpoint and forms, with `oneshot` against a
//! local fake issuer: `alg: none`, HS256 keyed with the public key, a `sid` of another
//! user, a token without `exp` (replayable forever once its `iat` is old), oversized
//! bodies, a flood of made-up key ids, CSRF on sign-out and reflected notices.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use todo_web::oidc::Provider;
use todo_web::secret::Secret;
use todo_web::session::{SessionStore, Tokens, User};
use todo_web::todo_api::TodoApi;
use todo_web::{app, AppState};
use tower::ServiceExt;

const CLIENT_ID: &str = "todo-web-client";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Default)]
struct Fake {
    base: Mutex<String>,
    jwks: Mutex<Vec<Value>>,
    jwks_fetches: AtomicUsize,
}

async fn discovery(State(fake): State<Arc<Fake>>) -> Json<Value> {
    let base = fake.base.lock().expect("lock").clone();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks.json"),
        "end_session_endpoint": format!("{base}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(fake): State<Arc<Fake>>) -> Json<Value> {
    fake.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "keys": fake.jwks.lock().expect("lock").clone() }))
}

struct Harness {
    fake: Arc<Fake>,
    encoding: EncodingKey,
    public_pem: Vec<u8>,
    modulus: Vec<u8>,
    state: AppState,
}

impl Harness {
    async fn start() -> Self {
        let fake = Arc::new(Fake::default());
        let rsa = openssl::rsa::Rsa::generate(2048).expect("an RSA key");
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "key-1",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        });
        fake.jwks.lock().expect("lock").push(jwk);
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        *fake.base.lock().expect("lock") = base.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let public_url = "http://127.0.0.1:8091";
        let provider = Provider::discover(&base, CLIENT_ID, "secret", public_url)
            .await
            .expect("discovery");
        let todo_api = TodoApi::new(base.parse().expect("url")).expect("client");
        let state = AppState::new(
            provider,
            todo_api,
            SessionStore::new(Duration::from_secs(600)),
            public_url,
        )
        .expect("state");
        Self {
            fake,
            encoding: EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().expect("pem"))
                .expect("key"),
            public_pem: rsa.public_key_to_pem().expect("public pem"),
            modulus: rsa.n().to_vec(),
            state,
        }
    }

    fn issuer(&self) -> String {
        self.fake.base.lock().expect("lock").clone()
    }

    fn session(&self, sub: &str, sid: &str) -> String {
        self.state.sessions.create(
            User {
                subject: sub.into(),
                name: sub.into(),
                session_id: Some(sid.into()),
            },
            Tokens {
                access_token: Secret::new("at".into()),
                access_token_expires_at: Instant::now() + Duration::from_secs(60),
                access_token_lifetime: Duration::from_secs(60),
                refresh_token: None,
                id_token: Secret::new("the.id.token".into()),
            },
        )
    }

    fn claims(&self, sub: &str, sid: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer(), "sub": sub, "aud": CLIENT_ID,
            "iat": now, "exp": now + 120, "jti": todo_web::secret::random_token(),
            "events": { EVENT: {} }, "sid": sid,
        })
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("logout+jwt".into());
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn backchannel(&self, token: &str) -> (StatusCode, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", token)
            .finish();
        self.send(
            Request::post("/backchannel-logout")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn unsigned_and_hmac_tokens_keyed_with_the_public_key_are_refused() {
    let h = Harness::start().await;
    let session = h.session("alice", "sid-1");
    let claims = h.claims("alice", "sid-1");
    let mut forged = Vec::new();
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "typ": "logout+jwt", "kid": "key-1" });
        forged.push(format!("{}.{}.", b64(&header), b64(&claims)));
    }
    for secret in [h.public_pem.clone(), h.modulus.clone()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let header = Header {
                typ: Some("logout+jwt".into()),
                kid: Some("key-1".into()),
                ..Header::new(alg)
            };
            forged.push(
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
                    .expect("hmac"),
            );
        }
    }
    // A real RS256 signature with its header swapped to claim another algorithm.
    let real = h.sign("key-1", &claims);
    let signature = real.rsplit('.').next().expect("signature");
    let header = json!({ "alg": "PS256", "typ": "logout+jwt", "kid": "key-1" });
    forged.push(format!("{}.{}.{signature}", b64(&header), b64(&claims)));
    // A real signature over other claims.
    let other = h.sign("key-1", &h.claims("alice", "sid-2"));
    let other_signature = other.rsplit('.').next().expect("signature");
    let mut parts = real.split('.');
    let (head, body) = (parts.next().expect("head"), parts.next().expect("body"));
    forged.push(format!("{head}.{body}.{other_signature}"));
    for token in forged {
        let (status, body) = h.backchannel(&token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{token}: {body}");
    }
    assert!(
        h.state.sessions.find(&session).is_some(),
        "no forgery ended it"
    );
}

#[tokio::test]
async fn a_sid_of_another_user_ends_nobodys_session() {
    let h = Harness::start().await;
    let alice = h.session("alice", "sid-a");
    let bob = h.session("bob", "sid-b");
    // Signed by the issuer, but naming Alice with Bob's session.
    let (status, body) = h
        .backchannel(&h.sign("key-1", &h.claims("alice", "sid-b")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(h.state.sessions.find(&alice).is_some());
    assert!(h.state.sessions.find(&bob).is_some());
}

#[tokio::test]
async fn a_token_without_exp_is_refused_so_it_cannot_be_replayed_later() {
    let h = Harness::start().await;
    // An old token without `exp`: were it taken, its jti would be forgotten at once (it
    // is remembered until `iat` + 10 minutes), so the same token would work again and
    // again.
    let mut claims = h.claims("alice", "sid-1");
    claims.as_object_mut().expect("object").remove("exp");
    claims["iat"] = json!(now() - 3600);
    let token = h.sign("key-1", &claims);
    for _ in 0..2 {
        let session = h.session("alice", "sid-1");
        let (status, body) = h.backchannel(&token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("exp"), "{body}");
        assert!(h.state.sessions.find(&session).is_some());
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_ends_nothing() {
    let h = Harness::start().await;
    let session = h.session("alice", "sid-1");
    let token = h.sign("key-1", &h.claims("alice", "sid-1"));
    let padding = "a".repeat(3 * 1024 * 1024);
    let body = format!("padding={padding}&logout_token={token}");
    let started = Instant::now();
    let (status, _) = h
        .send(
            Request::post("/backchannel-logout")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(h.state.sessions.find(&session).is_some());
    // A huge token alone is refused too, without a key fetch storm.
    let fetches = h.fake.jwks_fetches.load(Ordering::SeqCst);
    let (status, _) = h.backchannel(&"x".repeat(1024 * 1024)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(h.fake.jwks_fetches.load(Ordering::SeqCst), fetches);
}

#[tokio::test]
async fn a_flood_of_made_up_key_ids_fetches_the_keys_at_most_twice() {
    let h = Harness::start().await;
    let session = h.session("alice", "sid-1");
    // Discovery may have fetched the keys already.
    let before = h.fake.jwks_fetches.load(Ordering::SeqCst);
    for n in 0..50 {
        let token = h.sign(&format!("made-up-{n}"), &h.claims("alice", "sid-1"));
        let (status, _) = h.backchannel(&token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // The first load, then at most one refetch per gap.
    let fetches = h.fake.jwks_fetches.load(Ordering::SeqCst) - before;
    assert!(fetches <= 2, "{fetches} JWKS fetches for 50 forged tokens");
    assert!(h.state.sessions.find(&session).is_some());
    // The real key still works afterwards.
    let (status, body) = h
        .backchannel(&h.sign("key-1", &h.claims("alice", "sid-1")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(h.state.sessions.find(&session).is_none());
}

#[tokio::test]
async fn sign_out_needs_the_csrf_token_and_notices_are_not_reflected() {
    let h = Harness::start().await;
    let session = h.session("alice", "sid-1");
    for csrf in ["", "wrong"] {
        let (status, _) = h
            .send(
                Request::post("/logout")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, format!("todo_web_session={session}"))
                    .body(Body::from(format!("csrf={csrf}")))
                    .expect("request"),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(h.state.sessions.find(&session).is_some());
    }
    let (status, body) = h
        .send(
            Request::get(
                "/?notice=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=https%3A%2F%2Fevil.example",
            )
            .body(Body::empty())
            .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("<script>alert(1)"), "{body}");
    assert!(!body.contains("evil.example"), "{body}");
    // A callback without this browser's sign-in goes nowhere.
    let (status, body) = h
        .send(
            Request::get("/callback?code=c&state=s&iss=https%3A%2F%2Fevil.example")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
