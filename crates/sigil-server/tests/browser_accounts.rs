//! A real browser (Debian's headless chromium through chromedriver, driven with
//! fantoccini) runs the account pages end to end, with mail through a real SMTP server
//! (aiosmtpd writing a Maildir): sign-up from an app's authorization request, the
//! verification link, back at the app with a code; forgot-password and reset, the old
//! refresh token refused; the account pages, and "Remove access" revoking the app. Every
//! page is checked for its key text, for having no script and for a clean console under its
//! CSP, and photographed into `target/tmp/screenshots/accounts-*.png`.
//! Skipped with a notice when chromedriver or aiosmtpd is missing, except under CI=true.

mod common;

use common::browser::{callback_server, smtp_python, App, Pages, SmtpServer};
use common::process::{free_port, Server, Setup};
use common::{webdriver, TestDb};
use fantoccini::Locator;
use serde_json::Value;
use std::time::Instant;

const USERNAME: &str = "dana";
const EMAIL: &str = "dana@example.com";
const COMMON_PASSWORD: &str = "qwertyuiop";
const PASSWORD: &str = "a pass phrase of my own";
const NEW_PASSWORD: &str = "another pass phrase, later";

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
