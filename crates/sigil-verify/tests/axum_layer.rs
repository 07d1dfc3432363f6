//! The axum extractor and tower layer answer per RFC 6750.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use sigil_verify::axum_support::{Authenticated, VerifyLayer};
use sigil_verify::{Verifier, VerifierConfig};
use support::{claims, jwks, TestKey, AUDIENCE, ISSUER};
use tower::ServiceExt;

async fn whoami(Authenticated(claims): Authenticated) -> String {
    claims.sub
}

fn app(verifier: Verifier) -> Router {
    let read = Router::new()
        .route("/read", get(whoami))
        .route_layer(VerifyLayer::new(verifier.clone()).require_scopes(["todos:read"]));
    let write = Router::new()
        .route("/write", get(whoami))
        .route_layer(VerifyLayer::new(verifier.clone()).require_scopes(["todos:write"]));
    Router::new()
        .merge(read)
        .merge(write)
        .route("/extractor", get(whoami))
        .route("/open", get(|| async { "open" }))
        .with_state(verifier)
}

async fn call(
    app: &Router,
    path: &str,
    auth: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder().uri(path);
    if let Some(value) = auth {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("call");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii").to_string());
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).to_string(),
    )
}

#[tokio::test]
async fn rfc6750_responses() {
    let key = TestKey::generate("k1");
    let verifier =
        Verifier::with_static_jwks(VerifierConfig::new(ISSUER, AUDIENCE), &jwks(&[&key]))
            .expect("verifier");
    let app = app(verifier);
    let read_only = format!("Bearer {}", key.token(&claims("todos:read")));

    let (status, _, body) = call(&app, "/read", Some(&read_only)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user-1"));
    let (status, _, body) = call(&app, "/extractor", Some(&read_only)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user-1"));
    let (status, _, _) = call(&app, "/open", None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, challenge, _) = call(&app, "/read", None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"))
    );
    let (status, challenge, _) = call(&app, "/read", Some("Bearer not.a.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge
        .expect("challenge")
        .starts_with("Bearer error=\"invalid_token\", error_description="));
    let (status, challenge, _) = call(&app, "/read", Some("Basic dXNlcjpwdw==")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(challenge
        .expect("challenge")
        .contains("error=\"invalid_request\""));
    let (status, challenge, body) = call(&app, "/write", Some(&read_only)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.expect("challenge");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"todos:write\""),
        "{challenge}"
    );
    assert!(body.contains("insufficient_scope"));
    // The token never appears in an error.
    let token = key.token(&claims("todos:read"));
    let expired = {
        let mut c = claims("todos:read");
        c["exp"] = serde_json::json!(support::now() - 3600);
        key.token(&c)
    };
    let (_, challenge, body) = call(&app, "/read", Some(&format!("Bearer {expired}"))).await;
    assert!(!body.contains(&expired) && !challenge.unwrap_or_default().contains(&expired));
    assert!(!body.contains(&token));
}
