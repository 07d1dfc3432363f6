//! Signed-in browser sessions, as the account page lists them: the `browser_sessions` table.

use super::{read_row, read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{BrowserSession, BrowserSessionStore, StoreError};

const SESSION_COLUMNS: &str =
    "id, user_id, created_at, last_seen_at, address, user_agent, ended_at";

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    id: String,
    user_id: String,
    created_at: i64,
    last_seen_at: i64,
    address: Option<String>,
    user_agent: Option<String>,
    ended_at: Option<i64>,
}

impl From<SessionRow> for BrowserSession {
    fn from(row: SessionRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            address: row.address,
            user_agent: row.user_agent,
            ended_at: row.ended_at,
        }
    }
}

#[async_trait]
impl<B: Backend> BrowserSessionStore for SqlStore<B>
where
    B::Db: Reads<SessionRow>,
{
    async fn create_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO browser_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        );
        let query = sqlx::query(&sql)
            .param(session.id.as_str())
            .param(session.user_id.as_str())
            .param(session.created_at)
            .param(session.last_seen_at)
            .param(session.address.as_deref())
            .param(session.user_agent.as_deref())
            .param(session.ended_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn find_browser_session(&self, id: &str) -> Result<Option<BrowserSession>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM browser_sessions WHERE id = $1");
        let row = self.hot_optional(|| sqlx::query(&sql).param(id)).await?;
        let session = row
            .map(|row| read_row::<B::Db, SessionRow>(&row))
            .transpose()?;
        Ok(session.map(BrowserSession::from))
    }

    async fn touch_browser_session(
        &self,
        id: &str,
        address: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE browser_sessions SET last_seen_at = $1, address = COALESCE($2, address) WHERE id = $3",
        )
        .param(now)
        .param(address)
        .param(id);
        self.execute(query).await?;
        Ok(())
    }

    async fn list_browser_sessions(
        &self,
        user_id: &str,
        seen_since: i64,
    ) -> Result<Vec<BrowserSession>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM browser_sessions WHERE user_id = $1 AND ended_at IS NULL AND last_seen_at >= $2 ORDER BY last_seen_at DESC, id");
        self.read(|| async {
            let rows = self
                .fetch_all(sqlx::query(&sql).param(user_id).param(seen_since))
                .await?;
            let sessions = read_rows::<B::Db, SessionRow>(&rows)?;
            Ok(sessions.into_iter().map(BrowserSession::from).collect())
        })
        .await
    }

    async fn list_live_browser_sessions(
        &self,
        seen_since: i64,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<BrowserSession>, StoreError> {
        // Keyset paging on (last_seen_at, id), which the partial index
        // `browser_sessions_live` (migration 12) holds in this order.
        let sql = format!("SELECT {SESSION_COLUMNS} FROM browser_sessions WHERE ended_at IS NULL AND last_seen_at >= $1 AND ($2 IS NULL OR last_seen_at < $2 OR (last_seen_at = $2 AND id < $3)) ORDER BY last_seen_at DESC, id DESC LIMIT $4");
        let (seen, id) = before.unzip();
        self.read(|| async {
            let query = sqlx::query(&sql)
                .param(seen_since)
                .param(seen)
                .param(id)
                .param(limit);
            let rows = self.fetch_all(query).await?;
            let sessions = read_rows::<B::Db, SessionRow>(&rows)?;
            Ok(sessions.into_iter().map(BrowserSession::from).collect())
        })
        .await
    }

    async fn end_browser_sessions(
        &self,
        user_id: &str,
        only: Option<&str>,
        except: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let query = sqlx::query("UPDATE browser_sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL AND ($3 IS NULL OR id = $3) AND ($4 IS NULL OR id <> $4)")
            .param(now)
            .param(user_id)
            .param(only)
            .param(except);
        self.execute(query).await
    }
}
