//! The TODO app's web front end (`todo-web`, a backend-for-frontend) in a real browser
//! (headless chromium through chromedriver, driven with fantoccini), against the real
//! `sigil`, `todo-api` and `todo-web` binaries: sign in through Sigil's pages, add a todo
//! (it reaches todo-api's store), wait out the 5-second access token and add another (the
//! refresh worked), then sign out at Sigil in a second tab and watch the first tab's
//! session end through back-channel logout. Then sign in again and sign out with the app's
//! own button (RP-initiated logout with `id_token_hint`). Every todo-web page is checked
//! for its heading, no script and a clean console under its CSP, and photographed into
//! `target/tmp/screenshots/todo-web-*.png`. Skipped with a notice when chromedriver is
//! missing, except under CI=true.

mod common;

use common::browser::{Pages, PATIENCE};
use common::process::{
    free_port, http_status, todo_api_binary, todo_web_binary, Background, Server, Setup,
};
use common::{webdriver, TestDb};
use fantoccini::Locator;
use serde_json::Value;
use sqlx::Row;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "a pass phrase of her own";
/// The client's access-token lifetime: short, so the test sees a refresh.
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(5);
const SIGNED_OUT: &str = "Sign in to see your todos";
const SIGNED_IN: &str = "Your todos";

/// Starts a binary with its output in `log`, and waits for `health` to answer 200.
fn start(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    log: &Path,
    health: &str,
) -> Background {
    let file = std::fs::File::create(log).expect("log file");
    let child = Background(
        Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display())),
    );
    let deadline = Instant::now() + PATIENCE;
    while http_status(health).unwrap_or(0) != 200 {
        assert!(
            Instant::now() < deadline,
            "{} did not start: {}",
            program.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// The titles and owners in todo-api's own store.
async fn stored_todos(database_url: &str) -> Vec<(String, String)> {
    let pool = sqlx::SqlitePool::connect(database_url)
        .await
        .expect("todo-api's database");
    let rows = sqlx::query("SELECT title, owner FROM todos ORDER BY created_at, title")
        .fetch_all(&pool)
        .await
        .expect("todos");
    pool.close().await;
    rows.iter()
        .map(|row| (row.get("title"), row.get("owner")))
        .collect()
}

/// Signs in on Sigil's page (the browser is there) and waits for the app's todo list.
async fn sign_in_at_sigil(sigil: &Pages<'_>, web: &Pages<'_>) {
    sigil.arrive("/login", "Sign in").await;
    sigil.type_into("username", "ada").await;
    sigil.type_into("password", PASSWORD).await;
    sigil.click(Locator::Css("form button[type=submit]")).await;
    web.arrive_with("/", SIGNED_IN, "Ada Lovelace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todo_web_signs_in_refreshes_and_follows_back_channel_logout() {
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
            "ada",
            "--email",
            "ada@example.com",
            "--name",
            "Ada Lovelace",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let web_port = free_port();
    let web = format!("http://127.0.0.1:{web_port}");
    let ttl = format!("{}s", ACCESS_TOKEN_TTL.as_secs());
    let client: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "todo-web",
            "--redirect-uri",
            &format!("{web}/callback"),
            "--post-logout-redirect-uri",
            &format!("{web}/"),
            "--scopes",
            "openid,profile,email,offline_access,todos:read,todos:write",
            "--audience",
            "todo-api",
            "--first-party",
            "--backchannel-logout-uri",
            &format!("{web}/backchannel-logout"),
            "--access-token-ttl",
            &ttl,
            "--json",
        ],
        None,
    ))
    .expect("client JSON");
    let client_id = client["client_id"].as_str().expect("client_id");
    let client_secret = client["client_secret"].as_str().expect("client_secret");

    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let todo_db = format!("sqlite://{}/todo.db", setup.dir.path().display());
    let _todo_api = start(
        &todo_api_binary(),
        &[
            "--issuer",
            &server.base,
            "--audience",
            "todo-api",
            "--bind",
            &format!("127.0.0.1:{api_port}"),
            "--database-url",
            &todo_db,
        ],
        &[],
        &setup.dir.path().join("todo-api.log"),
        &format!("{api}/healthz"),
    );
    let web_log = setup.dir.path().join("todo-web.log");
    let _todo_web = start(
        &todo_web_binary(),
        &[
            "--issuer",
            &server.base,
            "--client-id",
            client_id,
            "--todo-api",
            &api,
            "--bind",
            &format!("127.0.0.1:{web_port}"),
        ],
        &[
            ("TODO_WEB_CLIENT_SECRET", client_secret),
            ("RUST_LOG", "todo_web=debug,info"),
        ],
        &web_log,
        &format!("{web}/healthz"),
    );

    let (_driver, browser, _profile) = webdriver::open(driver_path, "900,900").await;
    let shots = webdriver::screenshot_dir();
    let pages = Pages {
        browser: &browser,
        base: web.clone(),
        shots: shots.clone(),
    };
    let sigil = Pages {
        browser: &browser,
        base: server.base.clone(),
        shots,
    };

    // Signed out: one button, which starts the sign-in at Sigil.
    pages.open(&format!("{web}/")).await;
    pages.arrive("/", SIGNED_OUT).await;
    pages.shoot("todo-web-signed-out").await;
    pages.click(Locator::LinkText("Sign in with Sigil")).await;
    sign_in_at_sigil(&sigil, &pages).await;
    let signed_in_at = Instant::now();

    // A todo goes through todo-web to todo-api, under Ada's subject.
    pages.type_into("title", "Buy milk").await;
    pages.click(Locator::Id("add")).await;
    pages.arrive_with("/", SIGNED_IN, "Buy milk").await;
    browser.refresh().await.expect("reload");
    pages.arrive_with("/", SIGNED_IN, "Buy milk").await;
    let stored = stored_todos(&todo_db).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, "Buy milk");
    let ada = stored[0].1.clone();

    // Past the access token's lifetime, the next change needs a refreshed token.
    let expired_at = signed_in_at + ACCESS_TOKEN_TTL + Duration::from_millis(500);
    tokio::time::sleep(expired_at.saturating_duration_since(Instant::now())).await;
    pages.type_into("title", "Walk the dog").await;
    pages.click(Locator::Id("add")).await;
    pages.arrive_with("/", SIGNED_IN, "Walk the dog").await;
    let html = pages.arrive_with("/", SIGNED_IN, "Buy milk").await;
    assert!(html.contains("name=\"csrf\""), "{html}");
    pages.shoot("todo-web-signed-in").await;
    let stored = stored_todos(&todo_db).await;
    assert_eq!(
        stored,
        vec![
            ("Buy milk".to_string(), ada.clone()),
            ("Walk the dog".to_string(), ada.clone())
        ]
    );
    let log = std::fs::read_to_string(&web_log).expect("todo-web log");
    assert!(log.contains("refreshed the access token"), "{log}");

    // Complete one; it moves to the done part of the list.
    pages
        .click(Locator::XPath(
            "//li[span[text()='Buy milk']]//button[text()='Done']",
        ))
        .await;
    pages.arrive_with("/", SIGNED_IN, "Walk the dog").await;
    assert!(browser
        .find(Locator::XPath(
            "//li[contains(@class,'done')]/span[text()='Buy milk']"
        ))
        .await
        .is_ok());

    // A second tab signs out at Sigil itself (no id_token_hint, so Sigil asks first).
    let app_tab = browser.window().await.expect("window");
    let sigil_tab = browser.new_window(true).await.expect("new tab");
    browser
        .switch_to_window(sigil_tab.handle.clone())
        .await
        .expect("switch");
    sigil.open(&format!("{}/logout", server.base)).await;
    sigil.arrive("/logout", "Sign out?").await;
    sigil.click(Locator::Css("form button[type=submit]")).await;
    sigil.arrive("/logout/confirm", "Signed out").await;

    // Back in the app's tab: Sigil's logout token has ended todo-web's session.
    browser
        .switch_to_window(app_tab)
        .await
        .expect("switch back");
    let deadline = Instant::now() + PATIENCE;
    loop {
        browser.refresh().await.expect("reload");
        let heading = match browser.find(Locator::Css("h1")).await {
            Ok(h1) => h1.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if heading == SIGNED_OUT {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "todo-web's session did not end after the logout at Sigil (heading {heading:?}); todo-web's log: {}",
            std::fs::read_to_string(&web_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    pages
        .arrive_with("/", SIGNED_OUT, "Your session has ended")
        .await;
    pages.shoot("todo-web-after-back-channel-logout").await;
    let log = std::fs::read_to_string(&web_log).expect("todo-web log");
    assert!(log.contains("back-channel logout"), "{log}");

    // Signing in again shows the same todos; the app's own button signs out of both.
    pages.click(Locator::LinkText("Sign in with Sigil")).await;
    sign_in_at_sigil(&sigil, &pages).await;
    pages.arrive_with("/", SIGNED_IN, "Walk the dog").await;
    pages.click(Locator::Id("sign-out")).await;
    pages
        .arrive_with("/", SIGNED_OUT, "You have signed out of Todo and of Sigil")
        .await;
    pages.shoot("todo-web-signed-out-of-both").await;
    // Sigil's session ended too: signing in asks for the password again.
    pages.click(Locator::LinkText("Sign in with Sigil")).await;
    sigil.arrive("/login", "Sign in").await;

    browser.close().await.expect("close");
    server.stop();
}
