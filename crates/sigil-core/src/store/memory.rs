//! An in-memory [`Store`] for core tests and experiments. Not durable.

use super::{
    AuthorizationCode, Consent, RefreshFamily, RefreshTokenRecord, SignInFailures, Store,
    StoreError,
};
use crate::audit::{chain_entry, AuditEntry, AuditFilter, AuditRecord};
use crate::client::Client;
use crate::throttle::ThrottlePolicy;
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
    consents: HashMap<(String, String), (String, i64)>,
    audit: Vec<AuditEntry>,
    sign_in_failures: HashMap<String, SignInFailures>,
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
    async fn replace_password_hash(
        &self,
        user_id: &str,
        expected_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data.users.get_mut(user_id) {
            Some(user) if user.password_hash == expected_hash => {
                user.password_hash = new_hash.to_string();
                user.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
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
            .map(|(scope, _)| scope.clone()))
    }
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.data().consents.insert(
            (user_id.to_string(), client_id.to_string()),
            (scope.to_string(), now),
        );
        Ok(())
    }

    async fn list_clients(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, StoreError> {
        let needle = search.map(str::to_lowercase).unwrap_or_default();
        let mut out: Vec<Client> = self
            .data()
            .clients
            .values()
            .filter(|c| {
                c.name.to_lowercase().contains(&needle) || c.id.to_lowercase().contains(&needle)
            })
            .cloned()
            .collect();
        out.sort_by_key(|a| a.name.to_lowercase());
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        match self.data().clients.get_mut(&client.id) {
            Some(existing) => {
                *existing = client.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut data = self.data();
        if data.clients.remove(id).is_none() {
            return Ok(false);
        }
        data.families.retain(|_, f| f.client_id != id);
        let families: Vec<String> = data.families.keys().cloned().collect();
        data.tokens.retain(|_, t| families.contains(&t.family_id));
        data.codes.retain(|_, c| c.client_id != id);
        data.consents.retain(|(_, client), _| client != id);
        Ok(true)
    }

    async fn list_users(&self, search: Option<&str>, limit: i64) -> Result<Vec<User>, StoreError> {
        let needle = search.map(str::to_lowercase).unwrap_or_default();
        let mut out: Vec<User> = self
            .data()
            .users
            .values()
            .filter(|u| {
                [Some(&u.username), u.name.as_ref(), u.email.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|field| field.to_lowercase().contains(&needle))
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.username.cmp(&b.username));
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }

    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        let mut out: Vec<Consent> = self
            .data()
            .consents
            .iter()
            .filter(|((user, _), _)| user == user_id)
            .map(|((_, client), (scope, at))| Consent {
                client_id: client.clone(),
                scope: scope.clone(),
                granted_at: *at,
            })
            .collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(out)
    }
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .data()
            .consents
            .remove(&(user_id.to_string(), client_id.to_string()))
            .is_some())
    }
    async fn list_live_refresh_families(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError> {
        let mut out: Vec<RefreshFamily> = self
            .data()
            .families
            .values()
            .filter(|f| f.user_id == user_id && f.revoked_at.is_none() && f.expires_at > now)
            .cloned()
            .collect();
        out.sort_by_key(|f| f.created_at);
        Ok(out)
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

    async fn append_audit(&self, record: AuditRecord) -> Result<AuditEntry, StoreError> {
        let mut data = self.data();
        let previous = data.audit.last().map(|e| (e.seq, e.hash.as_str()));
        let entry = chain_entry(previous, record);
        data.audit.push(entry.clone());
        Ok(entry)
    }
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .data()
            .audit
            .iter()
            .rev()
            .filter(|e| filter.before_seq.is_none_or(|before| e.seq < before))
            .filter(|e| {
                filter
                    .action_prefix
                    .as_ref()
                    .is_none_or(|p| e.record.action.starts_with(p.as_str()))
            })
            .filter(|e| filter.actor.as_ref().is_none_or(|a| &e.record.actor == a))
            .filter(|e| {
                filter
                    .target
                    .as_ref()
                    .is_none_or(|t| e.record.target.as_ref() == Some(t))
            })
            .take(filter.limit.max(0) as usize)
            .cloned()
            .collect())
    }
    async fn audit_entries_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .data()
            .audit
            .iter()
            .filter(|e| e.seq > after_seq)
            .take(limit.max(0) as usize)
            .cloned()
            .collect())
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
        data.sign_in_failures
            .retain(|_, f| f.last_failure_at > now - 86_400);
        let after = data.families.len() + data.tokens.len() + data.denied.len();
        Ok((before - after + codes_deleted) as u64)
    }

    async fn find_sign_in_failures(
        &self,
        subjects: &[String],
    ) -> Result<Vec<SignInFailures>, StoreError> {
        let data = self.data();
        Ok(subjects
            .iter()
            .filter_map(|s| data.sign_in_failures.get(s).cloned())
            .collect())
    }
    async fn reserve_sign_in_attempt(
        &self,
        subject: &str,
        free: i64,
        policy: &ThrottlePolicy,
        now: i64,
    ) -> Result<Option<SignInFailures>, StoreError> {
        let mut data = self.data();
        if let Some(count) = data.sign_in_failures.get(subject) {
            let delay = policy.delay(count.failures, free);
            let is_stale = count.last_failure_at < now - policy.window;
            if !is_stale && delay > 0 && count.last_failure_at + delay + 1 > now {
                return Ok(Some(count.clone()));
            }
        }
        let entry = data
            .sign_in_failures
            .entry(subject.to_string())
            .or_insert_with(|| SignInFailures {
                subject: subject.to_string(),
                failures: 0,
                first_failure_at: now,
                last_failure_at: now,
            });
        if entry.last_failure_at < now - policy.window {
            entry.failures = 0;
            entry.first_failure_at = now;
        }
        entry.failures += 1;
        entry.last_failure_at = now;
        Ok(None)
    }
    async fn release_sign_in_attempt(&self, subject: &str) -> Result<(), StoreError> {
        if let Some(count) = self.data().sign_in_failures.get_mut(subject) {
            count.failures = (count.failures - 1).max(0);
        }
        Ok(())
    }
    async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError> {
        self.data().sign_in_failures.remove(subject);
        Ok(())
    }
}
