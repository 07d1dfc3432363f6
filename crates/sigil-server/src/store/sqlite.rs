//! The SQLite store: one file, WAL journal, `synchronous=FULL` so that a write that
//! returned is on disk, foreign keys on. Its [`Backend`]: no read deadline and no breaker
//! (a local file has no server to go silent or refuse connections), rotations through the
//! group-commit writer ([`super::sqlite_rotation`]).

use super::breaker::Breaker;
use super::migrate::{CREATE_TABLE, SQLITE};
use super::sql::{Backend, SqlStore};
use super::sqlite_rotation::RotationWriter;
use super::{hot_reads_kept, map_err, DatabaseOptions, HotReads};
use sigil_core::store::{RefreshTokenRecord, StoreError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// SQLite-backed store.
pub type SqliteStore = SqlStore<SqliteBackend>;

/// What SQLite does its own way (see [`Backend`]).
#[derive(Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
    /// Refresh-token rotations go through one writer that commits them in batches.
    rotations: RotationWriter,
    hot: HotReads<sqlx::Sqlite>,
}

impl Backend for SqliteBackend {
    type Db = sqlx::Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn hot_reads(&self) -> &HotReads<sqlx::Sqlite> {
        &self.hot
    }

    /// A local file has no network to go silent: reads wait as long as SQLite makes them
    /// (its busy timeout bounds waiting for a writer).
    fn read_deadline(&self) -> Option<Duration> {
        None
    }

    /// None: a local file has no server to be down or to refuse connections.
    fn breaker(&self) -> Option<&Arc<Breaker>> {
        None
    }

    /// Queued for the next group commit of the rotation writer.
    async fn rotate_refresh_token(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
        sealed_successor: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.rotations
            .rotate(used_id, successor, now, sealed_successor)
            .await
    }
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (relative paths are relative to the working directory),
    /// creating the file and its directory if missing.
    pub async fn connect(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or("");
        if path.is_empty() {
            return Err(StoreError::Other("the SQLite URL names no file".into()));
        }
        if path == ":memory:" || url.contains("mode=memory") {
            // Every connection would open a database of its own.
            return Err(StoreError::Other(
                "an in-memory SQLite database cannot be shared by Sigil's connections: give a file path".into(),
            ));
        }
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Other(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
        }
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        restrict_to_owner(connect.get_filename())?;
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // A local file has no network to break: pinging each connection before use
            // would cost a round trip to its thread on every query and find nothing.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        Ok(SqlStore::new(SqliteBackend {
            pool,
            rotations: RotationWriter::start(connect),
            hot: HotReads::new(hot_reads_kept(options)),
        }))
    }

    /// The connection pool (the session store shares it).
    pub fn pool(&self) -> &SqlitePool {
        self.backend().pool()
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(map_err)?;
        sqlx::raw_sql(CREATE_TABLE)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        let mut applied = Vec::new();
        for migration in SQLITE.0 {
            // BEGIN IMMEDIATE takes the write lock first, so two processes starting at
            // once apply each migration exactly once.
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            let result = async {
                let done = sqlx::query("SELECT 1 AS one FROM sigil_migrations WHERE version = $1")
                    .bind(migration.version)
                    .fetch_optional(&mut *conn)
                    .await?;
                if done.is_none() {
                    sqlx::raw_sql(migration.sql).execute(&mut *conn).await?;
                    sqlx::query("INSERT INTO sigil_migrations (version, name, applied_at) VALUES ($1, $2, strftime('%s','now'))")
                        .bind(migration.version)
                        .bind(migration.name)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok::<bool, sqlx::Error>(done.is_none())
            }
            .await;
            match result {
                Ok(was_applied) => {
                    sqlx::raw_sql("COMMIT")
                        .execute(&mut *conn)
                        .await
                        .map_err(map_err)?;
                    if was_applied {
                        applied.push(migration.version);
                    }
                }
                Err(e) => {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    return Err(StoreError::Other(format!(
                        "migration {} ({}) failed: {e}",
                        migration.version, migration.name
                    )));
                }
            }
        }
        Ok(applied)
    }
}

/// The database file and its `-wal` and `-shm` files hold sessions, hashes and the audit
/// log: only Sigil's own user may read them. A missing file is created empty with mode 0600
/// before SQLite opens it (SQLite gives `-wal` and `-shm` the mode of the main file), and
/// existing files readable by group or others are narrowed to 0600.
fn restrict_to_owner(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |path: &std::path::Path, e: std::io::Error| {
        StoreError::Other(format!(
            "cannot restrict {} to its owner: {e}",
            path.display()
        ))
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::Path::new(&name);
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| failed(file, e))?;
                tracing::warn!(file = %file.display(), "the database file was readable by others: narrowed to 0600");
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(file, e)),
        }
    }
    Ok(())
}
