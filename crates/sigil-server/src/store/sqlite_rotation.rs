//! Group commit of refresh-token rotations on SQLite.
//!
//! SQLite has one writer at a time, and with `synchronous=FULL` every commit waits for the
//! disk. Rotating tokens one transaction each serializes on that wait, and the waiting
//! writers sleep in SQLite's busy handler in steps of milliseconds. Here one task owns a
//! connection of its own and commits whatever rotations have queued up while the previous
//! commit was on its way to disk, in one transaction sent to SQLite as one multi-statement
//! call: one disk sync and one hand-off to the connection's thread per batch.
//!
//! Each rotation stays a compare-and-set: its `UPDATE … WHERE used_at IS NULL` names its
//! own item number in `RETURNING`, and its successor is inserted only `WHERE changes() = 1`.
//! Two rotations of one token in the same batch therefore see each other's write, and
//! exactly one of them wins. A caller hears back only after the commit, so an acknowledged
//! rotation is on disk; if the batch fails, it is rolled back whole and every caller gets
//! the error, with its presented token still unused.

use super::classify;
use super::sql::UNUSED_IN_LIVE_FAMILY;
use sigil_core::store::{RefreshTokenRecord, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, FromRow};
use tokio::sync::{mpsc, oneshot};

/// At most this many rotations share one commit.
const MAX_BATCH: usize = 64;
/// Bind parameters per rotation in the batch statement.
const PARAMS_PER_ITEM: usize = 10;

/// What the batch statement returns: the item number of each rotation that won.
#[derive(FromRow)]
struct WinnerRow {
    item: i64,
}

struct Rotation {
    used_id: String,
    successor: RefreshTokenRecord,
    now: i64,
    sealed_successor: Option<String>,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The handle through which the store queues rotations for the writer task.
#[derive(Debug, Clone)]
pub(crate) struct RotationWriter {
    queue: mpsc::Sender<Rotation>,
}

impl RotationWriter {
    /// Starts the writer task on the current tokio runtime. It opens its connection with
    /// `options` when the first rotation arrives, and again after a failure.
    pub(crate) fn start(options: SqliteConnectOptions) -> Self {
        let (queue, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(options, receiver));
        Self { queue }
    }

    /// Rotates `used_id` into `successor`; `Ok(true)` when this call won.
    pub(crate) async fn rotate(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
        sealed_successor: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let rotation = Rotation {
            used_id: used_id.to_string(),
            successor: successor.clone(),
            now,
            sealed_successor: sealed_successor.map(str::to_string),
            reply,
        };
        let stopped = || StoreError::Unavailable("the SQLite rotation writer has stopped".into());
        self.queue.send(rotation).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(options: SqliteConnectOptions, mut receiver: mpsc::Receiver<Rotation>) {
    let mut connection: Option<SqliteConnection> = None;
    let mut statements = BatchStatements::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let batch = std::mem::take(&mut batch);
        let outcome = match connection.as_mut() {
            Some(conn) => commit(conn, statements.get(batch.len()), &batch).await,
            None => match options.connect().await {
                Ok(conn) => {
                    let conn = connection.insert(conn);
                    commit(conn, statements.get(batch.len()), &batch).await
                }
                Err(error) => Err(error),
            },
        };
        match outcome {
            Ok(winners) => {
                for (item, rotation) in batch.into_iter().enumerate() {
                    let _ = rotation.reply.send(Ok(winners.contains(&(item as i64))));
                }
            }
            Err(error) => {
                // Undo whatever part of the batch ran; a connection that cannot even roll
                // back is dropped and a new one opened for the next batch.
                if let Some(conn) = connection.as_mut() {
                    if !rollback(conn).await {
                        connection = None;
                    }
                }
                tracing::error!(%error, rotations = batch.len(), "refresh-token rotation batch failed");
                for rotation in batch {
                    let _ = rotation.reply.send(Err(classify(&error)));
                }
            }
        }
    }
    if let Some(conn) = connection {
        let _ = conn.close().await;
    }
}

/// Rolls back whatever part of a failed batch ran; false if even that failed.
async fn rollback(conn: &mut SqliteConnection) -> bool {
    sqlx::query("ROLLBACK").execute(conn).await.is_ok()
}

/// Runs one batch in one transaction; returns the item numbers that won.
async fn commit(
    conn: &mut SqliteConnection,
    sql: &str,
    batch: &[Rotation],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut query = sqlx::query(sql);
    for rotation in batch {
        let successor = &rotation.successor;
        query = query
            .bind(rotation.now)
            .bind(rotation.sealed_successor.as_deref())
            .bind(rotation.used_id.as_str())
            .bind(successor.id.as_str())
            .bind(successor.family_id.as_str())
            .bind(successor.token_hash.as_str())
            .bind(successor.parent_id.as_deref())
            .bind(successor.created_at)
            .bind(successor.expires_at)
            .bind(successor.used_at);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| WinnerRow::from_row(row).map(|winner| winner.item))
        .collect()
}

/// The batch statement for each batch size, built once.
#[derive(Default)]
struct BatchStatements(Vec<String>);

impl BatchStatements {
    fn get(&mut self, items: usize) -> &str {
        while self.0.len() < items {
            let next = batch_sql(self.0.len() + 1);
            self.0.push(next);
        }
        &self.0[items - 1]
    }
}

/// `BEGIN IMMEDIATE`, then per item a conditional update that reports its item number and
/// an insert of the successor that happens only if that update changed a row, then `COMMIT`.
fn batch_sql(items: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    for item in 0..items {
        let p = |n: usize| format!("${}", item * PARAMS_PER_ITEM + n);
        sql.push_str(&format!(
            "UPDATE refresh_tokens SET used_at = {now}, sealed_successor = {sealed} WHERE id = {used} AND {UNUSED_IN_LIVE_FAMILY} RETURNING {item} AS item;\n",
            now = p(1),
            sealed = p(2),
            used = p(3),
        ));
        sql.push_str(&format!(
            "INSERT INTO refresh_tokens (id, family_id, token_hash, parent_id, created_at, expires_at, used_at) SELECT {}, {}, {}, {}, {}, {}, {} WHERE changes() = 1;\n",
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
        ));
    }
    sql.push_str("COMMIT;");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_statement_numbers_parameters_per_item() {
        let sql = batch_sql(2);
        assert!(sql.starts_with("BEGIN IMMEDIATE;"));
        assert!(sql.ends_with("COMMIT;"));
        assert!(sql.contains("RETURNING 0 AS item"));
        assert!(sql.contains("RETURNING 1 AS item"));
        assert!(sql.contains("SELECT $14, $15, $16, $17, $18, $19, $20 WHERE changes() = 1"));
        assert!(!sql.contains("$21"));
    }
}
