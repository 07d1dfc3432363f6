//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document) over real
//! HTTP: the outbound fetcher's limits and cache (`cimd/fetcher.rs`), and the whole flow
//! against the real `sigil` binary with documents served from 127.0.0.1.

#[path = "cimd/doc_server.rs"]
mod doc_server;
#[path = "cimd/fetcher.rs"]
mod fetcher;

mod common;

use common::process::{free_port, Server, Setup};
use common::{hidden, TestDb};
use doc_server::{DocServer, Reply};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PASSWORD: &str = "metadata documents password 7c1e";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "cimd-test-code-verifier-0123456789-abcdefghijklmnopqrstu";

fn challenge() -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER))
}

/// A running `sigil serve --cimd-allow-loopback` with a user, and a document server.
struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    docs: DocServer,
}

async fn env(serve: &[&str]) -> Env {
    env_on(TestDb::sqlite(), serve).await
}

async fn env_on(db: TestDb, serve: &[&str]) -> Env {
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let server = Server::start_on(&setup, &[], serve, free_port(), &[]);
    Env {
        _db: db,
        setup,
        server,
        docs: DocServer::start().await,
    }
}

async fn loopback_env() -> Env {
    env(&["--cimd-allow-loopback"]).await
}

/// A document for the client whose id is `client_id`, listing the test's callback.
fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Photo Printer",
        "client_uri": "https://printer.example",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid profile offline_access admin",
    })
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

impl Env {
    fn base(&self) -> &str {
        &self.server.base
    }

    /// Serves `document(path's URL)` (changed by `edit`) at `path`; returns the URL.
    fn serve(&self, path: &str, edit: impl FnOnce(&mut Value)) -> String {
        let url = self.docs.url(path);
        let mut doc = document(&url);
        edit(&mut doc);
        self.docs.set(path, Reply::json(doc.to_string(), &[]));
        url
    }

    fn authorize_url(&self, client_id: &str, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.base())).expect("url");
        let mut pairs: Vec<(&str, String)> = vec![
            ("client_id", client_id.to_string()),
            ("redirect_uri", CALLBACK.to_string()),
            ("response_type", "code".to_string()),
            ("scope", "openid offline_access".to_string()),
            ("state", "st-1".to_string()),
            ("nonce", "n-1".to_string()),
            ("code_challenge", challenge()),
            ("code_challenge_method", "S256".to_string()),
        ];
        for (name, value) in extra {
            pairs.retain(|(n, _)| n != name);
            if !value.is_empty() {
                pairs.push((name, value.to_string()));
            }
        }
        url.query_pairs_mut().extend_pairs(pairs);
        url.to_string()
    }

    fn absolute(&self, response: &reqwest::Response) -> String {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no Location on {}", response.status()))
            .to_string();
        if location.starts_with('/') {
            format!("{}{location}", self.base())
        } else {
            location
        }
    }

    /// Walks the browser flow from `authorize` through sign-in and consent (allowed) to
    /// the callback. Returns the callback's query and the consent page's HTML.
    async fn sign_in(&self, authorize: &str) -> (HashMap<String, String>, String) {
        let browser = browser();
        let mut next = authorize.to_string();
        let mut consent_page = String::new();
        for _ in 0..10 {
            if next.starts_with(CALLBACK) {
                let query = url::Url::parse(&next)
                    .expect("callback")
                    .query_pairs()
                    .into_owned()
                    .collect();
                return (query, consent_page);
            }
            let response = browser.get(&next).send().await.expect("get");
            if response.status().is_redirection() {
                next = self.absolute(&response);
                continue;
            }
            let status = response.status();
            let html = response.text().await.expect("page");
            assert_eq!(status, 200, "{next}: {html}");
            let form: Vec<(&str, String)> = if html.contains("action=\"/consent\"") {
                consent_page = html.clone();
                vec![
                    ("csrf", hidden(&html, "csrf")),
                    ("req", hidden(&html, "req")),
                    ("decision", "allow".into()),
                ]
            } else {
                vec![
                    ("csrf", hidden(&html, "csrf")),
                    ("req", hidden(&html, "req")),
                    ("username", "alice".into()),
                    ("password", PASSWORD.into()),
                ]
            };
            let action = if html.contains("action=\"/consent\"") {
                "/consent"
            } else {
                "/login"
            };
            let response = browser
                .post(format!("{}{action}", self.base()))
                .form(&form)
                .send()
                .await
                .expect("post");
            assert!(response.status().is_redirection(), "{}", response.status());
            next = self.absolute(&response);
        }
        panic!("the flow did not reach the callback");
    }

    /// GET /authorize with `client_id`: the error page's status and text.
    async fn refused(&self, client_id: &str) -> (u16, String) {
        let response = browser()
            .get(self.authorize_url(client_id, &[]))
            .send()
            .await
            .expect("authorize");
        let status = response.status().as_u16();
        (status, response.text().await.expect("page"))
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.base()))
            .form(form)
            .send()
            .await
            .expect("token");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }
}

