//! A single-page app on an origin of its own, built on a real SPA library (oidc-client-ts,
//! from npm), signs in at Sigil in headless chromium: the code flow with PKCE, the code
//! exchanged from the browser through CORS on `/token`, the profile from `/userinfo`, todos
//! created and listed at todo-api with the access token, a refresh through `/token` with a
//! rotated refresh token, todo-api again with the new access token, and `/revoke`. The same
//! app served from an origin the client did not register cannot exchange its code: the
//! browser withholds the token response. Screenshots go to
//! `target/tmp/screenshots/spa-*.png`. Skipped with a notice when chromedriver or npm is
//! missing, except under CI=true.

mod common;

use common::browser::{Pages, PATIENCE};
use common::process::{free_port, http_status, todo_api_binary, Background, Server, Setup};
use common::spa::{bind_loopback, oidc_client_bundle, serve_spa};
use common::{webdriver, TestDb};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USERNAME: &str = "grace";
const PASSWORD: &str = "a single page pass phrase";
const TODO_TITLE: &str = "Write the SPA test";

/// Sigil with a user and the SPA's public client, todo-api, and the SPA served from the
/// registered origin and from a second origin that is not registered.
struct Stack {
    _db: TestDb,
    _todo_dir: tempfile::TempDir,
    _todo_api: Background,
    server: Server,
    client_id: String,
    /// The origin registered with `--allowed-origin`.
    spa: String,
    /// An origin whose callback is a registered redirect URI, but not an allowed origin.
    stranger: String,
}

