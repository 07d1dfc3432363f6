//! The memory store's third-party client records: initial access tokens, resources, pushed
//! requests and client assertions seen.

use super::MemoryStore;
use crate::store::{PushedRequest, RegistrationToken, Resource, StoreError, ThirdPartyStore};
use async_trait::async_trait;

#[async_trait]
impl ThirdPartyStore for MemoryStore {
    async fn create_registration_token(&self, token: &RegistrationToken) -> Result<(), StoreError> {
        let mut data = self.data();
        if data
            .registration_tokens
            .iter()
            .any(|t| t.id == token.id || t.token_hash == token.token_hash)
        {
            return Err(StoreError::Conflict("registration token".into()));
        }
        data.registration_tokens.push(token.clone());
        Ok(())
    }

    async fn use_registration_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut data = self.data();
        let token = data
            .registration_tokens
            .iter_mut()
            .find(|t| t.token_hash == token_hash && t.expires_at > now && t.uses_left > 0);
        Ok(token.map(|t| {
            t.uses_left -= 1;
            t.id.clone()
        }))
    }

    async fn list_registration_tokens(&self) -> Result<Vec<RegistrationToken>, StoreError> {
        let mut tokens = self.data().registration_tokens.clone();
        tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(tokens)
    }

    async fn delete_registration_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut data = self.data();
        let before = data.registration_tokens.len();
        data.registration_tokens.retain(|t| t.id != id);
        Ok(data.registration_tokens.len() != before)
    }

    async fn count_self_registered_clients(&self, from: Option<&str>) -> Result<i64, StoreError> {
        let data = self.data();
        let count = data
            .clients
            .values()
            .filter(|c| c.registration.is_some())
            .filter(|c| from.is_none() || c.registered_from.as_deref() == from)
            .count();
        Ok(count as i64)
    }

    async fn mark_client_used(&self, client_id: &str, now: i64) -> Result<(), StoreError> {
        if let Some(client) = self.data().clients.get_mut(client_id) {
            client.first_used_at.get_or_insert(now);
        }
        Ok(())
    }

    async fn delete_unused_self_registered_clients(&self, before: i64) -> Result<u64, StoreError> {
        let mut data = self.data();
        let unused: Vec<String> = data
            .clients
            .values()
            .filter(|c| c.registration.is_some() && c.first_used_at.is_none())
            .filter(|c| c.created_at < before)
            .map(|c| c.id.clone())
            .collect();
        for id in &unused {
            data.remove_client(id);
        }
        Ok(unused.len() as u64)
    }

    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError> {
        let mut data = self.data();
        let mut resource = resource.clone();
        if let Some(existing) = data.resources.get(&resource.uri) {
            resource.created_at = existing.created_at;
        }
        data.resources.insert(resource.uri.clone(), resource);
        Ok(())
    }

    async fn find_resource(&self, uri: &str) -> Result<Option<Resource>, StoreError> {
        Ok(self.data().resources.get(uri).cloned())
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, StoreError> {
        let mut resources: Vec<Resource> = self.data().resources.values().cloned().collect();
        resources.sort_by(|a, b| a.uri.cmp(&b.uri));
        Ok(resources)
    }

    async fn delete_resource(&self, uri: &str) -> Result<bool, StoreError> {
        Ok(self.data().resources.remove(uri).is_some())
    }

    async fn create_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.pushed_requests.contains_key(&request.request_hash) {
            return Err(StoreError::Conflict("pushed request".into()));
        }
        data.pushed_requests
            .insert(request.request_hash.clone(), request.clone());
        Ok(())
    }

    async fn take_pushed_request(
        &self,
        request_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<PushedRequest>, StoreError> {
        let mut data = self.data();
        let live = data
            .pushed_requests
            .get(request_hash)
            .is_some_and(|r| r.client_id == client_id && r.expires_at > now);
        if !live {
            return Ok(None);
        }
        Ok(data.pushed_requests.remove(request_hash))
    }

    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        let key = (client_id.to_string(), jti_hash.to_string());
        match data.client_assertions.get(&key) {
            Some(&until) if until > now => Ok(false),
            _ => {
                data.client_assertions.insert(key, expires_at);
                Ok(true)
            }
        }
    }
}
