//! The store's upkeep: the health check and the deletion of what has expired, in one
//! transaction across the tables.

use super::{map_err, Backend, Dialect, Param, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{Housekeeping, StoreError};

/// How long after its expiry an authorization code is kept (a replay within it still
/// finds the code, and revokes what its exchange issued), and after its last failure a
/// sign-in count.
const KEPT_AFTER_EXPIRY: i64 = 86_400;

/// How long after it was last seen a browser session's row is kept.
/// How long an unfinished TOTP enrolment is kept.
const UNCONFIRMED_FACTOR_KEPT: i64 = 3600;
const SESSIONS_KEPT: i64 = 90 * 86_400;

#[async_trait]
impl<B: Backend> Housekeeping for SqlStore<B> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|| async {
            self.execute(sqlx::query("SELECT 1")).await?;
            Ok(())
        })
        .await
    }

    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        let deletions = [
            (
                "DELETE FROM authorization_codes WHERE expires_at <= $1",
                now - KEPT_AFTER_EXPIRY,
            ),
            ("DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families WHERE expires_at <= $1)", now),
            ("DELETE FROM refresh_families WHERE expires_at <= $1", now),
            ("DELETE FROM revoked_access_tokens WHERE expires_at <= $1", now),
            (
                "DELETE FROM sign_in_failures WHERE last_failure_at <= $1",
                now - KEPT_AFTER_EXPIRY,
            ),
            (
                "DELETE FROM account_links WHERE expires_at <= $1",
                now - KEPT_AFTER_EXPIRY,
            ),
            (
                "DELETE FROM mail_outbox WHERE COALESCE(sent_at, given_up_at) <= $1",
                now - super::outbox::OUTBOX_KEPT,
            ),
            (
                "DELETE FROM browser_sessions WHERE ended_at <= $1",
                now - KEPT_AFTER_EXPIRY,
            ),
            (
                "DELETE FROM browser_sessions WHERE last_seen_at <= $1",
                now - SESSIONS_KEPT,
            ),
            (
                "DELETE FROM second_factors WHERE confirmed_at IS NULL AND created_at <= $1",
                now - UNCONFIRMED_FACTOR_KEPT,
            ),
            (
                "DELETE FROM logout_deliveries WHERE COALESCE(delivered_at, given_up_at) <= $1",
                now - super::backchannel::DELIVERIES_KEPT,
            ),
            (
                "DELETE FROM registration_tokens WHERE expires_at <= $1",
                now - KEPT_AFTER_EXPIRY,
            ),
            ("DELETE FROM pushed_requests WHERE expires_at <= $1", now),
            ("DELETE FROM client_assertions WHERE expires_at <= $1", now),
            ("DELETE FROM dpop_proofs WHERE expires_at <= $1", now),
            (
                "DELETE FROM session_clients WHERE created_at <= $1",
                now - super::backchannel::SESSION_CLIENTS_KEPT,
            ),
        ];
        let mut tx = self.begin().await?;
        let mut deleted = 0;
        for (sql, before) in deletions {
            deleted += B::Db::execute(&mut *tx, sqlx::query(sql).param(before))
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(deleted)
    }
}
