//! The memory store's refresh-token families, access-token deny list and authorization
//! codes.

use super::MemoryStore;
use crate::store::{
    AccessTokenDenyList, AuthorizationCode, AuthorizationCodeStore, RefreshFamily,
    RefreshTokenRecord, RefreshTokenStore, StoreError,
};
use crate::user::User;
use async_trait::async_trait;

#[async_trait]
impl RefreshTokenStore for MemoryStore {
    async fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut data = self.data();
        let token_taken = data
            .tokens
            .values()
            .any(|t| t.id == first.id || t.token_hash == first.token_hash);
        if data.families.contains_key(&family.id) || token_taken {
            return Err(StoreError::Conflict(format!(
                "refresh family {}",
                family.id
            )));
        }
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

    async fn find_refresh_token_and_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshTokenRecord, RefreshFamily, Option<User>)>, StoreError> {
        let Some((token, family)) = self.find_refresh_token(token_hash).await? else {
            return Ok(None);
        };
        let user = self.data().users.get(&family.user_id).cloned();
        Ok(Some((token, family, user)))
    }

    async fn rotate_refresh_token(
        &self,
        used_id: &str,
        successor: &RefreshTokenRecord,
        now: i64,
        sealed_successor: Option<&str>,
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
            token.sealed_successor = sealed_successor.map(str::to_string);
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

    async fn last_refresh_by_client(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let data = self.data();
        let mut last: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for token in data.tokens.values() {
            if let Some(family) = data.families.get(&token.family_id) {
                if family.user_id == user_id {
                    let at = last
                        .entry(family.client_id.clone())
                        .or_insert(token.created_at);
                    *at = (*at).max(token.created_at);
                }
            }
        }
        Ok(last.into_iter().collect())
    }

    async fn list_live_refresh_families(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError> {
        let mut live: Vec<RefreshFamily> = self
            .data()
            .families
            .values()
            .filter(|f| f.user_id == user_id && f.revoked_at.is_none() && f.expires_at > now)
            .cloned()
            .collect();
        live.sort_by_key(|f| f.created_at);
        Ok(live)
    }

    async fn count_live_refresh_families(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let data = self.data();
        let count = data
            .families
            .values()
            .filter(|f| f.client_id == client_id && f.revoked_at.is_none() && f.expires_at > now)
            .count();
        Ok(count as i64)
    }

    async fn revoke_user_refresh_families(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        for family in self.data().families.values_mut() {
            if family.user_id == user_id
                && family.revoked_at.is_none()
                && client_id.is_none_or(|c| c == family.client_id)
            {
                family.revoked_at = Some(now);
                count += 1;
            }
        }
        Ok(count)
    }
}

#[async_trait]
impl AccessTokenDenyList for MemoryStore {
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        self.data()
            .denied
            .entry(jti.to_string())
            .or_insert(expires_at);
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.data().denied.contains_key(jti))
    }

    async fn record_dpop_proof(
        &self,
        replay_key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data.dpop_proofs.get(replay_key) {
            Some(&until) if until > now => Ok(false),
            _ => {
                data.dpop_proofs.insert(replay_key.to_string(), expires_at);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl AuthorizationCodeStore for MemoryStore {
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
}
