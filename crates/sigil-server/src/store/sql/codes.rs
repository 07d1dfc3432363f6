//! Authorization codes: the `authorization_codes` table.

use super::{read_row, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{AuthorizationCode, AuthorizationCodeStore, StoreError};

const CODE_COLUMNS: &str = "code_hash, client_id, user_id, redirect_uri, redirect_uri_given, scope, code_challenge, nonce, auth_time, created_at, expires_at, used_at, family_id, access_token_jti, access_token_exp, acr, amr, sid, resources, dpop_jkt";

/// A row of `authorization_codes`, selected with [`CODE_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct CodeRow {
    code_hash: String,
    client_id: String,
    user_id: String,
    redirect_uri: String,
    redirect_uri_given: bool,
    scope: String,
    code_challenge: String,
    nonce: Option<String>,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    family_id: Option<String>,
    access_token_jti: Option<String>,
    access_token_exp: Option<i64>,
    acr: String,
    amr: String,
    sid: Option<String>,
    resources: String,
    dpop_jkt: Option<String>,
}

impl From<CodeRow> for AuthorizationCode {
    fn from(row: CodeRow) -> Self {
        Self {
            code_hash: row.code_hash,
            client_id: row.client_id,
            user_id: row.user_id,
            redirect_uri: row.redirect_uri,
            redirect_uri_given: row.redirect_uri_given,
            scope: row.scope,
            code_challenge: row.code_challenge,
            nonce: row.nonce,
            auth_time: row.auth_time,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            family_id: row.family_id,
            access_token_jti: row.access_token_jti,
            access_token_exp: row.access_token_exp,
            acr: row.acr,
            amr: row.amr,
            sid: row.sid,
            resources: super::resources_from_json(&row.resources),
            dpop_jkt: row.dpop_jkt,
        }
    }
}

#[async_trait]
impl<B: Backend> AuthorizationCodeStore for SqlStore<B>
where
    B::Db: Reads<CodeRow>,
{
    async fn create_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)");
        let query = sqlx::query(&sql)
            .param(code.code_hash.as_str())
            .param(code.client_id.as_str())
            .param(code.user_id.as_str())
            .param(code.redirect_uri.as_str())
            .param(code.redirect_uri_given)
            .param(code.scope.as_str())
            .param(code.code_challenge.as_str())
            .param(code.nonce.as_deref())
            .param(code.auth_time)
            .param(code.created_at)
            .param(code.expires_at)
            .param(code.used_at)
            .param(code.family_id.as_deref())
            .param(code.access_token_jti.as_deref())
            .param(code.access_token_exp)
            .param(code.acr.as_str())
            .param(code.amr.as_str())
            .param(code.sid.as_deref())
            .param(super::resources_to_json(&code.resources))
            .param(code.dpop_jkt.as_deref());
        self.execute(query).await?;
        Ok(())
    }

    async fn find_authorization_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let sql = format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1");
        self.read(|| async {
            let row = self
                .fetch_optional(sqlx::query(&sql).param(code_hash))
                .await?;
            let code = row
                .map(|row| read_row::<B::Db, CodeRow>(&row))
                .transpose()?;
            Ok(code.map(AuthorizationCode::from))
        })
        .await
    }

    async fn consume_authorization_code(
        &self,
        code_hash: &str,
        now: i64,
        family_id: Option<&str>,
        access_token_jti: &str,
        access_token_exp: i64,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE authorization_codes SET used_at = $1, family_id = $2, access_token_jti = $3, access_token_exp = $4 WHERE code_hash = $5 AND used_at IS NULL")
            .param(now)
            .param(family_id)
            .param(access_token_jti)
            .param(access_token_exp)
            .param(code_hash);
        Ok(self.execute(query).await? == 1)
    }
}
