//! Attacks on the browser-app features against the real `sigil` binary: CORS header tricks
//! (look-alike, `null`, several and comma-joined origins, odd preflights, one client's
//! origin reading another client's answers, endpoints outside the CORS set), and
//! back-channel logout abuse (URIs that point where they should not, a redirect meant to
//! bounce the token elsewhere, one user's logout reaching another user's sessions).

mod common;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;
use axum::{Form, Router};
use common::hidden;
use common::process::{free_port, Server, Setup};
use common::TestDb;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::redirect::Policy;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "browser apps attacks password 3f9a";
const SPA_ORIGIN: &str = "http://127.0.0.1:5173";
const OTHER_SPA_ORIGIN: &str = "http://127.0.0.1:5174";
const VERIFIER: &str = "browser-apps-attack-code-verifier-0123456789-abcdefghijkl";

fn challenge() -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER))
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

fn add_user(setup: &Setup, username: &str) {
    setup.sigil(
        &["user", "add", "--username", username, "--password-stdin"],
        Some(PASSWORD),
    );
}

fn add_client(setup: &Setup, args: &[&str]) -> (String, Option<String>) {
    let mut all = vec!["client", "add", "--first-party", "--json"];
    all.extend_from_slice(args);
    let out: Value = serde_json::from_str(&setup.sigil(&all, None)).expect("json");
    (
        out["client_id"].as_str().expect("id").to_string(),
        out["client_secret"].as_str().map(str::to_string),
    )
}

