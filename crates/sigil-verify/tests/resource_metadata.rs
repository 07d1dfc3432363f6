//! RFC 9728 over real HTTP: the metadata document at both well-known paths, and challenges
//! that name it (with the route's scopes on a 401).

mod support;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sigil_verify::axum_support::{
    www_authenticate, Authenticated, ResourceMetadataLayer, VerifyLayer,
};
use sigil_verify::{ProtectedResourceMetadata, Verifier, VerifierConfig};
use support::{claims, jwks, TestKey, AUDIENCE, ISSUER};

const RESOURCE: &str = "https://api.test/mcp";
const METADATA_URL: &str = "https://api.test/.well-known/oauth-protected-resource/mcp";

fn metadata() -> ProtectedResourceMetadata {
    ProtectedResourceMetadata::builder(RESOURCE)
        .authorization_servers([ISSUER])
        .scopes_supported(["todos:read", "todos:write"])
        .resource_name("Test API")
        .build()
        .expect("metadata")
}

async fn whoami(Authenticated(claims): Authenticated) -> String {
    claims.sub
}

/// A handler that checks the scope itself and returns the refusal.
async fn checks_itself(
    Authenticated(claims): Authenticated,
) -> Result<String, sigil_verify::VerifyError> {
    claims.require_scopes(&["todos:admin"])?;
    Ok(claims.sub)
}

fn app(verifier: Verifier, metadata: &ProtectedResourceMetadata) -> Router {
    let layer = VerifyLayer::new(verifier.clone()).resource_metadata(metadata.metadata_url());
    let read = Router::new()
        .route("/read", get(whoami))
        .route_layer(layer.clone().require_scopes(["todos:read"]));
    let write = Router::new()
        .route("/write", get(whoami))
        .route_layer(layer.clone().require_scopes(["todos:write"]));
    let any = Router::new()
        .route("/any", get(whoami))
        .route("/checks-itself", get(checks_itself))
        .route_layer(layer);
    // Verified by the extractor alone, named by the decorating layer.
    let extractor = Router::new()
        .route("/extractor", get(whoami))
        .layer(ResourceMetadataLayer::new(metadata.metadata_url()));
    Router::new()
        .merge(read)
        .merge(write)
        .merge(any)
        .merge(extractor)
        .route("/unnamed", get(whoami))
        .merge(metadata.router())
        .with_state(verifier)
}

struct Server {
    base: String,
    http: reqwest::Client,
}

async fn serve(app: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Server {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    }
}

impl Server {
    /// Status and `WWW-Authenticate` of a GET of `path`.
    async fn challenge(&self, path: &str, token: Option<&str>) -> (StatusCode, Option<String>) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_string());
        (
            StatusCode::from_u16(response.status().as_u16()).expect("status"),
            challenge,
        )
    }
}

fn setup() -> (TestKey, Verifier) {
    let key = TestKey::generate("k1");
    let verifier =
        Verifier::with_static_jwks(VerifierConfig::new(ISSUER, AUDIENCE), &jwks(&[&key]))
            .expect("verifier");
    (key, verifier)
}

