//! Unit tests of how sqlx errors map to the store's error kinds (finding 16 of issue 15).

use super::classify;
use sigil_core::store::StoreError;
use std::borrow::Cow;

/// A database error with a given SQLSTATE, as PostgreSQL sends them.
#[derive(Debug)]
struct Sqlstate {
    code: &'static str,
    message: &'static str,
}

impl std::fmt::Display for Sqlstate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for Sqlstate {}

impl sqlx::error::DatabaseError for Sqlstate {
    fn message(&self) -> &str {
        self.message
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.code))
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> sqlx::error::ErrorKind {
        if self.code == "23505" {
            sqlx::error::ErrorKind::UniqueViolation
        } else {
            sqlx::error::ErrorKind::Other
        }
    }
}

fn database(code: &'static str, message: &'static str) -> sqlx::Error {
    sqlx::Error::Database(Box::new(Sqlstate { code, message }))
}

fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(classify(err), StoreError::Unavailable(_))
}

#[test]
fn connection_level_failures_are_unavailable() {
    let shut_down = [
        (
            "57P01",
            "terminating connection due to administrator command",
        ),
        (
            "57P01",
            "terminating connection due to unexpected postmaster exit",
        ),
        (
            "57P02",
            "terminating connection because of crash of another server process",
        ),
        ("57P03", "the database system is shutting down"),
        ("57P04", "database dropped"),
        (
            "57P05",
            "terminating connection due to idle-session timeout",
        ),
        ("08006", "connection failure"),
        ("08003", "connection does not exist"),
        ("08P01", "protocol violation"),
        ("53300", "sorry, too many clients already"),
    ];
    for (code, message) in shut_down {
        assert!(is_unavailable(&database(code, message)), "{code} {message}");
    }
    for kind in [
        std::io::ErrorKind::ConnectionRefused,
        std::io::ErrorKind::ConnectionReset,
        std::io::ErrorKind::ConnectionAborted,
        std::io::ErrorKind::BrokenPipe,
        std::io::ErrorKind::UnexpectedEof,
    ] {
        assert!(is_unavailable(&sqlx::Error::Io(kind.into())), "{kind:?}");
    }
    for pool in [
        sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed,
        sqlx::Error::Protocol("unexpected end of message".into()),
        sqlx::Error::Tls("handshake failed".into()),
    ] {
        assert!(is_unavailable(&pool), "{pool}");
    }
}

#[test]
fn statement_errors_stay_what_they_are() {
    assert!(matches!(
        classify(&database("23505", "duplicate key value")),
        StoreError::Conflict(_)
    ));
    for (code, message) in [
        ("42P01", "relation does not exist"),
        ("22P02", "invalid input syntax"),
        ("23503", "foreign key violation"),
        ("40001", "could not serialize access"),
    ] {
        assert!(
            matches!(classify(&database(code, message)), StoreError::Other(_)),
            "{code}"
        );
    }
    assert!(matches!(
        classify(&sqlx::Error::RowNotFound),
        StoreError::Other(_)
    ));
    assert!(matches!(
        classify(&sqlx::Error::ColumnNotFound("x".into())),
        StoreError::Other(_)
    ));
}
