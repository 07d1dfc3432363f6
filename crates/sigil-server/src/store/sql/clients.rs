//! Clients: the `clients` table. List columns hold JSON arrays of strings.

use super::{like_pattern, read_row, read_rows, Backend, Dialect, Param, Query, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::client::{AuthMethod, Client, DynamicRegistration, GrantType};
use sigil_core::store::{ClientStore, StoreError};

const CLIENT_COLUMNS: &str = "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes, audiences, is_first_party, always_issue_refresh_token, access_token_ttl, refresh_token_ttl, created_at, updated_at, allowed_origins, backchannel_logout_uri, backchannel_logout_session_required, token_endpoint_auth_method, jwks, jwks_uri, require_pushed_authorization_requests, registration, registered_from, first_used_at, dpop_bound_access_tokens";

/// A row of `clients`, selected with [`CLIENT_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct ClientRow {
    id: String,
    name: String,
    secret_hash: Option<String>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    scopes: String,
    audiences: String,
    is_first_party: bool,
    always_issue_refresh_token: bool,
    access_token_ttl: Option<i64>,
    refresh_token_ttl: Option<i64>,
    created_at: i64,
    updated_at: i64,
    allowed_origins: String,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    token_endpoint_auth_method: String,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    require_pushed_authorization_requests: bool,
    registration: Option<String>,
    registered_from: Option<String>,
    first_used_at: Option<i64>,
    dpop_bound_access_tokens: bool,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            name: row.name,
            secret_hash: row.secret_hash,
            redirect_uris: from_json(&row.redirect_uris)?,
            post_logout_redirect_uris: from_json(&row.post_logout_redirect_uris)?,
            grant_types: grants_from_json(&row.grant_types)?,
            scopes: from_json(&row.scopes)?,
            audiences: from_json(&row.audiences)?,
            is_first_party: row.is_first_party,
            always_issue_refresh_token: row.always_issue_refresh_token,
            access_token_ttl: row.access_token_ttl,
            refresh_token_ttl: row.refresh_token_ttl,
            allowed_origins: from_json(&row.allowed_origins)?,
            backchannel_logout_uri: row.backchannel_logout_uri,
            backchannel_logout_session_required: row.backchannel_logout_session_required,
            token_endpoint_auth_method: AuthMethod::parse(&row.token_endpoint_auth_method)
                .ok_or_else(|| {
                    StoreError::Other(format!(
                        "unknown token_endpoint_auth_method {}",
                        row.token_endpoint_auth_method
                    ))
                })?,
            jwks: row.jwks,
            jwks_uri: row.jwks_uri,
            require_pushed_authorization_requests: row.require_pushed_authorization_requests,
            dpop_bound_access_tokens: row.dpop_bound_access_tokens,
            registration: row
                .registration
                .as_deref()
                .map(serde_json::from_str::<DynamicRegistration>)
                .transpose()
                .map_err(|e| StoreError::Other(format!("corrupt registration column: {e}")))?,
            registered_from: row.registered_from,
            first_used_at: row.first_used_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// `SELECT allowed_origins`.
#[derive(sqlx::FromRow)]
struct OriginsRow {
    allowed_origins: String,
}

/// `SELECT MAX(access_token_ttl) AS ttl`.
#[derive(sqlx::FromRow)]
struct MaxTtlRow {
    ttl: Option<i64>,
}

#[async_trait]
impl<B: Backend> ClientStore for SqlStore<B>
where
    B::Db: Reads<ClientRow> + Reads<MaxTtlRow> + Reads<OriginsRow>,
{
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)");
        self.execute(bind_client(sqlx::query(&sql), client)).await?;
        Ok(())
    }

    async fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
        let row = self.hot_optional(|| sqlx::query(&sql).param(id)).await?;
        row.map(|row| Client::try_from(read_row::<B::Db, ClientRow>(&row)?))
            .transpose()
    }

    async fn list_client_origins(&self) -> Result<Vec<String>, StoreError> {
        self.read(|| async move {
            let query =
                sqlx::query("SELECT allowed_origins FROM clients WHERE allowed_origins <> '[]'");
            let rows = self.fetch_all(query).await?;
            let mut origins = Vec::new();
            for row in read_rows::<B::Db, OriginsRow>(&rows)? {
                origins.extend(from_json(&row.allowed_origins)?);
            }
            origins.sort();
            origins.dedup();
            Ok(origins)
        })
        .await
    }

    async fn max_client_access_token_ttl(&self) -> Result<Option<i64>, StoreError> {
        self.read(|| async move {
            let query = sqlx::query("SELECT MAX(access_token_ttl) AS ttl FROM clients");
            let row = self.fetch_one(query).await?;
            Ok(read_row::<B::Db, MaxTtlRow>(&row)?.ttl)
        })
        .await
    }

    async fn list_clients(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE LOWER(name) LIKE $1 ESCAPE '\\' OR LOWER(id) LIKE $1 ESCAPE '\\' ORDER BY LOWER(name), id LIMIT $2");
        self.read(|| async {
            let query = sqlx::query(&sql).param(like_pattern(search)).param(limit);
            let rows = self.fetch_all(query).await?;
            read_rows::<B::Db, ClientRow>(&rows)?
                .into_iter()
                .map(Client::try_from)
                .collect()
        })
        .await
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        // The same parameter order as the insert ($1 is the id).
        let query = bind_client(sqlx::query("UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, post_logout_redirect_uris = $5, grant_types = $6, scopes = $7, audiences = $8, is_first_party = $9, always_issue_refresh_token = $10, access_token_ttl = $11, refresh_token_ttl = $12, created_at = $13, updated_at = $14, allowed_origins = $15, backchannel_logout_uri = $16, backchannel_logout_session_required = $17, token_endpoint_auth_method = $18, jwks = $19, jwks_uri = $20, require_pushed_authorization_requests = $21, registration = $22, registered_from = $23, first_used_at = $24, dpop_bound_access_tokens = $25 WHERE id = $1"), client);
        Ok(self.execute(query).await? == 1)
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        // Families, their tokens, codes and consents go with it (ON DELETE CASCADE).
        let query = sqlx::query("DELETE FROM clients WHERE id = $1").param(id);
        Ok(self.execute(query).await? == 1)
    }
}

