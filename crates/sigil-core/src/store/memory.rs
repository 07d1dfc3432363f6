//! An in-memory [`Store`] for core tests and experiments. Not durable.

use super::{AuthorizationCode, RefreshFamily, RefreshTokenRecord, Store, StoreError};
use crate::client::Client;
use crate::user::User;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Data {
    users: HashMap<String, User>,
    clients: HashMap<String, Client>,
    families: HashMap<String, RefreshFamily>,
    tokens: HashMap<String, RefreshTokenRecord>,
    denied: HashMap<String, i64>,
    codes: HashMap<String, AuthorizationCode>,
    consents: HashMap<(String, String), String>,
}

/// Everything in one mutex: simple, and atomic by construction.
#[derive(Default)]
pub struct MemoryStore(Mutex<Data>);

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
    fn data(&self) -> MutexGuard<'_, Data> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.users.values().any(|u| u.username == user.username) {
            return Err(StoreError::Conflict(format!("user {}", user.username)));
        }
        data.users.insert(user.id.clone(), user.clone());
        Ok(())
    }
    async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        let mut data = self.data();
        if data
            .users
            .values()
            .any(|u| u.username == user.username && u.id != user.id)
        {
            return Err(StoreError::Conflict(format!("user {}", user.username)));
        }
        match data.users.get_mut(&user.id) {
            Some(existing) => {
                *existing = user.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.data().users.get(id).cloned())
    }
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .data()
            .users
            .values()
            .find(|u| u.username == username)
            .cloned())
    }
    async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(self.data().users.len() as i64)
    }

    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.clients.contains_key(&client.id) {
            return Err(StoreError::Conflict(format!("client {}", client.id)));
        }
        data.clients.insert(client.id.clone(), client.clone());
        Ok(())
    }
    async fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.data().clients.get(id).cloned())
    }
    async fn max_client_access_token_ttl(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .data()
            .clients
            .values()
            .filter_map(|c| c.access_token_ttl)
            .max())
    }

    async fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut data = self.data();
        data.families.insert(family.id.clone(), family.clone());
        data.tokens.insert(first.id.clone(), first.clone());
        Ok(())
    }
    async fn find_refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        Ok(self.data().families.get(id).cloned())
    }
    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError> {
        let data = self.data();
        let Some(token) = data.tokens.values().find(|t| t.token_hash == token_hash) else {
            return Ok(None);
        };
        let family = data
            .families
            .get(&token.family_id)
            .cloned()
            .ok_or_else(|| StoreError::Other("refresh token without family".into()))?;
        Ok(Some((token.clone(), family)))
    }
    async fn rotate_refresh_token(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        let Some(token) = data.tokens.get(used_id) else {
            return Ok(false);
        };
        let family_live = data
            .families
            .get(&token.family_id)
            .is_some_and(|f| f.revoked_at.is_none());
        if token.used_at.is_some() || !family_live {
            return Ok(false);
        }
        if let Some(token) = data.tokens.get_mut(used_id) {
            token.used_at = Some(now);
        }
        data.tokens.insert(successor.id.clone(), successor.clone());
        Ok(true)
    }
    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        if let Some(family) = self.data().families.get_mut(family_id) {
            family.revoked_at.get_or_insert(now);
        }
        Ok(())
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        self.data().denied.insert(jti.to_string(), expires_at);
        Ok(())
    }
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.data().denied.contains_key(jti))
    }

    async fn create_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.codes.contains_key(&code.code_hash) {
            return Err(StoreError::Conflict("authorization code".into()));
        }
        data.codes.insert(code.code_hash.clone(), code.clone());
        Ok(())
    }
    async fn find_authorization_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        Ok(self.data().codes.get(code_hash).cloned())
    }
    async fn consume_authorization_code(
        &self,
        code_hash: &str,
        now: i64,
        family_id: Option<&str>,
        access_token_jti: &str,
        access_token_exp: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data.codes.get_mut(code_hash) {
            Some(code) if code.used_at.is_none() => {
                code.used_at = Some(now);
                code.family_id = family_id.map(str::to_string);
                code.access_token_jti = Some(access_token_jti.to_string());
                code.access_token_exp = Some(access_token_exp);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .data()
            .consents
            .get(&(user_id.to_string(), client_id.to_string()))
            .cloned())
    }
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        _now: i64,
    ) -> Result<(), StoreError> {
        self.data().consents.insert(
            (user_id.to_string(), client_id.to_string()),
            scope.to_string(),
        );
        Ok(())
    }

    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut data = self.data();
        let codes_before = data.codes.len();
        data.codes.retain(|_, c| c.expires_at + 86_400 > now);
        let codes_deleted = codes_before - data.codes.len();
        let before = data.families.len() + data.tokens.len() + data.denied.len();
        data.families.retain(|_, f| f.expires_at > now);
        let families: Vec<String> = data.families.keys().cloned().collect();
        data.tokens.retain(|_, t| families.contains(&t.family_id));
        data.denied.retain(|_, exp| *exp > now);
        let after = data.families.len() + data.tokens.len() + data.denied.len();
        Ok((before - after + codes_deleted) as u64)
    }
}
