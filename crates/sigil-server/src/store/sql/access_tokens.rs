//! The access-token deny list: the `revoked_access_tokens` table.

use super::{Backend, Param, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{AccessTokenDenyList, StoreError};

#[async_trait]
impl<B: Backend> AccessTokenDenyList for SqlStore<B> {
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let query = sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .param(jti)
            .param(expires_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row = self
            .hot_optional(|| {
                sqlx::query("SELECT 1 AS one FROM revoked_access_tokens WHERE jti = $1").param(jti)
            })
            .await?;
        Ok(row.is_some())
    }
}
