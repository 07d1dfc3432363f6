//! The memory store's second factors and recovery codes.

use super::MemoryStore;
use crate::store::{Factor, FactorKind, SecondFactorStore, StoreError};
use async_trait::async_trait;

/// A recovery code as kept: its hash, and when it was used.
#[derive(Debug, Clone)]
pub(super) struct RecoveryCode {
    pub user_id: String,
    pub hash: String,
    pub used_at: Option<i64>,
}

#[async_trait]
impl SecondFactorStore for MemoryStore {
    async fn create_factor(&self, factor: &Factor) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.factors.iter().any(|f| f.id == factor.id) {
            return Err(StoreError::Conflict("second_factors.id".into()));
        }
        if factor.credential_id.is_some()
            && data
                .factors
                .iter()
                .any(|f| f.credential_id == factor.credential_id)
        {
            return Err(StoreError::Conflict("second_factors.credential_id".into()));
        }
        data.factors.push(factor.clone());
        Ok(())
    }

    async fn list_factors(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        let mut factors: Vec<Factor> = self
            .data()
            .factors
            .iter()
            .filter(|f| f.user_id == user_id)
            .cloned()
            .collect();
        factors.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(factors)
    }

    async fn find_factor_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<Factor>, StoreError> {
        Ok(self
            .data()
            .factors
            .iter()
            .find(|f| {
                f.credential_id.as_deref() == Some(credential_id)
                    && f.is_confirmed()
                    && f.kind == FactorKind::Passkey
            })
            .cloned())
    }

    async fn confirm_factor(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        step: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data
            .factors
            .iter_mut()
            .find(|f| f.id == id && f.user_id == user_id && !f.is_confirmed())
        {
            Some(factor) => {
                factor.name = name.to_string();
                factor.confirmed_at = Some(now);
                factor.last_used_at = Some(now);
                factor.last_step = step;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn use_totp_step(&self, id: &str, step: i64, now: i64) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data
            .factors
            .iter_mut()
            .find(|f| f.id == id && f.is_confirmed() && f.last_step.is_none_or(|last| last < step))
        {
            Some(factor) => {
                factor.last_step = Some(step);
                factor.last_used_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn record_factor_use(
        &self,
        id: &str,
        new_data: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data
            .factors
            .iter_mut()
            .find(|f| f.id == id && f.is_confirmed())
        {
            Some(factor) => {
                if let Some(new_data) = new_data {
                    factor.data = new_data.to_string();
                }
                factor.last_used_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn rename_factor(&self, user_id: &str, id: &str, name: &str) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data
            .factors
            .iter_mut()
            .find(|f| f.id == id && f.user_id == user_id && f.is_confirmed())
        {
            Some(factor) => {
                factor.name = name.to_string();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_factor(
        &self,
        user_id: &str,
        id: &str,
        keep_one: bool,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        let others = data
            .factors
            .iter()
            .filter(|f| f.user_id == user_id && f.id != id && f.is_confirmed())
            .count();
        if keep_one && others == 0 {
            return Ok(false);
        }
        let before = data.factors.len();
        data.factors
            .retain(|f| !(f.id == id && f.user_id == user_id));
        Ok(data.factors.len() < before)
    }

    async fn delete_factors(&self, user_id: &str) -> Result<u64, StoreError> {
        let mut data = self.data();
        let before = data.factors.len();
        data.factors
            .retain(|f| !(f.user_id == user_id && f.is_confirmed()));
        let removed = (before - data.factors.len()) as u64;
        data.factors.retain(|f| f.user_id != user_id);
        data.recovery_codes.retain(|c| c.user_id != user_id);
        Ok(removed)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
        _now: i64,
    ) -> Result<(), StoreError> {
        let mut data = self.data();
        data.recovery_codes.retain(|c| c.user_id != user_id);
        data.recovery_codes
            .extend(hashes.iter().map(|hash| RecoveryCode {
                user_id: user_id.to_string(),
                hash: hash.clone(),
                used_at: None,
            }));
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut data = self.data();
        match data
            .recovery_codes
            .iter_mut()
            .find(|c| c.user_id == user_id && c.hash == hash && c.used_at.is_none())
        {
            Some(code) => {
                code.used_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn count_recovery_codes(&self, user_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .data()
            .recovery_codes
            .iter()
            .filter(|c| c.user_id == user_id && c.used_at.is_none())
            .count() as i64)
    }
}
