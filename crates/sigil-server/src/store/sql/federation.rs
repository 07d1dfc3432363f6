//! Identity providers and linked identities: the `identity_providers` and
//! `federated_identities` tables.

use super::users::{insert_user, insert_user_sql, UserKeys};
use super::{read_row, read_rows, Backend, Dialect, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::federation::{FederatedIdentity, Provider, ProviderKind};
use sigil_core::store::{FederationStore, StoreError};
use sigil_core::user::User;

const PROVIDER_COLUMNS: &str = "id, name, kind, issuer, client_id, sealed_client_secret, scopes, authorize_url, token_url, userinfo_url, subject_claim, create_users, trust_email, allow_http, created_at, updated_at";
const IDENTITY_COLUMNS: &str =
    "issuer, subject, user_id, provider_id, email, created_at, last_used_at";

#[derive(sqlx::FromRow)]
pub(super) struct ProviderRow {
    id: String,
    name: String,
    kind: String,
    issuer: String,
    client_id: String,
    sealed_client_secret: String,
    scopes: String,
    authorize_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    subject_claim: String,
    create_users: bool,
    trust_email: bool,
    allow_http: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProviderRow> for Provider {
    type Error = StoreError;
    fn try_from(row: ProviderRow) -> Result<Self, StoreError> {
        let kind = ProviderKind::parse(&row.kind).ok_or_else(|| {
            StoreError::Other(format!("identity_providers.kind {:?} is unknown", row.kind))
        })?;
        Ok(Self {
            id: row.id,
            name: row.name,
            kind,
            issuer: row.issuer,
            client_id: row.client_id,
            sealed_client_secret: row.sealed_client_secret,
            scopes: row.scopes,
            authorize_url: row.authorize_url,
            token_url: row.token_url,
            userinfo_url: row.userinfo_url,
            subject_claim: row.subject_claim,
            create_users: row.create_users,
            trust_email: row.trust_email,
            allow_http: row.allow_http,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct IdentityRow {
    issuer: String,
    subject: String,
    user_id: String,
    provider_id: String,
    email: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<IdentityRow> for FederatedIdentity {
    fn from(row: IdentityRow) -> Self {
        Self {
            issuer: row.issuer,
            subject: row.subject,
            user_id: row.user_id,
            provider_id: row.provider_id,
            email: row.email,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

fn insert_identity<'q, DB: Dialect>(
    sql: &'q str,
    identity: &'q FederatedIdentity,
) -> super::Query<'q, DB> {
    sqlx::query(sql)
        .param(identity.issuer.as_str())
        .param(identity.subject.as_str())
        .param(identity.user_id.as_str())
        .param(identity.provider_id.as_str())
        .param(identity.email.as_deref())
        .param(identity.created_at)
        .param(identity.last_used_at)
}

fn insert_identity_sql() -> String {
    format!(
        "INSERT INTO federated_identities ({IDENTITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
}

#[async_trait]
impl<B: Backend> FederationStore for SqlStore<B>
where
    B::Db: Reads<ProviderRow> + Reads<IdentityRow>,
{
    async fn create_provider(&self, provider: &Provider) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO identity_providers ({PROVIDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        let query = sqlx::query(&sql)
            .param(provider.id.as_str())
            .param(provider.name.as_str())
            .param(provider.kind.as_str())
            .param(provider.issuer.as_str())
            .param(provider.client_id.as_str())
            .param(provider.sealed_client_secret.as_str())
            .param(provider.scopes.as_str())
            .param(provider.authorize_url.as_deref())
            .param(provider.token_url.as_deref())
            .param(provider.userinfo_url.as_deref())
            .param(provider.subject_claim.as_str())
            .param(provider.create_users)
            .param(provider.trust_email)
            .param(provider.allow_http)
            .param(provider.created_at)
            .param(provider.updated_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn find_provider(&self, id: &str) -> Result<Option<Provider>, StoreError> {
        let sql = format!("SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE id = $1");
        self.read(|| async {
            let row = self.fetch_optional(sqlx::query(&sql).param(id)).await?;
            row.map(|row| read_row::<B::Db, ProviderRow>(&row).and_then(Provider::try_from))
                .transpose()
        })
        .await
    }

    async fn list_providers(&self) -> Result<Vec<Provider>, StoreError> {
        let sql = format!("SELECT {PROVIDER_COLUMNS} FROM identity_providers ORDER BY name, id");
        self.read(|| async {
            let rows = self.fetch_all(sqlx::query(&sql)).await?;
            read_rows::<B::Db, ProviderRow>(&rows)?
                .into_iter()
                .map(Provider::try_from)
                .collect()
        })
        .await
    }

    async fn delete_provider(&self, id: &str) -> Result<bool, StoreError> {
        let query = sqlx::query("DELETE FROM identity_providers WHERE id = $1").param(id);
        Ok(self.execute(query).await? == 1)
    }

    async fn find_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<FederatedIdentity>, StoreError> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM federated_identities WHERE issuer = $1 AND subject = $2"
        );
        self.read(|| async {
            let row = self
                .fetch_optional(sqlx::query(&sql).param(issuer).param(subject))
                .await?;
            row.map(|row| read_row::<B::Db, IdentityRow>(&row).map(FederatedIdentity::from))
                .transpose()
        })
        .await
    }

    async fn list_identities(&self, user_id: &str) -> Result<Vec<FederatedIdentity>, StoreError> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM federated_identities WHERE user_id = $1 ORDER BY created_at, issuer, subject"
        );
        self.read(|| async {
            let rows = self.fetch_all(sqlx::query(&sql).param(user_id)).await?;
            Ok(read_rows::<B::Db, IdentityRow>(&rows)?
                .into_iter()
                .map(FederatedIdentity::from)
                .collect())
        })
        .await
    }

    async fn create_identity(&self, identity: &FederatedIdentity) -> Result<(), StoreError> {
        let sql = insert_identity_sql();
        self.execute(insert_identity(&sql, identity)).await?;
        Ok(())
    }

    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &FederatedIdentity,
    ) -> Result<(), StoreError> {
        let keys = UserKeys::of(user);
        let user_sql = insert_user_sql();
        let identity_sql = insert_identity_sql();
        let mut tx = self.begin().await?;
        B::Db::execute(&mut *tx, insert_user(&user_sql, user, &keys))
            .await
            .map_err(super::map_err)?;
        B::Db::execute(&mut *tx, insert_identity(&identity_sql, identity))
            .await
            .map_err(super::map_err)?;
        tx.commit().await.map_err(super::map_err)
    }

    async fn touch_identity(
        &self,
        issuer: &str,
        subject: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE federated_identities SET last_used_at = $1 WHERE issuer = $2 AND subject = $3",
        )
        .param(now)
        .param(issuer)
        .param(subject);
        self.execute(query).await?;
        Ok(())
    }

    async fn delete_identity(
        &self,
        user_id: &str,
        issuer: &str,
        subject: &str,
        keep_way_in: bool,
    ) -> Result<bool, StoreError> {
        const DELETE: &str =
            "DELETE FROM federated_identities WHERE user_id = $1 AND issuer = $2 AND subject = $3";
        if !keep_way_in {
            let query = sqlx::query(DELETE)
                .param(user_id)
                .param(issuer)
                .param(subject);
            return Ok(self.execute(query).await? == 1);
        }
        // The user's row is locked first (an update that changes nothing), so that two
        // unlinks of one user's identities run one after the other: the second sees what
        // the first left, on PostgreSQL's READ COMMITTED as on SQLite.
        let mut tx = self.begin().await?;
        B::Db::execute(
            &mut *tx,
            sqlx::query("UPDATE users SET version = version WHERE id = $1").param(user_id),
        )
        .await
        .map_err(super::map_err)?;
        let sql = format!(
            "{DELETE} AND (EXISTS (SELECT 1 FROM users WHERE id = $1 AND password_hash <> '') OR EXISTS (SELECT 1 FROM federated_identities WHERE user_id = $1 AND NOT (issuer = $2 AND subject = $3)))"
        );
        let deleted = B::Db::execute(
            &mut *tx,
            sqlx::query(&sql)
                .param(user_id)
                .param(issuer)
                .param(subject),
        )
        .await
        .map_err(super::map_err)?;
        tx.commit().await.map_err(super::map_err)?;
        Ok(deleted == 1)
    }
}
