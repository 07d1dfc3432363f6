//! In-process HTTP tests: the real router driven with `tower::ServiceExt::oneshot`, on a
//! real SQLite database, for every grant and every error path of the non-browser API.

mod common;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{TestApp, TestDb};
use http_body_util::BodyExt;
use serde_json::Value;
use sigil_core::client::ClientRegistration;
use sigil_core::secret::Secret;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn send(app: &TestApp, request: Request<Body>) -> Reply {
    let response = app.router().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
    }
}

fn form(path: &str, body: &str) -> axum::http::request::Builder {
    let _ = body;
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
}

async fn post(app: &TestApp, path: &str, body: &str, basic: Option<(&str, &Secret)>) -> Reply {
    let mut builder = form(path, body);
    if let Some((id, secret)) = basic {
        let creds = STANDARD.encode(format!("{id}:{}", secret.expose()));
        builder = builder.header(header::AUTHORIZATION, format!("Basic {creds}"));
    }
    send(
        app,
        builder.body(Body::from(body.to_string())).expect("request"),
    )
    .await
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = Request::builder().uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(app, builder.body(Body::empty()).expect("request")).await
}

struct World {
    app: TestApp,
    client_id: String,
    secret: Secret,
    public_id: String,
    plain_id: String,
    plain_secret: Secret,
}

async fn world() -> World {
    let app = TestApp::start(TestDb::sqlite(), &[]).await;
    app.add_user("alice", "correct horse battery").await;
    let (client, secret) = app
        .add_client(ClientRegistration {
            name: "first-party app".into(),
            grant_types: Some(vec![
                "password".into(),
                "refresh_token".into(),
                "client_credentials".into(),
            ]),
            audiences: vec!["https://api.example.com".into()],
            ..Default::default()
        })
        .await;
    let (public, _) = app
        .add_client(ClientRegistration {
            name: "spa".into(),
            is_public: true,
            redirect_uris: vec!["http://127.0.0.1:3000/cb".into()],
            ..Default::default()
        })
        .await;
    let (plain, plain_secret) = app
        .add_client(ClientRegistration {
            name: "service".into(),
            ..Default::default()
        })
        .await;
    World {
        app,
        client_id: client.id,
        secret: secret.expect("secret"),
        public_id: public.id,
        plain_id: plain.id,
        plain_secret: plain_secret.expect("secret"),
    }
}

impl World {
    fn basic(&self) -> Option<(&str, &Secret)> {
        Some((self.client_id.as_str(), &self.secret))
    }
    async fn password_grant(&self, scope: &str) -> Reply {
        let body = format!(
            "grant_type=password&username=alice&password=correct+horse+battery&scope={scope}"
        );
        post(&self.app, "/token", &body, self.basic()).await
    }
}

