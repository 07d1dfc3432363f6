//! Remembered consents: the `consents` table, one row per user and client.

use super::{read_row, read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{Consent, ConsentStore, StoreError};

/// A row of `consents` without its user.
#[derive(sqlx::FromRow)]
pub(super) struct ConsentRow {
    client_id: String,
    scope: String,
    granted_at: i64,
}

impl From<ConsentRow> for Consent {
    fn from(row: ConsentRow) -> Self {
        Self {
            client_id: row.client_id,
            scope: row.scope,
            granted_at: row.granted_at,
        }
    }
}

/// `SELECT COUNT(*) AS n`.
#[derive(sqlx::FromRow)]
pub(super) struct ConsentCountRow {
    n: i64,
}

/// `SELECT scope`.
#[derive(sqlx::FromRow)]
pub(super) struct ScopeRow {
    scope: String,
}

#[async_trait]
impl<B: Backend> ConsentStore for SqlStore<B>
where
    B::Db: Reads<ConsentRow> + Reads<ScopeRow> + Reads<ConsentCountRow>,
{
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|| async move {
            let query =
                sqlx::query("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                    .param(user_id)
                    .param(client_id);
            let row = self.fetch_optional(query).await?;
            let found = row
                .map(|row| read_row::<B::Db, ScopeRow>(&row))
                .transpose()?;
            Ok(found.map(|row| row.scope))
        })
        .await
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query("INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at")
            .param(user_id)
            .param(client_id)
            .param(scope)
            .param(now);
        self.execute(query).await?;
        Ok(())
    }

    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        self.read(|| async move {
            let query = sqlx::query("SELECT client_id, scope, granted_at FROM consents WHERE user_id = $1 ORDER BY client_id")
                .param(user_id);
            let rows = self.fetch_all(query).await?;
            let consents = read_rows::<B::Db, ConsentRow>(&rows)?;
            Ok(consents.into_iter().map(Consent::from).collect())
        })
        .await
    }

    async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        let query = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .param(user_id)
            .param(client_id);
        Ok(self.execute(query).await? == 1)
    }

    async fn count_consents(&self, client_id: &str) -> Result<i64, StoreError> {
        self.read(|| async move {
            let query = sqlx::query("SELECT COUNT(*) AS n FROM consents WHERE client_id = $1")
                .param(client_id);
            let row = self.fetch_one(query).await?;
            Ok(read_row::<B::Db, ConsentCountRow>(&row)?.n)
        })
        .await
    }
}
