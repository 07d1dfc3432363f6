//! A real browser (headless chromium through chromedriver, driven with fantoccini) makes
//! the whole "Sign in with …" round trip: the app's request at Sigil, Sigil's sign-in page,
//! "Sign in with Upstream", the upstream Sigil's own sign-in page, back to Sigil, the
//! consent page, and the app's redirect with a code whose ID token says `amr: fed`. Then
//! the account's providers page, and a forged callback ending on Sigil's own error page.
//! Two servers on one host share cookies across ports, so each has its own
//! `--session-cookie-name`. Every page is checked for its heading, no script and a clean
//! console, and photographed into `target/tmp/screenshots/federation-*.png`. Skipped with a
//! notice when chromedriver is missing, except under CI=true.

mod common;

use common::browser::{callback_server, App, Pages};
use common::process::{free_port, Server, Setup};
use common::{webdriver, TestDb};
use fantoccini::Locator;
use serde_json::Value;

const PASSWORD: &str = "an upstream pass phrase";

struct Sigil {
    _db: TestDb,
    setup: Setup,
    server: Server,
}

fn start(cookie: &str, port: u16) -> Sigil {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(&setup, &[], &["--session-cookie-name", cookie], port, &[]);
    Sigil {
        _db: db,
        setup,
        server,
    }
}

fn client(sigil: &Sigil, name: &str, redirect_uri: &str, first_party: bool) -> Value {
    let mut args = vec![
        "client",
        "add",
        "--name",
        name,
        "--redirect-uri",
        redirect_uri,
        "--scopes",
        "openid,profile,email,offline_access",
        "--json",
    ];
    if first_party {
        args.push("--first-party");
    }
    serde_json::from_str(&sigil.setup.sigil(&args, None)).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_another_sigil_in_a_real_browser() {
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let up = start("upstream_session", free_port());
    up.setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "ada",
            "--email",
            "ada@example.com",
            "--name",
            "Ada Lovelace",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let down_port = free_port();
    let upstream_client = client(
        &up,
        "Sigil downstream",
        &format!("http://127.0.0.1:{down_port}/login/provider/upstream/callback"),
        true,
    );
    let down = start("downstream_session", down_port);
    down.setup.sigil(
        &[
            "provider",
            "add",
            "--id",
            "upstream",
            "--name",
            "Upstream",
            "--issuer",
            &up.server.base,
            "--client-id",
            upstream_client["client_id"].as_str().expect("id"),
            "--client-secret-stdin",
            "--create-users",
            "--trust-email",
            "--allow-http",
        ],
        Some(upstream_client["client_secret"].as_str().expect("secret")),
    );
    let app_port = callback_server().await;
    let callback = format!("http://127.0.0.1:{app_port}/callback");
    let registered = client(&down, "Todo App", &callback, false);
    let app = App {
        base: down.server.base.clone(),
        port: app_port,
        callback,
        client_id: registered["client_id"].as_str().expect("id").into(),
        client_secret: registered["client_secret"].as_str().expect("secret").into(),
        http: reqwest::Client::new(),
    };
    let (_driver, browser, _profile) = webdriver::open(driver_path, "900,1000").await;
    let pages = Pages {
        browser: &browser,
        base: down.server.base.clone(),
        shots: webdriver::screenshot_dir(),
    };
    let upstream_pages = Pages {
        browser: &browser,
        base: up.server.base.clone(),
        shots: webdriver::screenshot_dir(),
    };

    let request = app.authorization_request();
    pages.open(&request.url).await;
    let html = pages.arrive("/login", "Sign in").await;
    assert!(html.contains("Sign in with Upstream"), "{html}");
    pages.shoot("federation-sign-in").await;
    pages
        .click(Locator::LinkText("Sign in with Upstream"))
        .await;

    upstream_pages.arrive("/login", "Sign in").await;
    let at = browser.current_url().await.expect("url");
    assert_eq!(
        at.port(),
        up.server
            .base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok()),
        "the upstream's own page: {at}"
    );
    upstream_pages.shoot("federation-upstream-sign-in").await;
    upstream_pages.type_into("username", "ada").await;
    upstream_pages.type_into("password", PASSWORD).await;
    upstream_pages
        .click(Locator::Css("form button[type=submit]"))
        .await;

    pages.arrive("/consent", "Allow Todo App access?").await;
    pages.shoot("federation-consent").await;
    pages.click(Locator::Css("button[value=allow]")).await;
    let code = pages.code_at_the_app(&app, &request.state).await;
    let tokens = app.exchange_code(&code, &request.verifier).await;
    let claims = common::jwt_claims(tokens["id_token"].as_str().expect("id_token"));
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(amr, vec!["fed"], "{claims}");
    assert_eq!(claims["preferred_username"], "ada");
    assert_eq!(claims["name"], "Ada Lovelace");

    // The account made at the first sign-in lists its provider.
    pages
        .open(&format!("{}/account/providers", down.server.base))
        .await;
    let html = pages
        .arrive("/account/providers", "Sign-in providers")
        .await;
    assert!(html.contains("<strong>Upstream</strong>"), "{html}");
    assert!(html.contains("has no password"), "{html}");
    pages.shoot("federation-account-providers").await;

    // A callback this browser did not start: Sigil's own page, back to sign-in.
    pages
        .open(&format!(
            "{}/login/provider/upstream/callback?code=stolen&state=forged",
            down.server.base
        ))
        .await;
    pages
        .arrive(
            "/login/provider/upstream/callback",
            "This sign-in cannot be completed",
        )
        .await;
    pages.shoot("federation-forged-callback").await;
    pages.click(Locator::LinkText("Back to sign-in")).await;
    pages.arrive("/login", "Sign in").await;

    browser.close().await.expect("close");
    down.server.stop();
    up.server.stop();
}
