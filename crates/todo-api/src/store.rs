//! Todos in SQLite, always filtered by owner: a user can neither see nor change another's.

use rand::RngCore;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// One todo as the API returns it (the owner is implied: it is always the caller).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Todo {
    pub id: String,
    pub title: String,
    pub done: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partial update.
#[derive(Debug, Clone, Default)]
pub struct TodoPatch {
    pub title: Option<String>,
    pub done: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct TodoStore {
    pool: SqlitePool,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS todos (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    done BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS todos_owner ON todos (owner, created_at)";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn todo_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Todo, sqlx::Error> {
    Ok(Todo {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        done: row.try_get("done")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl TodoStore {
    /// Opens `sqlite://PATH` (created if missing, with its directory) and creates the table.
    pub async fn open(url: &str) -> Result<Self, String> {
        if !url.starts_with("sqlite:") {
            return Err(
                "todo-api stores its data in SQLite: use --database-url sqlite://PATH".into(),
            );
        }
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or("");
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() && path != ":memory:" {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| format!("invalid database URL: {e}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot open the database: {e}"))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .map_err(|e| format!("cannot create the schema: {e}"))?;
        Ok(Self { pool })
    }

    pub async fn list(&self, owner: &str) -> Result<Vec<Todo>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, title, done, created_at, updated_at FROM todos WHERE owner = $1 ORDER BY created_at, id LIMIT 1000")
            .bind(owner)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(todo_from_row).collect()
    }

    pub async fn create(&self, owner: &str, title: &str, done: bool) -> Result<Todo, sqlx::Error> {
        let mut bytes = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = now();
        sqlx::query("INSERT INTO todos (id, owner, title, done, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(owner)
            .bind(title)
            .bind(done)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(Todo {
            id,
            title: title.to_string(),
            done,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn find(&self, owner: &str, id: &str) -> Result<Option<Todo>, sqlx::Error> {
        let row = sqlx::query("SELECT id, title, done, created_at, updated_at FROM todos WHERE owner = $1 AND id = $2")
            .bind(owner)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(todo_from_row).transpose()
    }

    pub async fn update(
        &self,
        owner: &str,
        id: &str,
        patch: &TodoPatch,
    ) -> Result<Option<Todo>, sqlx::Error> {
        let row = sqlx::query("UPDATE todos SET title = COALESCE($1, title), done = COALESCE($2, done), updated_at = $3 WHERE owner = $4 AND id = $5 RETURNING id, title, done, created_at, updated_at")
            .bind(&patch.title)
            .bind(patch.done)
            .bind(now())
            .bind(owner)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(todo_from_row).transpose()
    }

    pub async fn delete(&self, owner: &str, id: &str) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("DELETE FROM todos WHERE owner = $1 AND id = $2")
            .bind(owner)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes every todo of `owner`, in one statement (all or none), and says how many.
    pub async fn delete_all(&self, owner: &str) -> Result<u64, sqlx::Error> {
        let result = sqlx::query("DELETE FROM todos WHERE owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}
