//! What an attacker could reach around the protocol: `Strict-Transport-Security` under an
//! https issuer, `/metrics` only on its own listener, the first admin's password kept out
//! of the log, and a keys directory others can read tightened at start.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::process::{free_port, http_status, Server, Setup};
use common::{serve_args, TestDb};
use sigil_server::keyfiles::KeyDir;
use sigil_server::serve::build_state;
use sigil_server::store::{Database, DatabaseOptions};
use std::os::unix::fs::PermissionsExt;
use tower::ServiceExt;

async fn hsts_of(issuer: &str, path: &str) -> Option<String> {
    let db = TestDb::sqlite();
    let database = Database::open(db.url(), &DatabaseOptions::default())
        .await
        .expect("database");
    let keys = tempfile::tempdir().expect("tempdir");
    let mut args = serve_args(&[]);
    args.issuer = issuer.to_string();
    let state = build_state(&args, database, &KeyDir::new(keys.path()))
        .await
        .expect("state");
    let response = sigil_server::app(state)
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    response
        .headers()
        .get(header::STRICT_TRANSPORT_SECURITY)
        .map(|v| v.to_str().expect("ascii").to_string())
}

#[tokio::test]
async fn every_response_under_an_https_issuer_carries_hsts() {
    for path in [
        "/healthz",
        "/.well-known/openid-configuration",
        "/no/such/path",
        "/login",
    ] {
        assert_eq!(
            hsts_of("https://sigil.test", path).await.as_deref(),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    assert_eq!(
        hsts_of("http://127.0.0.1:8080", "/healthz").await,
        None,
        "not over plain http"
    );
}

fn setup() -> (TestDb, Setup) {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    (db, setup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_on_the_metrics_listener() {
    let (_db, setup) = setup();
    let metrics_port = free_port();
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_on(
        &setup,
        &[],
        &["--metrics-bind", &metrics_bind],
        free_port(),
        &[],
    );
    assert_eq!(
        http_status(&format!("{}/healthz", server.base)).ok(),
        Some(200)
    );
    assert_eq!(
        http_status(&format!("{}/metrics", server.base)).ok(),
        Some(404),
        "not on the public listener"
    );
    let text = reqwest::get(format!("http://{metrics_bind}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(text.contains("sigil_http_requests_total"), "{text}");
    assert_eq!(
        http_status(&format!("http://{metrics_bind}/healthz")).ok(),
        Some(404),
        "the metrics listener serves nothing else"
    );
    server.stop();

    // Without --metrics-bind there are no metrics at all.
    let server = Server::start(&setup);
    assert_eq!(
        http_status(&format!("{}/metrics", server.base)).ok(),
        Some(404)
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_admin_password_goes_to_a_private_file_not_the_log() {
    let db = TestDb::sqlite();
    // Beside the SQLite file.
    let dir = db
        .sqlite_path()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .expect("sqlite dir");
    admin_password_goes_to_a_file(db, Some(dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_admin_password_goes_to_a_private_file_on_postgres() {
    let Some(db) = TestDb::postgres("admin password file on PostgreSQL").await else {
        return;
    };
    // In the keys directory.
    admin_password_goes_to_a_file(db, None).await;
}

/// Starts a first server with no SIGIL_ADMIN_PASSWORD and stdout to a file; checks the
/// password is in a 0600 file in `dir` (the keys directory when `None`), not in the log,
/// and signs in with it.
async fn admin_password_goes_to_a_file(db: TestDb, dir: Option<std::path::PathBuf>) {
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    // An empty SIGIL_ADMIN_PASSWORD counts as unset: the password is generated. Standard
    // output is the log file, not a terminal.
    let server = Server::start_on(
        &setup,
        &[],
        &[],
        free_port(),
        &[("SIGIL_ADMIN_PASSWORD", "")],
    );
    server.stop();
    let log = std::fs::read_to_string(setup.log_path()).expect("log");
    let dir = dir.unwrap_or_else(|| setup.keys());
    let file = dir.join(sigil_server::serve::ADMIN_PASSWORD_FILE);
    assert!(
        log.contains(&format!("password:   written to {}", file.display())),
        "the log says where: {log}"
    );
    let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).expect("read");
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password:   "))
        .expect("a password line")
        .trim();
    assert!(password.len() >= 16, "{text}");
    assert!(!log.contains(password), "the password is not in the log");

    // It is the admin's password.
    let server = Server::start(&setup);
    let login = format!("{}/login", server.base);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = http
        .get(&login)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let csrf = common::hidden(&page, "csrf");
    let response = http
        .post(&login)
        .form(&[
            ("username", "admin"),
            ("password", password),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .expect("sign in");
    let status = response.status();
    let body = response.text().await.expect("body");
    assert!(
        status == StatusCode::SEE_OTHER || body.contains("signed in as admin"),
        "signed in with the password from the file: {status} {body}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_directory_others_can_read_is_tightened_at_start() {
    let (_db, setup) = setup();
    let server = Server::start(&setup);
    server.stop();
    let keys = setup.keys();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let mut pems = Vec::new();
    for entry in std::fs::read_dir(&keys).expect("keys") {
        let path = entry.expect("entry").path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        if path.extension().is_some_and(|e| e == "pem") {
            pems.push(path);
        }
    }
    assert!(!pems.is_empty(), "a key was generated");
    let server = Server::start(&setup);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&keys), 0o700, "the directory is private again");
    for pem in &pems {
        assert_eq!(mode(pem), 0o600, "{}", pem.display());
    }
    let log = std::fs::read_to_string(setup.log_path()).expect("log");
    assert!(
        log.contains("permissions tightened"),
        "with a warning: {log}"
    );
    server.stop();
}
