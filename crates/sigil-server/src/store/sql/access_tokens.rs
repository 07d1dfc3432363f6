//! The access-token deny list (`revoked_access_tokens`) and the DPoP proofs seen (`dpop_proofs`).

use super::{read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{AccessTokenDenyList, StoreError};
use std::collections::HashSet;
use std::sync::OnceLock;

#[async_trait]
impl<B: Backend> AccessTokenDenyList for SqlStore<B>
where
    B::Db: Reads<RecordedProof>,
{
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

    /// One statement for the whole batch (so one commit, one disk sync on SQLite): the
    /// rows inserted, or taken over from an expired record, come back in `RETURNING`;
    /// the others were replays.
    async fn record_dpop_proofs(
        &self,
        proofs: &[(String, i64)],
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let mut first_uses = Vec::with_capacity(proofs.len());
        for chunk in proofs.chunks(MAX_PROOFS_PER_STATEMENT) {
            let mut query = sqlx::query(batch_statement(chunk.len()));
            for (replay_key, expires_at) in chunk {
                query = query.param(replay_key.as_str()).param(*expires_at);
            }
            let rows = self.fetch_all(query.param(now)).await?;
            let rows = read_rows::<B::Db, RecordedProof>(&rows)?;
            let recorded: HashSet<&str> = rows.iter().map(|r| r.replay_key.as_str()).collect();
            first_uses.extend(chunk.iter().map(|(key, _)| recorded.contains(key.as_str())));
        }
        Ok(first_uses)
    }
}

/// The most proofs one statement records (two bind parameters each).
const MAX_PROOFS_PER_STATEMENT: usize = 64;

#[derive(sqlx::FromRow)]
pub(super) struct RecordedProof {
    replay_key: String,
}

/// The statement recording `count` proofs, built once per count: `$1, $2` … for the
/// proofs, then `now`.
fn batch_statement(count: usize) -> &'static str {
    static STATEMENTS: OnceLock<Vec<String>> = OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        (0..=MAX_PROOFS_PER_STATEMENT)
            .map(|n| {
                let values: Vec<String> = (0..n)
                    .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                    .collect();
                format!(
                    "INSERT INTO dpop_proofs (replay_key, expires_at) VALUES {} ON CONFLICT (replay_key) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= ${} RETURNING replay_key",
                    values.join(", "),
                    2 * n + 1
                )
            })
            .collect()
    });
    &statements[count.min(MAX_PROOFS_PER_STATEMENT)]
}
