//! The passkey endpoints over plain HTTP, against the real binary with the issuer
//! `http://localhost:PORT` (WebAuthn needs a host name): the options endpoints refuse a
//! post without the CSRF token, hand out options as the brief asks (a discoverable
//! credential with user verification required, the passwordless request with conditional
//! mediation), keep one ceremony that serves once, and a garbage, oversized or unknown
//! credential gets a clean 4xx page, never a 500. The browser ceremonies themselves are in
//! `browser_passkeys.rs`.

mod common;

use common::process::{free_port, Server, Setup};
use common::{hidden, TestDb};
use reqwest::redirect::Policy;
use serde_json::Value;

const PASSWORD: &str = "a pass phrase of my own";

struct Env {
    _db: TestDb,
    _setup: Setup,
    server: Server,
    base: String,
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn env() -> Env {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    setup.sigil(
        &["user", "add", "--username", "frank", "--password-stdin"],
        Some(PASSWORD),
    );
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let server = Server::start_on(&setup, &[], &["--issuer", &base], port, &[]);
    Env {
        _db: db,
        _setup: setup,
        server,
        base,
    }
}

impl Env {
    /// The sign-in page's CSRF token (and the session cookie, in `http`).
    async fn csrf(&self, http: &reqwest::Client, path: &str) -> String {
        let html = http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        hidden(&html, "csrf")
    }

    async fn post(&self, http: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> Reply {
        let response = http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("post");
        Reply {
            status: response.status().as_u16(),
            content_type: header(&response, "content-type"),
            cache_control: header(&response, "cache-control"),
            location: header(&response, "location"),
            body: response.text().await.expect("body"),
        }
    }
}

struct Reply {
    status: u16,
    content_type: String,
    cache_control: String,
    location: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_endpoints_refuse_forgeries_and_garbage_cleanly() {
    let env = env().await;
    let http = browser();
    let csrf = env.csrf(&http, "/login").await;

    // The script is served from Sigil, and the sign-in page uses it.
    let script = http
        .get(format!("{}/static/passkeys.js", env.base))
        .send()
        .await
        .expect("script");
    assert_eq!(script.status().as_u16(), 200);
    assert!(header(&script, "content-type").starts_with("text/javascript"));
    let page = http
        .get(format!("{}/login", env.base))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    assert!(page.contains("<script src=\"/static/passkeys.js\" defer></script>"));
    assert!(page.contains("autocomplete=\"username webauthn\""));
    assert!(page.contains("Sign in with a passkey"));

    // No CSRF token: refused with the "form expired" page, whatever the endpoint.
    for path in [
        "/login/passkey/options",
        "/login/second-factor/passkey/options",
        "/account/security/passkey/options",
        "/login/passkey",
    ] {
        let reply = env.post(&http, path, &[("csrf", "forged")]).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(reply.content_type.starts_with("text/html"), "{path}");
        assert!(reply.body.contains("This form has expired"), "{path}");
    }

    // Finishing with no ceremony in progress.
    let reply = env
        .post(
            &http,
            "/login/passkey",
            &[("csrf", &csrf), ("credential", "{}")],
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("This passkey request has expired"));

    // The passwordless options: any discoverable credential, user verification required.
    let reply = env
        .post(&http, "/login/passkey/options", &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type.starts_with("application/json"));
    assert_eq!(reply.cache_control, "no-store");
    let options = reply.json();
    assert_eq!(options["mediation"], "conditional", "{options}");
    assert_eq!(options["publicKey"]["rpId"], "localhost", "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(options["publicKey"]["challenge"].is_string());
    assert!(options["publicKey"]["allowCredentials"]
        .as_array()
        .is_none_or(Vec::is_empty));

    // Garbage: the sign-in page again with a message (401); the ceremony is used up.
    let reply = env
        .post(
            &http,
            "/login/passkey",
            &[("csrf", &csrf), ("credential", "not json at all")],
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains("did not send a passkey"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("<h1>Sign in</h1>"));
    let reply = env
        .post(
            &http,
            "/login/passkey",
            &[("csrf", &csrf), ("credential", "not json at all")],
        )
        .await;
    assert_eq!(reply.status, 400, "served once: {}", reply.body);

    // Too big: refused before it is parsed.
    env.post(&http, "/login/passkey/options", &[("csrf", &csrf)])
        .await;
    let huge = format!("{{\"id\":\"{}\"}}", "A".repeat(20 * 1024));
    let reply = env
        .post(
            &http,
            "/login/passkey",
            &[("csrf", &csrf), ("credential", &huge)],
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(reply.body.contains("did not send a passkey"));

    // Well-formed, but no such passkey here.
    env.post(&http, "/login/passkey/options", &[("csrf", &csrf)])
        .await;
    let unknown = serde_json::json!({
        "id": "AAAAAAAAAAAAAAAAAAAAAA",
        "rawId": "AAAAAAAAAAAAAAAAAAAAAA",
        "type": "public-key",
        "response": {
            "authenticatorData": "AAAA",
            "clientDataJSON": "AAAA",
            "signature": "AAAA",
            "userHandle": "AAAAAAAAAAAAAAAAAAAAAA"
        }
    })
    .to_string();
    let reply = env
        .post(
            &http,
            "/login/passkey",
            &[("csrf", &csrf), ("credential", &unknown)],
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(reply.body.contains("not registered"), "{}", reply.body);

    // Nobody half signed in: the second step's options send the browser to sign in.
    let reply = env
        .post(
            &http,
            "/login/second-factor/passkey/options",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.location, "/login");

    // Signed in: the registration options, and a garbage credential refused on the page.
    let reply = env
        .post(
            &http,
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "frank"),
                ("password", PASSWORD),
                ("next", "/account/security"),
            ],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let csrf = env.csrf(&http, "/account/security").await;
    let reply = env
        .post(
            &http,
            "/account/security/passkey/options",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let options = reply.json();
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost", "{options}");
    assert_eq!(public_key["rp"]["name"], "Sigil");
    assert_eq!(public_key["user"]["name"], "frank");
    let selection = &public_key["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(selection["userVerification"], "required");
    let reply = env
        .post(
            &http,
            "/account/security/passkey",
            &[
                ("csrf", &csrf),
                ("name", "Key"),
                ("credential", "{\"x\":1}"),
            ],
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        reply.body.contains("did not send a passkey"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("<h1>Security</h1>"));
    assert!(reply.body.contains("No passkey."), "nothing was added");

    env.server.stop();
}
