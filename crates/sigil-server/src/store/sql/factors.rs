//! Second factors and recovery codes: the `second_factors` and `recovery_codes` tables.
//! Each use is one conditional statement, so that a TOTP step or a recovery code is
//! accepted once across every replica.

use super::{read_row, read_rows, Backend, Dialect, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{Factor, FactorKind, SecondFactorStore, StoreError};

const FACTOR_COLUMNS: &str = "id, user_id, kind, name, data, credential_id, last_step, created_at, confirmed_at, last_used_at";

#[derive(sqlx::FromRow)]
pub(super) struct FactorRow {
    id: String,
    user_id: String,
    kind: String,
    name: String,
    data: String,
    credential_id: Option<String>,
    last_step: Option<i64>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<FactorRow> for Factor {
    type Error = StoreError;
    fn try_from(row: FactorRow) -> Result<Self, StoreError> {
        let kind = FactorKind::parse(&row.kind).ok_or_else(|| {
            StoreError::Other(format!("second_factors.kind {:?} is unknown", row.kind))
        })?;
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            kind,
            name: row.name,
            data: row.data,
            credential_id: row.credential_id,
            last_step: row.last_step,
            created_at: row.created_at,
            confirmed_at: row.confirmed_at,
            last_used_at: row.last_used_at,
        })
    }
}

/// `SELECT COUNT(*) AS n`.
#[derive(sqlx::FromRow)]
pub(super) struct FactorCountRow {
    n: i64,
}

#[async_trait]
impl<B: Backend> SecondFactorStore for SqlStore<B>
where
    B::Db: Reads<FactorRow> + Reads<FactorCountRow>,
{
    async fn create_factor(&self, factor: &Factor) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO second_factors ({FACTOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let query = sqlx::query(&sql)
            .param(factor.id.as_str())
            .param(factor.user_id.as_str())
            .param(factor.kind.as_str())
            .param(factor.name.as_str())
            .param(factor.data.as_str())
            .param(factor.credential_id.as_deref())
            .param(factor.last_step)
            .param(factor.created_at)
            .param(factor.confirmed_at)
            .param(factor.last_used_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn list_factors(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        let sql = format!(
            "SELECT {FACTOR_COLUMNS} FROM second_factors WHERE user_id = $1 ORDER BY created_at, id"
        );
        self.read(|| async {
            let rows = self.fetch_all(sqlx::query(&sql).param(user_id)).await?;
            read_rows::<B::Db, FactorRow>(&rows)?
                .into_iter()
                .map(Factor::try_from)
                .collect()
        })
        .await
    }

    async fn find_factor_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<Factor>, StoreError> {
        let sql = format!(
            "SELECT {FACTOR_COLUMNS} FROM second_factors WHERE credential_id = $1 AND kind = 'passkey' AND confirmed_at IS NOT NULL"
        );
        self.read(|| async {
            let row = self
                .fetch_optional(sqlx::query(&sql).param(credential_id))
                .await?;
            row.map(|row| read_row::<B::Db, FactorRow>(&row).and_then(Factor::try_from))
                .transpose()
        })
        .await
    }

    async fn confirm_factor(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        step: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE second_factors SET name = $1, confirmed_at = $2, last_used_at = $2, last_step = $3 WHERE id = $4 AND user_id = $5 AND confirmed_at IS NULL")
            .param(name)
            .param(now)
            .param(step)
            .param(id)
            .param(user_id);
        Ok(self.execute(query).await? == 1)
    }

    async fn use_totp_step(&self, id: &str, step: i64, now: i64) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE second_factors SET last_step = $1, last_used_at = $2 WHERE id = $3 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)")
            .param(step)
            .param(now)
            .param(id);
        Ok(self.execute(query).await? == 1)
    }

    async fn record_factor_use(
        &self,
        id: &str,
        data: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE second_factors SET data = COALESCE($1, data), last_used_at = $2 WHERE id = $3 AND confirmed_at IS NOT NULL")
            .param(data)
            .param(now)
            .param(id);
        Ok(self.execute(query).await? == 1)
    }

    async fn rename_factor(&self, user_id: &str, id: &str, name: &str) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE second_factors SET name = $1 WHERE id = $2 AND user_id = $3 AND confirmed_at IS NOT NULL")
            .param(name)
            .param(id)
            .param(user_id);
        Ok(self.execute(query).await? == 1)
    }

    async fn delete_factor(
        &self,
        user_id: &str,
        id: &str,
        keep_one: bool,
    ) -> Result<bool, StoreError> {
        if !keep_one {
            let query = sqlx::query("DELETE FROM second_factors WHERE id = $1 AND user_id = $2")
                .param(id)
                .param(user_id);
            return Ok(self.execute(query).await? == 1);
        }
        // The user's row is locked first (an update that changes nothing), so that two
        // removals of the same user's factors run one after the other: the second sees
        // what the first left, on PostgreSQL's READ COMMITTED as on SQLite.
        let mut tx = self.begin().await?;
        B::Db::execute(
            &mut *tx,
            sqlx::query("UPDATE users SET version = version WHERE id = $1").param(user_id),
        )
        .await
        .map_err(super::map_err)?;
        let deleted = B::Db::execute(
            &mut *tx,
            sqlx::query(
                "DELETE FROM second_factors WHERE id = $1 AND user_id = $2 AND EXISTS (SELECT 1 FROM second_factors WHERE user_id = $2 AND id <> $1 AND confirmed_at IS NOT NULL)",
            )
            .param(id)
            .param(user_id),
        )
        .await
        .map_err(super::map_err)?;
        tx.commit().await.map_err(super::map_err)?;
        Ok(deleted == 1)
    }

    async fn delete_factors(&self, user_id: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let confirmed = B::Db::execute(
            &mut *tx,
            sqlx::query(
                "DELETE FROM second_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
            )
            .param(user_id),
        )
        .await
        .map_err(super::map_err)?;
        for sql in [
            "DELETE FROM second_factors WHERE user_id = $1",
            "DELETE FROM recovery_codes WHERE user_id = $1",
        ] {
            B::Db::execute(&mut *tx, sqlx::query(sql).param(user_id))
                .await
                .map_err(super::map_err)?;
        }
        tx.commit().await.map_err(super::map_err)?;
        Ok(confirmed)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        B::Db::execute(
            &mut *tx,
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").param(user_id),
        )
        .await
        .map_err(super::map_err)?;
        for hash in hashes {
            let insert = sqlx::query(
                "INSERT INTO recovery_codes (user_id, code_hash, created_at, used_at) VALUES ($1, $2, $3, NULL)",
            )
            .param(user_id)
            .param(hash.as_str())
            .param(now);
            B::Db::execute(&mut *tx, insert)
                .await
                .map_err(super::map_err)?;
        }
        tx.commit().await.map_err(super::map_err)
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
            .param(now)
            .param(user_id)
            .param(hash);
        Ok(self.execute(query).await? == 1)
    }

    async fn count_recovery_codes(&self, user_id: &str) -> Result<i64, StoreError> {
        self.read(|| async move {
            let row = self
                .fetch_one(
                    sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                        .param(user_id),
                )
                .await?;
            Ok(read_row::<B::Db, FactorCountRow>(&row)?.n)
        })
        .await
    }
}
