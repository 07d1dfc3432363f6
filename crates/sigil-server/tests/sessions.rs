//! Browser sessions in the database: a flood of cookieless `/authorize` requests leaves rows
//! that expire within the pending-request lifetime (not the 12 h session lifetime), and
//! housekeeping's deletion removes them once expired. On SQLite and PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use common::{TestApp, TestDb};
use sigil_core::client::ClientRegistration;
use sigil_server::store::Database;
use tower::ServiceExt;
use tower_sessions::cookie::time::{Duration, OffsetDateTime};

/// Session rows, and those expiring more than `minutes` from now.
async fn count_sessions(database: &Database, minutes: i64) -> (i64, i64) {
    let (all, late) = match database {
        Database::Sqlite(db) => (
            sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions")
                .fetch_one(db.pool())
                .await,
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM tower_sessions WHERE datetime(expiry_date) > datetime('now', ?)",
            )
            .bind(format!("+{minutes} minutes"))
            .fetch_one(db.pool())
            .await,
        ),
        Database::Postgres(db) => (
            sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions.session")
                .fetch_one(db.pool())
                .await,
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM tower_sessions.session WHERE expiry_date > now() + make_interval(mins => $1::int)",
            )
            .bind(minutes as i32)
            .fetch_one(db.pool())
            .await,
        ),
    };
    (all.expect("count"), late.expect("count"))
}

async fn a_cookieless_flood_expires_and_is_deleted(db: TestDb) {
    let app = TestApp::start(db, &[]).await;
    let (client, _) = app
        .add_client(ClientRegistration {
            name: "Web app".into(),
            redirect_uris: vec!["https://app.example.com/callback".into()],
            ..Default::default()
        })
        .await;
    let big = "x".repeat(2000);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", "https://app.example.com/callback")
        .append_pair("scope", "openid")
        .append_pair("state", &big)
        .append_pair("nonce", &big)
        .append_pair("login_hint", &big)
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256")
        .finish();
    for _ in 0..100 {
        let response = app
            .router()
            .oneshot(
                Request::get(format!("/authorize?{query}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert!(response.status().is_redirection(), "{}", response.status());
        assert!(response.headers().contains_key(header::SET_COOKIE));
    }
    let (all, late) = count_sessions(&app.state.database, 31).await;
    assert_eq!(all, 100, "one session per cookieless request");
    assert_eq!(
        late, 0,
        "an anonymous session expires with its pending request"
    );

    // Housekeeping's deletion: nothing before expiry, everything after.
    let now = OffsetDateTime::now_utc();
    let deleted = app
        .state
        .sessions
        .delete_expired(&app.state.database, now)
        .await
        .expect("delete");
    assert_eq!(deleted, 0);
    let deleted = app
        .state
        .sessions
        .delete_expired(&app.state.database, now + Duration::minutes(31))
        .await
        .expect("delete");
    assert_eq!(deleted, 100);
    assert_eq!(count_sessions(&app.state.database, 0).await.0, 0);
}

#[tokio::test]
async fn a_cookieless_flood_expires_and_is_deleted_on_sqlite() {
    a_cookieless_flood_expires_and_is_deleted(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_cookieless_flood_expires_and_is_deleted_on_postgres() {
    let Some(db) = TestDb::postgres("a_cookieless_flood_expires_and_is_deleted_on_postgres").await
    else {
        return;
    };
    a_cookieless_flood_expires_and_is_deleted(db).await;
}
