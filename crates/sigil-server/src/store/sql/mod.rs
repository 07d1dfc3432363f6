//! The SQL of every store role, written once for SQLite and PostgreSQL: [`SqlStore`] over a
//! [`Backend`], the part each database writes for itself.
//!
//! One module per role of `sigil_core::store`, each implementing its trait for every
//! `SqlStore<B>`; its rows are `#[derive(sqlx::FromRow)]` structs converted into core's
//! records. Placeholders are `$1…$n` in order of first use, which both databases accept.
//! Every read goes through [`SqlStore::read`] (the read deadline, the circuit breaker, one
//! more try on a fresh connection); writes are never tried again nor cut off.

mod access_tokens;
mod activity;
mod audit;
mod backchannel;
mod clients;
mod codes;
mod consents;
mod dialect;
mod factors;
mod federation;
mod housekeeping;
mod links;
mod outbox;
mod refresh;
mod sessions;
mod sign_in;
mod third_party;
mod users;

pub(crate) use dialect::{Dialect, Param, Query, Reads};
pub(crate) use refresh::{bind_token, UNUSED_IN_LIVE_FAMILY};

use super::breaker::Breaker;
use super::{map_err, HotReads};
use sigil_core::store::{RefreshTokenRecord, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What differs between the two databases, beside the SQL types ([`Dialect`]): where
/// connections come from, how long a read may take, whether a breaker guards reads, and
/// how a refresh token is rotated. Implemented by `SqliteBackend` and `PgBackend`.
pub trait Backend: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Dialect;

    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// The connections the hot-path reads keep aside (see [`HotReads`]).
    fn hot_reads(&self) -> &HotReads<Self::Db>;

    /// How long a read may take before the database counts as unavailable; `None`: as
    /// long as the database makes it.
    fn read_deadline(&self) -> Option<Duration>;

    /// The circuit breaker that refuses reads while the database is unreachable, if the
    /// database has one.
    fn breaker(&self) -> Option<&Arc<Breaker>>;

    /// See [`sigil_core::store::RefreshTokenStore::rotate_refresh_token`]: each database
    /// does it its own way (a batched group commit on SQLite, one statement on
    /// PostgreSQL); in both, a conditional update ([`UNUSED_IN_LIVE_FAMILY`]) is the
    /// compare-and-set, so of any number of concurrent rotations of one token exactly one
    /// sees it unused and inserts its successor.
    fn rotate_refresh_token(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
        sealed_successor: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A store over one SQL database: the queries of this module's children, with `B` for
/// what the database does its own way. [`super::SqliteStore`] and [`super::PgStore`]
/// name the two.
#[derive(Debug)]
pub struct SqlStore<B> {
    backend: B,
}

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(backend: B) -> Self {
        Self { backend }
    }

    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    pub(crate) fn hot_reads(&self) -> &HotReads<B::Db> {
        self.backend.hot_reads()
    }

    /// Begins a transaction on a connection from the pool.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, B::Db>, StoreError> {
        self.backend.pool().begin().await.map_err(map_err)
    }

    /// Runs a write on a connection from the pool; returns how many rows it changed.
    async fn execute(&self, query: Query<'_, B::Db>) -> Result<u64, StoreError> {
        let mut conn = self.backend.pool().acquire().await.map_err(map_err)?;
        B::Db::execute(&mut *conn, query).await.map_err(map_err)
    }

    /// Runs a query on a connection from the pool; its first row, if any. Not a [`read`]
    /// by itself: reads call it inside one.
    ///
    /// [`read`]: SqlStore::read
    async fn fetch_optional(&self, query: Query<'_, B::Db>) -> Result<Option<Row<B>>, StoreError> {
        let mut conn = self.backend.pool().acquire().await.map_err(map_err)?;
        B::Db::fetch_optional(&mut *conn, query)
            .await
            .map_err(map_err)
    }

    /// [`SqlStore::fetch_optional`] for a query that always returns one row (an aggregate).
    async fn fetch_one(&self, query: Query<'_, B::Db>) -> Result<Row<B>, StoreError> {
        self.fetch_optional(query)
            .await?
            .ok_or_else(|| map_err(sqlx::Error::RowNotFound))
    }

    /// [`SqlStore::fetch_optional`] for all the rows.
    async fn fetch_all(&self, query: Query<'_, B::Db>) -> Result<Vec<Row<B>>, StoreError> {
        let mut conn = self.backend.pool().acquire().await.map_err(map_err)?;
        B::Db::fetch_all(&mut *conn, query).await.map_err(map_err)
    }

    /// Runs a read (`attempt` builds it afresh each time): within the store's read
    /// deadline and, where the store has a circuit breaker (PostgreSQL), refused at once
    /// while it is open and given up as soon as it opens. A read that fails as
    /// unavailable early, while the database still counts as reachable (a connection
    /// closed by the server, reset or cut), is tried once more on a fresh connection: the
    /// kept ones go back to the pool, which tests those idle since the failure before
    /// handing them out. Only reads are tried again; a write given up on might have
    /// committed.
    async fn read<T, Attempt>(&self, attempt: impl Fn() -> Attempt) -> Result<T, StoreError>
    where
        Attempt: Future<Output = Result<T, StoreError>>,
    {
        let deadline = self.backend.read_deadline();
        let Some(breaker) = self.backend.breaker() else {
            return bounded(deadline, attempt()).await;
        };
        // A broken connection fails at once; a pool with no connection to give fails only
        // after waiting out the acquire timeout (the read deadline): no reason to try again.
        let retry_within = deadline.map(|deadline| deadline / 2);
        let started = Instant::now();
        bounded(deadline, async {
            breaker.check()?;
            match breaker.guard(attempt()).await {
                Err(StoreError::Unavailable(cause))
                    if !breaker.is_open()
                        && retry_within.is_none_or(|within| started.elapsed() < within) =>
                {
                    tracing::info!(error = %cause, "a database read failed on a broken connection: trying once more on a fresh one");
                    self.hot_reads().give_back();
                    breaker.connection_lost();
                    breaker.guard(attempt()).await
                }
                result => result,
            }
        })
        .await
    }

    /// A read on the token and introspection paths that returns at most one row: on a
    /// connection the store keeps aside (see [`HotReads`]), as a [`SqlStore::read`]. The
    /// connection is kept again only after a read that succeeded.
    async fn hot_optional<'q>(
        &self,
        query: impl Fn() -> Query<'q, B::Db>,
    ) -> Result<Option<Row<B>>, StoreError> {
        let query = &query;
        self.read(|| async move {
            let mut conn = self
                .hot_reads()
                .take(self.backend.pool())
                .await
                .map_err(map_err)?;
            let row = B::Db::fetch_optional(&mut *conn, query())
                .await
                .map_err(map_err)?;
            self.hot_reads().keep(conn);
            Ok(row)
        })
        .await
    }

    /// [`SqlStore::hot_optional`] for a read of any number of rows.
    async fn hot_all<'q>(
        &self,
        query: impl Fn() -> Query<'q, B::Db>,
    ) -> Result<Vec<Row<B>>, StoreError> {
        let query = &query;
        self.read(|| async move {
            let mut conn = self
                .hot_reads()
                .take(self.backend.pool())
                .await
                .map_err(map_err)?;
            let rows = B::Db::fetch_all(&mut *conn, query())
                .await
                .map_err(map_err)?;
            self.hot_reads().keep(conn);
            Ok(rows)
        })
        .await
    }
}