fn assert_oauth_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.json);
    assert_eq!(reply.json["error"], code, "{:?}", reply.json);
    assert!(reply.json["error_description"].is_string());
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn discovery_and_jwks() {
    let w = world().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let reply = get(&w.app, path, &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json["issuer"], "http://sigil.test");
        assert_eq!(reply.json["token_endpoint"], "http://sigil.test/token");
        assert_eq!(reply.json["jwks_uri"], "http://sigil.test/jwks.json");
        assert_eq!(
            reply.json["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
    }
    let reply = get(&w.app, "/jwks.json", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "public, max-age=600");
    let keys = reply.json["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().expect("key");
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(
        members,
        ["alg", "e", "kid", "kty", "n", "use"],
        "public members only"
    );
    // Conditional GET.
    let etag = reply.headers[header::ETAG]
        .to_str()
        .expect("etag")
        .to_string();
    let again = get(&w.app, "/jwks.json", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn client_credentials_with_basic_and_post() {
    let w = world().await;
    let reply = post(
        &w.app,
        "/token",
        "grant_type=client_credentials",
        Some((&w.plain_id, &w.plain_secret)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(reply.json["token_type"], "Bearer");
    assert_eq!(reply.json["expires_in"], 600);
    assert!(reply.json.get("refresh_token").is_none());
    let token = reply.json["access_token"].as_str().expect("token");
    let claims = w
        .app
        .state
        .authority
        .verify_access_token(token)
        .expect("valid");
    assert_eq!(claims.sub, w.plain_id);
    assert_eq!(
        claims.aud,
        vec!["http://sigil.test".to_string()],
        "no audience registered: the issuer"
    );

    // Stateless: many more tokens, not one byte written to the database.
    let files = |path: &std::path::Path| -> Vec<u8> {
        ["", "-wal"]
            .iter()
            .flat_map(|suffix| {
                std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default()
            })
            .collect()
    };
    let db_path = w.app.db.sqlite_path().expect("sqlite");
    let before = files(&db_path);
    for _ in 0..20 {
        let reply = post(
            &w.app,
            "/token",
            "grant_type=client_credentials",
            Some((&w.plain_id, &w.plain_secret)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert!(!before.is_empty());
    assert!(
        before == files(&db_path),
        "client_credentials wrote to the database"
    );

    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        w.plain_id,
        w.plain_secret.expose()
    );
    let reply = post(&w.app, "/token", &body, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
}

#[tokio::test]
async fn client_credentials_never_grants_user_scopes() {
    let w = world().await;
    let (api_client, secret) = w
        .app
        .add_client(ClientRegistration {
            name: "Express API".into(),
            scopes: Some(
                [
                    "openid",
                    "profile",
                    "email",
                    "offline_access",
                    "address",
                    "phone",
                    "orders:read",
                ]
                .map(String::from)
                .to_vec(),
            ),
            ..Default::default()
        })
        .await;
    let secret = secret.expect("secret");
    let creds = Some((api_client.id.as_str(), &secret));
    // Omitted scope: the client's scopes without those that speak of a user.
    let reply = post(&w.app, "/token", "grant_type=client_credentials", creds).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.json["scope"], "orders:read");
    let token = reply.json["access_token"].as_str().expect("token");
    let claims = w
        .app
        .state
        .authority
        .verify_access_token(token)
        .expect("valid");
    assert_eq!(claims.scope, "orders:read");
    // Asked for: invalid_scope.
    for scope in [
        "openid",
        "offline_access",
        "profile",
        "email",
        "address",
        "phone",
        "orders%3Aread+email",
    ] {
        let reply = post(
            &w.app,
            "/token",
            &format!("grant_type=client_credentials&scope={scope}"),
            creds,
        )
        .await;
        assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    }
    // A client with the default scopes only (all of them user scopes): a token without
    // scope, which names the client and the audience and nothing else.
    let reply = post(
        &w.app,
        "/token",
        "grant_type=client_credentials",
        Some((&w.plain_id, &w.plain_secret)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert!(reply.json.get("scope").is_none(), "{:?}", reply.json);
    let token = reply.json["access_token"].as_str().expect("token");
    let claims = w
        .app
        .state
        .authority
        .verify_access_token(token)
        .expect("valid");
    assert_eq!(claims.scope, "");
}

#[tokio::test]
async fn client_authentication_errors() {
    let w = world().await;
    let wrong = Secret::new("not-the-secret");
    let reply = post(
        &w.app,
        "/token",
        "grant_type=client_credentials",
        Some((&w.plain_id, &wrong)),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(
        reply.headers[header::WWW_AUTHENTICATE],
        "Basic realm=\"sigil\""
    );

    let reply = post(&w.app, "/token", "grant_type=client_credentials", None).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");

    let reply = post(
        &w.app,
        "/token",
        "grant_type=client_credentials&client_id=nobody&client_secret=x",
        None,
    )
    .await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");

    // Two authentication methods at once.
    let body = format!(
        "grant_type=client_credentials&client_secret={}",
        w.plain_secret.expose()
    );
    let reply = post(
        &w.app,
        "/token",
        &body,
        Some((&w.plain_id, &w.plain_secret)),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");

    // Garbage in the Basic header.
    let request = form("/token", "")
        .header(header::AUTHORIZATION, "Basic %%%not-base64")
        .body(Body::from("grant_type=client_credentials"))
        .expect("request");
    assert_oauth_error(
        &send(&w.app, request).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // A public client cannot use client_credentials.
    let body = format!("grant_type=client_credentials&client_id={}", w.public_id);
    let reply = post(&w.app, "/token", &body, None).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");
}

#[tokio::test]
async fn malformed_requests_get_clean_400s() {
    let w = world().await;
    let basic = Some((w.plain_id.as_str(), &w.plain_secret));
    for (body, code) in [
        ("", "invalid_request"),
        ("grant_type=implicit", "unsupported_grant_type"),
        ("grant_type=authorization_code", "invalid_request"),
        (
            "grant_type=authorization_code&code=x",
            "unauthorized_client",
        ),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&scope=a&scope=b",
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&scope=%22quoted%22",
            "invalid_scope",
        ),
        ("grant_type=client_credentials&scope=admin", "invalid_scope"),
        (
            "grant_type=client_credentials&resource=https://nowhere.example.com",
            "invalid_target",
        ),
        ("grant_type=refresh_token", "invalid_request"),
        ("grant_type=password&username=alice", "invalid_request"),
        ("%ff%fe=%00&\u{1}", "invalid_request"),
    ] {
        let reply = post(&w.app, "/token", body, basic).await;
        assert_oauth_error(&reply, StatusCode::BAD_REQUEST, code);
    }
    // Wrong content types and oversized bodies.
    let json = Request::builder()
        .method(Method::POST)
        .uri("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .expect("request");
    assert_oauth_error(
        &send(&w.app, json).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let none = Request::builder()
        .method(Method::POST)
        .uri("/token")
        .body(Body::from("x"))
        .expect("request");
    assert_oauth_error(
        &send(&w.app, none).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    assert_oauth_error(
        &post(&w.app, "/token", &big, basic).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
    );
    let creds = STANDARD.encode(format!("{}:{}", w.plain_id, w.plain_secret.expose()));
    let binary = form("/token", "")
        .header(header::AUTHORIZATION, format!("Basic {creds}"))
        .body(Body::from(vec![0xffu8, 0x00, 0xfe, 0x3d, 0x26]))
        .expect("request");
    assert_oauth_error(
        &send(&w.app, binary).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    // Wrong method.
    let reply = get(&w.app, "/token", &[]).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn password_grant_and_refresh_rotation() {
    let w = world().await;
    let reply = w.password_grant("openid+profile+offline_access").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert!(reply.json["id_token"].is_string());
    let r1 = reply.json["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let claims = w
        .app
        .state
        .authority
        .verify_access_token(reply.json["access_token"].as_str().expect("at"))
        .expect("valid");
    assert_eq!(claims.aud, vec!["https://api.example.com".to_string()]);

    // Rotation.
    let reply = post(
        &w.app,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={r1}"),
        w.basic(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let r2 = reply.json["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(r1, r2);
    // Narrowing works; widening does not.
    let reply = post(
        &w.app,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={r2}&scope=email"),
        w.basic(),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    // Reuse of r1 revokes the family: r2 is dead too.
    let reply = post(
        &w.app,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={r1}"),
        w.basic(),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_grant");
    let reply = post(
        &w.app,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={r2}"),
        w.basic(),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn password_grant_errors() {
    let w = world().await;
    let body = "grant_type=password&username=alice&password=wrong";
    let wrong = post(&w.app, "/token", body, w.basic()).await;
    assert_oauth_error(&wrong, StatusCode::BAD_REQUEST, "invalid_grant");
    let body = "grant_type=password&username=nobody&password=correct+horse+battery";
    let unknown = post(&w.app, "/token", body, w.basic()).await;
    assert_eq!(wrong.json, unknown.json, "no user enumeration");
    // Off unless enabled for the client.
    let body = "grant_type=password&username=alice&password=correct+horse+battery";
    let reply = post(&w.app, "/token", body, Some((&w.plain_id, &w.plain_secret))).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");
    let body = format!("{body}&client_id={}", w.public_id);
    let reply = post(&w.app, "/token", &body, None).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");
}

#[tokio::test]
async fn revocation() {
    let w = world().await;
    let reply = w.password_grant("openid+offline_access").await;
    let access = reply.json["access_token"].as_str().expect("at").to_string();
    let refresh = reply.json["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();

    // Another client may not revoke it.
    let reply = post(
        &w.app,
        "/revoke",
        &format!("token={refresh}"),
        Some((&w.plain_id, &w.plain_secret)),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");
    // Missing token, missing authentication.
    assert_oauth_error(
        &post(&w.app, "/revoke", "", w.basic()).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_oauth_error(
        &post(&w.app, "/revoke", "token=x", None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    // Unknown tokens: 200.
    assert_eq!(
        post(&w.app, "/revoke", "token=unknown", w.basic())
            .await
            .status,
        StatusCode::OK
    );

    // Access token.
    let reply = post(
        &w.app,
        "/revoke",
        &format!("token={access}&token_type_hint=access_token"),
        w.basic(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = post(&w.app, "/introspect", &format!("token={access}"), w.basic()).await;
    assert_eq!(reply.json, serde_json::json!({ "active": false }));

    // Refresh token: the family dies.
    let reply = post(
        &w.app,
        "/revoke",
        &format!("token={refresh}&token_type_hint=refresh_token"),
        w.basic(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = post(
        &w.app,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        w.basic(),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn introspection() {
    let w = world().await;
    let reply = w.password_grant("openid+offline_access").await;
    let access = reply.json["access_token"].as_str().expect("at").to_string();
    let refresh = reply.json["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();

    // RFC 7662 §2.2, §4: the resource server the token is meant for (a client registered
    // with the token's audience) may introspect it; any other client learns nothing.
    let (resource_server, rs_secret) = w
        .app
        .add_client(ClientRegistration {
            name: "the API".into(),
            audiences: vec!["https://api.example.com".into()],
            ..Default::default()
        })
        .await;
    let rs_secret = rs_secret.expect("secret");
    let (other_api, other_secret) = w
        .app
        .add_client(ClientRegistration {
            name: "another API".into(),
            audiences: vec!["other-api".into()],
            ..Default::default()
        })
        .await;
    let other_secret = other_secret.expect("secret");
    for creds in [
        (w.plain_id.as_str(), &w.plain_secret),
        (other_api.id.as_str(), &other_secret),
    ] {
        let reply = post(
            &w.app,
            "/introspect",
            &format!("token={access}"),
            Some(creds),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json, serde_json::json!({ "active": false }));
    }
    let reply = post(&w.app, "/introspect", &format!("token={access}"), w.basic()).await;
    assert_eq!(reply.json["active"], true, "the token's own client");
    let reply = post(
        &w.app,
        "/introspect",
        &format!("token={access}"),
        Some((&resource_server.id, &rs_secret)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(reply.json["active"], true);
    assert_eq!(reply.json["username"], "alice");
    assert_eq!(reply.json["client_id"], w.client_id.as_str());
    assert_eq!(reply.json["token_type"], "Bearer");
    // Refresh tokens only to their own client.
    let reply = post(
        &w.app,
        "/introspect",
        &format!("token={refresh}"),
        w.basic(),
    )
    .await;
    assert_eq!(reply.json["active"], true);
    for creds in [
        (w.plain_id.as_str(), &w.plain_secret),
        (resource_server.id.as_str(), &rs_secret),
    ] {
        let reply = post(
            &w.app,
            "/introspect",
            &format!("token={refresh}"),
            Some(creds),
        )
        .await;
        assert_eq!(reply.json, serde_json::json!({ "active": false }));
    }
    // Garbage is inactive, not an error.
    let reply = post(&w.app, "/introspect", "token=a.b.c", w.basic()).await;
    assert_eq!(reply.json, serde_json::json!({ "active": false }));
    // Public clients and anonymous callers are refused.
    let reply = post(
        &w.app,
        "/introspect",
        &format!("token={access}&client_id={}", w.public_id),
        None,
    )
    .await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    let reply = post(&w.app, "/introspect", &format!("token={access}"), None).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    // Reusing the refresh token revokes the family: the access token goes inactive.
    post(
        &w.app,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        w.basic(),
    )
    .await;
    post(
        &w.app,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        w.basic(),
    )
    .await;
    let reply = post(&w.app, "/introspect", &format!("token={access}"), w.basic()).await;
    assert_eq!(reply.json, serde_json::json!({ "active": false }));
}

#[tokio::test]
async fn userinfo() {
    let w = world().await;
    let reply = w.password_grant("openid+profile+email").await;
    let access = reply.json["access_token"].as_str().expect("at").to_string();
    let bearer = format!("Bearer {access}");

    let reply = get(&w.app, "/userinfo", &[("authorization", &bearer)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.json["preferred_username"], "alice");
    assert_eq!(reply.json["email"], "alice@example.com");

    let request = form("/userinfo", "")
        .body(Body::from(format!("access_token={access}")))
        .expect("request");
    let reply = send(&w.app, request).await;
    assert_eq!(reply.status, StatusCode::OK);

    // No token: a bare challenge.
    let reply = get(&w.app, "/userinfo", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"sigil\""
    );
    // A bad token.
    let reply = get(
        &w.app,
        "/userinfo",
        &[("authorization", "Bearer not.a.jwt")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenge = reply.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("header");
    assert!(
        challenge
            .starts_with("Bearer realm=\"sigil\", error=\"invalid_token\", error_description="),
        "{challenge}"
    );
    // Token in two places.
    let request = form("/userinfo", "")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::from(format!("access_token={access}")))
        .expect("request");
    assert_eq!(send(&w.app, request).await.status, StatusCode::BAD_REQUEST);
    // Without openid: insufficient_scope.
    let reply = w.password_grant("profile").await;
    let bearer = format!(
        "Bearer {}",
        reply.json["access_token"].as_str().expect("at")
    );
    let reply = get(&w.app, "/userinfo", &[("authorization", &bearer)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("h")
        .contains("error=\"insufficient_scope\""));
    // A client_credentials token has no user: it never carries openid, so userinfo
    // refuses it.
    let reply = post(
        &w.app,
        "/token",
        "grant_type=client_credentials&scope=openid",
        Some((&w.plain_id, &w.plain_secret)),
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    let reply = post(
        &w.app,
        "/token",
        "grant_type=client_credentials",
        Some((&w.plain_id, &w.plain_secret)),
    )
    .await;
    let bearer = format!(
        "Bearer {}",
        reply.json["access_token"].as_str().expect("at")
    );
    let reply = get(&w.app, "/userinfo", &[("authorization", &bearer)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn health_request_ids_and_unknown_routes() {
    let w = world().await;
    let reply = get(&w.app, "/healthz", &[("x-request-id", "abc-123")]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-request-id"], "abc-123");
    let reply = get(&w.app, "/readyz", &[("x-request-id", "bad id with spaces")]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["database"], "ok");
    assert_ne!(reply.headers["x-request-id"], "bad id with spaces");
    let reply = get(&w.app, "/nope", &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["error"], "not_found");
}

#[tokio::test]
async fn first_start_creates_one_admin_with_a_one_time_password() {
    let app = TestApp::start(TestDb::sqlite(), &[]).await;
    let store = app.state.database.store().clone();
    sigil_server::serve::bootstrap_admin(&app.state, None)
        .await
        .expect("bootstrap");
    let admin = store
        .find_user_by_username("admin")
        .await
        .expect("find")
        .expect("admin exists");
    assert!(admin.is_admin);
    assert!(
        admin.must_change_password,
        "a generated password is one-time"
    );
    assert!(admin.password_hash.starts_with("$argon2id$"));
    sigil_server::serve::bootstrap_admin(&app.state, Some("another password"))
        .await
        .expect("again");
    assert_eq!(
        store.count_users().await.expect("count"),
        1,
        "only on an empty user table"
    );
}

/// Parses Prometheus text format into (name, labels, value), checking every line's shape.
fn parse_metrics(text: &str) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    let mut samples = Vec::new();
    let mut typed = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().expect("name").to_string();
            let kind = parts.next().expect("kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name);
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("number in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = std::collections::BTreeMap::new();
                for pair in body.split("\",") {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
            None => (series.to_string(), Default::default()),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| typed.contains(*base))
            .unwrap_or(&name)
            .to_string();
        assert!(typed.contains(&family), "{name} has no TYPE line");
        samples.push((name, labels, value));
    }
    samples
}

#[tokio::test]
async fn metrics_are_scraped_and_parsed() {
    let w = world().await;
    for _ in 0..3 {
        let reply = post(
            &w.app,
            "/token",
            "grant_type=client_credentials",
            Some((&w.plain_id, &w.plain_secret)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let reply = post(
        &w.app,
        "/token",
        "grant_type=password&username=alice&password=not+hers",
        w.basic(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(w.password_grant("openid").await.status, StatusCode::OK);
    get(&w.app, "/no/such/path", &[]).await;

    let response = sigil_server::metrics_app(w.app.state.clone())
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    let samples = parse_metrics(&text);
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    };
    assert_eq!(
        value(
            "sigil_http_requests_total",
            &[("route", "/token"), ("status", "200")]
        ),
        4.0
    );
    assert_eq!(
        value(
            "sigil_http_requests_total",
            &[("route", "/token"), ("status", "400")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "sigil_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0,
        "unknown paths share one label, not one series each"
    );
    assert_eq!(
        value(
            "sigil_http_request_duration_seconds_count",
            &[("route", "/token")]
        ),
        5.0
    );
    assert_eq!(
        value(
            "sigil_http_request_duration_seconds_bucket",
            &[("route", "/token"), ("le", "+Inf")]
        ),
        5.0
    );
    assert_eq!(
        value(
            "sigil_tokens_issued_total",
            &[("grant_type", "client_credentials")]
        ),
        3.0
    );
    assert_eq!(
        value("sigil_tokens_issued_total", &[("grant_type", "password")]),
        1.0
    );
    assert_eq!(value("sigil_sign_in_failures_total", &[]), 1.0);
    assert_eq!(value("sigil_sign_in_successes_total", &[]), 1.0);
    assert_eq!(value("sigil_refresh_token_reuse_detected_total", &[]), 0.0);
    assert_eq!(value("sigil_throttled_requests_total", &[]), 0.0);
    assert_eq!(value("sigil_password_hash_queue_depth", &[]), 0.0);
    assert!(value("sigil_db_pool_max_connections", &[]) >= 1.0);
    assert!(value("sigil_db_pool_connections", &[]) >= 1.0);
    assert_eq!(value("sigil_signing_keys", &[]), 1.0);
    assert!(!text.contains(w.secret.expose()));
}

#[tokio::test]
async fn openapi_document_describes_the_json_endpoints() {
    let w = world().await;
    let reply = get(&w.app, "/openapi.json", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = &reply.json;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/token",
        "/revoke",
        "/introspect",
        "/userinfo",
        "/.well-known/openid-configuration",
        "/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} is missing");
    }
    let token = &doc["paths"]["/token"]["post"];
    assert_eq!(
        token["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TokenResponse"
    );
    assert!(token["requestBody"]["content"]
        .get("application/x-www-form-urlencoded")
        .is_some());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for schema in ["TokenResponse", "Introspection", "ErrorBody", "TokenForm"] {
        assert!(schemas.contains_key(schema), "{schema} is missing");
    }
    let required: Vec<&str> = schemas["TokenResponse"]["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(required.contains(&"access_token") && required.contains(&"token_type"));

    // Every documented path is in docs/api.md, and every JSON endpoint the router answers
    // is in the document.
    let api_md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    for path in paths.keys() {
        assert!(
            api_md.contains(path.as_str()),
            "docs/api.md does not mention {path}"
        );
    }
    for path in paths.keys() {
        let method = paths[path]
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .expect("a method");
        if path == "/metrics" {
            // Served on the metrics listener only (--metrics-bind), never on this one.
            assert_eq!(get(&w.app, path, &[]).await.status, StatusCode::NOT_FOUND);
            continue;
        }
        let reply = if method == "get" {
            get(&w.app, path, &[]).await
        } else {
            post(&w.app, path, "", None).await
        };
        assert_ne!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path} is documented but not routed"
        );
    }
}
