//! Third-party client records: `registration_tokens`, `resources`, `pushed_requests` and
//! `client_assertions`, and the self-registered clients' counts and clean-up on `clients`.
//! Only hashes of initial access tokens, request URIs and assertion ids are stored.

use super::{read_row, read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{PushedRequest, RegistrationToken, Resource, StoreError, ThirdPartyStore};

const TOKEN_COLUMNS: &str = "id, token_hash, uses_left, expires_at, created_at";
const RESOURCE_COLUMNS: &str = "uri, name, scopes, self_registered_clients, created_at, updated_at";
const PUSHED_COLUMNS: &str = "request_hash, client_id, parameters, expires_at";

#[derive(sqlx::FromRow)]
pub(super) struct RegistrationTokenRow {
    id: String,
    token_hash: String,
    uses_left: i64,
    expires_at: i64,
    created_at: i64,
}

impl From<RegistrationTokenRow> for RegistrationToken {
    fn from(row: RegistrationTokenRow) -> Self {
        Self {
            id: row.id,
            token_hash: row.token_hash,
            uses_left: row.uses_left,
            expires_at: row.expires_at,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ResourceRow {
    uri: String,
    name: String,
    scopes: String,
    self_registered_clients: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ResourceRow> for Resource {
    type Error = StoreError;

    fn try_from(row: ResourceRow) -> Result<Self, StoreError> {
        Ok(Self {
            scopes: serde_json::from_str(&row.scopes)
                .map_err(|e| StoreError::Other(format!("corrupt resources.scopes: {e}")))?,
            uri: row.uri,
            name: row.name,
            self_registered_clients: row.self_registered_clients,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PushedRow {
    request_hash: String,
    client_id: String,
    parameters: String,
    expires_at: i64,
}

/// `SELECT id` of a used token.
#[derive(sqlx::FromRow)]
pub(super) struct IdRow {
    id: String,
}

/// `SELECT COUNT(*) AS n`.
#[derive(sqlx::FromRow)]
pub(super) struct CountRow {
    n: i64,
}

#[async_trait]
impl<B: Backend> ThirdPartyStore for SqlStore<B>
where
    B::Db: Reads<RegistrationTokenRow>
        + Reads<ResourceRow>
        + Reads<PushedRow>
        + Reads<IdRow>
        + Reads<CountRow>,
{
    async fn create_registration_token(&self, token: &RegistrationToken) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO registration_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        );
        let query = sqlx::query(&sql)
            .param(token.id.as_str())
            .param(token.token_hash.as_str())
            .param(token.uses_left)
            .param(token.expires_at)
            .param(token.created_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn use_registration_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // One conditional statement: two registrations racing for the last use cannot both
        // get it. A write: not tried again.
        let query = sqlx::query("UPDATE registration_tokens SET uses_left = uses_left - 1 WHERE token_hash = $1 AND expires_at > $2 AND uses_left > 0 RETURNING id")
            .param(token_hash)
            .param(now);
        let row = self.fetch_optional(query).await?;
        Ok(row
            .map(|row| read_row::<B::Db, IdRow>(&row))
            .transpose()?
            .map(|r| r.id))
    }

    async fn list_registration_tokens(&self) -> Result<Vec<RegistrationToken>, StoreError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM registration_tokens ORDER BY created_at DESC, id");
        self.read(|| async {
            let rows = self.fetch_all(sqlx::query(&sql)).await?;
            Ok(read_rows::<B::Db, RegistrationTokenRow>(&rows)?
                .into_iter()
                .map(RegistrationToken::from)
                .collect())
        })
        .await
    }

    async fn delete_registration_token(&self, id: &str) -> Result<bool, StoreError> {
        let query = sqlx::query("DELETE FROM registration_tokens WHERE id = $1").param(id);
        Ok(self.execute(query).await? == 1)
    }

    async fn count_self_registered_clients(&self, from: Option<&str>) -> Result<i64, StoreError> {
        self.read(|| async move {
            let query = match from {
                Some(address) => sqlx::query("SELECT COUNT(*) AS n FROM clients WHERE registration IS NOT NULL AND registered_from = $1").param(address),
                None => sqlx::query("SELECT COUNT(*) AS n FROM clients WHERE registration IS NOT NULL"),
            };
            let row = self.fetch_one(query).await?;
            Ok(read_row::<B::Db, CountRow>(&row)?.n)
        })
        .await
    }

    async fn mark_client_used(&self, client_id: &str, now: i64) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE clients SET first_used_at = $1 WHERE id = $2 AND first_used_at IS NULL",
        )
        .param(now)
        .param(client_id);
        self.execute(query).await?;
        Ok(())
    }

    async fn delete_unused_self_registered_clients(&self, before: i64) -> Result<u64, StoreError> {
        let query = sqlx::query("DELETE FROM clients WHERE registration IS NOT NULL AND first_used_at IS NULL AND created_at < $1")
            .param(before);
        self.execute(query).await
    }

    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError> {
        let scopes = serde_json::Value::from(resource.scopes.clone()).to_string();
        let sql = format!("INSERT INTO resources ({RESOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (uri) DO UPDATE SET name = excluded.name, scopes = excluded.scopes, self_registered_clients = excluded.self_registered_clients, updated_at = excluded.updated_at");
        let query = sqlx::query(&sql)
            .param(resource.uri.as_str())
            .param(resource.name.as_str())
            .param(scopes)
            .param(resource.self_registered_clients)
            .param(resource.created_at)
            .param(resource.updated_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn find_resource(&self, uri: &str) -> Result<Option<Resource>, StoreError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE uri = $1");
        let row = self.hot_optional(|| sqlx::query(&sql).param(uri)).await?;
        row.map(|row| Resource::try_from(read_row::<B::Db, ResourceRow>(&row)?))
            .transpose()
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, StoreError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM resources ORDER BY uri");
        self.read(|| async {
            let rows = self.fetch_all(sqlx::query(&sql)).await?;
            read_rows::<B::Db, ResourceRow>(&rows)?
                .into_iter()
                .map(Resource::try_from)
                .collect()
        })
        .await
    }

    async fn delete_resource(&self, uri: &str) -> Result<bool, StoreError> {
        let query = sqlx::query("DELETE FROM resources WHERE uri = $1").param(uri);
        Ok(self.execute(query).await? == 1)
    }

    async fn create_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO pushed_requests ({PUSHED_COLUMNS}) VALUES ($1, $2, $3, $4)");
        let query = sqlx::query(&sql)
            .param(request.request_hash.as_str())
            .param(request.client_id.as_str())
            .param(request.parameters.as_str())
            .param(request.expires_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn take_pushed_request(
        &self,
        request_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<PushedRequest>, StoreError> {
        // Deleted as it is read: a request_uri works once, on whichever replica sees it first.
        let sql = format!("DELETE FROM pushed_requests WHERE request_hash = $1 AND client_id = $2 AND expires_at > $3 RETURNING {PUSHED_COLUMNS}");
        let query = sqlx::query(&sql)
            .param(request_hash)
            .param(client_id)
            .param(now);
        let row = self.fetch_optional(query).await?;
        Ok(row
            .map(|row| read_row::<B::Db, PushedRow>(&row))
            .transpose()?
            .map(|r| PushedRequest {
                request_hash: r.request_hash,
                client_id: r.client_id,
                parameters: r.parameters,
                expires_at: r.expires_at,
            }))
    }

    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // A row for this jti that has expired is taken over; a live one makes the insert
        // change nothing: a replay.
        let query = sqlx::query("INSERT INTO client_assertions (client_id, jti_hash, expires_at) VALUES ($1, $2, $3) ON CONFLICT (client_id, jti_hash) DO UPDATE SET expires_at = excluded.expires_at WHERE client_assertions.expires_at <= $4")
            .param(client_id)
            .param(jti_hash)
            .param(expires_at)
            .param(now);
        Ok(self.execute(query).await? == 1)
    }
}
