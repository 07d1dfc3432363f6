//! The TODO API in-process: CRUD, per-user isolation, scopes, problem details.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::BodyExt;
use josekit::jwk::KeyPair;
use josekit::jws::{JwsSigner, RS256};
use serde_json::{json, Value};
use sigil_verify::{Verifier, VerifierConfig};
use todo_api::store::TodoStore;
use todo_api::{app, AppState};
use tower::ServiceExt;

const ISSUER: &str = "https://sigil.test";
const AUDIENCE: &str = "http://127.0.0.1:8090";

struct Fixture {
    router: axum::Router,
    private_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let pair = RS256.generate_key_pair(2048).expect("keygen");
    let mut jwk: Value = serde_json::from_str(&pair.to_jwk_public_key().to_string()).expect("jwk");
    jwk["kid"] = "k1".into();
    let verifier = Verifier::with_static_jwks(
        VerifierConfig::new(ISSUER, AUDIENCE),
        json!({ "keys": [jwk] }).to_string().as_bytes(),
    )
    .expect("verifier");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TodoStore::open(&format!("sqlite://{}/todo.db", dir.path().display()))
        .await
        .expect("store");
    Fixture {
        router: app(AppState { verifier, store }),
        private_pem: pair.to_pem_private_key(),
        _dir: dir,
    }
}

impl Fixture {
    fn token(&self, sub: &str, scope: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"});
        let claims = json!({"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": now + 600, "iat": now, "scope": scope, "client_id": "c"});
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

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, String, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or("").to_string()))
            .expect("request");
        let response = self.router.clone().oneshot(request).await.expect("call");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            content_type,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn crud_for_one_user() {
    let f = fixture().await;
    let alice = f.token("alice", "todos:read todos:write");
    let (status, _, created) = f
        .call(
            Method::POST,
            "/api/todos",
            Some(&alice),
            Some(r#"{"title":"  buy milk  "}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["title"], "buy milk");
    assert_eq!(created["done"], false);
    let id = created["id"].as_str().expect("id").to_string();
    let (status, _, list) = f.call(Method::GET, "/api/todos", Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let path = format!("/api/todos/{id}");
    let (status, _, updated) = f
        .call(Method::PATCH, &path, Some(&alice), Some(r#"{"done":true}"#))
        .await;
    assert_eq!(
        (status, updated["done"].clone(), updated["title"].clone()),
        (StatusCode::OK, json!(true), json!("buy milk"))
    );
    let (status, _, read) = f.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(
        (status, read["done"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (status, _, _) = f.call(Method::DELETE, &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, content_type, problem) = f.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 404);
}

#[tokio::test]
async fn users_see_and_change_only_their_own() {
    let f = fixture().await;
    let alice = f.token("alice", "todos:read todos:write");
    let bob = f.token("bob", "todos:read todos:write");
    let (_, _, created) = f
        .call(
            Method::POST,
            "/api/todos",
            Some(&alice),
            Some(r#"{"title":"secret"}"#),
        )
        .await;
    let path = format!("/api/todos/{}", created["id"].as_str().expect("id"));
    let (_, _, list) = f.call(Method::GET, "/api/todos", Some(&bob), None).await;
    assert_eq!(list, json!([]));
    for method in [Method::GET, Method::DELETE] {
        let (status, _, problem) = f.call(method, &path, Some(&bob), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["detail"], "no such todo", "leaks nothing");
    }
    let (status, _, _) = f
        .call(
            Method::PATCH,
            &path,
            Some(&bob),
            Some(r#"{"title":"mine now"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, still) = f.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(still["title"], "secret");
}

#[tokio::test]
async fn scopes_and_authentication() {
    let f = fixture().await;
    let reader = f.token("alice", "todos:read");
    let (status, _, _) = f.call(Method::GET, "/api/todos", Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = f
        .call(
            Method::POST,
            "/api/todos",
            Some(&reader),
            Some(r#"{"title":"x"}"#),
        )
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::FORBIDDEN, json!("insufficient_scope"))
    );
    let nothing = f.token("alice", "openid");
    let (status, _, _) = f
        .call(Method::GET, "/api/todos", Some(&nothing), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = f.call(Method::GET, "/api/todos", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = f
        .call(Method::GET, "/api/todos", Some("garbage"), None)
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_token"))
    );
    let (status, _, _) = f.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "the unprotected route");
    // `/api/me` needs a valid token, and no scope.
    let (status, _, body) = f.call(Method::GET, "/api/me", Some(&nothing), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["sub"].clone(), body["scope"].clone()),
        (json!("alice"), json!("openid"))
    );
    let (status, _, _) = f.call(Method::GET, "/api/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = f.call(Method::GET, "/api/me", Some("garbage"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validation_errors_are_problem_details() {
    let f = fixture().await;
    let alice = f.token("alice", "todos:read todos:write");
    for (body, status) in [
        (r#"{"title":"   "}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"done":true}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            r#"{"title":"x","owner":"bob"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (r#"{"title": 5}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"title":"#, StatusCode::BAD_REQUEST),
    ] {
        let (got, content_type, problem) = f
            .call(Method::POST, "/api/todos", Some(&alice), Some(body))
            .await;
        assert_eq!(got, status, "{body}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
    let long = format!(r#"{{"title":"{}"}}"#, "a".repeat(501));
    let (status, _, problem) = f
        .call(Method::POST, "/api/todos", Some(&alice), Some(&long))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "title");
    // Wrong content type.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/todos")
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .body(Body::from("title=x"))
        .expect("request");
    let response = f.router.clone().oneshot(request).await.expect("call");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn cors_for_configured_origins_only() {
    let f = fixture().await;
    let router = todo_api::with_cors(f.router.clone(), &["http://localhost:5173".to_string()])
        .expect("cors");
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/todos")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .expect("request")
    };
    let ok = router
        .clone()
        .oneshot(preflight("http://localhost:5173"))
        .await
        .expect("call");
    assert_eq!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:5173"
    );
    let other = router
        .oneshot(preflight("https://evil.example.com"))
        .await
        .expect("call");
    assert!(other
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    assert!(todo_api::with_cors(f.router.clone(), &["bad\norigin".to_string()]).is_err());
}
