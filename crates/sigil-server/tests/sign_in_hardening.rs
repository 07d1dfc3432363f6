//! Password checks under attack, against the real `sigil` binary over real sockets: a flood
//! of hang-ups cannot get past the password-hash queue or skip the record of what ran;
//! concurrent guesses cost what the same guesses one after another cost; a forced password
//! change blocks every way of signing in; a password change, reset, disabling or sign-out
//! everywhere ends every token; weaker stored hashes are rehashed; a browser that signed in
//! before is not locked out by guesses from elsewhere.

mod common;

use common::process::{free_port, Server, Setup};
use common::{hidden, TestDb};
use reqwest::redirect::Policy;
use serde_json::Value;
use sigil_core::audit::AuditFilter;
use sigil_core::store::Store;
use sigil_server::store::{Database, DatabaseOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "she chose this one herself";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

struct App {
    id: String,
    secret: String,
}

/// Migrates, adds `alice` (cheap argon2, as the CLI runs in tests) and a first-party
/// confidential client allowed the code flow, refresh tokens and the password grant.
fn prepare(setup: &Setup) -> App {
    setup.sigil(&["migrate"], None);
    setup.sigil(
        &["user", "add", "--username", "alice", "--password-stdin"],
        Some(PASSWORD),
    );
    let client: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "hardening app",
            "--redirect-uri",
            CALLBACK,
            "--grant-types",
            "authorization_code,refresh_token,password",
            "--scopes",
            "openid,profile,offline_access",
            "--first-party",
            "--json",
        ],
        None,
    ))
    .expect("client json");
    App {
        id: client["client_id"].as_str().expect("id").to_string(),
        secret: client["client_secret"]
            .as_str()
            .expect("secret")
            .to_string(),
    }
}

fn setup_for(db: &TestDb) -> Setup {
    Setup::new(db.url(), tempfile::tempdir().expect("tempdir"))
}

/// A fresh SQLite database (kept alive by the first value) and its setup.
fn sqlite_setup() -> (TestDb, Setup) {
    let db = TestDb::sqlite();
    let setup = setup_for(&db);
    (db, setup)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// A browser: keeps cookies, does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn post_token(
    http: &reqwest::Client,
    base: &str,
    app: &App,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = http
        .post(format!("{base}/token"))
        .basic_auth(&app.id, Some(&app.secret))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn password_grant(
    base: &str,
    app: &App,
    username: &str,
    password: &str,
    scope: &str,
) -> (u16, Value) {
    post_token(
        &http(),
        base,
        app,
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", scope),
        ],
    )
    .await
}

