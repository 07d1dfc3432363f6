//! The memory store's identity providers and linked identities.

use super::accounts::taken_key;
use super::MemoryStore;
use crate::federation::{FederatedIdentity, Provider};
use crate::store::{FederationStore, StoreError};
use crate::user::User;
use async_trait::async_trait;

#[async_trait]
impl FederationStore for MemoryStore {
    async fn create_provider(&self, provider: &Provider) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.providers.contains_key(&provider.id) {
            return Err(StoreError::Conflict("identity_providers.id".into()));
        }
        data.providers.insert(provider.id.clone(), provider.clone());
        Ok(())
    }

    async fn find_provider(&self, id: &str) -> Result<Option<Provider>, StoreError> {
        Ok(self.data().providers.get(id).cloned())
    }

    async fn list_providers(&self) -> Result<Vec<Provider>, StoreError> {
        let mut providers: Vec<Provider> = self.data().providers.values().cloned().collect();
        providers.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(providers)
    }

    async fn delete_provider(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.data().providers.remove(id).is_some())
    }

    async fn find_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<FederatedIdentity>, StoreError> {
        Ok(self
            .data()
            .identities
            .iter()
            .find(|i| i.issuer == issuer && i.subject == subject)
            .cloned())
    }

    async fn list_identities(&self, user_id: &str) -> Result<Vec<FederatedIdentity>, StoreError> {
        let mut identities: Vec<FederatedIdentity> = self
            .data()
            .identities
            .iter()
            .filter(|i| i.user_id == user_id)
            .cloned()
            .collect();
        identities.sort_by(|a, b| (a.created_at, &a.issuer).cmp(&(b.created_at, &b.issuer)));
        Ok(identities)
    }

    async fn create_identity(&self, identity: &FederatedIdentity) -> Result<(), StoreError> {
        let mut data = self.data();
        if data
            .identities
            .iter()
            .any(|i| i.issuer == identity.issuer && i.subject == identity.subject)
        {
            return Err(StoreError::Conflict("federated_identities.pkey".into()));
        }
        if !data.users.contains_key(&identity.user_id) {
            return Err(StoreError::Other(
                "federated_identities.user_id: no such user".into(),
            ));
        }
        data.identities.push(identity.clone());
        Ok(())
    }

    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &FederatedIdentity,
    ) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.users.contains_key(&user.id) {
            return Err(StoreError::Conflict("users.id".into()));
        }
        if let Some(key) = taken_key(&data.users, user) {
            return Err(StoreError::Conflict(format!("users.{key}")));
        }
        if data
            .identities
            .iter()
            .any(|i| i.issuer == identity.issuer && i.subject == identity.subject)
        {
            return Err(StoreError::Conflict("federated_identities.pkey".into()));
        }
        data.users.insert(user.id.clone(), user.clone());
        data.identities.push(identity.clone());
        Ok(())
    }

    async fn touch_identity(
        &self,
        issuer: &str,
        subject: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut data = self.data();
        if let Some(identity) = data
            .identities
            .iter_mut()
            .find(|i| i.issuer == issuer && i.subject == subject)
        {
            identity.last_used_at = Some(now);
        }
        Ok(())
    }

    async fn delete_identity(
        &self,
        user_id: &str,
        issuer: &str,
        subject: &str,
        keep_way_in: bool,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        let Some(index) = data
            .identities
            .iter()
            .position(|i| i.user_id == user_id && i.issuer == issuer && i.subject == subject)
        else {
            return Ok(false);
        };
        if keep_way_in {
            let has_password = data.users.get(user_id).is_some_and(User::has_password);
            let others = data
                .identities
                .iter()
                .filter(|i| i.user_id == user_id)
                .count()
                - 1;
            if !has_password && others == 0 {
                return Ok(false);
            }
        }
        data.identities.remove(index);
        Ok(true)
    }
}