/// Binds a client's fields in [`CLIENT_COLUMNS`] order.
fn bind_client<'q, DB: Dialect>(query: Query<'q, DB>, client: &'q Client) -> Query<'q, DB> {
    query
        .param(client.id.as_str())
        .param(client.name.as_str())
        .param(client.secret_hash.as_deref())
        .param(to_json(&client.redirect_uris))
        .param(to_json(&client.post_logout_redirect_uris))
        .param(grants_to_json(&client.grant_types))
        .param(to_json(&client.scopes))
        .param(to_json(&client.audiences))
        .param(client.is_first_party)
        .param(client.always_issue_refresh_token)
        .param(client.access_token_ttl)
        .param(client.refresh_token_ttl)
        .param(client.created_at)
        .param(client.updated_at)
        .param(to_json(&client.allowed_origins))
        .param(client.backchannel_logout_uri.as_deref())
        .param(client.backchannel_logout_session_required)
        .param(client.token_endpoint_auth_method.as_str())
        .param(client.jwks.as_deref())
        .param(client.jwks_uri.as_deref())
        .param(client.require_pushed_authorization_requests)
        .param(client.registration.as_ref().map(registration_to_json))
        .param(client.registered_from.as_deref())
        .param(client.first_used_at)
        .param(client.dpop_bound_access_tokens)
}

fn registration_to_json(registration: &DynamicRegistration) -> String {
    // A struct of strings and a JSON map: serialising it cannot fail.
    serde_json::to_string(registration).unwrap_or_default()
}

fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

fn from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Other(format!("corrupt list column: {e}")))
}

fn grants_to_json(grants: &[GrantType]) -> String {
    let names: Vec<String> = grants.iter().map(|g| g.as_str().to_string()).collect();
    to_json(&names)
}

fn grants_from_json(text: &str) -> Result<Vec<GrantType>, StoreError> {
    from_json(text)?
        .iter()
        .map(|g| {
            GrantType::parse(g).ok_or_else(|| StoreError::Other(format!("unknown grant type {g}")))
        })
        .collect()
}
