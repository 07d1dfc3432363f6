//! Refresh-token families and their tokens: the `refresh_families` and `refresh_tokens`
//! tables. Rotation itself is the backend's ([`Backend::rotate_refresh_token`]), under
//! [`UNUSED_IN_LIVE_FAMILY`].

use super::users::{JoinedUserRow, JOINED_USER_COLUMNS};
use super::{map_err, read_row, read_rows, Backend, Dialect, Param, Query, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{RefreshFamily, RefreshTokenRecord, RefreshTokenStore, StoreError};
use sigil_core::user::User;

/// The compare-and-set of a refresh-token rotation, on `refresh_tokens`: the token is still
/// unused and its family unrevoked. Both databases' rotations update only under it.
pub(crate) const UNUSED_IN_LIVE_FAMILY: &str = "used_at IS NULL AND EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL)";

/// The insert of a token, bound with [`bind_token`].
const INSERT_TOKEN: &str = "INSERT INTO refresh_tokens (id, family_id, token_hash, parent_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const FAMILY_COLUMNS: &str = "id AS f_id, client_id, user_id, scope, auth_time, acr, amr, sid AS f_sid, resources AS f_resources, dpop_jkt AS f_dpop_jkt, created_at AS f_created_at, expires_at AS f_expires_at, revoked_at";
/// A token (`t`) with its family (`f`), the family's columns named as in [`FAMILY_COLUMNS`].
const TOKEN_FAMILY_COLUMNS: &str = "t.id, t.family_id, t.token_hash, t.parent_id, t.created_at, t.expires_at, t.used_at, t.sealed_successor, f.id AS f_id, f.client_id, f.user_id, f.scope, f.auth_time, f.acr, f.amr, f.sid AS f_sid, f.resources AS f_resources, f.dpop_jkt AS f_dpop_jkt, f.created_at AS f_created_at, f.expires_at AS f_expires_at, f.revoked_at";

/// A row of `refresh_tokens`.
#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    id: String,
    family_id: String,
    token_hash: String,
    parent_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    sealed_successor: Option<String>,
}

impl From<TokenRow> for RefreshTokenRecord {
    fn from(row: TokenRow) -> Self {
        Self {
            id: row.id,
            family_id: row.family_id,
            token_hash: row.token_hash,
            parent_id: row.parent_id,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            sealed_successor: row.sealed_successor,
        }
    }
}

