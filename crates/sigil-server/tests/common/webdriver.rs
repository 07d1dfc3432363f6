//! A real headless browser for page tests: Debian's chromium driven through chromedriver
//! with fantoccini. Skipped with a notice when chromedriver is missing, except under
//! CI=true, where that is a failure.
#![allow(dead_code)]

use super::process::free_port;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver's path, or `None` (with a notice) when it is not installed.
pub fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromedriver is missing, and CI=true requires the browser tests (apt-get install chromium chromium-driver)");
        }
        eprintln!("NOTICE: browser test skipped: install chromium and chromium-driver to run it");
    }
    found
}

/// The chromedriver process, killed when dropped.
pub type Driver = super::process::Background;

/// Starts chromedriver and opens a headless chromium session with a fresh profile.
/// `window` is `"width,height"`.
pub async fn open(driver_path: PathBuf, window: &str) -> (Driver, Client, tempfile::TempDir) {
    let driver_port = free_port();
    let driver = super::process::Background(
        Command::new(driver_path)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while super::process::http_status(&format!("http://127.0.0.1:{driver_port}/status"))
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().expect("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", format!("--window-size={window}"),
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    // Keeps the page console (CSP violations among it) for `console_messages`.
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let browser = ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session");
    (driver, browser, profile)
}

/// Where screenshots go: `target/tmp/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Waits until the browser's URL path is `path`.
pub async fn wait_for_path(browser: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.current_url().await.expect("url").path() != path {
        assert!(
            Instant::now() < deadline,
            "never reached {path}; at {}: {}",
            browser.current_url().await.expect("url"),
            browser.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The browser console's messages since the last call (`level`, `message`, `source`), as
/// chromedriver keeps them: CSP violations and failed loads show up here as `SEVERE`.
pub async fn console_messages(browser: &Client) -> Vec<serde_json::Value> {
    let log = browser
        .issue_cmd(BrowserLog)
        .await
        .expect("the browser console log");
    log.as_array().cloned().unwrap_or_default()
}

/// chromedriver's `POST /session/{id}/se/log` for the `browser` log (not part of W3C
/// WebDriver, so fantoccini has no method for it).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// Adds a virtual authenticator to the browser session (WebDriver's WebAuthn extension,
/// `POST /session/{id}/webauthn/authenticator`): a platform authenticator (CTAP2,
/// "internal") with resident keys and user verification that always succeeds, so that
/// `navigator.credentials.create/get` answer without a person. Returns its id.
pub async fn add_virtual_authenticator(browser: &Client) -> String {
    let answer = browser
        .issue_cmd(VirtualAuthenticator)
        .await
        .expect("a virtual authenticator");
    answer
        .as_str()
        .unwrap_or_else(|| panic!("an authenticator id: {answer}"))
        .to_string()
}

#[derive(Debug)]
struct VirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for VirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(
                json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                })
                .to_string(),
            ),
        )
    }
}

/// Runs a Chrome DevTools Protocol command through chromedriver
/// (`POST /session/{id}/goog/cdp/execute`), and returns its result.
pub async fn cdp(browser: &Client, cmd: &str, params: serde_json::Value) -> serde_json::Value {
    browser
        .issue_cmd(Cdp {
            cmd: cmd.to_string(),
            params,
        })
        .await
        .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
}

#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()),
        )
    }
}