/// A list of RFC 8707 resources as its column holds it (a JSON array).
fn resources_to_json(resources: &[String]) -> String {
    serde_json::Value::from(resources.to_vec()).to_string()
}

/// The `resources` column of a code or family. Sigil writes it (JSON arrays only); a value
/// it cannot read is logged and read as none, which leaves the grant with the client's
/// default audience rather than failing every refresh of the family.
fn resources_from_json(text: &str) -> Vec<String> {
    match serde_json::from_str(text) {
        Ok(list) => list,
        Err(error) => {
            tracing::error!(%error, "a resources column is not a JSON array of strings");
            Vec::new()
        }
    }
}

/// A row of `B`'s database.
type Row<B> = <<B as Backend>::Db as sqlx::Database>::Row;

/// Decodes a row into `T` (a row struct of one of the role modules).
fn read_row<DB: Reads<T>, T>(row: &DB::Row) -> Result<T, StoreError> {
    DB::read(row).map_err(map_err)
}

/// Decodes every row into `T`.
fn read_rows<DB: Reads<T>, T>(rows: &[DB::Row]) -> Result<Vec<T>, StoreError> {
    DB::read_all(rows).map_err(map_err)
}

/// Runs a read with a time limit, if the store sets one: a database that stops answering
/// makes the read fail as unavailable instead of hanging. Reads have no side effects, so
/// giving up on one loses nothing. Writes are never cut off this way: a write given up on
/// might still commit, and its caller would report a failure for something that happened.
async fn bounded<T>(
    limit: Option<Duration>,
    read: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match limit {
        None => read.await,
        Some(limit) => tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the database did not answer a read within {} ms",
                limit.as_millis()
            )))
        }),
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `%search%`, lower-cased and escaped; `%` alone when there is no search.
fn like_pattern(search: Option<&str>) -> String {
    format!(
        "%{}%",
        escape_like(&search.unwrap_or("").trim().to_lowercase())
    )
}