async fn introspect(base: &str, app: &App, token: &str) -> bool {
    let response = http()
        .post(format!("{base}/introspect"))
        .basic_auth(&app.id, Some(&app.secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["active"].as_bool().expect("active")
}

async fn userinfo_status(base: &str, token: &str) -> u16 {
    http()
        .get(format!("{base}/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo")
        .status()
        .as_u16()
}

/// Signs in on the sign-in page (no pending request): the status, the Retry-After header
/// and the page.
async fn login_page(
    browser: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> (u16, Option<String>, String) {
    let response = post_login(browser, base, username, password).await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        retry_after,
        response.text().await.unwrap_or_default(),
    )
}

/// Fetches the sign-in page and posts it with a user name and password.
async fn post_login(
    browser: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    browser
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf").as_str()),
            ("req", ""),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("login")
}

/// The server log's warning and error lines, for a failure message.
fn warnings(setup: &Setup) -> String {
    std::fs::read_to_string(setup.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
}

async fn open_store(setup: &Setup) -> Arc<dyn Store> {
    Database::connect(&setup.database_url, &DatabaseOptions::default())
        .await
        .expect("database")
        .store()
}

/// Finding 1: a queued or running hash keeps its place in the password pool whatever
/// happens to the request, and its outcome is recorded even when nobody waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_neither_frees_the_hash_queue_nor_skips_the_record() {
    let (_db, setup) = sqlite_setup();
    let app = prepare(&setup);
    // One worker and two places in the queue; hashes slow enough (256 MiB, 4 passes: most
    // of a second each) that none finishes while the waves below are sent.
    let server = Server::start_on(
        &setup,
        &[],
        &[
            "--password-workers",
            "1",
            "--password-queue",
            "2",
            "--sign-in-free-failures-per-address",
            "0",
        ],
        free_port(),
        &[
            ("SIGIL_ARGON2_MEMORY_KIB", "262144"),
            ("SIGIL_ARGON2_ITERATIONS", "4"),
            ("RUST_LOG", "info"),
        ],
    );
    let address = server.base.trim_start_matches("http://").to_string();
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.id, app.secret))
    };
    let request_for = |username: &str| {
        let body = format!("grant_type=password&username={username}&password=wrong+guess");
        format!(
            "POST /token HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // Four waves of as many requests as the pool holds, each socket closed 30 ms after
    // its request was sent (what the audit reproduced).
    let mut sent = 0;
    for wave in 0..4 {
        let mut sockets = Vec::new();
        for n in 0..3 {
            let mut socket = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect");
            socket
                .write_all(request_for(&format!("wave{wave}-{n}")).as_bytes())
                .await
                .expect("send");
            sockets.push(socket);
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(sockets);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A legitimate sign-in now is refused at once: every place is still taken.
    let started = Instant::now();
    let (status, body) = password_grant(&server.base, &app, "alice", PASSWORD, "openid").await;
    assert_eq!(status, 503, "the queue is still full: {}", body["error"]);
    assert!(started.elapsed() < Duration::from_secs(2), "refused fast");

    // Every hash that ran is counted and audited, though nobody waited for its answer.
    let store = open_store(&setup).await;
    let subjects: Vec<String> = (0..4)
        .flat_map(|wave| (0..3).map(move |n| format!("account:wave{wave}-{n}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (counted, audited) = loop {
        let counted = store
            .find_sign_in_failures(&subjects)
            .await
            .expect("counts")
            .len();
        let audited = store
            .list_audit(&AuditFilter {
                action_prefix: Some("sign_in.failure".into()),
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .expect("audit")
            .len();
        if (counted > 0 && counted == audited) || Instant::now() > deadline {
            break (counted, audited);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(counted > 0, "the hashes that ran were counted");
    assert_eq!(audited, counted, "and each one audited");
    assert!(
        counted <= 3 + 3,
        "{counted} of {sent} hang-ups got a hash: the ones refused with 503 did not"
    );
    server.stop();
}

/// Finding 3: N guesses sent at once cost exactly what N guesses one after another cost,
/// per account and per address, on SQLite and PostgreSQL.
async fn concurrent_guesses_cost_what_sequential_ones_cost(db: TestDb) {
    let setup = setup_for(&db);
    let app = prepare(&setup);
    let server = Server::start_on(
        &setup,
        &[],
        &[
            "--password-queue",
            "256",
            "--sign-in-free-failures-per-address",
            "20",
            // A burst on a loaded machine can take longer than the default first wait (1s),
            // and a guess after that wait is rightly checked: count with a wait no burst outlasts.
            "--sign-in-first-wait",
            "10m",
            // Generous: this test is about counting, not about a loaded machine.
            "--db-acquire-timeout",
            "10s",
        ],
        free_port(),
        &[("RUST_LOG", "info")],
    );
    let base = server.base.clone();
    let app = Arc::new(app);
    let burst = |guesses: Vec<(String, String)>| {
        let base = base.clone();
        let app = app.clone();
        async move {
            let tasks: Vec<_> = guesses
                .into_iter()
                .map(|(username, password)| {
                    let base = base.clone();
                    let app = app.clone();
                    tokio::spawn(async move {
                        password_grant(&base, &app, &username, &password, "openid")
                            .await
                            .0
                    })
                })
                .collect();
            let mut statuses = BTreeMap::new();
            for task in tasks {
                *statuses.entry(task.await.expect("join")).or_insert(0) += 1;
            }
            statuses
        }
    };
    // 40 wrong passwords for one account at once: 5 are checked, as one after another.
    let statuses = burst(
        (0..40)
            .map(|n| ("alice".to_string(), format!("guess {n}")))
            .collect(),
    )
    .await;
    assert_eq!(
        statuses,
        BTreeMap::from([(400, 5), (429, 35)]),
        "per account; the log: {}",
        warnings(&setup)
    );
    // ... and the right one after them waits like the 41st sequential attempt would.
    let (status, _) = password_grant(&base, &app, "alice", PASSWORD, "openid").await;
    assert_eq!(status, 429);
    // 40 names at once from one address: the address's 15 remaining free failures.
    let statuses = burst(
        (0..40)
            .map(|n| (format!("someone{n}"), "guess".to_string()))
            .collect(),
    )
    .await;
    assert_eq!(
        statuses,
        BTreeMap::from([(400, 15), (429, 25)]),
        "per address; the log: {}",
        warnings(&setup)
    );
    let store = open_store(&setup).await;
    let counts = store
        .find_sign_in_failures(&["account:alice".to_string(), "address:127.0.0.1".to_string()])
        .await
        .expect("counts");
    let failures: BTreeMap<String, i64> = counts
        .into_iter()
        .map(|c| (c.subject, c.failures))
        .collect();
    assert_eq!(failures.get("account:alice"), Some(&5));
    assert_eq!(failures.get("address:127.0.0.1"), Some(&20));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cost_what_sequential_ones_cost_on_sqlite() {
    concurrent_guesses_cost_what_sequential_ones_cost(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cost_what_sequential_ones_cost_on_postgres() {
    let Some(db) = TestDb::postgres("concurrent_guesses_on_postgres").await else {
        return;
    };
    concurrent_guesses_cost_what_sequential_ones_cost(db).await;
}

/// The location of a redirect, made absolute.
fn location(base: &str, response: &reqwest::Response) -> String {
    let location = response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", response.status()))
        .to_str()
        .expect("ascii");
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

fn authorize_url(base: &str, app: &App) -> String {
    let mut url = url::Url::parse(&format!("{base}/authorize")).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", &app.id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "s1")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

/// Finding 7: with `must_change_password` set, neither the password grant nor the sign-in
/// page finishes until the password is changed; the sign-in page leads to a page that
/// changes it and then resumes the application's request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_password_change_blocks_every_sign_in_path() {
    let (_db, setup) = sqlite_setup();
    let app = prepare(&setup);
    let server = Server::start(&setup);
    let base = server.base.clone();
    setup.sigil(
        &[
            "user",
            "set-password",
            "--username",
            "alice",
            "--must-change",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let (status, body) = password_grant(&base, &app, "alice", PASSWORD, "openid").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("must be changed")),
        "{body}"
    );

    // The code flow: sign-in page, then the password page instead of a code.
    let browser = browser();
    let response = browser
        .get(authorize_url(&base, &app))
        .send()
        .await
        .expect("authorize");
    let login_url = location(&base, &response);
    let page = browser
        .get(&login_url)
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    let response = browser
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf").as_str()),
            ("req", hidden(&page, "req").as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    let next = location(&base, &response);
    assert!(
        next.starts_with(&format!("{base}/account/password?req=")),
        "{next}"
    );
    // Going back to /authorize does not get a code either.
    let again = browser
        .get(authorize_url(&base, &app))
        .send()
        .await
        .expect("authorize");
    assert!(
        location(&base, &again).contains("/account/password"),
        "no code before the change"
    );
    let page = browser
        .get(&next)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("one-time use"), "{page}");
    let response = browser
        .post(format!("{base}/account/password"))
        .form(&[
            ("csrf", hidden(&page, "csrf").as_str()),
            ("req", hidden(&page, "req").as_str()),
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("repeat_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("change");
    let callback = location(&base, &response);
    assert!(
        callback.starts_with(CALLBACK) && callback.contains("code="),
        "{callback}"
    );
    let (status, body) = password_grant(&base, &app, "alice", NEW_PASSWORD, "openid").await;
    assert_eq!(status, 200, "{body}");
    server.stop();
}

/// Finding 8: a password change or reset, disabling, and signing out everywhere revoke
/// every refresh token and make every earlier access token inactive at introspection and
/// userinfo, including access tokens issued without a refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_changes_and_sign_outs_end_every_token() {
    let (_db, setup) = sqlite_setup();
    let app = prepare(&setup);
    let server = Server::start(&setup);
    let base = server.base.clone();
    let tokens = |password: &'static str| {
        let base = base.clone();
        let app = &app;
        async move {
            let (status, plain) = password_grant(&base, app, "alice", password, "openid").await;
            assert_eq!(status, 200, "{plain}");
            let (status, offline) =
                password_grant(&base, app, "alice", password, "openid offline_access").await;
            assert_eq!(status, 200, "{offline}");
            (
                plain["access_token"].as_str().expect("at").to_string(),
                offline["refresh_token"].as_str().expect("rt").to_string(),
            )
        }
    };
    let ended = |access: String, refresh: String, what: &'static str| {
        let base = base.clone();
        let app = &app;
        async move {
            assert!(
                !introspect(&base, app, &access).await,
                "{what}: access token inactive"
            );
            assert_eq!(
                userinfo_status(&base, &access).await,
                401,
                "{what}: userinfo refuses it"
            );
            let (status, body) = post_token(
                &http(),
                &base,
                app,
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{what}"
            );
        }
    };

    // An admin's reset.
    let (access, refresh) = tokens(PASSWORD).await;
    assert!(introspect(&base, &app, &access).await, "live before");
    assert_eq!(userinfo_status(&base, &access).await, 200);
    setup.sigil(
        &[
            "user",
            "set-password",
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some(NEW_PASSWORD),
    );
    ended(access, refresh, "reset").await;

    // The user's own change, on the password page.
    let (access, refresh) = tokens(NEW_PASSWORD).await;
    let browser = browser();
    let (status, _, _) = login_page(&browser, &base, "alice", NEW_PASSWORD).await;
    assert_eq!(status, 200);
    let page = browser
        .get(format!("{base}/account/password"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let response = browser
        .post(format!("{base}/account/password"))
        .form(&[
            ("csrf", hidden(&page, "csrf").as_str()),
            ("req", ""),
            ("current_password", NEW_PASSWORD),
            ("new_password", PASSWORD),
            ("repeat_password", PASSWORD),
        ])
        .send()
        .await
        .expect("change");
    assert_eq!(response.status(), 200);
    ended(access, refresh, "own change").await;

    // Signing out everywhere.
    let (access, refresh) = tokens(PASSWORD).await;
    setup.sigil(&["user", "sign-out", "--username", "alice"], None);
    ended(access, refresh, "sign-out everywhere").await;

    // Disabling, and re-enabling does not revive the old tokens.
    let (access, refresh) = tokens(PASSWORD).await;
    setup.sigil(&["user", "disable", "--username", "alice"], None);
    setup.sigil(&["user", "enable", "--username", "alice"], None);
    ended(access, refresh, "disabled").await;
    let (fresh, _) = tokens(PASSWORD).await;
    assert!(introspect(&base, &app, &fresh).await, "new tokens work");
    server.stop();
}

/// Finding 10: a password stored with cheaper argon2 settings than the server's is rehashed
/// with the server's at the next successful sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaker_hashes_are_rehashed_at_sign_in() {
    let (_db, setup) = sqlite_setup();
    // `prepare` adds alice with the tests' cheap settings (256 KiB, 1 pass).
    let app = prepare(&setup);
    let server = Server::start_on(
        &setup,
        &[],
        &[],
        free_port(),
        &[
            ("SIGIL_ARGON2_MEMORY_KIB", "2048"),
            ("SIGIL_ARGON2_ITERATIONS", "2"),
        ],
    );
    let store = open_store(&setup).await;
    let stored = || async {
        store
            .find_user_by_username("alice")
            .await
            .expect("read")
            .expect("alice")
            .password_hash
    };
    assert!(stored().await.contains("m=256,t=1"), "{}", stored().await);
    let (status, body) = password_grant(&server.base, &app, "alice", "wrong", "openid").await;
    assert_eq!(status, 400, "{}", body["error"]);
    assert!(
        stored().await.contains("m=256,t=1"),
        "a wrong password changes nothing"
    );
    let (status, body) = password_grant(&server.base, &app, "alice", PASSWORD, "openid").await;
    assert_eq!(status, 200, "{body}");
    let rehashed = stored().await;
    assert!(rehashed.contains("m=2048,t=2"), "{rehashed}");
    let (status, _) = password_grant(&server.base, &app, "alice", PASSWORD, "openid").await;
    assert_eq!(status, 200, "the new hash verifies");
    server.stop();
}

/// Finding 12: failures from elsewhere hold the account's wait, but a browser that signed
/// in to the account before (its signed device cookie) still signs in; its own failures
/// are counted against it. The sign-in page says nothing of when to try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_signed_in_before_is_not_locked_out() {
    let (_db, setup) = sqlite_setup();
    prepare(&setup);
    let server = Server::start_on(
        &setup,
        &[],
        &["--sign-in-free-failures-per-address", "0"],
        free_port(),
        &[],
    );
    let base = server.base.clone();
    let owner = browser();
    let (status, _, _) = login_page(&owner, &base, "alice", PASSWORD).await;
    assert_eq!(status, 200, "the owner signs in once");

    // Someone else keeps the account's count up.
    let attacker = browser();
    let mut refused = None;
    for n in 0..8 {
        let (status, retry_after, page) =
            login_page(&attacker, &base, "alice", &format!("guess {n}")).await;
        if status == 429 {
            refused = Some((retry_after, page));
            break;
        }
        assert_eq!(status, 401);
    }
    let (retry_after, page) = refused.expect("the account's wait starts after the free failures");
    let (status, _, _) = login_page(&browser(), &base, "alice", PASSWORD).await;
    assert_eq!(
        status, 429,
        "a browser without the cookie waits like the attacker"
    );

    // The owner's browser is not locked out ...
    let (status, _, owner_page) = login_page(&owner, &base, "alice", PASSWORD).await;
    assert_eq!(status, 200, "{owner_page}");
    // The refusal said nothing of when to try again.
    assert_eq!(retry_after, None, "no Retry-After to pace the next guess");
    assert!(page.contains("Too many sign-in attempts"), "{page}");
    // ... and its own guesses are throttled on their own count.
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(
            login_page(&owner, &base, "alice", &format!("typo {n}"))
                .await
                .0,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    // A device cookie forged for another account does not help either.
    let forger = http();
    let page = forger
        .get(format!("{base}/login"))
        .header("cookie", "sigil_device=v1.abc.1.AAAA")
        .send()
        .await
        .expect("page");
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let html = page.text().await.expect("html");
    let response = forger
        .post(format!("{base}/login"))
        .header("cookie", format!("{cookie}; sigil_device=v1.abc.1.AAAA"))
        .form(&[
            ("csrf", hidden(&html, "csrf").as_str()),
            ("req", ""),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 429);
    server.stop();
}

/// The sign-in page sets the device cookie with strict flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_cookie_is_http_only_and_strict() {
    let (_db, setup) = sqlite_setup();
    prepare(&setup);
    let server = Server::start(&setup);
    let base = server.base.clone();
    let client = browser();
    let response = post_login(&client, &base, "alice", PASSWORD).await;
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let device = cookies
        .iter()
        .find(|c| c.starts_with("sigil_device="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/login", "Max-Age="] {
        assert!(device.contains(flag), "{device}");
    }
    // Not a session: the failed sign-in after it still fails.
    let (status, _, _) = login_page(&client, &base, "alice", "wrong").await;
    assert_eq!(status, 401);
    server.stop();
}
