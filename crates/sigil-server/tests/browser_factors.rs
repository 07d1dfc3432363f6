//! A real browser (headless chromium through chromedriver, driven with fantoccini) adds
//! an authenticator app on the account's security page (the test reads the secret off
//! the page and computes codes with the `totp-rs` crate), signs in to an app with it, then
//! with a recovery code; and a session that signed in with the password alone steps up
//! when the app asks for `acr_values=urn:sigil:acr:2fa`. Every page is checked for its
//! heading, no script and a clean console under its CSP, and photographed into
//! `target/tmp/screenshots/factors-*.png`. Skipped with a notice when chromedriver is
//! missing, except under CI=true.

mod common;

use common::browser::{callback_server, App, Pages};
use common::process::{free_port, Server, Setup};
use common::{totp_code as code_at, unix_now as now, webdriver, TestDb};
use fantoccini::Locator;
use serde_json::Value;
use std::time::Instant;

const PASSWORD: &str = "a long pass phrase of hers";

/// The claims of the ID token in a token response.
fn id_token_claims(tokens: &Value) -> Value {
    common::jwt_claims(tokens["id_token"].as_str().expect("id_token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticator_app_recovery_codes_and_step_up_in_a_real_browser() {
    let started = Instant::now();
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(&setup, &[], &[], free_port(), &[]);
    for name in ["dana", "erin"] {
        setup.sigil(
            &[
                "user",
                "add",
                "--username",
                name,
                "--email",
                &format!("{name}@example.com"),
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
    }
    let app_port = callback_server().await;
    let callback = format!("http://127.0.0.1:{app_port}/callback");
    let client: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Bank",
            "--redirect-uri",
            &callback,
            "--scopes",
            "openid,profile,email,offline_access",
            "--first-party",
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
    let (_driver, browser, _profile) = webdriver::open(driver_path, "900,1100").await;
    let pages = Pages {
        browser: &browser,
        base: server.base.clone(),
        shots: webdriver::screenshot_dir(),
    };

    let (secret, enrolled_at, codes) = add_an_app(&pages).await;
    sign_in_with_the_app(&pages, &app, &secret, enrolled_at).await;
    sign_in_with_a_recovery_code(&pages, &app, &codes[3]).await;
    step_up_for_an_app_that_asks(&pages, &app).await;

    let shots = pages.shots;
    browser.close().await.expect("close");
    server.stop();
    println!(
        "browser_factors: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// Signs in as `username` on the sign-in page the browser is on.
async fn type_password(pages: &Pages<'_>, username: &str) {
    pages.type_into("username", username).await;
    pages.type_into("password", PASSWORD).await;
    pages.click(Locator::Css("form button[type=submit]")).await;
}

/// On the security page: "Add an authenticator app", the secret read off the page, a
/// wrong code refused, the right one confirming it; the recovery codes shown once.
/// Returns the secret, the time of the code that confirmed it, and the codes.
async fn enrol(pages: &Pages<'_>, shot: &str) -> (String, u64, Vec<String>) {
    pages.click(Locator::Id("add-app")).await;
    let html = pages
        .arrive("/account/security/totp", "Add an authenticator app")
        .await;
    assert!(html.contains("<svg"), "the QR code is drawn in the page");
    let qr = pages
        .browser
        .find(Locator::Css("figure.qr svg"))
        .await
        .expect("the QR code");
    let size = qr.rectangle().await.expect("size");
    assert!(
        size.2 >= 150.0 && size.3 >= 150.0,
        "a QR code big enough to scan: {size:?}"
    );
    let secret = pages.text(Locator::Id("totp-secret")).await;
    assert_eq!(secret.len(), 32, "{secret}");
    pages.shoot(&format!("factors-{shot}-qr")).await;

    let wrong = if code_at(&secret, now()) == "123456" {
        "654321"
    } else {
        "123456"
    };
    pages.type_into("code", wrong).await;
    pages.type_into("name", "Phone").await;
    pages.click(Locator::Css("form button[type=submit]")).await;
    pages
        .arrive_with(
            "/account/security/totp/confirm",
            "Add an authenticator app",
            "That code is not right",
        )
        .await;
    let at = now();
    pages.type_into("code", &code_at(&secret, at)).await;
    pages.type_into("name", "Phone").await;
    pages.click(Locator::Css("form button[type=submit]")).await;
    pages
        .arrive("/account/security/totp/confirm", "Your recovery codes")
        .await;
    let mut codes = Vec::new();
    for element in pages
        .browser
        .find_all(Locator::Css("#recovery-codes code"))
        .await
        .expect("codes")
    {
        codes.push(element.text().await.expect("text"));
    }
    assert_eq!(codes.len(), 10, "{codes:?}");
    pages.shoot(&format!("factors-{shot}-recovery-codes")).await;
    (secret, at, codes)
}

/// Flow 1: dana adds an app from her security page.
async fn add_an_app(pages: &Pages<'_>) -> (String, u64, Vec<String>) {
    pages
        .open(&format!("{}/login?next=/account/security", pages.base))
        .await;
    pages.arrive("/login", "Sign in").await;
    type_password(pages, "dana").await;
    let html = pages.arrive("/account/security", "Security").await;
    assert!(html.contains("No authenticator app."));
    pages.shoot("factors-security-empty").await;
    let enrolled = enrol(pages, "dana").await;
    pages.click(Locator::Id("codes-saved")).await;
    let html = pages
        .arrive_with("/account/security", "Security", "Phone")
        .await;
    assert!(html.contains("last used never") || html.contains("last used"));
    assert_eq!(pages.text(Locator::Id("codes-left")).await, "10");
    pages.shoot("factors-security-listed").await;
    enrolled
}

/// Flow 2: a new browser session signs in to the app: the password, then the second
/// step with the app's next code. The ID token says 2fa, otp.
async fn sign_in_with_the_app(pages: &Pages<'_>, app: &App, secret: &str, enrolled_at: u64) {
    pages.browser.delete_all_cookies().await.expect("cookies");
    let request = app.authorization_request();
    pages.open(&request.url).await;
    pages.arrive("/login", "Sign in").await;
    type_password(pages, "dana").await;
    let html = pages.arrive("/login/second-factor", "Second step").await;
    assert!(html.contains("Bank"), "the app is named");
    pages.shoot("factors-second-step").await;
    pages
        .type_into("code", &code_at(secret, enrolled_at + 30))
        .await;
    pages.click(Locator::Css("form button[type=submit]")).await;
    let code = pages.code_at_the_app(app, &request.state).await;
    let tokens = app.exchange_code(&code, &request.verifier).await;
    let claims = id_token_claims(&tokens);
    assert_eq!(claims["acr"], "urn:sigil:acr:2fa", "{claims}");
    assert!(claims["amr"]
        .as_array()
        .is_some_and(|a| a.contains(&Value::from("otp"))));
}

/// Flow 3: without the phone, a recovery code; the security page shows one fewer left.
async fn sign_in_with_a_recovery_code(pages: &Pages<'_>, app: &App, code: &str) {
    pages.browser.delete_all_cookies().await.expect("cookies");
    let request = app.authorization_request();
    pages.open(&request.url).await;
    pages.arrive("/login", "Sign in").await;
    type_password(pages, "dana").await;
    pages.arrive("/login/second-factor", "Second step").await;
    pages.type_into("code", code).await;
    pages.click(Locator::Css("form button[type=submit]")).await;
    let returned = pages.code_at_the_app(app, &request.state).await;
    let tokens = app.exchange_code(&returned, &request.verifier).await;
    let claims = id_token_claims(&tokens);
    assert_eq!(claims["acr"], "urn:sigil:acr:2fa", "{claims}");
    pages
        .open(&format!("{}/account/security", pages.base))
        .await;
    pages.arrive("/account/security", "Security").await;
    assert_eq!(pages.text(Locator::Id("codes-left")).await, "9");
}

/// Flow 4: erin signs in with her password (1fa); then the app asks for 2fa: she adds an
/// app on the way, and the app gets its code.
async fn step_up_for_an_app_that_asks(pages: &Pages<'_>, app: &App) {
    pages.browser.delete_all_cookies().await.expect("cookies");
    let request = app.authorization_request();
    pages.open(&request.url).await;
    pages.arrive("/login", "Sign in").await;
    type_password(pages, "erin").await;
    let code = pages.code_at_the_app(app, &request.state).await;
    let claims = id_token_claims(&app.exchange_code(&code, &request.verifier).await);
    assert_eq!(claims["acr"], "urn:sigil:acr:1fa", "{claims}");

    let request = app.authorization_request();
    pages
        .open(&format!(
            "{}&acr_values=urn%3Asigil%3Aacr%3A2fa",
            request.url
        ))
        .await;
    let html = pages
        .arrive_with("/account/security", "Security", "needs a second factor")
        .await;
    assert!(html.contains("name=\"req\""));
    pages.shoot("factors-step-up-enrol").await;
    enrol(pages, "erin").await;
    pages.click(Locator::Id("codes-saved")).await;
    let code = pages.code_at_the_app(app, &request.state).await;
    let claims = id_token_claims(&app.exchange_code(&code, &request.verifier).await);
    assert_eq!(claims["acr"], "urn:sigil:acr:2fa", "{claims}");
}