/// The error page for `client_id` says `words`, and no redirect happened.
async fn assert_refused(env: &Env, client_id: &str, words: &str) {
    let (status, page) = env.refused(client_id).await;
    assert_eq!(status, 400, "{client_id}: {page}");
    assert!(
        page.contains(words),
        "{client_id}: wanted {words:?} in {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_client_signs_in_with_consent_and_gets_tokens() {
    signs_in_with_consent_and_gets_tokens(loopback_env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_client_signs_in_on_postgresql() {
    let Some(db) = TestDb::postgres("a_document_client_signs_in_on_postgresql").await else {
        return;
    };
    signs_in_with_consent_and_gets_tokens(env_on(db, &["--cimd-allow-loopback"]).await).await;
}

/// The whole flow: discovery, sign-in, consent with the host, tokens, refresh; the
/// grants' anchor row in the database (foreign keys) is made on the way.
async fn signs_in_with_consent_and_gets_tokens(env: Env) {
    let discovery: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        env.base()
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("json");
    assert_eq!(discovery["client_id_metadata_document_supported"], true);

    let client_id = env.serve("/apps/printer.json", |_| {});
    let (query, consent) = env.sign_in(&env.authorize_url(&client_id, &[])).await;
    let host = format!("127.0.0.1:{}", env.docs.port);
    assert!(
        consent.contains(&format!(
            "This app identifies itself as <strong>{host}</strong>"
        )),
        "{consent}"
    );
    assert!(consent.contains("Photo Printer"), "{consent}");
    assert!(consent.contains("runs on your own computer"), "{consent}");
    assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
    let code = query.get("code").expect("code");
    let (status, tokens) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = common::jwt_claims(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id_token["aud"], client_id.as_str());
    let access = common::jwt_claims(tokens["access_token"].as_str().expect("access token"));
    assert_eq!(access["client_id"], client_id.as_str());
    assert_eq!(access["scope"], "offline_access openid");
    // The refresh token works too: the document lists the grant.
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let (status, refreshed) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, 200, "{refreshed}");
    // The client is public: a secret is refused.
    let (status, body) = env
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", &client_id),
            ("client_secret", "guess"),
        ])
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    // Scopes the server does not give self-registered clients are not the client's,
    // whatever its document asks for.
    let (status, page) = env
        .refused_with(&client_id, &[("scope", "openid admin")])
        .await;
    assert_eq!(status, 302, "{page}");
    assert!(page.contains("error=invalid_scope"), "{page}");
    // One fetch served the whole flow.
    assert_eq!(env.docs.hits("/apps/printer.json"), 1);
}

