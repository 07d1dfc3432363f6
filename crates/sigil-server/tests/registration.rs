//! Dynamic client registration (RFC 7591 §2, §3; RFC 7592 §2) and resource indicators
//! (RFC 8707) against the real binary over HTTP, with the attacks written down in
//! `sigil_core::registration`: closed by default, unknown metadata ignored, bad metadata
//! refused with the RFC's codes, management only with the registration access token (and
//! an unknown client looking like a wrong token), initial access tokens used up, the
//! per-address rate limit, and resources a client may not use refused with
//! `invalid_target`.

mod common;

use common::process::{free_port, Server, Setup};
use common::{jwt_claims, TestDb};
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, LOCATION,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use serde_json::{json, Value};

struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    http: reqwest::Client,
}

fn env(serve: &[&str]) -> Env {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(&setup, &[], serve, free_port(), &[]);
    Env {
        _db: db,
        setup,
        server,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    async fn register(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/register"))
            .json(body)
            .send()
            .await
            .expect("register")
    }

    async fn register_ok(&self, body: &Value) -> Value {
        let response = self.register(body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 201, "{text}");
        serde_json::from_str(&text).expect("json")
    }

    async fn discovery(&self) -> Value {
        self.http
            .get(self.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json")
    }
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json error");
    (status, body["error"].as_str().unwrap_or("").to_string())
}

fn native_app() -> Value {
    json!({
        "client_name": "Terminal Agent",
        "redirect_uris": ["http://127.0.0.1:7777/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "contacts": ["dev@agent.example"],
        "made_up_field": "ignored",
        "software_statement": "not.a.jwt",
    })
}

#[tokio::test]
async fn registration_is_closed_by_default() {
    let env = env(&[]);
    assert!(
        env.discovery().await.get("registration_endpoint").is_none(),
        "no registration endpoint is advertised"
    );
    let (status, error) = error_of(env.register(&native_app()).await).await;
    assert_eq!((status, error.as_str()), (403, "access_denied"));
}

#[tokio::test]
async fn open_registration_and_client_management() {
    let env = env(&["--registration", "open"]);
    let discovery = env.discovery().await;
    assert_eq!(
        discovery["registration_endpoint"],
        env.url("/register"),
        "RFC 8414 §2"
    );
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );

    // A browser-based registrant's preflight.
    let preflight = env
        .http
        .request(reqwest::Method::OPTIONS, env.url("/register"))
        .header("Origin", "https://agent.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(preflight.headers()[ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .expect("ascii")
        .contains("content-type"));

    let response = env.register(&native_app()).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let made: Value = response.json().await.expect("json");
    let client_id = made["client_id"].as_str().expect("client_id").to_string();
    assert_eq!(made["client_name"], "Terminal Agent");
    assert_eq!(made["application_type"], "native");
    assert_eq!(made["contacts"], json!(["dev@agent.example"]));
    assert!(made.get("made_up_field").is_none(), "RFC 7591 §2: ignored");
    assert!(made.get("client_secret").is_none());
    assert!(made["client_id_issued_at"].as_i64().is_some());
    assert_eq!(
        made["registration_client_uri"],
        env.url(&format!("/register/{client_id}"))
    );
    let token = made["registration_access_token"]
        .as_str()
        .expect("token")
        .to_string();

    // RFC 7592 §2.1 read: the token is replaced with every answer.
    let read = env
        .http
        .get(env.url(&format!("/register/{client_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()[CACHE_CONTROL], "no-store");
    let read: Value = read.json().await.expect("json");
    assert_eq!(read["client_id"], client_id.as_str());
    let token2 = read["registration_access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_ne!(token2, token);
    let stale = env
        .http
        .get(env.url(&format!("/register/{client_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("read");
    assert_eq!(stale.status(), 401);
    let challenge = stale.headers()[WWW_AUTHENTICATE].to_str().expect("ascii");
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("invalid_token"),
        "{challenge}"
    );

    // §2.2 update: the whole metadata, with the client_id.
    let mut update = native_app();
    update["client_id"] = json!(client_id);
    update["client_name"] = json!("Terminal Agent 2");
    update["redirect_uris"] = json!(["http://127.0.0.1:8888/cb"]);
    let updated = env
        .http
        .put(env.url(&format!("/register/{client_id}")))
        .bearer_auth(&token2)
        .json(&update)
        .send()
        .await
        .expect("update");
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.expect("json");
    assert_eq!(updated["client_name"], "Terminal Agent 2");
    assert_eq!(
        updated["redirect_uris"],
        json!(["http://127.0.0.1:8888/cb"])
    );
    let token3 = updated["registration_access_token"]
        .as_str()
        .expect("token")
        .to_string();

    // The console's record says who registered it.
    let shown: Value = serde_json::from_str(&env.setup.sigil(
        &["client", "show", "--client-id", &client_id, "--json"],
        None,
    ))
    .expect("json");
    assert_eq!(shown["self_registered"], true);
    assert_eq!(shown["registered_from"], "127.0.0.1");
    assert_eq!(shown["first_party"], false);

    // §2.3 delete, and then nothing works for it.
    let deleted = env
        .http
        .delete(env.url(&format!("/register/{client_id}")))
        .bearer_auth(&token3)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let gone = env
        .http
        .get(env.url(&format!("/register/{client_id}")))
        .bearer_auth(&token3)
        .send()
        .await
        .expect("read");
    assert_eq!(gone.status(), 401);
    let token_call = env
        .http
        .post(env.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", "x"),
            ("code_verifier", "y"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(error_of(token_call).await, (401, "invalid_client".into()));
}

#[tokio::test]
async fn management_tells_nothing_about_which_clients_exist() {
    let env = env(&["--registration", "open"]);
    let made = env.register_ok(&native_app()).await;
    let real = made["client_id"].as_str().expect("id");
    let mut answers = Vec::new();
    for id in [
        real,
        "AAAAAAAAAAAAAAAAAAAAAA",
        "not-an-id",
        "%2e%2e%2fadmin",
    ] {
        let response = env
            .http
            .get(env.url(&format!("/register/{id}")))
            .bearer_auth("d3Jvbmc")
            .send()
            .await
            .expect("read");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        answers.push((status, body));
    }
    assert_eq!(answers[0].0, 401);
    for answer in &answers[1..] {
        assert_eq!(answer, &answers[0], "the same answer for every id");
    }
    // A token in the query is not read (RFC 6750 §2.3 is not supported).
    let token = made["registration_access_token"].as_str().expect("token");
    let in_query = env
        .http
        .get(env.url(&format!("/register/{real}?access_token={token}")))
        .send()
        .await
        .expect("read");
    assert_eq!(in_query.status(), 401);
    // Without any Authorization header.
    let bare = env
        .http
        .delete(env.url(&format!("/register/{real}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(bare.status(), 401);
}

#[tokio::test]
async fn bad_registrations_get_the_rfc_error_codes() {
    let env = env(&["--registration", "open", "--registration-rate", "100"]);
    let cases = [
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "web", "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://localhost:8080/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb#fragment"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb"], "grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb"], "response_types": ["token"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb"], "logo_uri": "http://tracker.example/pixel"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb"], "client_name": 42}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb"], "scope": "root"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (body, expected) in cases {
        let (status, error) = error_of(env.register(&body).await).await;
        assert_eq!((status, error.as_str()), (400, expected), "{body}");
    }
    let not_json = env
        .http
        .post(env.url("/register"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("redirect_uris=https://app.example.com/cb")
        .send()
        .await
        .expect("register");
    assert_eq!(error_of(not_json).await, (400, "invalid_request".into()));
    let broken = env
        .http
        .post(env.url("/register"))
        .header("Content-Type", "application/json")
        .body("{\"redirect_uris\": [")
        .send()
        .await
        .expect("register");
    assert_eq!(
        error_of(broken).await,
        (400, "invalid_client_metadata".into())
    );
    let huge = env
        .http
        .post(env.url("/register"))
        .header("Content-Type", "application/json")
        .body(format!("{{\"client_name\": \"{}\"}}", "x".repeat(200_000)))
        .send()
        .await
        .expect("register");
    assert_eq!(huge.status(), 413);
    // Nothing refused was kept.
    let listed: Value =
        serde_json::from_str(&env.setup.sigil(&["client", "list", "--json"], None)).expect("json");
    assert_eq!(listed, json!([]), "no client was made");
}

#[tokio::test]
async fn initial_access_tokens_are_required_and_used_up() {
    let env = env(&["--registration", "token"]);
    let (status, error) = error_of(env.register(&native_app()).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"));
    let made: Value = serde_json::from_str(&env.setup.sigil(
        &[
            "registration-token",
            "create",
            "--uses",
            "1",
            "--expires",
            "1h",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let token = made["token"].as_str().expect("token");
    let with = |token: &str| {
        env.http
            .post(env.url("/register"))
            .bearer_auth(token)
            .json(&native_app())
            .send()
    };
    assert_eq!(
        with("bm90LXRoZS10b2tlbg").await.expect("register").status(),
        401
    );
    assert_eq!(with(token).await.expect("register").status(), 201);
    let again = with(token).await.expect("register");
    assert_eq!(again.status(), 401, "one use only");
    let listed = env
        .setup
        .sigil(&["registration-token", "list", "--json"], None);
    assert!(listed.contains("\"uses_left\":0"), "{listed}");
    assert!(!listed.contains(token), "the token itself is never listed");
}

#[tokio::test]
async fn registrations_per_address_are_rate_limited() {
    let env = env(&["--registration", "open", "--registration-rate", "2"]);
    for _ in 0..2 {
        env.register_ok(&native_app()).await;
    }
    let limited = env.register(&native_app()).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()[RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait > 0 && wait <= 3600);
}

/// RFC 8707 over HTTP: tokens for exactly the named resources; a resource the client may
/// not use is `invalid_target` at the token and authorization endpoints; a self-registered
/// client may use registered resources open to it, and no other.
#[tokio::test]
async fn resource_indicators() {
    let env = env(&["--registration", "open"]);
    env.setup.sigil(
        &[
            "resource",
            "add",
            "--uri",
            "https://mcp.example.com/mcp",
            "--name",
            "MCP",
            "--scope",
            "notes:read",
        ],
        None,
    );
    env.setup.sigil(
        &[
            "resource",
            "add",
            "--uri",
            "https://internal.example.com",
            "--name",
            "Internal",
            "--scope",
            "ops",
            "--no-self-registered-clients",
        ],
        None,
    );
    // A service registered by an administrator with two audiences.
    let service: Value = serde_json::from_str(&env.setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "svc",
            "--audience",
            "https://a.example.com",
            "--audience",
            "https://b.example.com",
            "--scopes",
            "jobs",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let (id, secret) = (
        service["client_id"].as_str().expect("id"),
        service["client_secret"].as_str().expect("secret"),
    );
    let token = |resources: Vec<&str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        for r in &resources {
            form.push(("resource", r));
        }
        let form: Vec<(String, String)> = form
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.http
            .post(env.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
    };
    let both: Value = token(vec!["https://a.example.com", "https://b.example.com"])
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let claims = jwt_claims(both["access_token"].as_str().expect("token"));
    assert_eq!(
        claims["aud"],
        json!(["https://a.example.com", "https://b.example.com"])
    );
    let one: Value = token(vec!["https://b.example.com"])
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(
        jwt_claims(one["access_token"].as_str().expect("token"))["aud"],
        "https://b.example.com"
    );
    for refused in [
        vec!["https://evil.example.com"],
        vec!["https://a.example.com", "https://mcp.example.com/mcp"],
        vec!["https://a.example.com#x"],
        vec!["relative/path"],
    ] {
        let (status, error) = error_of(token(refused.clone()).await.expect("token")).await;
        assert_eq!(
            (status, error.as_str()),
            (400, "invalid_target"),
            "{refused:?}"
        );
    }

    // A self-registered confidential client: the open resource yes, the other no.
    let agent = env
        .register_ok(&json!({
            "client_name": "Batch agent",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    let (agent_id, agent_secret) = (
        agent["client_id"].as_str().expect("id").to_string(),
        agent["client_secret"].as_str().expect("secret").to_string(),
    );
    assert!(agent["scope"]
        .as_str()
        .expect("scope")
        .contains("notes:read"));
    assert!(!agent["scope"].as_str().expect("scope").contains("ops"));
    let agent_token = |resource: &str, scope: &str| {
        env.http
            .post(env.url("/token"))
            .basic_auth(&agent_id, Some(&agent_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ])
            .send()
    };
    let ok: Value = agent_token("https://mcp.example.com/mcp", "notes:read")
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let claims = jwt_claims(ok["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], "https://mcp.example.com/mcp");
    assert_eq!(claims["scope"], "notes:read");
    let (status, error) = error_of(
        agent_token("https://internal.example.com", "")
            .await
            .expect("token"),
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "invalid_target"));

    // At /authorize, a resource the client may not use comes back to its redirect URI.
    let app = env.register_ok(&native_app()).await;
    let url = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=notes:read&state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&resource={}",
        env.server.base,
        app["client_id"].as_str().expect("id"),
        "http%3A%2F%2F127.0.0.1%3A7777%2Fcallback",
        "https%3A%2F%2Finternal.example.com",
    );
    let response = env.http.get(&url).send().await.expect("authorize");
    assert_eq!(response.status(), 302);
    let location = response.headers()[LOCATION].to_str().expect("ascii");
    assert!(
        location.starts_with("http://127.0.0.1:7777/callback?"),
        "{location}"
    );
    assert!(
        location.contains("error=invalid_target") && location.contains("state=s1"),
        "{location}"
    );
    // And without a PKCE challenge, the self-registered client is refused too.
    let no_pkce = url
        .replace("&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256", "")
        .replace("https%3A%2F%2Finternal.example.com", "https%3A%2F%2Fmcp.example.com%2Fmcp");
    let response = env.http.get(&no_pkce).send().await.expect("authorize");
    let location = response.headers()[LOCATION].to_str().expect("ascii");
    assert!(
        location.contains("error=invalid_request") && location.contains("PKCE"),
        "{location}"
    );
}
