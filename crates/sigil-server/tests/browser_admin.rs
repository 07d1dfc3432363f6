//! A real browser in the admin console: an admin signs in, registers a confidential
//! client, copies the secret shown once, and that client gets a token over HTTP; the admin
//! disables a user and that user's refresh token stops working. Screenshots of the main
//! pages go to `target/tmp/screenshots/admin-*.png`.

mod common;

use common::flows::token;
use common::process::{Server, Setup, ADMIN_PASSWORD};
use common::{webdriver, TestDb};
use fantoccini::{Client, Locator};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const ERIN_PASSWORD: &str = "her long pass phrase";

async fn shoot(browser: &Client, dir: &Path, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("admin-{name}.png")), png).expect("write screenshot");
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("click");
}

async fn type_into(browser: &Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .send_keys(text)
        .await
        .expect("type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_registers_a_client_and_disables_a_user_in_a_real_browser() {
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start(&setup);
    let base = server.base.clone();

    // Erin signs in to a first-party app and holds a refresh token.
    setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "erin",
            "--name",
            "Erin",
            "--password-stdin",
        ],
        Some(ERIN_PASSWORD),
    );
    let app: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Erin's phone app",
            "--grant-types",
            "password,refresh_token",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let app_id = app["client_id"].as_str().expect("id").to_string();
    let app_secret = app["client_secret"].as_str().expect("secret").to_string();
    let (status, tokens) = token(
        &base,
        (&app_id, &app_secret),
        &[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", ERIN_PASSWORD),
            ("scope", "openid offline_access"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    let (_driver, browser, _profile) = webdriver::open(driver_path, "1200,900").await;
    let shots = webdriver::screenshot_dir();

    // Sign in: /admin sends an anonymous visitor to the sign-in page and back.
    browser.goto(&format!("{base}/admin")).await.expect("open");
    webdriver::wait_for_path(&browser, "/login").await;
    type_into(&browser, "username", "admin").await;
    type_into(&browser, "password", ADMIN_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    webdriver::wait_for_path(&browser, "/admin").await;
    shoot(&browser, &shots, "overview").await;

    // Register a confidential client for client_credentials.
    browser
        .goto(&format!("{base}/admin/clients/new"))
        .await
        .expect("open");
    type_into(&browser, "name", "Nightly reports").await;
    click(
        &browser,
        "input[name=grant_types][value=client_credentials]",
    )
    .await;
    type_into(&browser, "scopes", "reports:read").await;
    type_into(&browser, "audiences", "https://reports.example.com").await;
    shoot(&browser, &shots, "client-new").await;
    click(&browser, "form.form button[type=submit]").await;
    let secret_field = browser
        .wait()
        .for_element(Locator::Id("client-secret"))
        .await
        .expect("the secret is shown");
    let secret = secret_field
        .prop("value")
        .await
        .expect("value")
        .expect("a secret");
    assert!(secret.len() >= 43, "256 bits, base64url");
    let client_id = browser
        .find(Locator::Id("client-id"))
        .await
        .expect("client id")
        .text()
        .await
        .expect("text");
    // The copy button (the page's one script, from 'self' under the CSP).
    click(&browser, "button[data-copy]").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let label = browser
            .find(Locator::Css("button[data-copy]"))
            .await
            .expect("button")
            .text()
            .await
            .expect("text");
        if label == "Copied" {
            break;
        }
        assert!(Instant::now() < deadline, "the copy button did not react");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shoot(&browser, &shots, "client-secret").await;

    let (status, body) = token(
        &base,
        (&client_id, &secret),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "reports:read"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");

    // Shown once: the client's page no longer has it.
    browser
        .goto(&format!("{base}/admin/clients/{client_id}"))
        .await
        .expect("open");
    assert!(!browser.source().await.expect("source").contains(&secret));
    browser
        .goto(&format!("{base}/admin/clients"))
        .await
        .expect("open");
    assert!(browser
        .source()
        .await
        .expect("source")
        .contains("Nightly reports"));
    shoot(&browser, &shots, "clients").await;

    // Disable Erin, through the confirmation page.
    browser
        .goto(&format!("{base}/admin/users?q=erin"))
        .await
        .expect("open");
    shoot(&browser, &shots, "users").await;
    browser
        .find(Locator::LinkText("erin"))
        .await
        .expect("erin's link")
        .click()
        .await
        .expect("click");
    let page = browser.source().await.expect("source");
    assert!(
        page.contains("Erin's phone app") || page.contains("Erin&#x27;s phone app"),
        "the app she granted is listed"
    );
    shoot(&browser, &shots, "user").await;
    click(&browser, "a.button.danger").await;
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .expect("h1")
        .text()
        .await
        .expect("text");
    assert_eq!(heading, "Disable erin?");
    shoot(&browser, &shots, "confirm-disable").await;
    click(&browser, "form button.danger").await;
    browser
        .wait()
        .for_element(Locator::Css("p.notice"))
        .await
        .expect("a notice");
    assert!(browser.source().await.expect("source").contains("disabled"));

    let (status, body) = token(
        &base,
        (&app_id, &app_secret),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");

    browser
        .goto(&format!("{base}/admin/keys"))
        .await
        .expect("open");
    assert!(browser.source().await.expect("source").contains("active"));
    shoot(&browser, &shots, "keys").await;
    browser
        .goto(&format!("{base}/admin/audit"))
        .await
        .expect("open");
    let page = browser.source().await.expect("source");
    for action in ["user.disabled", "client.created", "sign_in.success"] {
        assert!(page.contains(action), "{action} in the audit log");
    }
    assert!(!page.contains(&secret));
    shoot(&browser, &shots, "audit").await;

    browser.close().await.expect("close");
    server.stop();
    println!("screenshots in {}", shots.display());
}
