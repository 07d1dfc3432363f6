//! A real browser (Debian's headless chromium through chromedriver, driven with
//! fantoccini) runs the account pages end to end, with mail through a real SMTP server
//! (aiosmtpd writing a Maildir): sign-up from an app's authorization request, the
//! verification link, back at the app with a code; forgot-password and reset, the old
//! refresh token refused; the account pages, and "Remove access" revoking the app. Every
//! page is checked for its key text, for having no script and for a clean console under its
//! CSP, and photographed into `target/tmp/screenshots/accounts-*.png`.
//! Skipped with a notice when chromedriver or aiosmtpd is missing, except under CI=true.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::process::{free_port, Background, Server, Setup};
use common::{webdriver, TestDb};
use fantoccini::{Client, Locator};
use mailparse::MailHeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigil_core::secret::random_token;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USERNAME: &str = "dana";
const EMAIL: &str = "dana@example.com";
const COMMON_PASSWORD: &str = "qwertyuiop";
const PASSWORD: &str = "a pass phrase of my own";
const NEW_PASSWORD: &str = "another pass phrase, later";
/// How long a page, a mail or a redirect may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_reset_and_account_pages_in_a_real_browser() {
    let started = Instant::now();
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let Some(python) = smtp_python() else {
        return;
    };
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    let smtp = SmtpServer::start(&python, setup.dir.path()).await;
    setup.sigil(&["migrate"], None);
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let server = Server::start_on(
        &setup,
        &[],
        &["--sign-up", "open", "--smtp-url", &smtp_url],
        free_port(),
        &[],
    );
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
            "openid,profile,email,offline_access",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let app = App {
        base: server.base.clone(),
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
    let pages = Pages {
        browser: &browser,
        base: server.base.clone(),
        shots: webdriver::screenshot_dir(),
    };

    let refresh_token = sign_up_through_the_app(&pages, &app, &smtp).await;
    reset_the_forgotten_password(&pages, &app, &smtp, &refresh_token).await;
    account_pages_and_remove_access(&pages, &app).await;

    let shots = pages.shots;
    browser.close().await.expect("close");
    server.stop();
    println!(
        "browser_accounts: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// Flow 1: "Create an account" on the app's sign-in page, a refused password first, the
/// verify-pending page, the link from the mail, consent, and the app's code exchanged.
/// Returns a refresh token that has not been used yet.
async fn sign_up_through_the_app(pages: &Pages<'_>, app: &App, smtp: &SmtpServer) -> String {
    let authorization = app.authorization_request();
    pages.open(&authorization.url).await;
    let html = pages.arrive("/login", "Sign in").await;
    assert!(html.contains("Todo App"), "the app is named: {html}");
    let req = pages.query_param("req").await.expect("a pending request");
    assert!(
        html.contains(&format!("/signup?req={req}")),
        "the sign-up link keeps the request: {html}"
    );
    pages.shoot("accounts-sign-in").await;
    pages.click(Locator::LinkText("Create an account")).await;

    let html = pages.arrive("/signup", "Create an account").await;
    assert!(html.contains("Todo App"), "{html}");
    pages.shoot("accounts-sign-up").await;
    pages.type_into("username", USERNAME).await;
    pages.type_into("email", EMAIL).await;
    pages.type_into("name", "Dana Example").await;
    pages.type_into("password", COMMON_PASSWORD).await;
    pages.click(Locator::Css("button[type=submit]")).await;

    // A refused password: the field says why; what was typed is kept, except the password.
    pages
        .arrive_with("/signup", "Create an account", "commonly used")
        .await;
    let password_error = pages.text(Locator::Id("password-error")).await;
    assert!(
        password_error.contains("commonly used"),
        "the password field says why: {password_error}"
    );
    assert_eq!(pages.value("username").await, USERNAME);
    assert_eq!(pages.value("email").await, EMAIL);
    assert_eq!(pages.value("name").await, "Dana Example");
    assert_eq!(
        pages.value("password").await,
        "",
        "the password is not kept"
    );
    assert!(!pages
        .browser
        .source()
        .await
        .expect("source")
        .contains(COMMON_PASSWORD));
    pages.shoot("accounts-sign-up-errors").await;
    pages.type_into("password", PASSWORD).await;
    pages.click(Locator::Css("button[type=submit]")).await;

    let html = pages.arrive_with("/signup", "Check your mail", EMAIL).await;
    assert!(html.contains("in this browser"), "{html}");
    pages.shoot("accounts-check-your-mail").await;

    // The right password, before the address is verified: no sign-in.
    pages.open(&format!("{}/login?req={req}", pages.base)).await;
    pages.arrive("/login", "Sign in").await;
    pages.type_into("username", USERNAME).await;
    pages.type_into("password", PASSWORD).await;
    pages.click(Locator::Css("button[type=submit]")).await;
    let html = pages
        .arrive_with(
            "/login",
            "Confirm your e-mail address",
            "Send the link again",
        )
        .await;
    assert!(html.contains("Your password is right"), "{html}");
    assert!(html.contains(EMAIL), "{html}");
    pages.shoot("accounts-verify-pending").await;

    // The link from the mail, in the browser that signed up: a click, then on to the app.
    let link = smtp
        .link(EMAIL, &format!("{}/verify-email?token=", pages.base), 1)
        .await;
    pages.open(&link).await;
    // The link asks for a click (mail scanners open links too); the click goes on.
    pages
        .arrive("/verify-email", "Confirm your e-mail address")
        .await;
    pages.shoot("accounts-verify-email").await;
    pages.click(Locator::Css("button[type=submit]")).await;
    let html = pages.arrive("/consent", "Allow Todo App access?").await;
    assert!(
        html.contains("Stay signed in"),
        "scopes in plain words: {html}"
    );
    pages.shoot("accounts-consent").await;
    pages.click(Locator::Css("button[value=allow]")).await;
    let code = pages.code_at_the_app(app, &authorization.state).await;
    let tokens = app.exchange_code(&code, &authorization.verifier).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a refresh token: {tokens}"));
    // The token refreshes (rotating): the new one is kept, unused.
    let refreshed = app.refresh(refresh_token).await;
    assert_eq!(refreshed.0, 200, "the refresh token works: {}", refreshed.1);
    refreshed.1["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a rotated refresh token: {}", refreshed.1))
        .to_string()
}

/// Flow 2: "Forgot your password?", the mail, the reset form, the sign-in page with the
/// notice; the app's refresh token from before is refused; the new password signs in.
async fn reset_the_forgotten_password(
    pages: &Pages<'_>,
    app: &App,
    smtp: &SmtpServer,
    old_refresh_token: &str,
) {
    pages.open(&format!("{}/login", pages.base)).await;
    pages.arrive("/login", "Sign in").await;
    pages
        .click(Locator::LinkText("Forgot your password?"))
        .await;
    let html = pages
        .arrive("/forgot-password", "Forgot your password?")
        .await;
    assert!(html.contains("We will send you a link"), "{html}");
    pages.shoot("accounts-forgot-password").await;
    pages.type_into("email", EMAIL).await;
    pages.click(Locator::Css("button[type=submit]")).await;
    pages
        .arrive_with(
            "/forgot-password",
            "Forgot your password?",
            "If an account has this address, we sent it a link",
        )
        .await;
    pages.shoot("accounts-forgot-password-sent").await;

    let link = smtp
        .link(EMAIL, &format!("{}/reset-password?token=", pages.base), 1)
        .await;
    pages.open(&link).await;
    let html = pages
        .arrive("/reset-password", "Choose a new password")
        .await;
    assert!(html.contains(USERNAME), "the account is named: {html}");
    pages.shoot("accounts-reset-password").await;
    pages.type_into("password", NEW_PASSWORD).await;
    pages.type_into("repeat_password", NEW_PASSWORD).await;
    pages.click(Locator::Css("button[type=submit]")).await;
    pages
        .arrive_with("/login", "Sign in", "Your new password is set")
        .await;
    assert_eq!(pages.value("username").await, USERNAME, "filled in");
    pages.shoot("accounts-sign-in-password-set").await;

    let refused = app.refresh(old_refresh_token).await;
    assert_eq!(refused.0, 400, "{}", refused.1);
    assert_eq!(
        refused.1["error"], "invalid_grant",
        "the reset revoked the app's refresh token: {}",
        refused.1
    );
    // And told the user, by mail.
    smtp.message(EMAIL, "was just reset, with a link", 1).await;

    // This browser was signed out too: the account page asks to sign in; the old password
    // no longer works, the new one does.
    pages.open(&format!("{}/account", pages.base)).await;
    pages.arrive("/login", "Sign in").await;
    pages.type_into("username", USERNAME).await;
    pages.type_into("password", PASSWORD).await;
    pages.click(Locator::Css("button[type=submit]")).await;
    pages
        .arrive_with("/login", "Sign in", "Incorrect user name or password")
        .await;
    pages.type_into("password", NEW_PASSWORD).await;
    pages.click(Locator::Css("button[type=submit]")).await;
    pages.arrive("/account", "Your account").await;
}

/// Flow 3: the account pages, a fresh authorization for the app, and "Remove access"
/// revoking its refresh token.
async fn account_pages_and_remove_access(pages: &Pages<'_>, app: &App) {
    pages.open(&format!("{}/account", pages.base)).await;
    let html = pages.arrive("/account", "Your account").await;
    assert!(
        html.contains("Signed in as <strong>dana</strong>"),
        "{html}"
    );
    assert!(
        html.contains("(confirmed)"),
        "the address is verified: {html}"
    );
    assert_eq!(pages.value("name").await, "Dana Example");
    assert_eq!(pages.value("email").await, EMAIL);
    pages.shoot("accounts-profile").await;

    pages.click(Locator::LinkText("Sessions")).await;
    let html = pages
        .arrive("/account/sessions", "Where you are signed in")
        .await;
    assert_eq!(
        html.matches("this browser").count(),
        1,
        "one session, this one (the reset ended the others): {html}"
    );
    pages.shoot("accounts-sessions").await;

    pages.click(Locator::LinkText("Security")).await;
    let html = pages.arrive("/account/security", "Security").await;
    assert!(html.contains("Authenticator apps"), "{html}");
    // The issuer is an IP address, which WebAuthn refuses: no passkey script, no button.
    assert!(html.contains("not an IP address"), "{html}");
    pages.shoot("accounts-security").await;

    // A fresh authorization, so that the app holds a live refresh token.
    let authorization = app.authorization_request();
    pages.open(&authorization.url).await;
    if pages.path().await == "/consent" {
        pages.arrive("/consent", "Allow Todo App access?").await;
        pages.click(Locator::Css("button[value=allow]")).await;
    }
    let code = pages.code_at_the_app(app, &authorization.state).await;
    let tokens = app.exchange_code(&code, &authorization.verifier).await;
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a refresh token: {tokens}"));
    let refreshed = app.refresh(refresh_token).await;
    assert_eq!(refreshed.0, 200, "the new grant works: {}", refreshed.1);
    let live_refresh_token = refreshed.1["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a rotated refresh token: {}", refreshed.1))
        .to_string();

    pages.open(&format!("{}/account/apps", pages.base)).await;
    let html = pages.arrive("/account/apps", "Connected apps").await;
    assert!(html.contains("Todo App"), "the app is listed: {html}");
    pages.shoot("accounts-apps").await;
    pages.click(Locator::Css("button.danger")).await;
    let html = pages
        .arrive_with(
            "/account/apps",
            "Connected apps",
            "The app's access was removed",
        )
        .await;
    assert!(!html.contains("Todo App"), "the app is gone: {html}");
    assert!(html.contains("No apps yet."), "{html}");
    pages.shoot("accounts-apps-removed").await;

    let refused = app.refresh(&live_refresh_token).await;
    assert_eq!(refused.0, 400, "{}", refused.1);
    assert_eq!(
        refused.1["error"], "invalid_grant",
        "removing the app revoked its refresh token: {}",
        refused.1
    );
}

