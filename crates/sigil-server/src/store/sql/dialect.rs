//! [`Dialect`]: what the query modules need of a sqlx database, proved once.
//!
//! Code generic over a sqlx `Database` must otherwise repeat, on every function, that its
//! connections are executors, its arguments convert, and each bound and read type encodes
//! or decodes (`for<'q> i64: Encode<'q, DB> + Type<DB>`, …): bounds on other types than
//! `DB` are not implied by a trait, only bounds on `Self` are. So each capability here is a
//! trait of the database itself ([`Binds`], [`Reads`]) or a method of [`Dialect`], all
//! implemented once, below, for every database that has them: SQLite and PostgreSQL both
//! do. Query code then needs only `DB: Dialect` (and `DB: Reads<Row>` for its rows), and
//! binds with [`Param::param`] instead of sqlx's `bind`.

use sqlx::postgres::PgQueryResult;
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};
use std::future::Future;
use std::pin::Pin;

/// A future sqlx's executors return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A statement with its parameters, as `sqlx::query` builds it.
pub type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// A sqlx database that runs every query of [`super`]: SQLite and PostgreSQL.
pub trait Dialect:
    Database
    + for<'q> Binds<'q, &'q str>
    + for<'q> Binds<'q, Option<&'q str>>
    + for<'q> Binds<'q, String>
    + for<'q> Binds<'q, Option<String>>
    + for<'q> Binds<'q, i64>
    + for<'q> Binds<'q, Option<i64>>
    + for<'q> Binds<'q, bool>
{
    /// Runs a statement on `conn`; returns how many rows it changed.
    fn execute<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: Query<'q, Self>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;

    /// Runs a query on `conn`; returns its first row, if any.
    fn fetch_optional<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: Query<'q, Self>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs a query on `conn`; returns all its rows.
    fn fetch_all<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: Query<'q, Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;
}

impl<DB> Dialect for DB
where
    DB: Database
        + for<'q> Binds<'q, &'q str>
        + for<'q> Binds<'q, Option<&'q str>>
        + for<'q> Binds<'q, String>
        + for<'q> Binds<'q, Option<String>>
        + for<'q> Binds<'q, i64>
        + for<'q> Binds<'q, Option<i64>>
        + for<'q> Binds<'q, bool>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::QueryResult: RowsAffected,
{
    async fn execute<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: Query<'q, Self>,
    ) -> Result<u64, sqlx::Error> {
        let done = conn.execute(query).await?;
        Ok(done.rows_affected())
    }

    fn fetch_optional<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: Query<'q, Self>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
        conn.fetch_optional(query)
    }

    fn fetch_all<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: Query<'q, Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
        conn.fetch_all(query)
    }
}

/// Values of type `T` bind as statement parameters of this database.
pub trait Binds<'q, T>: Database {
    fn bind(query: Query<'q, Self>, value: T) -> Query<'q, Self>;
}

impl<'q, DB: Database, T: 'q + Encode<'q, DB> + Type<DB>> Binds<'q, T> for DB {
    fn bind(query: Query<'q, DB>, value: T) -> Query<'q, DB> {
        query.bind(value)
    }
}

/// Rows of this database decode into `T` (a `#[derive(sqlx::FromRow)]` row struct).
pub(crate) trait Reads<T>: Database {
    fn read(row: &Self::Row) -> Result<T, sqlx::Error>;

    /// [`Reads::read`] for every row.
    fn read_all(rows: &[Self::Row]) -> Result<Vec<T>, sqlx::Error> {
        rows.iter().map(Self::read).collect()
    }
}

impl<DB: Database, T: for<'r> FromRow<'r, DB::Row>> Reads<T> for DB {
    fn read(row: &DB::Row) -> Result<T, sqlx::Error> {
        T::from_row(row)
    }
}

/// sqlx's `Query::bind`, for query code generic over a [`Dialect`].
pub(crate) trait Param<'q, DB: Database> {
    fn param<T>(self, value: T) -> Self
    where
        DB: Binds<'q, T>;
}

impl<'q, DB: Database> Param<'q, DB> for Query<'q, DB> {
    fn param<T>(self, value: T) -> Self
    where
        DB: Binds<'q, T>,
    {
        DB::bind(self, value)
    }
}

/// How many rows a statement changed: each database's query result says so in a method of
/// its own.
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}
