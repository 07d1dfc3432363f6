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
use std::time::Duration;
use todo_api::resource::protected_resource_metadata;
use todo_api::store::TodoStore;
use todo_api::{app, step_up_requirement, AppState};
use tower::ServiceExt;

const ISSUER: &str = "https://sigil.test";
const AUDIENCE: &str = "http://127.0.0.1:8090";
/// The audience is the resource URI, whose metadata is at the bare well-known path.
const METADATA_URL: &str = "http://127.0.0.1:8090/.well-known/oauth-protected-resource";

/// The `DPoP` challenge that follows the `Bearer` one of todo-api's refusals, with the same
/// `scope` and metadata (RFC 9449 §7.1): `attributes` is what follows `algs`.
fn and_dpop(bearer: &str, attributes: &str) -> String {
    format!("{bearer}, DPoP algs=\"ES256 RS256 PS256 EdDSA\"{attributes}")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

struct Fixture {
    router: axum::Router,
    private_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_for(AUDIENCE).await
}

/// The API with `resource` as its resource identifier (the audience stays [`AUDIENCE`]).
async fn fixture_for(resource: &str) -> Fixture {
    let pair = RS256.generate_key_pair(2048).expect("keygen");
    let mut jwk: Value = serde_json::from_str(&pair.to_jwk_public_key().to_string()).expect("jwk");
    jwk["kid"] = "k1".into();
    // As todo-api's main does: DPoP accepted, proofs for the resource URI's origin.
    let dpop = todo_api::resource::dpop_config(AUDIENCE, None, 1_000).expect("DPoP");
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
            metadata: protected_resource_metadata(resource, ISSUER).expect("metadata"),
        }),
        private_pem: pair.to_pem_private_key(),
        _dir: dir,
    }
}

impl Fixture {
    fn token(&self, sub: &str, scope: &str) -> String {
        let now = now();
        self.sign(&json!({"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": now + 600, "iat": now, "scope": scope, "client_id": "c"}))
    }

