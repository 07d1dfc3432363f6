//! The memory store's users, clients and consents.

use super::MemoryStore;
use crate::client::Client;
use crate::store::{ClientStore, Consent, ConsentStore, StoreError, UserStore};
use crate::user::{email_key, username_key, User};
use async_trait::async_trait;
use std::collections::HashMap;

/// The unique key `user` would break among `users` (other than itself), as the databases'
/// constraint names it.
pub(super) fn taken_key(users: &HashMap<String, User>, user: &User) -> Option<&'static str> {
    let name = username_key(&user.username);
    let email = user.email.as_deref().map(email_key);
    for other in users.values().filter(|u| u.id != user.id) {
        if username_key(&other.username) == name {
            return Some("username_key");
        }
        if email.is_some() && other.email.as_deref().map(email_key) == email {
            return Some("email_key");
        }
    }
    None
}

/// Whether `text` contains `search` the way the databases' `LIKE` search matches it:
/// trimmed and case-insensitive, wildcards literal.
fn contains_search(text: &str, search: &str) -> bool {
    text.to_lowercase().contains(search)
}

/// The search as [`contains_search`] takes it; empty (matching everything) when none.
fn normalized(search: Option<&str>) -> String {
    search.unwrap_or("").trim().to_lowercase()
}

fn at_most<T>(mut list: Vec<T>, limit: i64) -> Vec<T> {
    list.truncate(usize::try_from(limit).unwrap_or(0));
    list
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.users.contains_key(&user.id) {
            return Err(StoreError::Conflict("users.id".into()));
        }
        if let Some(key) = taken_key(&data.users, user) {
            return Err(StoreError::Conflict(format!("users.{key}")));
        }
        data.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        let mut data = self.data();
        if let Some(key) = taken_key(&data.users, user) {
            return Err(StoreError::Conflict(format!("users.{key}")));
        }
        match data.users.get_mut(&user.id) {
            Some(existing) if existing.version == user.version => {
                *existing = user.clone();
                existing.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.data().users.get(id).cloned())
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let data = self.data();
        let key = username_key(username);
        let exact = data.users.values().find(|u| u.username == username);
        Ok(exact
            .or_else(|| {
                data.users
                    .values()
                    .find(|u| username_key(&u.username) == key)
            })
            .cloned())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let key = email_key(email);
        Ok(self
            .data()
            .users
            .values()
            .find(|u| u.email.as_deref().map(email_key).as_deref() == Some(key.as_str()))
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
                user.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_users(&self, search: Option<&str>, limit: i64) -> Result<Vec<User>, StoreError> {
        let search = normalized(search);
        let mut found: Vec<User> = self
            .data()
            .users
            .values()
            .filter(|u| {
                [Some(&u.username), u.name.as_ref(), u.email.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|field| contains_search(field, &search))
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(at_most(found, limit))
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
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

    async fn list_client_origins(&self) -> Result<Vec<String>, StoreError> {
        let mut origins: Vec<String> = self
            .data()
            .clients
            .values()
            .flat_map(|c| c.allowed_origins.iter().cloned())
            .collect();
        origins.sort();
        origins.dedup();
        Ok(origins)
    }

    async fn max_client_access_token_ttl(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .data()
            .clients
            .values()
            .filter_map(|c| c.access_token_ttl)
            .max())
    }

    async fn list_clients(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, StoreError> {
        let search = normalized(search);
        let mut found: Vec<Client> = self
            .data()
            .clients
            .values()
            .filter(|c| contains_search(&c.name, &search) || contains_search(&c.id, &search))
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id)));
        Ok(at_most(found, limit))
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
        Ok(self.data().remove_client(id))
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
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

    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        let mut found: Vec<Consent> = self
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
        found.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(found)
    }

    async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .data()
            .consents
            .remove(&(user_id.to_string(), client_id.to_string()))
            .is_some())
    }

    async fn count_consents(&self, client_id: &str) -> Result<i64, StoreError> {
        let data = self.data();
        let count = data
            .consents
            .keys()
            .filter(|(_, client)| client == client_id)
            .count();
        Ok(count as i64)
    }
}