#[tokio::test]
async fn both_well_known_paths_serve_the_same_document() {
    let (_, verifier) = setup();
    let metadata = metadata();
    let server = serve(app(verifier, &metadata)).await;
    let mut bodies = Vec::new();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = server
            .http
            .get(format!("{}{path}", server.base))
            .header("origin", "https://inspector.example")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["cache-control"], "public, max-age=3600");
        assert_eq!(headers["access-control-allow-origin"], "*");
        bodies.push(response.text().await.expect("body"));
    }
    assert_eq!(bodies[0], bodies[1]);
    let document: Value = serde_json::from_str(&bodies[0]).expect("JSON");
    assert_eq!(
        document,
        json!({
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["todos:read", "todos:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Test API",
        })
    );
    // GET only; another resource's path is not ours.
    let post = server
        .http
        .post(format!(
            "{}/.well-known/oauth-protected-resource",
            server.base
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(post.status().as_u16(), 405);
    let other = server
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/other",
            server.base
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(other.status().as_u16(), 404);
}

#[tokio::test]
async fn a_resource_without_a_path_is_served_at_the_well_known_path() {
    let (_, verifier) = setup();
    let metadata = ProtectedResourceMetadata::builder("http://127.0.0.1:1")
        .authorization_servers([ISSUER])
        .build()
        .expect("metadata");
    assert_eq!(
        metadata.metadata_url(),
        "http://127.0.0.1:1/.well-known/oauth-protected-resource"
    );
    let server = serve(app(verifier, &metadata)).await;
    let document: Value = server
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource",
            server.base
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(document["resource"], "http://127.0.0.1:1");
}

#[tokio::test]
async fn challenges_name_the_metadata_and_the_scopes() {
    let (key, verifier) = setup();
    let server = serve(app(verifier, &metadata())).await;
    let read_only = key.token(&claims("todos:read"));

    // No token at a scoped route: where to look, and what to ask for.
    let (status, challenge) = server.challenge("/read", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(format!("Bearer scope=\"todos:read\", resource_metadata=\"{METADATA_URL}\"").as_str())
    );
    // A bad token: the error, the scope, the metadata.
    let (status, challenge) = server.challenge("/read", Some("not.a.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = challenge.expect("challenge");
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=")
            && challenge.ends_with(&format!(
                ", scope=\"todos:read\", resource_metadata=\"{METADATA_URL}\""
            )),
        "{challenge}"
    );
    // Too few scopes: 403 with the scopes needed and the metadata.
    let (status, challenge) = server.challenge("/write", Some(&read_only)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.expect("challenge");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\"")
            && challenge.ends_with(&format!(
                ", scope=\"todos:write\", resource_metadata=\"{METADATA_URL}\""
            )),
        "{challenge}"
    );
    // A route without scopes names none; a handler's own refusal gets the metadata too.
    let (status, challenge) = server.challenge("/any", None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (
            StatusCode::UNAUTHORIZED,
            Some(format!("Bearer resource_metadata=\"{METADATA_URL}\"").as_str())
        )
    );
    let (status, challenge) = server.challenge("/checks-itself", Some(&read_only)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.expect("challenge").ends_with(&format!(
        ", scope=\"todos:admin\", resource_metadata=\"{METADATA_URL}\""
    )));
    // The extractor alone, under ResourceMetadataLayer.
    let (status, challenge) = server.challenge("/extractor", None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (
            StatusCode::UNAUTHORIZED,
            Some(format!("Bearer resource_metadata=\"{METADATA_URL}\"").as_str())
        )
    );
    // Without either layer, the challenge is as it always was.
    let (status, challenge) = server.challenge("/unnamed", None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"))
    );
    // And a good token passes.
    let response = server
        .http
        .get(format!("{}/read", server.base))
        .bearer_auth(&read_only)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn challenge_values_cannot_break_out_of_their_quotes() {
    let (_, verifier) = setup();
    let error = verifier
        .verify("not.a.token")
        .await
        .expect_err("malformed")
        .with_scope("a\"b c\\d")
        .with_resource_metadata("https://api.test/x\", error=\"forged\r\nSet-Cookie: x=1");
    let header = www_authenticate(&error);
    let challenge = header.to_str().expect("ascii");
    assert_eq!(
        challenge,
        "Bearer error=\"invalid_token\", error_description=\"the token is malformed\", \
         scope=\"a'b c'd\", resource_metadata=\"https://api.test/x', error='forged''Set-Cookie: x=1\""
    );
}

#[test]
fn invalid_resource_identifiers_are_refused_at_construction() {
    for resource in [
        "https://api.test/mcp#section",
        "/mcp",
        "api.test/mcp",
        "http://example.com",
        "http://example.com/mcp",
    ] {
        let error = ProtectedResourceMetadata::builder(resource)
            .authorization_servers([ISSUER])
            .build()
            .expect_err(resource);
        assert_eq!(error.field(), "resource");
    }
}
