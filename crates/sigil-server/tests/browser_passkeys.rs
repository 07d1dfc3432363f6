//! Passkeys in a real browser (Debian's headless chromium through chromedriver, driven
//! with fantoccini), with chromedriver's virtual authenticator (WebDriver's WebAuthn
//! extension) standing in for the device: a passkey added on `/account/security` (the
//! first factor: recovery codes shown), then an app's sign-in with the password and the
//! passkey as the second step, then a passwordless "Sign in with a passkey", then the
//! sign-in page's autofill (conditional mediation) signing in by itself; every ID token
//! says `acr` phr. Sigil runs with the issuer `http://localhost:PORT`: WebAuthn
//! refuses an IP address as the relying party. Every page is checked for a clean console
//! under its CSP and photographed into `target/tmp/screenshots/passkeys-*.png`.
//! Skipped with a notice when chromedriver is missing, except under CI=true.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::browser::callback_server;
use common::process::{free_port, Server, Setup};
use common::{webdriver, TestDb};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigil_core::secret::random_token;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USERNAME: &str = "erin";
const PASSWORD: &str = "a pass phrase of my own";
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_register_second_step_and_passwordless_in_a_real_browser() {
    let started = Instant::now();
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    setup.sigil(
        &[
            "user",
            "add",
            "--username",
            USERNAME,
            "--email",
            "erin@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let server = Server::start_on(&setup, &[], &["--issuer", &base], port, &[]);
    let app_port = callback_server().await;
    let callback = format!("http://127.0.0.1:{app_port}/callback");
    let client: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Todo App",
            "--redirect-uri",
            &callback,
            "--scopes",
            "openid,profile",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let app = App {
        base: base.clone(),
        port: app_port,
        callback,
        client_id: client["client_id"].as_str().expect("client_id").into(),
        client_secret: client["client_secret"]
            .as_str()
            .expect("client_secret")
            .into(),
        http: reqwest::Client::new(),
    };
    let (_driver, browser, _profile) = webdriver::open(driver_path, "900,1000").await;
    webdriver::add_virtual_authenticator(&browser).await;
    let pages = Pages {
        browser: &browser,
        base: base.clone(),
        shots: webdriver::screenshot_dir(),
    };

    add_a_passkey(&pages).await;
    // The virtual authenticator answers an autofill (conditional) request at once, as if
    // the user had picked the passkey: the sign-in page would sign in by itself. Until
    // flow 4, pages are told the browser has no autofill for passkeys.
    let no_autofill = webdriver::cdp(
        &browser,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": "if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = function () { return Promise.resolve(false); };" }),
    )
    .await;
    let second_step = Instant::now();
    password_then_passkey(&pages, &app).await;
    let second_step = second_step.elapsed();
    let passwordless = Instant::now();
    passwordless_sign_in(&pages, &app).await;
    let passwordless = passwordless.elapsed();
    webdriver::cdp(
        &browser,
        "Page.removeScriptToEvaluateOnNewDocument",
        json!({ "identifier": no_autofill["identifier"] }),
    )
    .await;
    let autofill = Instant::now();
    autofill_sign_in(&pages, &app).await;
    let autofill = autofill.elapsed();

    let shots = pages.shots;
    browser.close().await.expect("close");
    server.stop();
    // The stop wrote the activity counts: two sign-ins with a passkey alone and one
    // passkey as the second step, none refused.
    let pool = sqlx::SqlitePool::connect(db.url()).await.expect("open");
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT label, CAST(SUM(count) AS BIGINT) FROM activity_minutes WHERE metric = 'sign_in' AND (label LIKE 'passkey.%' OR label LIKE 'second_factor.%') GROUP BY label ORDER BY label",
    )
    .fetch_all(&pool)
    .await
    .expect("counts");
    pool.close().await;
    assert_eq!(
        counted,
        vec![
            ("passkey.ok".to_string(), 2),
            ("second_factor.ok".to_string(), 1)
        ]
    );
    println!(
        "browser_passkeys: {:.1} s in all (second step {:.1} s, passwordless {:.1} s, autofill {:.1} s); screenshots in {}",
        started.elapsed().as_secs_f64(),
        second_step.as_secs_f64(),
        passwordless.as_secs_f64(),
        autofill.as_secs_f64(),
        shots.display()
    );
}

/// Flow 1: signed in with the password, "Add a passkey" on the security page; the first
/// factor comes with recovery codes; the passkey is listed.
async fn add_a_passkey(pages: &Pages<'_>) {
    pages
        .open(&format!("{}/login?next=/account/security", pages.base))
        .await;
    let html = pages.arrive("/login", "Sign in").await;
    assert!(
        html.contains("autocomplete=\"username webauthn\""),
        "the user-name field offers passkeys: {html}"
    );
    pages.wait_visible("sign-in-passkey").await;
    pages.shoot("passkeys-sign-in").await;
    pages.type_into("username", USERNAME).await;
    pages.type_into("password", PASSWORD).await;
    pages
        .click(Locator::Css("form[action='/login'] button"))
        .await;
    pages.arrive("/account/security", "Security").await;
    pages.wait_visible("add-passkey").await;
    pages.shoot("passkeys-security").await;
    pages.type_into("passkey-name", "Laptop").await;
    pages.click(Locator::Id("add-passkey")).await;
    let html = pages
        .arrive("/account/security/passkey", "Your recovery codes")
        .await;
    assert_eq!(
        html.matches("<li><code>").count(),
        10,
        "ten recovery codes: {html}"
    );
    pages.shoot("passkeys-recovery-codes").await;
    pages.click(Locator::Id("codes-saved")).await;
    let html = pages.arrive("/account/security", "Security").await;
    assert!(html.contains("<strong>Laptop</strong>"), "listed: {html}");
    assert!(!html.contains("No passkey."), "{html}");
    pages.shoot("passkeys-listed").await;
}

/// Flow 2: a fresh browser session signs in to the app with the password; the passkey is
/// the second step; the ID token is phishing-resistant.
async fn password_then_passkey(pages: &Pages<'_>, app: &App) {
    pages.sign_out().await;
    let authorization = app.authorization_request();
    pages.open(&authorization.url).await;
    pages.arrive("/login", "Sign in").await;
    pages.type_into("username", USERNAME).await;
    pages.type_into("password", PASSWORD).await;
    pages
        .click(Locator::Css("form[action='/login'] button"))
        .await;
    let html = pages.arrive("/login/second-factor", "Second step").await;
    assert!(html.contains("Todo App"), "{html}");
    assert!(
        html.contains("id=\"code\""),
        "codes are offered too: {html}"
    );
    pages.wait_visible("use-passkey").await;
    pages.shoot("passkeys-second-step").await;
    // `?passkey=1` offers the passkey alone.
    let url = pages.browser.current_url().await.expect("url");
    pages.open(&format!("{url}&passkey=1")).await;
    let html = pages.arrive("/login/second-factor", "Second step").await;
    assert!(!html.contains("id=\"code\""), "the passkey alone: {html}");
    pages.wait_visible("use-passkey").await;
    pages.click(Locator::Id("use-passkey")).await;
    if pages.wait_leaving("/login/second-factor").await == "/consent" {
        pages.arrive("/consent", "Allow Todo App access?").await;
        pages.click(Locator::Css("button[value=allow]")).await;
    }
    let code = pages.code_at_the_app(app, &authorization.state).await;
    let claims = app.id_token_claims(&code, &authorization.verifier).await;
    assert_eq!(claims["acr"], "phr", "{claims}");
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(amr.contains(&"pwd") && amr.contains(&"mfa"), "{claims}");
    assert!(amr.contains(&"hwk") || amr.contains(&"swk"), "{claims}");
}

/// Flow 3: a fresh browser session, "Sign in with a passkey": no user name, no password.
async fn passwordless_sign_in(pages: &Pages<'_>, app: &App) {
    pages.sign_out().await;
    let authorization = app.authorization_request();
    pages.open(&authorization.url).await;
    pages.arrive("/login", "Sign in").await;
    pages.wait_visible("sign-in-passkey").await;
    pages.click(Locator::Id("sign-in-passkey")).await;
    if pages.wait_leaving("/login").await == "/consent" {
        pages.arrive("/consent", "Allow Todo App access?").await;
        pages.click(Locator::Css("button[value=allow]")).await;
    }
    let code = pages.code_at_the_app(app, &authorization.state).await;
    let claims = app.id_token_claims(&code, &authorization.verifier).await;
    assert_eq!(claims["acr"], "phr", "{claims}");
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!amr.contains(&"pwd"), "no password: {claims}");
    assert!(amr.contains(&"hwk") || amr.contains(&"swk"), "{claims}");

    // The account page counts the passkey as used.
    pages
        .open(&format!("{}/account/security", pages.base))
        .await;
    let html = pages.arrive("/account/security", "Security").await;
    assert!(!html.contains("last used never"), "{html}");
    pages.shoot("passkeys-used").await;
}