/// A row of `refresh_families`, selected with [`FAMILY_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct FamilyRow {
    #[sqlx(rename = "f_id")]
    id: String,
    client_id: String,
    user_id: String,
    scope: String,
    auth_time: i64,
    acr: String,
    amr: String,
    #[sqlx(rename = "f_sid")]
    sid: Option<String>,
    #[sqlx(rename = "f_resources")]
    resources: String,
    #[sqlx(rename = "f_dpop_jkt")]
    dpop_jkt: Option<String>,
    #[sqlx(rename = "f_created_at")]
    created_at: i64,
    #[sqlx(rename = "f_expires_at")]
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl From<FamilyRow> for RefreshFamily {
    fn from(row: FamilyRow) -> Self {
        Self {
            id: row.id,
            client_id: row.client_id,
            user_id: row.user_id,
            scope: row.scope,
            auth_time: row.auth_time,
            acr: row.acr,
            amr: row.amr,
            sid: row.sid,
            resources: super::resources_from_json(&row.resources),
            dpop_jkt: row.dpop_jkt,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A token joined with its family ([`TOKEN_FAMILY_COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(super) struct TokenFamilyRow {
    #[sqlx(flatten)]
    token: TokenRow,
    #[sqlx(flatten)]
    family: FamilyRow,
}

/// A token joined with its family and the family's user, if the user is still there:
/// the refresh grant's one read.
#[derive(sqlx::FromRow)]
pub(super) struct TokenFamilyUserRow {
    #[sqlx(flatten)]
    token: TokenRow,
    #[sqlx(flatten)]
    family: FamilyRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

/// `SELECT client_id, MAX(created_at) AS last_at`.
#[derive(sqlx::FromRow)]
pub(super) struct LastRefreshRow {
    client_id: String,
    last_at: i64,
}

/// `SELECT COUNT(*) AS n`.
#[derive(sqlx::FromRow)]
pub(super) struct FamilyCountRow {
    n: i64,
}

#[async_trait]
impl<B: Backend> RefreshTokenStore for SqlStore<B>
where
    B::Db: Reads<FamilyRow>
        + Reads<TokenFamilyRow>
        + Reads<TokenFamilyUserRow>
        + Reads<LastRefreshRow>
        + Reads<FamilyCountRow>,
{
    async fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let insert_family = sqlx::query("INSERT INTO refresh_families (id, client_id, user_id, scope, auth_time, created_at, expires_at, revoked_at, acr, amr, sid, resources, dpop_jkt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
            .param(family.id.as_str())
            .param(family.client_id.as_str())
            .param(family.user_id.as_str())
            .param(family.scope.as_str())
            .param(family.auth_time)
            .param(family.created_at)
            .param(family.expires_at)
            .param(family.revoked_at)
            .param(family.acr.as_str())
            .param(family.amr.as_str())
            .param(family.sid.as_deref())
            .param(super::resources_to_json(&family.resources))
            .param(family.dpop_jkt.as_deref());
        B::Db::execute(&mut *tx, insert_family)
            .await
            .map_err(map_err)?;
        B::Db::execute(&mut *tx, bind_token(sqlx::query(INSERT_TOKEN), first))
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn find_refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        let sql = format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE id = $1");
        let row = self.hot_optional(|| sqlx::query(&sql).param(id)).await?;
        let family = row
            .map(|row| read_row::<B::Db, FamilyRow>(&row))
            .transpose()?;
        Ok(family.map(RefreshFamily::from))
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError> {
        let sql = format!("SELECT {TOKEN_FAMILY_COLUMNS} FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1");
        self.read(|| async {
            let row = self
                .fetch_optional(sqlx::query(&sql).param(token_hash))
                .await?;
            let found = row
                .map(|row| read_row::<B::Db, TokenFamilyRow>(&row))
                .transpose()?;
            Ok(found.map(|row| (row.token.into(), row.family.into())))
        })
        .await
    }

    async fn find_refresh_token_and_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily, Option<User>)>, StoreError> {
        let sql = format!("SELECT {TOKEN_FAMILY_COLUMNS}, {JOINED_USER_COLUMNS} FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id LEFT JOIN users u ON u.id = f.user_id WHERE t.token_hash = $1");
        let row = self
            .hot_optional(|| sqlx::query(&sql).param(token_hash))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let row = read_row::<B::Db, TokenFamilyUserRow>(&row)?;
        let user = row.user.into_user()?;
        Ok(Some((row.token.into(), row.family.into(), user)))
    }

    async fn rotate_refresh_token(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
        sealed_successor: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.backend()
            .rotate_refresh_token(used_id, successor, now, sealed_successor)
            .await
    }

    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .param(now)
        .param(family_id);
        self.execute(query).await?;
        Ok(())
    }

    async fn last_refresh_by_client(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|| async {
            let rows = self
                .fetch_all(sqlx::query("SELECT f.client_id AS client_id, MAX(t.created_at) AS last_at FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id WHERE f.user_id = $1 GROUP BY f.client_id ORDER BY f.client_id").param(user_id))
                .await?;
            let rows = read_rows::<B::Db, LastRefreshRow>(&rows)?;
            Ok(rows.into_iter().map(|r| (r.client_id, r.last_at)).collect())
        })
        .await
    }

    async fn list_live_refresh_families(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError> {
        let sql = format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at");
        self.read(|| async {
            let rows = self
                .fetch_all(sqlx::query(&sql).param(user_id).param(now))
                .await?;
            let families = read_rows::<B::Db, FamilyRow>(&rows)?;
            Ok(families.into_iter().map(RefreshFamily::from).collect())
        })
        .await
    }

    async fn count_live_refresh_families(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.read(|| async move {
            let query = sqlx::query("SELECT COUNT(*) AS n FROM refresh_families WHERE client_id = $1 AND revoked_at IS NULL AND expires_at > $2")
                .param(client_id)
                .param(now);
            let row = self.fetch_one(query).await?;
            Ok(read_row::<B::Db, FamilyCountRow>(&row)?.n)
        })
        .await
    }

    async fn revoke_user_refresh_families(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let query = sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR client_id = $3)")
            .param(now)
            .param(user_id)
            .param(client_id);
        self.execute(query).await
    }
}

/// Binds a token's fields in the order of [`INSERT_TOKEN`]'s columns.
pub(crate) fn bind_token<'q, DB: Dialect>(
    query: Query<'q, DB>,
    token: &'q RefreshTokenRecord,
) -> Query<'q, DB> {
    query
        .param(token.id.as_str())
        .param(token.family_id.as_str())
        .param(token.token_hash.as_str())
        .param(token.parent_id.as_deref())
        .param(token.created_at)
        .param(token.expires_at)
        .param(token.used_at)
}
