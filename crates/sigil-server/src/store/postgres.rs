//! The PostgreSQL store, for production and for several replicas sharing one database.
//! Its [`Backend`]: reads bounded by the acquire timeout and guarded by the circuit breaker
//! ([`super::breaker`]), each rotation one statement.

use super::breaker::Breaker;
use super::migrate::{CREATE_TABLE, POSTGRES};
use super::sql::{bind_token, Backend, SqlStore, UNUSED_IN_LIVE_FAMILY};
use super::{hot_reads_kept, map_err, DatabaseOptions, HotReads};
use sigil_core::store::{RefreshTokenRecord, StoreError};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Key of the advisory lock that serializes migrations across replicas.
const MIGRATION_LOCK: i64 = 0x5349_4749_4c00_0001;

/// PostgreSQL-backed store.
pub type PgStore = SqlStore<PgBackend>;

/// What PostgreSQL does its own way (see [`Backend`]).
#[derive(Debug)]
pub struct PgBackend {
    pool: PgPool,
    /// How long a read may take before the database counts as unavailable.
    read_deadline: Duration,
    hot: HotReads<sqlx::Postgres>,
    /// Makes reads fail fast while the database cannot be reached.
    breaker: Arc<Breaker>,
}

impl Backend for PgBackend {
    type Db = sqlx::Postgres;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn hot_reads(&self) -> &HotReads<sqlx::Postgres> {
        &self.hot
    }

    fn read_deadline(&self) -> Option<Duration> {
        Some(self.read_deadline)
    }

    fn breaker(&self) -> Option<&Arc<Breaker>> {
        Some(&self.breaker)
    }

    /// One statement, so one round
    /// trip and one implicit transaction. The update is the compare-and-set (a concurrent
    /// rotation of the same token waits for this one's row lock, then finds `used_at` set
    /// and updates nothing); the successor is inserted only from the row it returned.
    async fn rotate_refresh_token(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
        sealed_successor: Option<&str>,
    ) -> Result<bool, StoreError> {
        static ROTATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "WITH used AS (UPDATE refresh_tokens SET used_at = $1, sealed_successor = $2 WHERE id = $3 AND {UNUSED_IN_LIVE_FAMILY} RETURNING id) \
                 INSERT INTO refresh_tokens (id, family_id, token_hash, parent_id, created_at, expires_at, used_at) SELECT $4, $5, $6, $7, $8, $9, $10 FROM used"
            )
        });
        let query = sqlx::query(ROTATE.as_str())
            .bind(now)
            .bind(sealed_successor)
            .bind(used_id);
        let inserted = bind_token(query, successor)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(inserted.rows_affected() == 1)
    }
}

impl PgStore {
    pub async fn connect(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(map_err)?;
        let probe_with = connect.clone();
        let breaker = Breaker::new(
            Box::new(move || {
                let options = probe_with.clone();
                Box::pin(async move { PgConnection::connect_with(&options).await?.close().await })
            }),
            options.acquire_timeout,
        );
        let suspects = breaker.clone();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // No extra round trip before each use of a pooled connection: a database that
            // went silent is noticed by the deadline on every read instead (reads come first
            // in every request that touches the database), at no cost while it answers.
            .test_before_acquire(false)
            // Except once a connection was found broken: then the ones idle since before are
            // tested (and closed if broken too) before use, not handed out to fail in turn.
            .before_acquire(move |conn, meta| {
                let is_suspect = suspects.is_suspect(meta.idle_for);
                Box::pin(async move {
                    if is_suspect {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        Ok(SqlStore::new(PgBackend {
            pool,
            read_deadline: options.acquire_timeout,
            hot: HotReads::new(hot_reads_kept(options)),
            breaker,
        }))
    }

    /// The connection pool (the session store shares it).
    pub fn pool(&self) -> &PgPool {
        self.backend().pool()
    }

    /// Applies pending migrations under an advisory lock; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(map_err)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        let result = async {
            sqlx::raw_sql(CREATE_TABLE).execute(&mut *conn).await?;
            let mut applied = Vec::new();
            for migration in POSTGRES.0 {
                let done = sqlx::query("SELECT 1 AS one FROM sigil_migrations WHERE version = $1")
                    .bind(migration.version)
                    .fetch_optional(&mut *conn)
                    .await?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
                let step = async {
                    sqlx::raw_sql(migration.sql).execute(&mut *conn).await?;
                    sqlx::query("INSERT INTO sigil_migrations (version, name, applied_at) VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)")
                        .bind(migration.version)
                        .bind(migration.name)
                        .execute(&mut *conn)
                        .await?;
                    Ok::<(), sqlx::Error>(())
                }
                .await;
                match step {
                    Ok(()) => {
                        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                        applied.push(migration.version);
                    }
                    Err(e) => {
                        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                        return Err(e);
                    }
                }
            }
            Ok::<Vec<i64>, sqlx::Error>(applied)
        }
        .await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        result.map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }
}