    /// A user's token as Sigil issues it: with `acr`, `amr` and `auth_time`.
    fn user_token(&self, sub: &str, scope: &str, acr: &str, auth_time: i64) -> String {
        let now = now();
        let amr = if acr == "urn:sigil:acr:1fa" {
            json!(["pwd"])
        } else {
            json!(["pwd", "otp", "mfa"])
        };
        self.sign(&json!({"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": now + 600, "iat": now, "scope": scope, "client_id": "c", "acr": acr, "amr": amr, "auth_time": auth_time}))
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

    async fn call_with_challenge(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Option<String>, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let request = request.body(Body::empty()).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("call");
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("ascii").to_string());
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            challenge,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
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

/// Creates `count` todos for the token's user; returns how many the user now has.
async fn create_todos(f: &Fixture, token: &str, count: usize) -> usize {
    for i in 0..count {
        let (status, _, _) = f
            .call(
                Method::POST,
                "/api/todos",
                Some(token),
                Some(&format!(r#"{{"title":"todo {i}"}}"#)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    todo_count(f, token).await
}

async fn todo_count(f: &Fixture, token: &str) -> usize {
    let (status, _, list) = f.call(Method::GET, "/api/todos", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    list.as_array().map(Vec::len).expect("a list")
}

const STEP_UP_2FA: &str = "Bearer error=\"insufficient_user_authentication\", \
     error_description=\"a stronger authentication is required\", \
     scope=\"todos:write\", acr_values=\"urn:sigil:acr:2fa phr\", max_age=\"300\", \
     resource_metadata=\"http://127.0.0.1:8090/.well-known/oauth-protected-resource\", \
     DPoP algs=\"ES256 RS256 PS256 EdDSA\", \
     scope=\"todos:write\", acr_values=\"urn:sigil:acr:2fa phr\", max_age=\"300\", \
     resource_metadata=\"http://127.0.0.1:8090/.well-known/oauth-protected-resource\"";

#[tokio::test]
async fn deleting_all_todos_needs_a_second_factor() {
    let f = fixture().await;
    let one_factor = f.user_token(
        "alice",
        "todos:read todos:write",
        "urn:sigil:acr:1fa",
        now(),
    );
    assert_eq!(create_todos(&f, &one_factor, 3).await, 3);
    let (status, challenge, body) = f
        .call_with_challenge(Method::DELETE, "/api/todos", Some(&one_factor))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(STEP_UP_2FA));
    assert_eq!(body["error"], "insufficient_user_authentication");
    assert_eq!(todo_count(&f, &one_factor).await, 3, "untouched");
    // A client-credentials-like token (no acr, no auth_time) is refused the same way.
    let no_user = f.token("alice", "todos:read todos:write");
    let (status, challenge, _) = f
        .call_with_challenge(Method::DELETE, "/api/todos", Some(&no_user))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge
        .expect("challenge")
        .contains("error=\"insufficient_user_authentication\""));
    assert_eq!(todo_count(&f, &one_factor).await, 3, "untouched");
}

#[tokio::test]
async fn a_fresh_second_factor_deletes_only_the_callers_todos() {
    let f = fixture().await;
    let alice = f.user_token(
        "alice",
        "todos:read todos:write",
        "urn:sigil:acr:2fa",
        now() - 30,
    );
    let bob = f.user_token("bob", "todos:read todos:write", "urn:sigil:acr:1fa", now());
    assert_eq!(create_todos(&f, &alice, 2).await, 2);
    assert_eq!(create_todos(&f, &bob, 1).await, 1);
    let (status, challenge, _) = f
        .call_with_challenge(Method::DELETE, "/api/todos", Some(&alice))
        .await;
    assert_eq!((status, challenge), (StatusCode::NO_CONTENT, None));
    assert_eq!(todo_count(&f, &alice).await, 0);
    assert_eq!(todo_count(&f, &bob).await, 1, "another user's todos stay");
    // Nothing left to delete is still a success; a passkey (phr) is a second factor too.
    let passkey = f.user_token("alice", "todos:write", "phr", now());
    let (status, _, _) = f
        .call_with_challenge(Method::DELETE, "/api/todos", Some(&passkey))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_old_second_factor_gets_a_max_age_challenge() {
    let f = fixture().await;
    let old = f.user_token(
        "alice",
        "todos:read todos:write",
        "urn:sigil:acr:2fa",
        now() - 600,
    );
    assert_eq!(create_todos(&f, &old, 2).await, 2);
    let (status, challenge, _) = f
        .call_with_challenge(Method::DELETE, "/api/todos", Some(&old))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"a more recent authentication is required\", \
             scope=\"todos:write\", acr_values=\"urn:sigil:acr:2fa phr\", max_age=\"300\", \
             resource_metadata=\"http://127.0.0.1:8090/.well-known/oauth-protected-resource\", \
             DPoP algs=\"ES256 RS256 PS256 EdDSA\", \
             scope=\"todos:write\", acr_values=\"urn:sigil:acr:2fa phr\", max_age=\"300\", \
             resource_metadata=\"http://127.0.0.1:8090/.well-known/oauth-protected-resource\""
        )
    );
    assert_eq!(todo_count(&f, &old).await, 2, "untouched");
}

#[tokio::test]
async fn deleting_all_todos_needs_the_write_scope_first() {
    let f = fixture().await;
    let reader = f.user_token("alice", "todos:read", "urn:sigil:acr:2fa", now());
    let (status, challenge, body) = f
        .call_with_challenge(Method::DELETE, "/api/todos", Some(&reader))
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::FORBIDDEN, json!("insufficient_scope"))
    );
    assert!(challenge
        .expect("challenge")
        .contains("scope=\"todos:write\""));
    let (status, challenge, _) = f
        .call_with_challenge(Method::DELETE, "/api/todos", None)
        .await;
    assert_eq!(
        (status, challenge.as_deref()),
        (
            StatusCode::UNAUTHORIZED,
            Some(
                and_dpop(
                    &format!("Bearer scope=\"todos:write\", resource_metadata=\"{METADATA_URL}\""),
                    &format!(", scope=\"todos:write\", resource_metadata=\"{METADATA_URL}\"")
                )
                .as_str()
            )
        )
    );
}

/// GET `path` with `origin`: status and the headers that matter here, and the body as JSON.
async fn get_metadata(router: &axum::Router, path: &str) -> (StatusCode, [String; 3], Value) {
    let request = Request::builder()
        .uri(path)
        .header(header::ORIGIN, "https://inspector.example")
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("call");
    let header = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default()
    };
    let headers = [
        header(header::CONTENT_TYPE),
        header(header::CACHE_CONTROL),
        header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
    ];
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_metadata_names_sigil_and_the_scopes() {
    let f = fixture().await;
    let (status, headers, document) =
        get_metadata(&f.router, "/.well-known/oauth-protected-resource").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers,
        ["application/json", "public, max-age=3600", "*"].map(String::from)
    );
    assert_eq!(
        document,
        json!({
            "resource": AUDIENCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["todos:read", "todos:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Sigil TODO API",
            "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        })
    );
    // Readable from any origin even with CORS configured for the API's own front end.
    let with_cors = todo_api::with_cors(f.router.clone(), &["http://localhost:5173".to_string()])
        .expect("cors");
    let (status, headers, same) =
        get_metadata(&with_cors, "/.well-known/oauth-protected-resource").await;
    assert_eq!((status, headers[2].as_str()), (StatusCode::OK, "*"));
    assert_eq!(same, document);
    // Not a resource with a path: nothing at the path-inserted form.
    let (status, _, _) = get_metadata(&f.router, "/.well-known/oauth-protected-resource/api").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_resource_uri_with_a_path_is_served_at_both_well_known_paths() {
    let resource = "https://todo.example/api";
    let f = fixture_for(resource).await;
    let (status, _, inserted) =
        get_metadata(&f.router, "/.well-known/oauth-protected-resource/api").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inserted["resource"], resource);
    let (status, _, bare) = get_metadata(&f.router, "/.well-known/oauth-protected-resource").await;
    assert_eq!((status, bare), (StatusCode::OK, inserted));
    let (_, challenge, _) = f.call_with_challenge(Method::GET, "/api/me", None).await;
    assert_eq!(
        challenge.as_deref(),
        Some(
            "Bearer resource_metadata=\"https://todo.example/.well-known/oauth-protected-resource/api\", \
             DPoP algs=\"ES256 RS256 PS256 EdDSA\", \
             resource_metadata=\"https://todo.example/.well-known/oauth-protected-resource/api\""
        )
    );
}

#[tokio::test]
async fn challenges_name_the_metadata_and_the_scope_of_the_method() {
    let f = fixture().await;
    let named = |scope: &str| {
        let attributes = format!("scope=\"{scope}\", resource_metadata=\"{METADATA_URL}\"");
        and_dpop(&format!("Bearer {attributes}"), &format!(", {attributes}"))
    };
    for (method, path, scope) in [
        (Method::GET, "/api/todos", "todos:read"),
        (Method::POST, "/api/todos", "todos:write"),
        (Method::GET, "/api/todos/x", "todos:read"),
        (Method::PATCH, "/api/todos/x", "todos:write"),
        (Method::DELETE, "/api/todos/x", "todos:write"),
    ] {
        let (status, challenge, _) = f.call_with_challenge(method.clone(), path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(challenge, Some(named(scope)), "{method} {path}");
    }
    // `/api/me` needs no scope: the challenge names only the metadata.
    let (status, challenge, _) = f.call_with_challenge(Method::GET, "/api/me", None).await;
    assert_eq!(
        (status, challenge),
        (
            StatusCode::UNAUTHORIZED,
            Some(and_dpop(
                &format!("Bearer resource_metadata=\"{METADATA_URL}\""),
                &format!(", resource_metadata=\"{METADATA_URL}\"")
            ))
        )
    );
    // A bad token, and too few scopes.
    let (status, challenge, _) = f
        .call_with_challenge(Method::GET, "/api/todos", Some("garbage"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = challenge.expect("challenge");
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\"")
            && challenge.ends_with(&format!(
                "scope=\"todos:read\", resource_metadata=\"{METADATA_URL}\""
            )),
        "{challenge}"
    );
    let reader = f.token("alice", "todos:read");
    let (status, challenge, body) = f
        .call_with_challenge(Method::PATCH, "/api/todos/x", Some(&reader))
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::FORBIDDEN, json!("insufficient_scope"))
    );
    let challenge = challenge.expect("challenge");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\"")
            && challenge.ends_with(&format!(
                "scope=\"todos:write\", resource_metadata=\"{METADATA_URL}\""
            )),
        "{challenge}"
    );
}
