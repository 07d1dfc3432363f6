//! The activity counters over real HTTP against the real binary: a throttled request is
//! counted, counts wait in memory between writes, and a graceful stop writes what was
//! counted since the last write, so a restart loses nothing.

mod common;

use common::flows::token;
use common::process::{free_port, Server, Setup};
use common::TestDb;
use serde_json::Value;
use sqlx::Row;

/// (metric, label, client) → count, from the hourly table.
async fn hourly(url: &str) -> Vec<(String, String, String, i64)> {
    let pool = sqlx::SqlitePool::connect(url).await.expect("open");
    let rows = sqlx::query(
        "SELECT metric, label, client_id, SUM(count) AS n FROM activity_hours GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .fetch_all(&pool)
    .await
    .expect("read");
    pool.close().await;
    rows.iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                row.get::<String, _>(1),
                row.get::<String, _>(2),
                row.get::<i64, _>(3),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_writes_the_last_counts_and_throttling_is_counted() {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    setup.sigil(
        &["user", "add", "--username", "ravi", "--password-stdin"],
        Some("a sufficiently long phrase"),
    );
    let app: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Batch jobs",
            "--grant-types",
            "password,client_credentials",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let id = app["client_id"].as_str().expect("id").to_string();
    let secret = app["client_secret"].as_str().expect("secret").to_string();
    // A minute between writes: the counts below are written by the stop, not the timer.
    let server = Server::start_on(
        &setup,
        &[],
        &[
            "--activity-flush-interval",
            "1m",
            "--sign-in-free-failures",
            "1",
            "--sign-in-first-wait",
            "15m",
        ],
        free_port(),
        &[],
    );
    let base = server.base.clone();
    for _ in 0..3 {
        let (status, body) = token(
            &base,
            (&id, &secret),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let wrong = [
        ("grant_type", "password"),
        ("username", "ravi"),
        ("password", "not the phrase"),
    ];
    let (status, body) = token(&base, (&id, &secret), &wrong).await;
    assert_eq!(status, 400, "{body}");
    // The second failure within the wait is refused before any password check.
    let (status, body) = token(&base, (&id, &secret), &wrong).await;
    assert_eq!(status, 429, "{body}");
    server.stop();

    let want = vec![
        ("sign_in".into(), "password.failed".into(), String::new(), 1),
        ("throttled".into(), String::new(), String::new(), 1),
        (
            "token".into(),
            "client_credentials".into(),
            String::new(),
            3,
        ),
        ("token".into(), "client_credentials".into(), id.clone(), 3),
    ];
    assert_eq!(hourly(db.url()).await, want);

    // A second run adds to the same rows.
    let server = Server::start_on(
        &setup,
        &[],
        &["--activity-flush-interval", "1m"],
        free_port(),
        &[],
    );
    let (status, body) = token(
        &server.base,
        (&id, &secret),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.stop();
    let after = hourly(db.url()).await;
    assert!(
        after.contains(&("token".into(), "client_credentials".into(), id.clone(), 4)),
        "{after:?}"
    );
}

#[tokio::test]
async fn bad_activity_settings_are_refused_at_start() {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    for (option, value, words) in [
        ("--activity-flush-interval", "10ms", "between 100ms and 1m"),
        ("--activity-flush-interval", "5m", "between 100ms and 1m"),
        ("--activity-minute-retention", "2h", "at least 1d"),
        ("--activity-retention", "3d", "at least 7d"),
    ] {
        let output = std::process::Command::new(common::process::SIGIL)
            .args(["--database-url", db.url(), "--keys-dir"])
            .arg(setup.keys())
            .args(["serve", option, value])
            .output()
            .expect("run");
        assert!(!output.status.success(), "{option} {value} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(words), "{option} {value}: {stderr}");
    }
}
