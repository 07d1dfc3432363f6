//! A real browser (Debian's headless chromium through chromedriver, driven with
//! fantoccini) signs in through Sigil's pages: the login and consent pages render under
//! their strict CSP, the forms work without JavaScript, and the browser lands back at the
//! client with a code. Screenshots go to `target/tmp/screenshots/` for people to look at.
//! Skipped with a notice when chromedriver is missing, except under CI=true.

mod common;

use common::process::{Server, Setup};
use common::{webdriver, TestDb};
use fantoccini::Locator;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "chromium correct horse battery";

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
                let body = "<!doctype html><title>Photo Printer</title><h1>Back at the app</h1>";
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_consent_in_a_real_browser() {
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start(&setup);
    setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--name",
            "Alice",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let app_port = callback_server().await;
    let callback = format!("http://127.0.0.1:{app_port}/callback");
    let client: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Photo Printer",
            "--redirect-uri",
            &callback,
            "--json",
        ],
        None,
    ))
    .expect("json");
    let client_id = client["client_id"].as_str().expect("id");

    let (_driver, browser, _profile) = webdriver::open(driver_path, "900,760").await;

    let shots = webdriver::screenshot_dir();
    let authorize = format!(
        "{}/authorize?client_id={client_id}&redirect_uri={}&response_type=code&scope=openid%20profile%20offline_access&state=st-123&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        server.base,
        url::form_urlencoded::byte_serialize(callback.as_bytes()).collect::<String>()
    );
    browser.goto(&authorize).await.expect("open authorize");
    assert_eq!(browser.current_url().await.expect("url").path(), "/login");
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .expect("h1")
        .text()
        .await
        .expect("text");
    assert_eq!(heading, "Sign in");
    assert!(browser
        .source()
        .await
        .expect("source")
        .contains("Photo Printer"));
    std::fs::write(
        shots.join("login.png"),
        browser.screenshot().await.expect("screenshot"),
    )
    .expect("write");

    // Labels point at their inputs (accessibility), and the form posts without JavaScript.
    browser
        .find(Locator::Css("label[for=username]"))
        .await
        .expect("label");
    browser
        .find(Locator::Id("username"))
        .await
        .expect("username")
        .send_keys("alice")
        .await
        .expect("type");
    browser
        .find(Locator::Id("password"))
        .await
        .expect("password")
        .send_keys(PASSWORD)
        .await
        .expect("type");
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");

    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.current_url().await.expect("url").path() != "/consent" {
        assert!(
            Instant::now() < deadline,
            "no consent page: {}",
            browser.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = browser.source().await.expect("source");
    assert!(page.contains("Stay signed in"), "scopes in plain words");
    std::fs::write(
        shots.join("consent.png"),
        browser.screenshot().await.expect("screenshot"),
    )
    .expect("write");
    browser
        .find(Locator::Css("button[value=allow]"))
        .await
        .expect("allow")
        .click()
        .await
        .expect("click");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = browser.current_url().await.expect("url");
        if url.port() == Some(app_port) {
            let params: std::collections::HashMap<String, String> =
                url.query_pairs().into_owned().collect();
            assert_eq!(params.get("state").map(String::as_str), Some("st-123"));
            assert!(params.contains_key("code"));
            assert_eq!(params.get("iss"), Some(&server.base));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not return to the app: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await.expect("close");
    server.stop();
    println!("screenshots in {}", shots.display());
}