/// The browser, Sigil's address and where screenshots go, with the page checks.
struct Pages<'a> {
    browser: &'a Client,
    base: String,
    shots: PathBuf,
}

impl Pages<'_> {
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

    async fn query_param(&self, name: &str) -> Option<String> {
        let url = self.browser.current_url().await.expect("url");
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// Waits for the page at `path` whose `h1` is `heading`; checks it has no script and a
    /// clean console, and returns its source.
    async fn arrive(&self, path: &str, heading: &str) -> String {
        self.arrive_with(path, heading, "").await
    }

    /// `arrive`, also waiting for `text` in the page's visible text.
    async fn arrive_with(&self, path: &str, heading: &str, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.browser.current_url().await.expect("url");
            let shown = self.visible_text().await;
            let h1 = match self.browser.find(Locator::Css("h1")).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if url.path() == path && h1 == heading && shown.contains(text) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expected {path} with the heading {heading:?} and {text:?}; at {url}, heading {h1:?}: {shown}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let html = self.browser.source().await.expect("source");
        assert!(
            !html.contains("<script"),
            "{path}: the account pages work without JavaScript: {html}"
        );
        self.assert_clean_console(path).await;
        html
    }

    /// No CSP violation, script error or failed load in the console. Expected, and let
    /// through: a page answered with an error status (422 for a refused form, 403 for an
    /// unverified account) is logged as a failed load of the document itself; and Sigil
    /// serves no `/favicon.ico`, which chromium asks for on its own.
    async fn assert_clean_console(&self, path: &str) {
        let url = self.browser.current_url().await.expect("url");
        let document = url
            .as_str()
            .split('#')
            .next()
            .unwrap_or_default()
            .to_string();
        let problems: Vec<String> = webdriver::console_messages(self.browser)
            .await
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
            .filter_map(|entry| entry["message"].as_str().map(str::to_string))
            .filter(|message| {
                let is_document_status = message.starts_with(&format!("{document} - "))
                    && message.contains(
                        "Failed to load resource: the server responded with a status of 4",
                    );
                let is_favicon = message.starts_with(&format!("{}/favicon.ico - ", self.base));
                !is_document_status && !is_favicon
            })
            .collect();
        assert!(
            problems.is_empty(),
            "{path}: the console is not clean: {problems:#?}"
        );
    }

    async fn visible_text(&self) -> String {
        match self.browser.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn text(&self, locator: Locator<'_>) -> String {
        self.browser
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("find {locator:?}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// The current value of the input with this id.
    async fn value(&self, id: &str) -> String {
        self.browser
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// Types into the input with this id, replacing what it held.
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
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Waits for the browser to land on the app's callback, and returns the code.
    async fn code_at_the_app(&self, app: &App, state: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.browser.current_url().await.expect("url");
            if url.port() == Some(app.port) {
                assert_eq!(url.path(), "/callback");
                let param = |name: &str| {
                    url.query_pairs()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.into_owned())
                };
                assert_eq!(param("state").as_deref(), Some(state), "{url}");
                assert_eq!(param("iss").as_deref(), Some(self.base.as_str()), "{url}");
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
            .append_pair("scope", "openid profile email offline_access")
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

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = response.status().as_u16();
        let body = response.json().await.expect("a JSON answer from /token");
        (status, body)
    }

    async fn exchange_code(&self, code: &str, verifier: &str) -> Value {
        let (status, body) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.callback),
                ("code_verifier", verifier),
            ])
            .await;
        assert_eq!(status, 200, "the code exchange: {body}");
        body
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }
}

/// The interpreter to run aiosmtpd with, or `None` (with a notice) when aiosmtpd is not
/// installed; under CI=true that is a failure.
fn smtp_python() -> Option<String> {
    let python =
        std::env::var("SIGIL_TEST_SMTP_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let has_aiosmtpd = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if has_aiosmtpd {
        return Some(python);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{python} has no aiosmtpd, and CI=true requires the browser account test (apt-get install python3-aiosmtpd)");
    }
    eprintln!("NOTICE: browser account test skipped: install python3-aiosmtpd to run it");
    None
}

/// aiosmtpd on a free loopback port, storing what it receives in a Maildir.
struct SmtpServer {
    port: u16,
    maildir: PathBuf,
    log: PathBuf,
    _process: Background,
}

impl SmtpServer {
    async fn start(python: &str, dir: &Path) -> Self {
        let port = free_port();
        let maildir = dir.join("maildir");
        let log = dir.join("aiosmtpd.log");
        let log_file = std::fs::File::create(&log).expect("aiosmtpd log");
        let process = Background(
            Command::new(python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(log_file.try_clone().expect("log"))
                .stderr(log_file)
                .spawn()
                .expect("start aiosmtpd"),
        );
        let deadline = Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            port,
            maildir,
            log,
            _process: process,
        }
    }

    /// The plain-text parts of the messages to `to` received so far, oldest first.
    fn messages_to(&self, to: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut found: Vec<(SystemTime, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                let raw = std::fs::read(entry.path()).ok()?;
                let mail = mailparse::parse_mail(&raw).ok()?;
                let recipient = mail.get_headers().get_first_value("To")?;
                if !recipient.to_lowercase().contains(&to.to_lowercase()) {
                    return None;
                }
                Some((modified, plain_text(&mail)?))
            })
            .collect();
        found.sort_by_key(|(modified, _)| *modified);
        found.into_iter().map(|(_, text)| text).collect()
    }

    /// Waits for the `n`th message (from 1) to `to` whose text holds `marker`.
    async fn message(&self, to: &str, marker: &str, n: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut matching: Vec<String> = self
                .messages_to(to)
                .into_iter()
                .filter(|text| text.contains(marker))
                .collect();
            if matching.len() >= n {
                return matching.swap_remove(n - 1);
            }
            assert!(
                Instant::now() < deadline,
                "no message {n} to {to} with {marker:?} through SMTP; aiosmtpd: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The link starting with `prefix` in the `n`th message to `to` that holds one.
    async fn link(&self, to: &str, prefix: &str, n: usize) -> String {
        let text = self.message(to, prefix, n).await;
        let start = text.find(prefix).expect("the link");
        text[start..]
            .split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// A message's `text/plain` part (or the message itself, when it is not multipart), its
/// transfer encoding (quoted-printable, base64) undone.
fn plain_text(mail: &mailparse::ParsedMail<'_>) -> Option<String> {
    if mail.subparts.is_empty() {
        return (mail.ctype.mimetype == "text/plain")
            .then(|| mail.get_body().ok())
            .flatten();
    }
    mail.subparts.iter().find_map(plain_text)
}

/// A stand-in for the client application: answers every request with a small page.
async fn callback_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = "<!doctype html><title>Todo App</title><h1>Back at the app</h1>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}
