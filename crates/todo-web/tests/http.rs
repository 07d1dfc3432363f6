//! HTTP tests of todo-web's router with `oneshot`: logout-token validation against a local
//! JWKS (served with a discovery document by a tiny fake issuer on 127.0.0.1:0, which also
//! plays the token endpoint and todo-api), CSRF refusal, cookie flags, the sign-in request,
//! sign-out, and refreshing.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
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

/// An RSA key pair: the private half signs, the public half is in the JWKS under `kid`.
struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl Key {
    fn generate(kid: &str) -> Self {
        let rsa = openssl::rsa::Rsa::generate(2048).expect("an RSA key");
        let pem = rsa.private_key_to_pem().expect("PEM");
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        });
        Self {
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_pem(&pem).expect("encoding key"),
            jwk,
        }
    }

    fn sign(&self, typ: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(typ.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// What the fake issuer and todo-api saw and serve.
#[derive(Default)]
struct Fake {
    base: Mutex<String>,
    jwks: Mutex<Vec<Value>>,
    jwks_fetches: AtomicUsize,
    refreshes: AtomicUsize,
    /// The Authorization headers todo-api received.
    bearer_tokens: Mutex<Vec<String>>,
    /// The ID token the code exchange answers with (the test signs it).
    id_token: Mutex<Option<String>>,
    /// The bodies of code exchanges.
    code_exchanges: Mutex<Vec<String>>,
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

/// The token endpoint: refresh token `good-rt` rotates to `rt2` with access token `at2`
/// (slowly, so that concurrent refreshes would overlap); anything else is `invalid_grant`.
async fn token(State(fake): State<Arc<Fake>>, body: String) -> axum::response::Response {
    if body.contains("grant_type=authorization_code") {
        fake.code_exchanges.lock().expect("lock").push(body);
        let id_token = fake.id_token.lock().expect("lock").clone();
        return Json(json!({
            "access_token": "at1", "token_type": "Bearer", "expires_in": 60,
            "refresh_token": "rt1", "id_token": id_token,
        }))
        .into_response();
    }
    fake.refreshes.fetch_add(1, Ordering::SeqCst);
    if body.contains("refresh_token=good-rt") {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Json(json!({
            "access_token": "at2", "token_type": "Bearer", "expires_in": 60,
            "refresh_token": "rt2",
        }))
        .into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant", "error_description": "reused" })),
        )
            .into_response()
    }
}

async fn todos(
    State(fake): State<Arc<Fake>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    fake.bearer_tokens.lock().expect("lock").push(auth);
    Json(json!([{ "id": "t1", "title": "buy <milk>", "done": false, "created_at": 0, "updated_at": 0 }]))
        .into_response()
}

struct Harness {
    fake: Arc<Fake>,
    key: Key,
    state: AppState,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with("").await
    }

    /// With `public_url` ("" for the http default).
    async fn start_with(public_url: &str) -> Self {
        let fake = Arc::new(Fake::default());
        let key = Key::generate("key-1");
        fake.jwks.lock().expect("lock").push(key.jwk.clone());
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .route("/token", post(token))
            .route("/api/todos", get(todos).post(todos))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        *fake.base.lock().expect("lock") = base.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let public_url = if public_url.is_empty() {
            "http://127.0.0.1:8091"
        } else {
            public_url
        };
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
        Self { fake, key, state }
    }

    fn issuer(&self) -> String {
        self.fake.base.lock().expect("lock").clone()
    }

    /// A signed-in session for `sub` with Sigil session `sid`; returns its cookie value.
    fn session(&self, sub: &str, sid: Option<&str>, expires_in: Duration, refresh: &str) -> String {
        self.state.sessions.create(
            User {
                subject: sub.into(),
                name: format!("User {sub}"),
                session_id: sid.map(str::to_string),
            },
            Tokens {
                access_token: Secret::new(format!("at-{sub}")),
                access_token_expires_at: Instant::now() + expires_in,
                access_token_lifetime: Duration::from_secs(60),
                refresh_token: Some(Secret::new(refresh.into())),
                id_token: Secret::new("the.id.token".into()),
            },
        )
    }

    fn csrf(&self, cookie: &str) -> String {
        self.state
            .sessions
            .find(cookie)
            .expect("session")
            .csrf
            .expose()
            .to_string()
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, format!("todo_web_session={cookie}"));
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    async fn post_form(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, format!("todo_web_session={cookie}"));
        }
        self.send(request.body(Body::from(body)).expect("request"))
            .await
    }

    /// Good logout-token claims; tests change one thing each.
    fn claims(&self, sid: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer(), "sub": "alice", "aud": CLIENT_ID,
            "iat": now, "exp": now + 120, "jti": format!("jti-{}", rand_suffix()),
            "events": { EVENT: {} }, "sid": sid,
        })
    }

    async fn backchannel(&self, token: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        self.post_form("/backchannel-logout", None, &[("logout_token", token)])
            .await
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

fn rand_suffix() -> String {
    todo_web::secret::random_token()
}

#[tokio::test]
async fn a_good_logout_token_ends_the_sessions_with_its_sid() {
    let h = Harness::start().await;
    let ended = h.session("alice", Some("sid-1"), Duration::from_secs(60), "rt");
    let other_session = h.session("alice", Some("sid-2"), Duration::from_secs(60), "rt");
    let other_user = h.session("bob", Some("sid-3"), Duration::from_secs(60), "rt");
    let token = h.key.sign("logout+jwt", &h.claims("sid-1"));
    let (status, headers, body) = h.backchannel(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(h.state.sessions.find(&ended).is_none());
    assert!(h.state.sessions.find(&other_session).is_some());
    assert!(h.state.sessions.find(&other_user).is_some());

    // The next page of that browser says the session ended, and clears the cookie.
    let (status, headers, body) = h.get("/", Some(&ended)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Your session has ended"), "{body}");
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
}

#[tokio::test]
async fn a_logout_token_with_only_sub_ends_every_session_of_that_user() {
    let h = Harness::start().await;
    let a1 = h.session("alice", Some("sid-1"), Duration::from_secs(60), "rt");
    let a2 = h.session("alice", None, Duration::from_secs(60), "rt");
    let b = h.session("bob", Some("sid-3"), Duration::from_secs(60), "rt");
    let mut claims = h.claims("unused");
    claims.as_object_mut().expect("object").remove("sid");
    let (status, _, body) = h.backchannel(&h.key.sign("logout+jwt", &claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(h.state.sessions.find(&a1).is_none());
    assert!(h.state.sessions.find(&a2).is_none());
    assert!(h.state.sessions.find(&b).is_some());
}

#[tokio::test]
async fn bad_logout_tokens_are_refused_with_400() {
    let h = Harness::start().await;
    let session = h.session("alice", Some("sid-1"), Duration::from_secs(60), "rt");
    let other_key = Key::generate("key-1");
    let set = |name: &str, value: Value| {
        let mut claims = h.claims("sid-1");
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = h.claims("sid-1");
        claims.as_object_mut().expect("object").remove(name);
        claims
    };
    let mut both_gone = without("sid");
    both_gone.as_object_mut().expect("object").remove("sub");
    let hs256 = jsonwebtoken::encode(
        &Header {
            typ: Some("logout+jwt".into()),
            kid: Some("key-1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &h.claims("sid-1"),
        &EncodingKey::from_secret(b"a guessable secret"),
    )
    .expect("hs256");
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong typ", h.key.sign("JWT", &h.claims("sid-1")), "typ"),
        (
            "an ID token's typ",
            h.key.sign("id_token+jwt", &h.claims("sid-1")),
            "typ",
        ),
        (
            "wrong aud",
            h.key.sign("logout+jwt", &set("aud", json!("someone-else"))),
            "meant for",
        ),
        (
            "wrong iss",
            h.key
                .sign("logout+jwt", &set("iss", json!("http://evil.example"))),
            "issuer",
        ),
        (
            "no iss",
            h.key.sign("logout+jwt", &without("iss")),
            "issuer",
        ),
        (
            "no events",
            h.key.sign("logout+jwt", &without("events")),
            "events",
        ),
        (
            "events without the logout event",
            h.key
                .sign("logout+jwt", &set("events", json!({ "other": {} }))),
            "events",
        ),
        (
            "the event is not an object",
            h.key
                .sign("logout+jwt", &set("events", json!({ EVENT: "yes" }))),
            "events",
        ),
        (
            "a nonce",
            h.key.sign("logout+jwt", &set("nonce", json!("n"))),
            "nonce",
        ),
        ("no jti", h.key.sign("logout+jwt", &without("jti")), "jti"),
        ("no iat", h.key.sign("logout+jwt", &without("iat")), "iat"),
        (
            "neither sub nor sid",
            h.key.sign("logout+jwt", &both_gone),
            "sub and sid",
        ),
        (
            "expired",
            h.key.sign("logout+jwt", &set("exp", json!(now() - 600))),
            "expired",
        ),
        (
            "a bad signature",
            other_key.sign("logout+jwt", &h.claims("sid-1")),
            "signature",
        ),
        ("HS256", hs256, "RS256"),
        ("not a JWT", "not.a.jwt".to_string(), "JWT"),
    ];
    for (what, token, expected) in cases {
        let (status, headers, body) = h.backchannel(&token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{what}");
        let json: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(json["error"], "invalid_request", "{what}: {body}");
        let description = json["error_description"].as_str().expect("description");
        assert!(description.contains(expected), "{what}: {description}");
    }
    let (status, _, body) = h
        .post_form("/backchannel-logout", None, &[("other", "x")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("logout_token"), "{body}");
    assert!(
        h.state.sessions.find(&session).is_some(),
        "no bad token ended it"
    );
}

#[tokio::test]
async fn a_replayed_logout_token_is_refused() {
    let h = Harness::start().await;
    let token = h.key.sign("logout+jwt", &h.claims("sid-1"));
    assert_eq!(h.backchannel(&token).await.0, StatusCode::OK);
    let (status, _, body) = h.backchannel(&token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("used already"), "{body}");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once() {
    let h = Harness::start().await;
    assert_eq!(
        h.backchannel(&h.key.sign("logout+jwt", &h.claims("s")))
            .await
            .0,
        StatusCode::OK
    );
    let fetches = h.fake.jwks_fetches.load(Ordering::SeqCst);
    // Sigil rotates: the new key is published, and signs the next token.
    let rotated = Key::generate("key-2");
    h.fake.jwks.lock().expect("lock").push(rotated.jwk.clone());
    let (status, _, body) = h
        .backchannel(&rotated.sign("logout+jwt", &h.claims("s")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.fake.jwks_fetches.load(Ordering::SeqCst), fetches + 1);
    // A kid nobody publishes: refused, and no refetch storm (the gap holds).
    let stranger = Key::generate("key-3");
    let (status, _, body) = h
        .backchannel(&stranger.sign("logout+jwt", &h.claims("s")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown key"), "{body}");
    assert_eq!(h.fake.jwks_fetches.load(Ordering::SeqCst), fetches + 1);
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let h = Harness::start().await;
    let cookie = h.session("alice", Some("s"), Duration::from_secs(60), "rt");
    let other = h.session("bob", Some("t"), Duration::from_secs(60), "rt");
    let wrong = h.csrf(&other);
    for path in [
        "/todos",
        "/todos/t1/complete",
        "/todos/t1/delete",
        "/logout",
    ] {
        let (status, _, body) = h
            .post_form(path, Some(&cookie), &[("csrf", &wrong), ("title", "x")])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body.contains("This form has expired"), "{body}");
        let (status, _, body) = h.post_form(path, Some(&cookie), &[("title", "x")]).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{path} without csrf: {body}"
        );
    }
    assert!(
        h.fake.bearer_tokens.lock().expect("lock").is_empty(),
        "todo-api not called"
    );
    assert!(h.state.sessions.find(&cookie).is_some(), "not signed out");

    // With the right token, the todo reaches todo-api with the session's access token.
    let csrf = h.csrf(&cookie);
    let (status, headers, _) = h
        .post_form(
            "/todos",
            Some(&cookie),
            &[("csrf", &csrf), ("title", "buy milk")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    assert_eq!(
        *h.fake.bearer_tokens.lock().expect("lock"),
        vec!["Bearer at-alice".to_string()]
    );
    // A form posted without a session goes home.
    let (status, headers, _) = h
        .post_form("/todos", None, &[("csrf", &csrf), ("title", "x")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
}

#[tokio::test]
async fn sign_in_starts_with_pkce_state_and_nonce_under_a_flagged_cookie() {
    let h = Harness::start().await;
    let (status, headers, _) = h.get("/login", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location =
        url::Url::parse(headers[header::LOCATION].to_str().expect("ascii")).expect("url");
    assert_eq!(location.path(), "/authorize");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("response_type").as_deref(), Some("code"));
    assert_eq!(param("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        param("redirect_uri").as_deref(),
        Some("http://127.0.0.1:8091/callback")
    );
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert!(param("code_challenge").is_some_and(|c| c.len() == 43));
    assert!(param("state").is_some_and(|s| s.len() >= 16));
    assert!(param("nonce").is_some_and(|s| s.len() >= 16));
    assert_eq!(
        param("scope").as_deref(),
        Some("openid profile email offline_access todos:read todos:write")
    );
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with("todo_web_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let value = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("value");
    assert_eq!(URL_SAFE_NO_PAD.decode(&value).expect("base64url").len(), 32);

    // A callback with another state is refused; the sign-in cannot be retried with it.
    let (status, _, body) = h.get("/callback?code=c&state=forged", Some(&value)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("does not belong to the sign-in"), "{body}");
    let (status, _, body) = h
        .get(
            &format!("/callback?code=c&state={}", param("state").expect("state")),
            Some(&value),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("expired or was started in another browser"),
        "{body}"
    );
}

#[tokio::test]
async fn the_callback_checks_the_id_token_and_keeps_its_sid_for_back_channel_logout() {
    let h = Harness::start().await;
    let (_, headers, _) = h.get("/login", None).await;
    let location =
        url::Url::parse(headers[header::LOCATION].to_str().expect("ascii")).expect("url");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .expect(name)
    };
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    let pending = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("value");
    let now = now();
    let id_token = |nonce: &str| {
        h.key.sign(
            "JWT",
            &json!({
                "iss": h.issuer(), "sub": "alice", "aud": CLIENT_ID, "iat": now,
                "exp": now + 300, "nonce": nonce, "sid": "sigil-session-1",
                "name": "Alice Example",
            }),
        )
    };

    // An ID token for another sign-in (another nonce) is refused.
    *h.fake.id_token.lock().expect("lock") = Some(id_token("another nonce"));
    let callback = format!(
        "/callback?code=the-code&state={}&iss={}",
        param("state"),
        h.issuer()
    );
    let (status, _, body) = h.get(&callback, Some(&pending)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("could not be verified"), "{body}");

    // A fresh sign-in with the right nonce starts a session under a new cookie value.
    let (_, headers, _) = h.get("/login", None).await;
    let location =
        url::Url::parse(headers[header::LOCATION].to_str().expect("ascii")).expect("url");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .expect(name)
    };
    let pending = headers[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("value");
    *h.fake.id_token.lock().expect("lock") = Some(id_token(&param("nonce")));
    let callback = format!("/callback?code=the-code&state={}", param("state"));
    let (status, headers, body) = h.get(&callback, Some(&pending)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[header::LOCATION], "/");
    let session_cookie = headers[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("value");
    assert_ne!(session_cookie, pending, "a new value after sign-in");
    let exchange = h
        .fake
        .code_exchanges
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("exchange");
    assert!(exchange.contains("code_verifier="), "{exchange}");
    assert!(exchange.contains("code=the-code"), "{exchange}");
    let session = h.state.sessions.find(&session_cookie).expect("a session");
    assert_eq!(session.user.subject, "alice");
    assert_eq!(session.user.name, "Alice Example");
    assert_eq!(session.user.session_id.as_deref(), Some("sigil-session-1"));
    let (_, _, body) = h.get("/", Some(&session_cookie)).await;
    assert!(body.contains("Alice Example"), "{body}");

    // Sigil's logout token for that sid ends it.
    let token = h.key.sign("logout+jwt", &h.claims("sigil-session-1"));
    assert_eq!(h.backchannel(&token).await.0, StatusCode::OK);
    assert!(h.state.sessions.find(&session_cookie).is_none());
}

#[tokio::test]
async fn under_https_the_cookie_is_secure_and_host_prefixed() {
    let h = Harness::start_with("https://todo.example").await;
    let (_, headers, _) = h.get("/login", None).await;
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with("__Host-todo_web_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_no_store() {
    let h = Harness::start().await;
    let (status, headers, body) = h.get("/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Sign in with Sigil"), "{body}");
    assert!(!body.contains("<script"), "{body}");
    let csp = headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    let cookie = h.session("alice", Some("s"), Duration::from_secs(60), "rt");
    let (status, headers, body) = h.get("/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(body.contains("User alice"), "{body}");
    assert!(
        body.contains("buy &#60;milk&#62;") || body.contains("buy &lt;milk&gt;"),
        "escaped: {body}"
    );
    assert!(
        body.contains(&format!("name=\"csrf\" value=\"{}\"", h.csrf(&cookie))),
        "{body}"
    );

    let (status, _, body) = h.get("/no/such/page", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Page not found"), "{body}");
}

#[tokio::test]
async fn sign_out_ends_the_session_and_goes_to_the_end_session_endpoint() {
    let h = Harness::start().await;
    let cookie = h.session("alice", Some("s"), Duration::from_secs(60), "rt");
    let csrf = h.csrf(&cookie);
    let (status, headers, _) = h
        .post_form("/logout", Some(&cookie), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location =
        url::Url::parse(headers[header::LOCATION].to_str().expect("ascii")).expect("url");
    assert_eq!(
        location.as_str().split('?').next(),
        Some(format!("{}/logout", h.issuer()).as_str())
    );
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("id_token_hint").as_deref(), Some("the.id.token"));
    assert_eq!(
        param("post_logout_redirect_uri").as_deref(),
        Some("http://127.0.0.1:8091/")
    );
    let state = param("state").expect("state");
    assert!(h.state.sessions.find(&cookie).is_none());
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .contains("Max-Age=0"));
    // Back from Sigil: a greeting for that state.
    let (_, _, body) = h.get(&format!("/?state={state}"), None).await;
    assert!(
        body.contains("You have signed out of Todo and of Sigil"),
        "{body}"
    );
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_once_for_concurrent_requests() {
    let h = Harness::start().await;
    let cookie = h.session("alice", Some("s"), Duration::ZERO, "good-rt");
    let (first, second) = tokio::join!(h.get("/", Some(&cookie)), h.get("/", Some(&cookie)));
    assert_eq!(first.0, StatusCode::OK, "{}", first.2);
    assert_eq!(second.0, StatusCode::OK, "{}", second.2);
    assert_eq!(
        h.fake.refreshes.load(Ordering::SeqCst),
        1,
        "one refresh for both"
    );
    assert_eq!(
        *h.fake.bearer_tokens.lock().expect("lock"),
        vec!["Bearer at2".to_string(), "Bearer at2".to_string()]
    );
    let session = h.state.sessions.find(&cookie).expect("session");
    let tokens = session.tokens.lock().await;
    assert_eq!(
        tokens.refresh_token.as_ref().map(Secret::expose),
        Some("rt2"),
        "the newest kept"
    );
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session_with_a_clear_message() {
    let h = Harness::start().await;
    let cookie = h.session("alice", Some("s"), Duration::ZERO, "revoked-rt");
    let (status, headers, _) = h.get("/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/?notice=ended");
    assert!(h.state.sessions.find(&cookie).is_none());
    let (_, _, body) = h.get("/?notice=ended", Some(&cookie)).await;
    assert!(body.contains("expired or was revoked"), "{body}");
    assert!(body.contains("Sign in with Sigil"), "{body}");
}

#[tokio::test]
async fn an_unreachable_todo_api_gives_a_readable_page() {
    let mut h = Harness::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    h.state.todo_api =
        TodoApi::new(format!("http://127.0.0.1:{port}").parse().expect("url")).expect("api");
    let cookie = h.session("alice", Some("s"), Duration::from_secs(60), "rt");
    let (status, _, body) = h.get("/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        body.contains("todo-api cannot be reached right now"),
        "{body}"
    );
}