impl Env {
    /// GET /authorize with extra parameters: the status and the Location (or the page).
    async fn refused_with(&self, client_id: &str, extra: &[(&str, &str)]) -> (u16, String) {
        let response = browser()
            .get(self.authorize_url(client_id, extra))
            .send()
            .await
            .expect("authorize");
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return (status, self.absolute(&response));
        }
        (status, response.text().await.expect("page"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_urls_that_break_the_rules_are_refused_before_any_fetch() {
    let env = loopback_env().await;
    env.serve("/app.json", |_| {});
    let base = env.docs.url("/app.json");
    let dir = env.docs.url("/x");
    for (client_id, words) in [
        (format!("{base}?v=1"), "must not contain a query"),
        (format!("{base}#frag"), "must not contain a fragment"),
        (
            format!("{dir}/../app.json"),
            "must not contain . or .. path segments",
        ),
        (
            format!("{dir}/./app.json"),
            "must not contain . or .. path segments",
        ),
        (
            format!("{dir}/%2e%2e/app.json"),
            "must not contain . or .. path segments",
        ),
        (
            format!("http://user@127.0.0.1:{}/app.json", env.docs.port),
            "must not contain user information",
        ),
        (
            format!("http://localhost:{}/app.json", env.docs.port),
            "must use https",
        ),
        ("http://10.0.0.1/app.json".to_string(), "must use https"),
    ] {
        assert_refused(&env, &client_id, words).await;
    }
    assert_eq!(env.docs.hits("/app.json"), 0, "nothing was fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_that_cannot_be_used_are_refused_with_a_clear_error() {
    let env = loopback_env().await;
    let other = DocServer::start().await;
    let mismatch = env.serve("/mismatch.json", |doc| {
        doc["client_id"] = "https://printer.example/client.json".into();
    });
    let secret_method = env.serve("/secret-method.json", |doc| {
        doc["token_endpoint_auth_method"] = "client_secret_basic".into();
    });
    let with_secret = env.serve("/with-secret.json", |doc| {
        doc["client_secret"] = "hunter2".into();
    });
    let other_grant = env.serve("/grant.json", |doc| {
        doc["grant_types"] = json!(["client_credentials"]);
    });
    let no_redirects = env.serve("/no-redirects.json", |doc| {
        doc.as_object_mut().expect("object").remove("redirect_uris");
    });
    let big = env.docs.url("/big.json");
    let mut padded = document(&big);
    padded["padding"] = " ".repeat(5 * 1024 * 1024).into();
    env.docs
        .set("/big.json", Reply::json(padded.to_string(), &[]));
    let moved = env.docs.url("/moved.json");
    other.set(
        "/moved.json",
        Reply::json(document(&moved).to_string(), &[]),
    );
    env.docs.set(
        "/moved.json",
        Reply::redirect(302, &other.url("/moved.json")),
    );
    let html = env.docs.url("/html.json");
    env.docs.set(
        "/html.json",
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: document(&html).to_string().into_bytes(),
            delay: Duration::ZERO,
        },
    );
    let broken = env.docs.url("/broken.json");
    env.docs.set(
        "/broken.json",
        Reply::json("{\"client_id\": SECRET-MARKER", &[]),
    );
    for (client_id, words) in [
        (mismatch, "client_id is not the URL it was fetched from"),
        (secret_method, "needs a shared secret"),
        (with_secret, "cannot hold a shared secret"),
        (
            other_grant,
            "grant_types may hold authorization_code and refresh_token only",
        ),
        (no_redirects, "must list redirect_uris"),
        (big, "larger than 5120 bytes"),
        (moved, "redirects are not followed"),
        (html, "not JSON (Content-Type text/html)"),
        (broken.clone(), "not valid JSON"),
        (env.docs.url("/missing.json"), "HTTP 404"),
    ] {
        assert_refused(&env, &client_id, words).await;
    }
    assert_eq!(
        other.hits("/moved.json"),
        0,
        "the redirect was not followed"
    );
    let (_, page) = env.refused(&broken).await;
    assert!(!page.contains("SECRET-MARKER"), "{page}");
    let log = std::fs::read_to_string(env.setup.log_path()).expect("log");
    assert!(!log.contains("SECRET-MARKER"), "a body reached the log");
    // The token endpoint refuses them too, as invalid_client.
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "whatever"),
            ("redirect_uri", CALLBACK),
            ("client_id", &env.docs.url("/missing.json")),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("HTTP 404")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_document_server_is_cut_off_at_the_deadline() {
    let env = loopback_env().await;
    env.docs.set(
        "/dribble.json",
        Reply::Dribble {
            every: Duration::from_millis(200),
        },
    );
    let started = Instant::now();
    assert_refused(
        &env,
        &env.docs.url("/dribble.json"),
        "did not answer in full within 5s",
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    // Sigil still answers at once meanwhile and after.
    let (status, _) = env.refused("https://app.example/c?x").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_use_addresses_are_never_fetched() {
    // Loopback allowed (for the tests' documents) still leaves every other block shut.
    let env = loopback_env().await;
    for client_id in [
        "https://169.254.169.254/latest/meta-data/client.json",
        "https://10.1.2.3/client.json",
        "https://192.168.0.1/client.json",
        "https://[fd00::1]/client.json",
        "https://[::ffff:169.254.169.254]/client.json",
        "https://100.64.0.1/client.json",
    ] {
        assert_refused(&env, client_id, "special-use address").await;
    }
    // And without the setting, loopback is shut as well: by IP or by name.
    let production = env_without_loopback().await;
    production.serve("/app.json", |_| {});
    let port = production.docs.port;
    assert_refused(
        &production,
        &production.docs.url("/app.json"),
        "must use https",
    )
    .await;
    for client_id in [
        format!("https://127.0.0.1:{port}/app.json"),
        format!("https://localhost:{port}/app.json"),
        format!("https://[::1]:{port}/app.json"),
    ] {
        assert_refused(&production, &client_id, "special-use address").await;
    }
    assert_eq!(production.docs.hits("/app.json"), 0);
}

async fn env_without_loopback() -> Env {
    env(&[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_and_the_documents_redirect_uris_are_required() {
    let env = loopback_env().await;
    let client_id = env.serve("/app.json", |_| {});
    // No code_challenge: the error goes to the (listed) redirect URI.
    let (status, location) = env
        .refused_with(
            &client_id,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        )
        .await;
    assert_eq!(status, 302, "{location}");
    assert!(location.starts_with(CALLBACK), "{location}");
    let query: HashMap<String, String> = url::Url::parse(&location)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert!(
        query
            .get("error_description")
            .is_some_and(|d| d.contains("PKCE")),
        "{query:?}"
    );
    // A plain challenge: refused too.
    let (status, location) = env
        .refused_with(&client_id, &[("code_challenge_method", "plain")])
        .await;
    assert_eq!(status, 302);
    assert!(location.contains("error=invalid_request"), "{location}");
    // A redirect URI the document does not list: an error page, no redirect.
    let (status, page) = env
        .refused_with(&client_id, &[("redirect_uri", "https://evil.example/cb")])
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("not registered"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_document_make_one_fetch_and_failures_are_kept() {
    let env = loopback_env().await;
    let url = env.docs.url("/slow.json");
    env.docs.set(
        "/slow.json",
        Reply::json(
            document(&url).to_string(),
            &[("Cache-Control", "max-age=3600")],
        )
        .delayed(Duration::from_millis(500)),
    );
    let mut requests = Vec::new();
    for _ in 0..20 {
        let authorize = env.authorize_url(&url, &[]);
        requests.push(tokio::spawn(async move {
            browser()
                .get(authorize)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for request in requests {
        let status = request.await.expect("task").expect("answer");
        assert_eq!(status, 303, "to the sign-in page");
    }
    assert_eq!(env.docs.hits("/slow.json"), 1);
    // A failing URL: a flood of requests costs one fetch while the failure is kept.
    let missing = env.docs.url("/missing.json");
    for _ in 0..10 {
        assert_refused(&env, &missing, "HTTP 404").await;
    }
    assert_eq!(env.docs.hits("/missing.json"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_client_may_use_resources_open_to_self_registered_clients() {
    let env = loopback_env().await;
    let api = "https://notes.example/mcp";
    let closed = "https://admin.example/api";
    env.setup.sigil(
        &[
            "resource",
            "add",
            "--uri",
            api,
            "--name",
            "Notes",
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
            closed,
            "--name",
            "Admin",
            "--scope",
            "admin:all",
            "--no-self-registered-clients",
        ],
        None,
    );
    let client_id = env.serve("/notes.json", |doc| {
        doc["scope"] = "openid notes:read admin:all".into();
    });
    let (query, _) = env
        .sign_in(&env.authorize_url(
            &client_id,
            &[("scope", "openid notes:read"), ("resource", api)],
        ))
        .await;
    let (status, tokens) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", query.get("code").expect("code")),
            ("redirect_uri", CALLBACK),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(status, 200, "{tokens}");
    let access = common::jwt_claims(tokens["access_token"].as_str().expect("access token"));
    assert_eq!(access["aud"], api, "{access}");
    assert!(
        access["scope"]
            .as_str()
            .is_some_and(|s| s.contains("notes:read")),
        "{access}"
    );
    // A resource closed to self-registered clients, and its scope: refused.
    let (status, location) = env
        .refused_with(&client_id, &[("scope", "openid"), ("resource", closed)])
        .await;
    assert_eq!(status, 302, "{location}");
    assert!(location.contains("error=invalid_target"), "{location}");
    let (status, location) = env
        .refused_with(&client_id, &[("scope", "openid admin:all")])
        .await;
    assert_eq!(status, 302, "{location}");
    assert!(location.contains("error=invalid_scope"), "{location}");
}

/// A document client that authenticates with its own key (`private_key_jwt`, keys inline
/// in the document): the code exchange needs a signed assertion, and the assertion works
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_client_with_its_own_key_signs_client_assertions() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let jwk = json!({"kty": "RSA", "kid": "doc-key", "use": "sig", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())});
    let signing = jsonwebtoken::EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().expect("pem"))
        .expect("key");
    let env = loopback_env().await;
    let client_id = env.serve("/apps/keyed.json", |doc| {
        doc["token_endpoint_auth_method"] = json!("private_key_jwt");
        doc["jwks"] = json!({ "keys": [jwk] });
    });
    let assertion = |audience: &str| {
        let now = common::unix_now();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("doc-key".into());
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": audience,
            "iat": now, "exp": now + 60, "jti": sigil_core::secret::random_token(16),
        });
        jsonwebtoken::encode(&header, &claims, &signing).expect("sign")
    };
    let (query, _consent) = env.sign_in(&env.authorize_url(&client_id, &[])).await;
    let code = query.get("code").expect("code").clone();
    let exchange = |extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.clone()),
            ("redirect_uri", CALLBACK.to_string()),
            ("client_id", client_id.clone()),
            ("code_verifier", VERIFIER.to_string()),
        ];
        form.extend(extra);
        form
    };
    const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let as_pairs = |form: &[(&'static str, String)]| -> Vec<(String, String)> {
        form.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let post = |form: Vec<(String, String)>| {
        let url = format!("{}/token", env.base());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .form(&form)
                .send()
                .await
                .expect("token");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    // Without an assertion the client cannot authenticate.
    let (status, body) = post(as_pairs(&exchange(vec![]))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // An assertion for another audience is refused.
    let wrong = exchange(vec![
        ("client_assertion_type", TYPE.into()),
        ("client_assertion", assertion("https://elsewhere.example")),
    ]);
    let (status, body) = post(as_pairs(&wrong)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // With one signed by the document's key, the code is exchanged.
    let signed = assertion(env.base());
    let good = exchange(vec![
        ("client_assertion_type", TYPE.into()),
        ("client_assertion", signed.clone()),
    ]);
    let (status, tokens) = post(as_pairs(&good)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        common::jwt_claims(tokens["access_token"].as_str().expect("token"))["client_id"],
        client_id.as_str()
    );
    // The same assertion again (at a refresh) is a replay.
    let replay = vec![
        ("grant_type".to_string(), "refresh_token".to_string()),
        (
            "refresh_token".to_string(),
            tokens["refresh_token"].as_str().expect("rt").to_string(),
        ),
        ("client_assertion_type".to_string(), TYPE.to_string()),
        ("client_assertion".to_string(), signed),
    ];
    let (status, body) = post(replay.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // A fresh one refreshes.
    let mut fresh = replay;
    fresh[3].1 = assertion(&format!("{}/token", env.base()));
    let (status, body) = post(fresh).await;
    assert_eq!(status, 200, "{body}");
}