async fn start(bundle: PathBuf) -> Stack {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start(&setup);
    setup.sigil(
        &[
            "user",
            "add",
            "--username",
            USERNAME,
            "--name",
            "Grace Hopper",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let (spa_listener, spa) = bind_loopback().await;
    let (stranger_listener, stranger) = bind_loopback().await;
    let registered: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "spa",
            "--public",
            "--redirect-uri",
            &format!("{spa}/callback.html"),
            "--redirect-uri",
            &format!("{stranger}/callback.html"),
            "--allowed-origin",
            &spa,
            "--scopes",
            "openid,profile,offline_access,todos:read,todos:write",
            "--audience",
            "todo-api",
            "--first-party",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let client_id = registered["client_id"].as_str().expect("client_id");
    assert!(registered["client_secret"].is_null(), "{registered}");

    let todo_port = free_port();
    let todo_api = format!("http://127.0.0.1:{todo_port}");
    let todo_dir = tempfile::tempdir().expect("tempdir");
    let todo_log_path = todo_dir.path().join("todo-api.log");
    let todo_log = std::fs::File::create(&todo_log_path).expect("log");
    let todo_process = Background(
        Command::new(todo_api_binary())
            .args(["--issuer", &server.base, "--audience", "todo-api"])
            .args(["--bind", &format!("127.0.0.1:{todo_port}")])
            .arg("--database-url")
            .arg(format!("sqlite://{}/todo.db", todo_dir.path().display()))
            .args(["--cors-origin", &spa])
            .stdout(Stdio::null())
            .stderr(todo_log)
            .spawn()
            .expect("start todo-api"),
    );
    let deadline = Instant::now() + PATIENCE;
    while http_status(&format!("{todo_api}/healthz")).unwrap_or(0) != 200 {
        assert!(
            Instant::now() < deadline,
            "todo-api did not start: {}",
            std::fs::read_to_string(&todo_log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let config = json!({
        "authority": server.base,
        "client_id": client_id,
        "todo_api": todo_api,
    });
    serve_spa(spa_listener, bundle.clone(), config.clone());
    serve_spa(stranger_listener, bundle, config);
    Stack {
        _db: db,
        _todo_dir: todo_dir,
        _todo_api: todo_process,
        client_id: client_id.to_string(),
        server,
        spa,
        stranger,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_page_app_signs_in_calls_the_api_and_refreshes_from_the_browser() {
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let Some(bundle) = oidc_client_bundle() else {
        return;
    };
    let stack = start(bundle).await;
    let sigil = stack.server.base.clone();
    let (_driver, browser, _profile) = webdriver::open(driver_path, "1000,1100").await;
    let pages = Pages {
        browser: &browser,
        base: sigil.clone(),
        shots: webdriver::screenshot_dir(),
    };

    pages.open(&format!("{}/", stack.spa)).await;
    wait_for_text(&browser, "status", "signed out").await;
    pages.shoot("spa-signed-out").await;
    let mut console = webdriver::console_messages(&browser).await;
    pages.click(Locator::Id("sign-in")).await;
    sign_in_at_sigil(&pages).await;

    // The callback page exchanges the code from the browser, then opens the app.
    wait_for_text(&browser, "status", "signed in").await;
    assert_eq!(pages.path().await, "/");
    wait_for_text(&browser, "user", USERNAME).await;
    let requests = request_log(&browser).await;
    for expected in [
        format!("GET {sigil}/.well-known/openid-configuration -> 200"),
        format!("POST {sigil}/token grant_type=authorization_code -> 200"),
        format!("GET {sigil}/userinfo -> 200"),
    ] {
        assert!(requests.contains(&expected), "{expected}: {requests:#?}");
    }

    pages.type_into("todo-title", TODO_TITLE).await;
    pages.click(Locator::Css("#new-todo button")).await;
    wait_for_text(&browser, "todos", TODO_TITLE).await;
    assert_eq!(text_of(&browser, "api-status").await, "GET 200");
    assert_eq!(text_of(&browser, "error").await, "");
    let first_access_token = text_of(&browser, "access-token").await;
    assert!(!first_access_token.is_empty());
    assert_eq!(text_of(&browser, "api-token").await, first_access_token);
    pages.shoot("spa-signed-in").await;

    // signinSilent with a refresh token at hand: the refresh token grant at /token (then
    // the profile again from /userinfo, with the new access token).
    let before_refresh = request_log(&browser).await.len();
    pages.click(Locator::Id("refresh")).await;
    wait_for_text(&browser, "refresh-count", "1").await;
    assert_eq!(text_of(&browser, "error").await, "");
    assert_eq!(text_of(&browser, "refresh-rotation").await, "rotated");
    let second_access_token = text_of(&browser, "access-token").await;
    assert_ne!(second_access_token, first_access_token);
    let requests = request_log(&browser).await;
    let refresh_requests: Vec<&str> = requests[before_refresh..]
        .iter()
        .map(String::as_str)
        .filter(|line| !line.starts_with(&format!("GET {sigil}/.well-known/")))
        .collect();
    assert_eq!(
        refresh_requests,
        [
            format!("POST {sigil}/token grant_type=refresh_token -> 200"),
            format!("GET {sigil}/userinfo -> 200"),
        ],
        "{requests:#?}"
    );
    let frames = browser
        .execute("return document.querySelectorAll('iframe').length", vec![])
        .await
        .expect("count frames");
    assert_eq!(frames, json!(0), "no iframe took part in the refresh");

    pages.click(Locator::Id("load-todos")).await;
    wait_for_text(&browser, "api-token", &second_access_token).await;
    assert_eq!(text_of(&browser, "api-status").await, "GET 200");
    assert!(text_of(&browser, "todos").await.contains(TODO_TITLE));
    pages.shoot("spa-refreshed").await;

    // Nothing was refused along the way: no CORS error, no failed load.
    console.extend(webdriver::console_messages(&browser).await);
    let problems: Vec<&Value> = console
        .iter()
        .filter(|entry| {
            entry["level"] == "SEVERE"
                || entry["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("CORS"))
        })
        .collect();
    assert!(problems.is_empty(), "the console: {problems:#?}");

    // Revocation from the browser; Sigil then refuses the refresh token.
    let refresh_token = stored_refresh_token(&browser).await;
    pages.click(Locator::Id("revoke")).await;
    wait_for_text(&browser, "refresh-rotation", "revoked").await;
    assert_eq!(text_of(&browser, "error").await, "");
    let requests = request_log(&browser).await;
    assert_eq!(
        requests.last().map(String::as_str),
        Some(format!("POST {sigil}/revoke -> 200").as_str()),
        "{requests:#?}"
    );
    let refused = reqwest::Client::new()
        .post(format!("{sigil}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &stack.client_id),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // oidc-client-ts forgets a revoked refresh token; without one the app does not refresh
    // (signinSilent would fall back to an iframe with prompt=none).
    assert_eq!(stored_refresh_token_or_none(&browser).await, None);
    pages.click(Locator::Id("refresh")).await;
    wait_for_text(&browser, "error", "no refresh token: sign in again").await;
    assert_eq!(text_of(&browser, "refresh-count").await, "1");
    pages.shoot("spa-revoked").await;

    browser.close().await.expect("close");
    stack.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_app_on_an_origin_not_registered_cannot_exchange_its_code() {
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let Some(bundle) = oidc_client_bundle() else {
        return;
    };
    let stack = start(bundle).await;
    let sigil = stack.server.base.clone();
    let (_driver, browser, _profile) = webdriver::open(driver_path, "1000,1100").await;
    let pages = Pages {
        browser: &browser,
        base: sigil.clone(),
        shots: webdriver::screenshot_dir(),
    };

    pages.open(&format!("{}/", stack.stranger)).await;
    wait_for_text(&browser, "status", "signed out").await;
    pages.click(Locator::Id("sign-in")).await;
    sign_in_at_sigil(&pages).await;

    // The code comes back (the redirect URI is registered), but the token response is
    // withheld from a page on this origin: fetch fails, and no user is stored.
    wait_for_text(&browser, "status", "sign-in failed").await;
    assert_eq!(pages.path().await, "/callback.html");
    wait_for_text(&browser, "error", "Failed to fetch").await;
    pages.shoot("spa-unregistered-origin").await;
    let requests = request_log(&browser).await;
    // Discovery is readable from any origin; the token endpoint is not.
    for expected in [
        format!("GET {sigil}/.well-known/openid-configuration -> 200"),
        format!("POST {sigil}/token grant_type=authorization_code -> failed: Failed to fetch"),
    ] {
        assert!(requests.contains(&expected), "{expected}: {requests:#?}");
    }
    let blocked: Vec<String> = webdriver::console_messages(&browser)
        .await
        .into_iter()
        .filter_map(|entry| entry["message"].as_str().map(str::to_string))
        .filter(|message| {
            message.contains(&format!("{sigil}/token"))
                && message.contains(&format!("from origin '{}'", stack.stranger))
                && message.contains("blocked by CORS policy")
        })
        .collect();
    assert!(
        !blocked.is_empty(),
        "the console says why the token response was withheld"
    );
    assert_eq!(stored_refresh_token_or_none(&browser).await, None);

    browser.close().await.expect("close");
    stack.server.stop();
}

/// Sigil's sign-in page, filled in and sent; the client is first-party, so no consent.
async fn sign_in_at_sigil(pages: &Pages<'_>) {
    pages.arrive("/login", "Sign in").await;
    pages.shoot("spa-sigil-sign-in").await;
    pages.type_into("username", USERNAME).await;
    pages.type_into("password", PASSWORD).await;
    pages.click(Locator::Css("form button[type=submit]")).await;
}

/// The text of the element with this id, or "" while the page has none.
async fn text_of(browser: &Client, id: &str) -> String {
    match browser.find(Locator::Id(id)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the element with this id shows `expected` (or a text containing it).
async fn wait_for_text(browser: &Client, id: &str, expected: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let shown = text_of(browser, id).await;
        if shown == expected || (!expected.is_empty() && shown.contains(expected)) {
            return;
        }
        if Instant::now() >= deadline {
            let url = browser.current_url().await.expect("url");
            let page = text_of(browser, "error").await;
            let requests = request_log(browser).await;
            panic!("#{id} never showed {expected:?} (it shows {shown:?}); at {url}, error {page:?}, requests {requests:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The app's list of requests to other origins (method, URL, grant type, outcome).
async fn request_log(browser: &Client) -> Vec<String> {
    let lines = browser
        .execute(
            "return Array.from(document.querySelectorAll('#requests li'), li => li.textContent)",
            vec![],
        )
        .await
        .expect("the request list");
    serde_json::from_value(lines).expect("strings")
}

/// The refresh token oidc-client-ts keeps for the signed-in user (in sessionStorage).
async fn stored_refresh_token(browser: &Client) -> String {
    stored_refresh_token_or_none(browser)
        .await
        .expect("a stored refresh token")
}

async fn stored_refresh_token_or_none(browser: &Client) -> Option<String> {
    let found = browser
        .execute(
            "const key = Object.keys(sessionStorage).find(k => k.startsWith('oidc.user:'));
             return key ? JSON.parse(sessionStorage.getItem(key)).refresh_token : null;",
            vec![],
        )
        .await
        .expect("read sessionStorage");
    found.as_str().map(str::to_string)
}
