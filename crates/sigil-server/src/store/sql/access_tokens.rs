//! The access-token deny list (`revoked_access_tokens`) and the DPoP proofs seen (`dpop_proofs`).

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

    async fn record_dpop_proof(
        &self,
        replay_key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // An expired row for this key is taken over; a live one makes the insert change
        // nothing: a replay.
        let query = sqlx::query("INSERT INTO dpop_proofs (replay_key, expires_at) VALUES ($1, $2) ON CONFLICT (replay_key) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= $3")
            .param(replay_key)
            .param(expires_at)
            .param(now);
        Ok(self.execute(query).await? == 1)
    }
}
