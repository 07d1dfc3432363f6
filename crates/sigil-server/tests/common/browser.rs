//! What the browser tests share: the page checks over a fantoccini client, a client
//! application (its callback and token calls), and a real SMTP server (aiosmtpd writing a
//! Maildir) to read mail from.

use super::process::{free_port, Background};
use super::webdriver;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fantoccini::{Client, Locator};
use mailparse::MailHeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigil_core::secret::random_token;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a page, a mail or a redirect may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The browser, Sigil's address and where screenshots go, with the page checks.
pub struct Pages<'a> {
    pub browser: &'a Client,
    pub base: String,
    pub shots: PathBuf,
}

impl Pages<'_> {
    pub async fn open(&self, url: &str) {
        self.browser
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn path(&self) -> String {
        self.browser
            .current_url()
            .await
            .expect("url")
            .path()
            .to_string()
    }

    pub async fn query_param(&self, name: &str) -> Option<String> {
        let url = self.browser.current_url().await.expect("url");
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// Waits for the page at `path` whose `h1` is `heading`; checks it has no script and a
    /// clean console, and returns its source.
    pub async fn arrive(&self, path: &str, heading: &str) -> String {
        self.arrive_with(path, heading, "").await
    }

    /// `arrive`, also waiting for `text` in the page's visible text.
    pub async fn arrive_with(&self, path: &str, heading: &str, text: &str) -> String {
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
    pub async fn assert_clean_console(&self, path: &str) {
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

    pub async fn visible_text(&self) -> String {
        match self.browser.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn text(&self, locator: Locator<'_>) -> String {
        self.browser
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("find {locator:?}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// The current value of the input with this id.
    pub async fn value(&self, id: &str) -> String {
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
    pub async fn type_into(&self, id: &str, text: &str) {
        let input = self
            .browser
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"));
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, locator: Locator<'_>) {
        self.browser
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("find {locator:?}: {e}"))
            .click()
            .await
            .expect("click");
    }

    pub async fn shoot(&self, name: &str) {
        let png = self.browser.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Waits for the browser to land on the app's callback, and returns the code.
    pub async fn code_at_the_app(&self, app: &App, state: &str) -> String {
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
pub struct App {
    pub base: String,
    pub port: u16,
    pub callback: String,
    pub client_id: String,
    pub client_secret: String,
    pub http: reqwest::Client,
}

pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub verifier: String,
}

impl App {
    /// An authorization request with PKCE S256 (RFC 7636 §4.2).
    pub fn authorization_request(&self) -> AuthorizationRequest {
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

    pub async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
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

    pub async fn exchange_code(&self, code: &str, verifier: &str) -> Value {
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

    pub async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }
}

/// The interpreter to run aiosmtpd with, or `None` (with a notice) when aiosmtpd is not
/// installed; under CI=true that is a failure.
pub fn smtp_python() -> Option<String> {
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
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    pub log: PathBuf,
    pub _process: Background,
}

impl SmtpServer {
    pub async fn start(python: &str, dir: &Path) -> Self {
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
    pub fn messages_to(&self, to: &str) -> Vec<String> {
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
    pub async fn message(&self, to: &str, marker: &str, n: usize) -> String {
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
    pub async fn link(&self, to: &str, prefix: &str, n: usize) -> String {
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
pub fn plain_text(mail: &mailparse::ParsedMail<'_>) -> Option<String> {
    if mail.subparts.is_empty() {
        return (mail.ctype.mimetype == "text/plain")
            .then(|| mail.get_body().ok())
            .flatten();
    }
    mail.subparts.iter().find_map(plain_text)
}

/// A stand-in for the client application: answers every request with a small page.
pub async fn callback_server() -> u16 {
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