/// Flow 4: a fresh browser session opens the sign-in page, whose user-name field offers the
/// passkey (conditional mediation, `autocomplete="username webauthn"`): the virtual
/// authenticator picks it, and the app gets its code without a click.
async fn autofill_sign_in(pages: &Pages<'_>, app: &App) {
    pages.sign_out().await;
    let authorization = app.authorization_request();
    pages.open(&authorization.url).await;
    let code = pages.code_at_the_app(app, &authorization.state).await;
    let claims = app.id_token_claims(&code, &authorization.verifier).await;
    assert_eq!(claims["acr"], "phr", "{claims}");
    assert!(
        !claims["amr"]
            .as_array()
            .expect("amr")
            .contains(&json!("pwd")),
        "{claims}"
    );
}

/// The browser, Sigil's address and where screenshots go.
struct Pages<'a> {
    browser: &'a Client,
    base: String,
    shots: PathBuf,
}

impl Pages<'_> {
    /// A fresh browser session: Sigil's cookies go (WebDriver deletes the cookies of the
    /// current page's site, so the browser goes to Sigil first).
    async fn sign_out(&self) {
        self.open(&format!("{}/static/sigil.css", self.base)).await;
        self.browser
            .delete_all_cookies()
            .await
            .expect("delete cookies");
    }

    async fn open(&self, url: &str) {
        self.browser
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn path(&self) -> String {
        self.browser
            .current_url()
            .await
            .expect("url")
            .path()
            .to_string()
    }

    async fn visible_text(&self) -> String {
        match self.browser.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits for the page at `path` whose `h1` is `heading`; checks a clean console and
    /// returns its source.
    async fn arrive(&self, path: &str, heading: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.browser.current_url().await.expect("url");
            let h1 = match self.browser.find(Locator::Css("h1")).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if url.path() == path && h1 == heading {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expected {path} with the heading {heading:?}; at {url}, heading {h1:?}: {}",
                self.visible_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.assert_clean_console(path).await;
        self.browser.source().await.expect("source")
    }

    /// Waits until the browser is no longer at `path`; returns where it is.
    async fn wait_leaving(&self, path: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now_at = self.path().await;
            if now_at != path {
                return now_at;
            }
            assert!(
                Instant::now() < deadline,
                "still at {path}: {}",
                self.visible_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the script has shown the element with this id (its form was hidden).
    async fn wait_visible(&self, id: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(element) = self.browser.find(Locator::Id(id)).await {
                if element.is_displayed().await.unwrap_or(false) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "#{id} never showed: {}",
                self.browser.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// No CSP violation, script error or failed load in the console (chromium's own
    /// `/favicon.ico` request aside).
    async fn assert_clean_console(&self, path: &str) {
        let problems: Vec<String> = webdriver::console_messages(self.browser)
            .await
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
            .filter_map(|entry| entry["message"].as_str().map(str::to_string))
            .filter(|message| !message.contains("/favicon.ico"))
            .collect();
        assert!(
            problems.is_empty(),
            "{path}: the console is not clean: {problems:#?}"
        );
    }

    async fn type_into(&self, id: &str, text: &str) {
        let input = self
            .browser
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"));
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    async fn click(&self, locator: Locator<'_>) {
        self.browser
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("find {locator:?}: {e}"))
            .click()
            .await
            .expect("click");
    }

    async fn shoot(&self, name: &str) {
        let png = self.browser.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Waits for the browser to land on the app's callback, and returns the code.
    async fn code_at_the_app(&self, app: &App, state: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.browser.current_url().await.expect("url");
            if url.port() == Some(app.port) {
                let param = |name: &str| {
                    url.query_pairs()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.into_owned())
                };
                assert_eq!(param("state").as_deref(), Some(state), "{url}");
                return param("code").unwrap_or_else(|| panic!("no code: {url}"));
            }
            assert!(
                Instant::now() < deadline,
                "did not return to the app; at {url}: {}",
                self.visible_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The client application: its registration, and the token endpoint as it calls it.
struct App {
    base: String,
    port: u16,
    callback: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
}

struct AuthorizationRequest {
    url: String,
    state: String,
    verifier: String,
}

impl App {
    /// An authorization request with PKCE S256 (RFC 7636 §4.2).
    fn authorization_request(&self) -> AuthorizationRequest {
        let verifier = random_token(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_token(12);
        let mut url = url::Url::parse(&format!("{}/authorize", self.base)).expect("url");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.callback)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid profile")
            .append_pair("state", &state)
            .append_pair("nonce", &random_token(12))
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        AuthorizationRequest {
            url: url.into(),
            state,
            verifier,
        }
    }

    /// Exchanges the code and returns the ID token's claims (its signature is checked by
    /// other tests; here only what it says about the sign-in matters).
    async fn id_token_claims(&self, code: &str, verifier: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.callback),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status().as_u16(), 200);
        let tokens: Value = response.json().await.expect("JSON");
        common::jwt_claims(tokens["id_token"].as_str().expect("an ID token"))
    }
}