/// `sigil client add …` expected to fail; returns its stderr.
fn refused_client(db: &TestDb, setup: &Setup, args: &[&str]) -> String {
    let out = std::process::Command::new(common::process::SIGIL)
        .args(["--database-url", db.url(), "--keys-dir"])
        .arg(setup.keys())
        .args(["client", "add", "--name", "bad"])
        .args(args)
        .output()
        .expect("run");
    assert!(!out.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn absolute(base: &str, response: &reqwest::Response) -> String {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    }
}

/// The browser flow from `/authorize` to the redirect URI, signing in when asked.
async fn code(
    browser: &reqwest::Client,
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    username: &str,
) -> String {
    let mut url = url::Url::parse(&format!("{base}/authorize")).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid offline_access")
        .append_pair("state", "st")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", &challenge())
        .append_pair("code_challenge_method", "S256");
    let mut next = url.to_string();
    for _ in 0..6 {
        if next.starts_with(redirect_uri) {
            let query: HashMap<String, String> = url::Url::parse(&next)
                .expect("callback")
                .query_pairs()
                .into_owned()
                .collect();
            return query.get("code").expect("code").clone();
        }
        let response = browser.get(&next).send().await.expect("get");
        if response.status().is_redirection() {
            next = absolute(base, &response);
            continue;
        }
        let html = response.text().await.expect("page");
        let response = browser
            .post(format!("{base}/login"))
            .form(&[
                ("csrf", hidden(&html, "csrf")),
                ("req", hidden(&html, "req")),
                ("username", username.to_string()),
                ("password", PASSWORD.to_string()),
            ])
            .send()
            .await
            .expect("post login");
        assert!(response.status().is_redirection(), "{}", response.status());
        next = absolute(base, &response);
    }
    panic!("the flow did not reach {redirect_uri}");
}

/// A request with these raw headers (several of one name allowed).
async fn send(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
) -> (u16, HeaderMap) {
    let mut request = reqwest::Client::new().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(form) = form {
        request = request.form(form);
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn has_no_cors(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_header_tricks_and_cross_client_reads_get_nothing() {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    add_user(&setup, "ada");
    let callback_a = format!("{SPA_ORIGIN}/callback");
    let callback_b = format!("{OTHER_SPA_ORIGIN}/callback");
    let (spa_a, _) = add_client(
        &setup,
        &[
            "--name",
            "SPA A",
            "--public",
            "--redirect-uri",
            &callback_a,
            "--allowed-origin",
            SPA_ORIGIN,
        ],
    );
    let (spa_b, _) = add_client(
        &setup,
        &[
            "--name",
            "SPA B",
            "--public",
            "--redirect-uri",
            &callback_b,
            "--allowed-origin",
            OTHER_SPA_ORIGIN,
        ],
    );
    // Registration: nothing that would widen the match.
    for bad in [
        "null",
        "NULL",
        "*",
        "http://127.0.0.1:5173/",
        "http://127.0.0.1:5173/*",
        "http://*.example.com",
        "https://*.example.com",
        "https://a.example.com, https://b.example.com",
        "https://a.example.com https://b.example.com",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io:5173",
        "file://",
        "chrome-extension://abcdefghijklmnop",
        "data:text/html,hi",
    ] {
        let stderr = refused_client(
            &db,
            &setup,
            &[
                "--public",
                "--redirect-uri",
                &callback_a,
                "--allowed-origin",
                bad,
            ],
        );
        assert!(stderr.contains("allowed origin"), "{bad}: {stderr}");
    }
    let server = Server::start(&setup);
    let base = server.base.clone();

    // Look-alike origins get no CORS headers on a preflight, on any of the three endpoints.
    for path in ["/token", "/revoke", "/userinfo"] {
        let url = format!("{base}{path}");
        for origin in [
            "null",
            "HTTP://127.0.0.1:5173",
            "http://127.0.0.1:5173/",
            "http://127.0.0.1:51730",
            "http://127.0.0.1:517",
            "http://127.0.0.1",
            "https://127.0.0.1:5173",
            "http://localhost:5173",
            // (Leading and trailing spaces are HTTP's own whitespace, stripped before us.)
            "http://127.0.0.1:5173, http://evil.example",
            "http://evil.example, http://127.0.0.1:5173",
            "http://user@127.0.0.1:5173",
            "http://127.0.0.1:5173/path",
            "*",
        ] {
            let (status, headers) = send(
                reqwest::Method::OPTIONS,
                &url,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                ],
                None,
            )
            .await;
            assert!(status < 300, "{path} {origin:?}: {status}");
            assert!(
                has_no_cors(&headers),
                "{path}: {origin:?} got CORS headers: {headers:?}"
            );
        }
        // Two Origin headers: whatever is answered names one registered origin exactly.
        for pair in [
            [SPA_ORIGIN, "http://evil.example"],
            ["http://evil.example", SPA_ORIGIN],
        ] {
            let (_, headers) = send(
                reqwest::Method::OPTIONS,
                &url,
                &[
                    ("origin", pair[0]),
                    ("origin", pair[1]),
                    ("access-control-request-method", "POST"),
                ],
                None,
            )
            .await;
            let allowed: Vec<&str> = headers
                .get_all("access-control-allow-origin")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            assert!(
                allowed.is_empty() || allowed == [SPA_ORIGIN],
                "{path} {pair:?}: {allowed:?}"
            );
        }
        // Odd preflights: the answer never widens to the asked method or headers, and
        // never allows credentials.
        let (_, headers) = send(
            reqwest::Method::OPTIONS,
            &url,
            &[
                ("origin", SPA_ORIGIN),
                ("access-control-request-method", "DELETE"),
                (
                    "access-control-request-headers",
                    "cookie, x-evil, authorization",
                ),
            ],
            None,
        )
        .await;
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(SPA_ORIGIN)
        );
        let methods = header(&headers, "access-control-allow-methods").unwrap_or_default();
        assert!(
            !methods.contains("DELETE") && !methods.contains('*'),
            "{methods}"
        );
        let allowed = header(&headers, "access-control-allow-headers").unwrap_or_default();
        assert!(
            !allowed.contains("cookie") && !allowed.contains("x-evil") && !allowed.contains('*'),
            "{allowed}"
        );
        assert!(headers.get("access-control-allow-credentials").is_none());
    }

    // Endpoints outside the CORS set answer no browser origin, registered or not.
    for (method, path) in [
        (reqwest::Method::POST, "/introspect"),
        (reqwest::Method::GET, "/authorize"),
        (reqwest::Method::POST, "/logout"),
        (reqwest::Method::GET, "/account"),
    ] {
        let (_, headers) = send(
            method,
            &format!("{base}{path}"),
            &[("origin", SPA_ORIGIN)],
            None,
        )
        .await;
        assert!(
            headers.get("access-control-allow-origin").is_none(),
            "{path}: {headers:?}"
        );
    }

    // A token for A, obtained the ordinary way.
    let browser = browser();
    let code_a = code(&browser, &base, &spa_a, &callback_a, "ada").await;
    let (status, headers) = send(
        reqwest::Method::POST,
        &format!("{base}/token"),
        &[("origin", OTHER_SPA_ORIGIN)],
        Some(&[
            ("grant_type", "authorization_code"),
            ("code", code_a.as_str()),
            ("redirect_uri", callback_a.as_str()),
            ("client_id", spa_a.as_str()),
            ("code_verifier", VERIFIER),
        ]),
    )
    .await;
    // B's page may make the request (a form post needs no CORS) but must not read the
    // tokens it got for A.
    assert_eq!(status, 200);
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "B's origin read A's token response: {headers:?}"
    );
    let code_a = code(&browser, &base, &spa_a, &callback_a, "ada").await;
    let tokens: Value = reqwest::Client::new()
        .post(format!("{base}/token"))
        .header("origin", SPA_ORIGIN)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code_a.as_str()),
            ("redirect_uri", callback_a.as_str()),
            ("client_id", spa_a.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");

    // A's access token at userinfo from B's (registered) origin: not readable there.
    let (status, headers) = send(
        reqwest::Method::GET,
        &format!("{base}/userinfo"),
        &[
            ("origin", OTHER_SPA_ORIGIN),
            ("authorization", &format!("Bearer {access}")),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );
    // The same in the form body (POST), and with a mixed-case scheme word.
    let (status, headers) = send(
        reqwest::Method::POST,
        &format!("{base}/userinfo"),
        &[("origin", OTHER_SPA_ORIGIN)],
        Some(&[("access_token", access)]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );

    // A's refresh token, sent by B's origin naming client B: refused, and B's origin reads
    // only the refusal (it is B's answer), never a token.
    let response = reqwest::Client::new()
        .post(format!("{base}/token"))
        .header("origin", OTHER_SPA_ORIGIN)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", spa_b.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert!(body.get("access_token").is_none(), "{body}");
    // Naming A from B's origin: the answer is A's, B's origin cannot read it.
    let (status, headers) = send(
        reqwest::Method::POST,
        &format!("{base}/revoke"),
        &[("origin", OTHER_SPA_ORIGIN)],
        Some(&[("token", refresh), ("client_id", spa_a.as_str())]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );

    // Real responses never carry `*` or credentials.
    let (_, headers) = send(
        reqwest::Method::POST,
        &format!("{base}/token"),
        &[("origin", SPA_ORIGIN)],
        Some(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", spa_a.as_str()),
        ]),
    )
    .await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(SPA_ORIGIN)
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
}

/// A client's back-channel endpoint: `/ok` keeps tokens, `/bounce` redirects to `/ok`.
#[derive(Clone, Default)]
struct Inbox {
    tokens: Arc<Mutex<Vec<(String, String)>>>,
    bounced: Arc<Mutex<usize>>,
}

#[derive(serde::Deserialize)]
struct LogoutForm {
    logout_token: String,
}

async fn receiver(port: u16, inbox: Inbox) -> tokio::task::JoinHandle<()> {
    async fn keep(
        State((inbox, name)): State<(Inbox, &'static str)>,
        Form(form): Form<LogoutForm>,
    ) -> axum::http::StatusCode {
        if let Ok(mut tokens) = inbox.tokens.lock() {
            tokens.push((name.to_string(), form.logout_token));
        }
        axum::http::StatusCode::OK
    }
    async fn bounce(State(inbox): State<Inbox>) -> axum::response::Response {
        if let Ok(mut bounced) = inbox.bounced.lock() {
            *bounced += 1;
        }
        Redirect::temporary("/ok").into_response()
    }
    let app = Router::new()
        .route("/ok", post(keep).with_state((inbox.clone(), "ok")))
        .route("/other", post(keep).with_state((inbox.clone(), "other")))
        .route("/bounce", post(bounce).with_state(inbox));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind receiver");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

async fn id_token(base: &str, client: &(String, String), code: &str, redirect_uri: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token");
    let tokens: Value = response.json().await.expect("json");
    tokens["id_token"].as_str().expect("id token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_goes_only_to_the_registered_uri_and_only_for_the_users_own_session() {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    add_user(&setup, "lou");
    add_user(&setup, "eve");
    let port = free_port();
    // URIs that would send tokens somewhere unsafe are refused at registration.
    let redirect = format!("http://127.0.0.1:{port}/cb");
    for bad in [
        "http://rp.example.com/bcl",
        "http://localhost:8091/bcl",
        "http://127.0.0.1.nip.io/bcl",
        "https://user:pw@rp.example.com/bcl",
        "https://rp.example.com/bcl#x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/x",
        "ftp://127.0.0.1/x",
        "javascript:alert(1)",
        "//rp.example.com/bcl",
        "https://rp.example.com/bcl\r\nX-Injected: 1",
    ] {
        let stderr = refused_client(
            &db,
            &setup,
            &["--redirect-uri", &redirect, "--backchannel-logout-uri", bad],
        );
        assert!(stderr.to_lowercase().contains("logout"), "{bad}: {stderr}");
    }
    let client = |name: &str, path: &str| {
        let redirect = format!("http://127.0.0.1:{port}/{name}/cb");
        let uri = format!("http://127.0.0.1:{port}/{path}");
        let (id, secret) = add_client(
            &setup,
            &[
                "--name",
                name,
                "--redirect-uri",
                &redirect,
                "--backchannel-logout-uri",
                &uri,
            ],
        );
        ((id, secret.expect("secret")), redirect)
    };
    let (honest, honest_cb) = client("honest", "ok");
    let (bouncing, bouncing_cb) = client("bouncing", "bounce");
    let inbox = Inbox::default();
    let _receiver = receiver(port, inbox.clone()).await;
    let server = Server::start(&setup);
    let base = server.base.clone();

    // Lou and Eve each sign in to the honest app; Lou also to the bouncing one.
    let lou = browser();
    let code_lou = code(&lou, &base, &honest.0, &honest_cb, "lou").await;
    let lou_id = id_token(&base, &honest, &code_lou, &honest_cb).await;
    let lou_sid = payload(&lou_id)["sid"].as_str().expect("sid").to_string();
    let _ = code(&lou, &base, &bouncing.0, &bouncing_cb, "lou").await;
    let eve = browser();
    let code_eve = code(&eve, &base, &honest.0, &honest_cb, "eve").await;
    let eve_id = id_token(&base, &honest, &code_eve, &honest_cb).await;
    let eve_sid = payload(&eve_id)["sid"].as_str().expect("sid").to_string();
    assert_ne!(lou_sid, eve_sid);

    // Eve presents Lou's ID token as the hint in her own browser: the hint's user is not
    // hers, so Sigil asks her to confirm rather than ending anything of Lou's.
    let response = eve
        .get(format!("{base}/logout?id_token_hint={lou_id}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("page");
    assert!(page.contains("csrf"), "a confirmation page: {page}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        inbox.tokens.lock().expect("lock").is_empty(),
        "nothing ended yet"
    );

    // Lou signs out: one token, to the honest app, about Lou's session only.
    let response = lou
        .get(format!("{base}/logout?id_token_hint={lou_id}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while inbox.tokens.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "no logout token arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The bouncing app's delivery is tried (and refused by the redirect) but never
    // followed to `/ok`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while *inbox.bounced.lock().expect("lock") == 0 {
        assert!(
            Instant::now() < deadline,
            "the bouncing URI was never called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tokens = inbox.tokens.lock().expect("lock").clone();
    assert_eq!(tokens.len(), 1, "exactly one token reached /ok: {tokens:?}");
    let claims = payload(&tokens[0].1);
    assert_eq!(claims["aud"], honest.0.as_str());
    assert_eq!(claims["sid"], lou_sid.as_str());
    assert_eq!(claims["sub"], payload(&lou_id)["sub"]);
    assert_ne!(claims["sub"], payload(&eve_id)["sub"]);

    // Eve's session is untouched: she still gets a code without signing in.
    let mut url = url::Url::parse(&format!("{base}/authorize")).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", &honest.0)
        .append_pair("redirect_uri", &honest_cb)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", &challenge())
        .append_pair("code_challenge_method", "S256");
    let response = eve.get(url.as_str()).send().await.expect("authorize");
    assert!(response.status().is_redirection());
    assert!(
        absolute(&base, &response).starts_with(&honest_cb),
        "Eve is still signed in"
    );
}
