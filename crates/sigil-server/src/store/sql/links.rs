//! Single-use links sent by mail: the `account_links` table. Only token hashes are stored.

use super::{read_row, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{AccountLink, AccountLinkStore, LinkPurpose, StoreError};

const LINK_COLUMNS: &str =
    "token_hash, purpose, user_id, email, session_epoch, created_at, expires_at, used_at";

#[derive(sqlx::FromRow)]
pub(super) struct LinkRow {
    token_hash: String,
    purpose: String,
    user_id: Option<String>,
    email: Option<String>,
    session_epoch: i64,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<LinkRow> for AccountLink {
    type Error = StoreError;

    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        Ok(Self {
            purpose: LinkPurpose::parse(&row.purpose).ok_or_else(|| {
                StoreError::Other(format!(
                    "account_links.purpose {:?} is unknown",
                    row.purpose
                ))
            })?,
            token_hash: row.token_hash,
            user_id: row.user_id,
            email: row.email,
            session_epoch: row.session_epoch,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

#[async_trait]
impl<B: Backend> AccountLinkStore for SqlStore<B>
where
    B::Db: Reads<LinkRow>,
{
    async fn create_account_link(&self, link: &AccountLink) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO account_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        let query = sqlx::query(&sql)
            .param(link.token_hash.as_str())
            .param(link.purpose.as_str())
            .param(link.user_id.as_deref())
            .param(link.email.as_deref())
            .param(link.session_epoch)
            .param(link.created_at)
            .param(link.expires_at)
            .param(link.used_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn find_account_link(&self, token_hash: &str) -> Result<Option<AccountLink>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM account_links WHERE token_hash = $1");
        self.read(|| async {
            let row = self
                .fetch_optional(sqlx::query(&sql).param(token_hash))
                .await?;
            row.map(|row| read_row::<B::Db, LinkRow>(&row).and_then(AccountLink::try_from))
                .transpose()
        })
        .await
    }

    async fn consume_account_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
        now: i64,
    ) -> Result<Option<AccountLink>, StoreError> {
        // One conditional statement: of concurrent uses, exactly one changes the row.
        let sql = format!("UPDATE account_links SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 RETURNING {LINK_COLUMNS}");
        let query = sqlx::query(&sql)
            .param(now)
            .param(token_hash)
            .param(purpose.as_str());
        let row = self.fetch_optional(query).await?;
        row.map(|row| read_row::<B::Db, LinkRow>(&row).and_then(AccountLink::try_from))
            .transpose()
    }

    async fn void_account_links(
        &self,
        user_id: &str,
        purpose: LinkPurpose,
        now: i64,
    ) -> Result<u64, StoreError> {
        let query = sqlx::query("UPDATE account_links SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL")
            .param(now)
            .param(user_id)
            .param(purpose.as_str());
        self.execute(query).await
    }
}
