//! Store implementations: SQLite (the default) and PostgreSQL, chosen by the URL scheme.
//! Both run the same SQL (written once in `sql`, over each database's `sql::Backend`)
//! and pass the same conformance suite.

mod breaker;
mod hot_reads;
mod migrate;
mod postgres;
mod sql;
mod sqlite;
mod sqlite_rotation;

pub use migrate::Migrations;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub(crate) use hot_reads::{hot_reads_kept, HotReads};

use sigil_core::store::{Store, StoreError};
use std::sync::Arc;

/// An opened database: the store, plus what the server needs beside it.
#[derive(Clone)]
pub enum Database {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// Options for opening a database.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before the database counts as down.
    pub acquire_timeout: std::time::Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(1),
        }
    }
}

impl Database {
    /// Opens `sqlite://path` (created if missing) or `postgres://…`. Does not migrate.
    pub async fn connect(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(Arc::new(
                SqliteStore::connect(url, options).await?,
            )))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(Arc::new(
                PgStore::connect(url, options).await?,
            )))
        } else {
            Err(StoreError::Other(
                "unsupported database URL: use sqlite://PATH or postgres://…".into(),
            ))
        }
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        let db = Self::connect(url, options).await?;
        db.migrate().await?;
        Ok(db)
    }

    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let applied = match self {
            Self::Sqlite(s) => s.migrate().await?,
            Self::Postgres(s) => s.migrate().await?,
        };
        // Migration 0005 keyed the users in SQL; the keys are Rust's (see `rekey_users`).
        if applied.contains(&5) {
            let rekeyed = match self {
                Self::Sqlite(s) => s.rekey_users().await?,
                Self::Postgres(s) => s.rekey_users().await?,
            };
            if rekeyed > 0 {
                tracing::info!(rekeyed, "user name and address keys rewritten");
            }
        }
        Ok(applied)
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    /// Open, idle and maximum connections of the pool.
    pub fn pool_stats(&self) -> (u32, usize, u32) {
        match self {
            Self::Sqlite(s) => {
                let pool = s.pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            Self::Postgres(s) => {
                let pool = s.pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match self {
            // The pool's close waits for every checked-out connection, the kept ones too.
            Self::Sqlite(s) => {
                s.hot_reads().close();
                s.pool().close().await
            }
            Self::Postgres(s) => {
                s.hot_reads().close();
                s.pool().close().await
            }
        }
    }
}

/// Maps a sqlx error to the store's error kinds.
pub fn map_err(err: sqlx::Error) -> StoreError {
    classify(&err)
}

/// [`map_err`] by reference, for an error that several callers are told about.
pub(crate) fn classify(err: &sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        _ if is_connection_failure(err) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Other(err.to_string()),
    }
}

/// Whether `err` says the connection (or the pool) failed rather than the statement: the
/// database went away, or never answered. The HTTP layer answers these 503 with
/// `Retry-After`; a read that fails so is tried once more on a fresh connection.
pub(crate) fn is_connection_failure(err: &sqlx::Error) -> bool {
    match err {
        // The pool's own: no connection in time, shut down, its worker gone.
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        // Refused, reset, broken pipe, end of stream; a TLS failure; a message cut short.
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_connection_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs that end or refuse the connection, not the statement: class 08 (connection
/// exception), 57P01 `admin_shutdown` (a fast or smart stop, `pg_terminate_backend`, and
/// "unexpected postmaster exit"), 57P02 `crash_shutdown`, 57P03 `cannot_connect_now`
/// (starting up or shutting down), 57P04 `database_dropped`, 57P05
/// `idle_session_timeout`, and 53300 `too_many_connections`.
fn is_connection_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57P04" | "57P05" | "53300"
        )
}

#[cfg(test)]
mod tests;
